#pragma once
// A small HTTP/1.1 client on Beast for the AWS-compatible services (SQS, S3): a
// keep-alive connection pool (plain TCP or TLS through OpenSSL), per-request timeouts, one retry on a fresh
// connection when a reused keep-alive connection turns out to be closed.
//
// Single-threaded by design: every call and every completion runs on the one thread
// that runs the io_context given to it.

#include <boost/asio/io_context.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ingest/detail/callback.hpp"

namespace ingest::aws::detail {

struct endpoint {
  bool tls = false;
  std::string host;
  std::string port;
  /// `http://host:port` or `https://host:port[/...]`; throws ingest::error on anything else.
  static endpoint parse(const std::string& url);
  /// The Host header value (port omitted when it is the scheme's default).
  std::string host_header() const;
};

/// A service's URL, `<service>+http[s]://host[:port]/path[?query]`, split: the
/// endpoint (`http[s]://host[:port]`), the path after the first '/' and the query.
struct service_url {
  std::string endpoint;
  std::string_view path;
  std::string_view query;
  bool tls = false;
};
/// Throws ingest::error (invalid_config, naming `service`) on another scheme, or without
/// a host or a '/' after it.
service_url split_service_url(std::string_view url, std::string_view service);

struct client_options {
  std::size_t max_connections = 64;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(3)};
  bool tls_verify = true;
  std::string tls_ca_file{};
};

using http_fields = std::vector<std::pair<std::string, std::string>>;

struct http_result {
  unsigned status = 0;
  std::string body;
  http_fields headers{};  ///< names in lower case
  /// The value of header `name` (lower case), or "" when absent.
  std::string header(std::string_view name) const;
};

class http_client {
 public:
  using done_fn = ingest::detail::callback<void(boost::system::error_code, http_result)>;

  http_client(boost::asio::io_context& io, endpoint ep, client_options options);
  ~http_client();
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  /// POSTs `body` to `target`; `done` runs on the io_context's thread.
  void post(std::string target, http_fields fields, std::string body, std::chrono::milliseconds timeout,
            done_fn done);
  /// Sends `method` (`GET`, `HEAD`, `PUT`, ...) to `target`; a `HEAD` answer has no body.
  void send(std::string_view method, std::string target, http_fields fields, std::string body,
            std::chrono::milliseconds timeout, done_fn done);
  /// Closes every connection; requests in progress complete with an error.
  void shutdown();

  std::size_t open_connections() const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace ingest::aws::detail
