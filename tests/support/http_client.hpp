#pragma once

#include <poll.h>
// A blocking HTTP/1.1 client for tests against a server on 127.0.0.1, plain or TLS.

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ingest::test {

struct http_result {
  int status = 0;
  std::string body;
  boost::beast::http::fields headers;

  // The body as JSON (null when it is not JSON).
  boost::json::value json() const {
    boost::system::error_code ec;
    auto v = boost::json::parse(body, ec);
    return ec ? boost::json::value{} : v;
  }
  std::string field(const char* name) const {
    const auto doc = json();
    const auto* v = doc.is_object() ? doc.as_object().if_contains(name) : nullptr;
    return v && v->is_string() ? std::string(v->as_string()) : std::string{};
  }
};

// One connection, kept alive across calls.
class http_client {
 public:
  explicit http_client(std::uint16_t port) : socket_(io_) {
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  }

  // TLS: the server's certificate is verified against `ca_file` and the name
  // 127.0.0.1; the handshake throws when it fails.
  http_client(std::uint16_t port, const std::string& ca_file) : http_client(port) {
    namespace ssl = boost::asio::ssl;
    tls_context_ = std::make_unique<ssl::context>(ssl::context::tls_client);
    tls_context_->load_verify_file(ca_file);
    tls_context_->set_verify_mode(ssl::verify_peer);
    tls_.emplace(socket_, *tls_context_);
    tls_->set_verify_callback(ssl::host_name_verification("127.0.0.1"));
    tls_->handshake(ssl::stream_base::client);
  }

  http_result call(boost::beast::http::verb verb, const std::string& target,
                   std::vector<std::pair<std::string, std::string>> headers = {}, std::string body = {}) {
    namespace bhttp = boost::beast::http;
    bhttp::request<bhttp::string_body> req{verb, target, 11};
    req.set(bhttp::field::host, "127.0.0.1");
    for (auto& [k, v] : headers) req.set(k, v);
    if (!body.empty() || verb == bhttp::verb::post) {
      req.body() = std::move(body);
      req.prepare_payload();
    }
    with_stream([&](auto& s) { bhttp::write(s, req); });
    return read();
  }

  // A HEAD request: the answer's headers; the parser is told no content follows, and
  // whatever the server sent after them is left in the buffer for `leftover()`.
  http_result head(const std::string& target, std::vector<std::pair<std::string, std::string>> headers = {}) {
    namespace bhttp = boost::beast::http;
    bhttp::request<bhttp::empty_body> req{bhttp::verb::head, target, 11};
    req.set(bhttp::field::host, "127.0.0.1");
    for (auto& [k, v] : headers) req.set(k, v);
    with_stream([&](auto& s) { bhttp::write(s, req); });
    bhttp::response_parser<bhttp::string_body> parser;
    parser.skip(true);
    with_stream([&](auto& s) { bhttp::read(s, buffer_, parser); });
    http_result out;
    out.status = static_cast<int>(parser.get().result_int());
    out.body = parser.get().body();
    for (const auto& f : parser.get()) out.headers.set(f.name_string(), f.value());
    return out;
  }
  // Bytes read from the connection but not yet parsed.
  std::size_t leftover() const { return buffer_.size(); }

  // Sends bytes as they are (malformed requests, pipelining).
  void send_raw(const std::string& bytes) {
    with_stream([&](auto& s) { boost::asio::write(s, boost::asio::buffer(bytes)); });
  }

  http_result read() {
    namespace bhttp = boost::beast::http;
    bhttp::response<bhttp::string_body> res;
    with_stream([&](auto& s) { bhttp::read(s, buffer_, res); });
    http_result out;
    out.status = static_cast<int>(res.result_int());
    out.body = res.body();
    for (const auto& f : res) out.headers.set(f.name_string(), f.value());
    return out;
  }

  // Reads raw bytes (an answer streamed in pieces) until what was read since the last
  // call holds `needle`, or `limit` passes, or the server closes; returns what was read.
  std::string read_until(std::string_view needle, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    std::string got(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    buffer_.clear();
    const auto until = std::chrono::steady_clock::now() + limit;
    char c[4096];
    while (got.find(needle) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      // asio's blocking read waits for ever: wait here, bounded, for something to read.
      pollfd p{socket_.native_handle(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      boost::system::error_code ec;
      std::size_t n = 0;
      with_stream([&](auto& s) { n = s.read_some(boost::asio::buffer(c), ec); });
      got.append(c, n);
      if (ec) break;
    }
    return got;
  }

  // True when the server closed the connection (reads to the end of the stream,
  // skipping whatever it sent before closing).
  bool closed_by_server() {
    char c[512];
    boost::system::error_code ec;
    while (!ec) with_stream([&](auto& s) { s.read_some(boost::asio::buffer(c), ec); });
    return ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset ||
           ec == boost::asio::ssl::error::stream_truncated;
  }

 private:
  template <class F>
  void with_stream(F f) {
    if (tls_)
      f(*tls_);
    else
      f(socket_);
  }

  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  std::unique_ptr<boost::asio::ssl::context> tls_context_;
  std::optional<boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>> tls_;
  boost::beast::flat_buffer buffer_;
};

}  // namespace ingest::test
