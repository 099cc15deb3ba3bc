#pragma once
// A small HTTP/1.1 client on Beast for the SQS backend: a keep-alive connection pool
// (plain TCP or TLS through OpenSSL), per-request timeouts, one retry on a fresh
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
#include <utility>
#include <vector>

#include "ingest/detail/callback.hpp"

namespace ingest::sqs::detail {

struct endpoint {
  bool tls = false;
  std::string host;
  std::string port;
  /// `http://host:port` or `https://host:port[/...]`; throws ingest::error on anything else.
  static endpoint parse(const std::string& url);
  /// The Host header value (port omitted when it is the scheme's default).
  std::string host_header() const;
};

struct client_options {
  std::size_t max_connections = 64;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(3)};
  bool tls_verify = true;
  std::string tls_ca_file{};
};

struct http_result {
  unsigned status = 0;
  std::string body;
};

using http_fields = std::vector<std::pair<std::string, std::string>>;

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
  /// Closes every connection; requests in progress complete with an error.
  void shutdown();

  std::size_t open_connections() const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace ingest::sqs::detail
