#pragma once
// A blocking HTTP/1.1 client for tests against a server on 127.0.0.1.

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
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
    bhttp::write(socket_, req);
    return read();
  }

  // Sends bytes as they are (malformed requests, pipelining).
  void send_raw(const std::string& bytes) { boost::asio::write(socket_, boost::asio::buffer(bytes)); }

  http_result read() {
    namespace bhttp = boost::beast::http;
    bhttp::response<bhttp::string_body> res;
    bhttp::read(socket_, buffer_, res);
    http_result out;
    out.status = static_cast<int>(res.result_int());
    out.body = res.body();
    for (const auto& f : res) out.headers.set(f.name_string(), f.value());
    return out;
  }

  // True when the server closed the connection (reads end of stream).
  bool closed_by_server() {
    char c;
    boost::system::error_code ec;
    socket_.read_some(boost::asio::buffer(&c, 1), ec);
    return ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset;
  }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
};

}  // namespace ingest::test
