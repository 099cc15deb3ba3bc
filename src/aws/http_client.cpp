#include "http_client.hpp"

#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cctype>
#include <deque>
#include <optional>

#include "ingest/error.hpp"

namespace ingest::aws::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

endpoint endpoint::parse(const std::string& url) {
  endpoint ep;
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    ep.tls = true;
    rest = url.substr(8);
  } else {
    throw error(errc::invalid_config, "the endpoint must start with http:// or https://: " + url);
  }
  rest = rest.substr(0, rest.find('/'));
  const auto colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find(']') == std::string::npos) {
    ep.host = rest.substr(0, colon);
    ep.port = rest.substr(colon + 1);
  } else {
    ep.host = rest;
    ep.port = ep.tls ? "443" : "80";
  }
  if (ep.host.empty() || ep.port.empty()) throw error(errc::invalid_config, "no host in endpoint " + url);
  return ep;
}

service_url split_service_url(std::string_view url, std::string_view service) {
  service_url u;
  const std::string plain = std::string(service) + "+http://", secure = std::string(service) + "+https://";
  std::string_view rest;
  if (url.starts_with(plain)) {
    rest = url.substr(plain.size());
  } else if (url.starts_with(secure)) {
    u.tls = true;
    rest = url.substr(secure.size());
  } else {
    throw error(errc::invalid_config,
                std::string(service) + ": a URL starts with " + plain + " or " + secure);
  }
  if (const auto q = rest.find('?'); q != std::string_view::npos) {
    u.query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0)
    throw error(errc::invalid_config, std::string(service) + ": the URL needs a host and a path");
  u.endpoint = (u.tls ? "https://" : "http://") + std::string(rest.substr(0, slash));
  u.path = rest.substr(slash + 1);
  return u;
}

std::string endpoint::host_header() const {
  if ((tls && port == "443") || (!tls && port == "80")) return host;
  return host + ":" + port;
}

namespace {

struct connection {
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
  bool connected = false;
  std::uint64_t uses = 0;

  beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }
  void close() {
    error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().close();
  }
};

struct request {
  std::shared_ptr<bhttp::request<bhttp::string_body>> message;
  std::chrono::milliseconds timeout;
  http_client::done_fn done;
  bool retried = false;
};

bool stale_connection_error(const error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == bhttp::error::partial_message;
}

}  // namespace

struct http_client::impl : std::enable_shared_from_this<http_client::impl> {
  impl(asio::io_context& io_, endpoint ep_, client_options o)
      : io(io_), ep(std::move(ep_)), options(std::move(o)), ssl(asio::ssl::context::tls_client), resolver(io_) {
    if (ep.tls) {
      if (options.tls_verify) {
        ssl.set_verify_mode(asio::ssl::verify_peer);
        if (options.tls_ca_file.empty()) ssl.set_default_verify_paths();
        else ssl.load_verify_file(options.tls_ca_file);
      } else {
        ssl.set_verify_mode(asio::ssl::verify_none);
      }
    }
  }

  asio::io_context& io;
  const endpoint ep;
  const client_options options;
  asio::ssl::context ssl;
  tcp::resolver resolver;
  std::optional<tcp::resolver::results_type> resolved;
  std::vector<std::shared_ptr<connection>> idle;
  std::deque<request> waiting;
  std::size_t open = 0;
  bool stopped = false;

  std::shared_ptr<connection> make_connection() {
    auto c = std::make_shared<connection>();
    if (ep.tls) c->secure.emplace(io.get_executor(), ssl);
    else c->plain.emplace(io.get_executor());
    ++open;
    return c;
  }

  void submit(request r) {
    if (stopped) return fail(std::move(r), asio::error::operation_aborted);
    if (!idle.empty()) {
      auto c = std::move(idle.back());
      idle.pop_back();
      return start(std::move(c), std::move(r));
    }
    if (open < options.max_connections) return start(make_connection(), std::move(r));
    waiting.push_back(std::move(r));
  }

  void fail(request r, error_code ec) { r.done(ec, http_result{}); }

  // A connection is free again: give it the next waiting request or park it.
  void release(std::shared_ptr<connection> c) {
    if (stopped) {
      drop(std::move(c));
      return;
    }
    if (!waiting.empty()) {
      auto r = std::move(waiting.front());
      waiting.pop_front();
      return start(std::move(c), std::move(r));
    }
    idle.push_back(std::move(c));
  }

  void drop(std::shared_ptr<connection> c) {
    c->close();
    --open;
    // A slot is free: a waiting request may open a new connection.
    if (!stopped && !waiting.empty() && open < options.max_connections) {
      auto r = std::move(waiting.front());
      waiting.pop_front();
      start(make_connection(), std::move(r));
    }
  }

  void start(std::shared_ptr<connection> c, request r) {
    if (c->connected) return send(std::move(c), std::move(r));
    if (resolved) return connect(std::move(c), std::move(r));
    resolver.async_resolve(ep.host, ep.port,
                           [self = shared_from_this(), c = std::move(c), r = std::move(r)](
                               error_code ec, tcp::resolver::results_type results) mutable {
                             if (ec) {
                               self->drop(std::move(c));
                               return self->fail(std::move(r), ec);
                             }
                             self->resolved = std::move(results);
                             self->connect(std::move(c), std::move(r));
                           });
  }

  void connect(std::shared_ptr<connection> c, request r) {
    auto& stream = c->lowest();
    stream.expires_after(options.connect_timeout);
    stream.async_connect(*resolved, [self = shared_from_this(), c, r = std::move(r)](
                                        error_code ec, const tcp::endpoint&) mutable {
      if (ec) {
        self->resolved.reset();  // resolve again next time
        self->drop(std::move(c));
        return self->fail(std::move(r), ec);
      }
      error_code ignored;
      c->lowest().socket().set_option(tcp::no_delay(true), ignored);
      if (!c->secure) {
        c->connected = true;
        return self->send(std::move(c), std::move(r));
      }
      if (!SSL_set_tlsext_host_name(c->secure->native_handle(), self->ep.host.c_str())) {
        self->drop(std::move(c));
        return self->fail(std::move(r), asio::error::invalid_argument);
      }
      c->secure->set_verify_callback(asio::ssl::host_name_verification(self->ep.host));
      c->secure->async_handshake(asio::ssl::stream_base::client,
                                 [self, c, r = std::move(r)](error_code hec) mutable {
                                   if (hec) {
                                     self->drop(std::move(c));
                                     return self->fail(std::move(r), hec);
                                   }
                                   c->connected = true;
                                   self->send(std::move(c), std::move(r));
                                 });
    });
  }

  template <class Stream>
  void exchange(Stream& stream, std::shared_ptr<connection> c, request r) {
    c->lowest().expires_after(r.timeout);
    auto message = r.message;
    bhttp::async_write(
        stream, *message, [self = shared_from_this(), &stream, c, r = std::move(r)](error_code ec, std::size_t) mutable {
          if (ec) return self->failed(std::move(c), std::move(r), ec);
          auto parser = std::make_shared<bhttp::response_parser<bhttp::string_body>>();
          parser->body_limit(64u << 20);
          if (r.message->method() == bhttp::verb::head) parser->skip(true);  // a length, no body
          bhttp::async_read(stream, c->buffer, *parser,
                            [self, c, r = std::move(r), parser](error_code rec, std::size_t) mutable {
                              if (rec) return self->failed(std::move(c), std::move(r), rec);
                              c->lowest().expires_never();
                              ++c->uses;
                              auto response = parser->release();
                              const bool keep = response.keep_alive();
                              http_result result{response.result_int(), std::move(response.body()), {}};
                              for (const auto& field : response) {
                                std::string name(field.name_string());
                                for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
                                result.headers.emplace_back(std::move(name), std::string(field.value()));
                              }
                              r.done(error_code{}, std::move(result));
                              if (keep) self->release(std::move(c));
                              else self->drop(std::move(c));
                            });
        });
  }

  void send(std::shared_ptr<connection> c, request r) {
    // The stream reference is taken before the pointer is moved into the call.
    if (c->secure) {
      auto& stream = *c->secure;
      exchange(stream, std::move(c), std::move(r));
    } else {
      auto& stream = *c->plain;
      exchange(stream, std::move(c), std::move(r));
    }
  }

  void failed(std::shared_ptr<connection> c, request r, error_code ec) {
    const bool reused = c->uses > 0;
    drop(std::move(c));
    // A keep-alive connection the server closed while it sat idle: once more, fresh.
    if (reused && !r.retried && stale_connection_error(ec) && !stopped) {
      r.retried = true;
      if (open < options.max_connections) return start(make_connection(), std::move(r));
      waiting.push_front(std::move(r));
      return;
    }
    if (ec == beast::error::timeout) ec = asio::error::timed_out;
    fail(std::move(r), ec);
  }

  void shutdown() {
    stopped = true;
    for (auto& c : idle) {
      c->close();
      --open;
    }
    idle.clear();
    while (!waiting.empty()) {
      auto r = std::move(waiting.front());
      waiting.pop_front();
      fail(std::move(r), asio::error::operation_aborted);
    }
  }
};

http_client::http_client(asio::io_context& io, endpoint ep, client_options options)
    : impl_(std::make_shared<impl>(io, std::move(ep), std::move(options))) {}

http_client::~http_client() { impl_->shutdown(); }

std::string http_result::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (n == name) return v;
  return {};
}

void http_client::post(std::string target, http_fields fields, std::string body, std::chrono::milliseconds timeout,
                       done_fn done) {
  send("POST", std::move(target), std::move(fields), std::move(body), timeout, std::move(done));
}

void http_client::send(std::string_view method, std::string target, http_fields fields, std::string body,
                       std::chrono::milliseconds timeout, done_fn done) {
  const auto verb = bhttp::string_to_verb(method);
  if (verb == bhttp::verb::unknown) throw error(errc::invalid_config, "http: unknown method " + std::string(method));
  auto message = std::make_shared<bhttp::request<bhttp::string_body>>(verb, target, 11);
  message->set(bhttp::field::host, impl_->ep.host_header());
  for (auto& [name, value] : fields) message->set(name, value);
  message->keep_alive(true);
  message->body() = std::move(body);
  // Only a body that is there is announced (a GET or HEAD carries no length).
  if (!message->body().empty() || verb == bhttp::verb::put || verb == bhttp::verb::post) message->prepare_payload();
  impl_->submit(request{std::move(message), timeout, std::move(done)});
}

void http_client::shutdown() { impl_->shutdown(); }

std::size_t http_client::open_connections() const { return impl_->open; }

}  // namespace ingest::aws::detail
