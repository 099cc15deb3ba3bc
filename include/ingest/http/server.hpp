#pragma once
/// @file
/// A small HTTP/1.1 server on Beast for the accept path: keep-alive, pipelined
/// requests answered in order, bounded headers and bodies, a read deadline per
/// request (slow clients are cut off), a connection cap, optional TLS (OpenSSL), and
/// a graceful stop.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ingest::http {

/// An HTTP/1.1 request as parsed by Beast (the body as a string).
using request = boost::beast::http::request<boost::beast::http::string_body>;
/// The answer to one request.
using response = boost::beast::http::response<boost::beast::http::string_body>;

namespace detail {
class session;
}

/// One response written in pieces as they come, for as long as the client stays
/// (server-sent events): made by `responder::open_stream`. Every member may be called
/// from any thread.
class body_stream {
 public:
  virtual ~body_stream() = default;
  /// Queues `data` to be sent after what was queued before. False, and `data` dropped,
  /// once the stream has ended: the client went away, a write failed or passed the
  /// write timeout, more than `server_options::max_stream_backlog` bytes waited for a
  /// client that does not read, the server stopped, or `close()` was called.
  virtual bool write(std::string data) = 0;
  /// Ends the response once what was queued is sent; the connection then closes.
  virtual void close() = 0;
  /// False once the stream has ended.
  virtual bool open() const noexcept = 0;
};

/// Sends the answer to one request. Call it once, from any thread; the session
/// writes it in request order. Dropping a responder without calling it answers 500.
class responder {
 public:
  responder() = default;
  /// Used by the server (one per request).
  explicit responder(std::shared_ptr<detail::session> s) noexcept;
  /// Hands the answer to `deliver` instead of a connection: for running a handler
  /// without a socket (tests, fuzzing, another transport). Dropped without an answer,
  /// it delivers a 500 like a connection's responder.
  explicit responder(std::function<void(response)> deliver);
  /// Moves the duty to answer; the source answers nothing.
  responder(responder&&) noexcept = default;
  /// Moves the duty to answer; a responder still owing an answer answers 500 first.
  responder& operator=(responder&&) noexcept;
  responder(const responder&) = delete;
  responder& operator=(const responder&) = delete;
  ~responder();

  /// Sends `r` (exactly once; later calls are ignored).
  void operator()(response r);
  /// Answers with `head` (its status and headers; its body is dropped) and then with
  /// whatever is written to the returned stream, until the stream ends; the body ends
  /// when the connection closes (no Content-Length, `Connection: close`), as
  /// server-sent events do. `on_end` is called once when the stream ends, for whatever
  /// reason, on the connection's strand (it must not block). No deadline runs while
  /// nothing is being written. A HEAD request gets `head` alone. From a responder made
  /// from a function (no connection), `head` is delivered and the stream is already
  /// ended. Like `operator()`, the responder is spent.
  std::shared_ptr<body_stream> open_stream(response head, std::function<void()> on_end = {});
  /// False once called (or moved from).
  explicit operator bool() const noexcept { return session_ != nullptr; }
  /// The connection's executor (a strand). A completion bound to it with
  /// `boost::asio::bind_executor` runs where the answer is written, so answering costs
  /// no further hand-off between threads. Empty for a responder made from a function,
  /// and once called or moved from.
  boost::asio::any_io_executor executor() const;

 private:
  std::shared_ptr<detail::session> session_;
};

/// What the handler learns about the connection.
struct request_info {
  boost::asio::ip::address remote{};  ///< the peer's address
  std::uint64_t connection = 0;       ///< a number unique to the connection
};

/// Called for every complete request, on one of the io_context's threads. It must not
/// block: answer now, or keep the responder and answer when the work completes.
using handler = std::function<void(request req, const request_info& info, responder respond)>;

/// Where a `server` listens and the limits it enforces on each connection.
struct server_options {
  std::string host = "127.0.0.1";  ///< the address to bind (an IP address, not a name)
  std::uint16_t port = 0;          ///< 0: any free port (see `server::port()`)
  /// Listen backlog; the kernel caps it at net.core.somaxconn.
  int backlog = 65535;
  std::size_t max_connections = 16384;       ///< further connections are closed at once
  std::size_t max_header_bytes = 16 * 1024;  ///< larger: 431
  std::size_t max_body_bytes = 64 * 1024;    ///< larger: 413
  /// Time allowed to receive one whole request, headers and body (slowloris guard),
  /// and to wait for the next request on an idle keep-alive connection. This and
  /// `write_timeout` are checked by one timer for all connections, an eighth of the
  /// shorter one apart (10 ms to 1 s): a connection is closed up to that much late.
  std::chrono::milliseconds read_timeout{std::chrono::seconds(30)};
  std::chrono::milliseconds write_timeout{std::chrono::seconds(10)};  ///< time allowed to write one response
  std::string server_name = "ingest";                                 ///< the `Server` header
  /// Bytes a `body_stream` may hold for a client that does not read them; past that the
  /// stream ends (the client may reconnect).
  std::size_t max_stream_backlog = 64 * 1024;
  /// PEM file with the server's certificate (and chain). With `tls_key_file`, the
  /// server speaks HTTPS only (TLS 1.2 or newer); the handshake counts against
  /// `read_timeout`. Both empty: plain HTTP.
  std::string tls_cert_file{};
  std::string tls_key_file{};  ///< PEM file with the certificate's private key

  /// Throws `ingest::error(errc::invalid_config)` when a value is out of range or only
  /// one of the two TLS files is given.
  void validate() const;
};

/// Counters of a running server.
struct server_stats {
  std::uint64_t connections_open = 0;     ///< connections open now
  std::uint64_t connections_total = 0;    ///< connections accepted since start
  std::uint64_t connections_refused = 0;  ///< over `max_connections`
  std::uint64_t requests = 0;             ///< requests received since start
  std::uint64_t timeouts = 0;             ///< connections closed by the read deadline
  std::uint64_t tls_failures = 0;         ///< TLS handshakes that failed or timed out
  std::uint64_t streams_open = 0;         ///< `body_stream`s open now
};

/// An HTTP server on a caller-run io_context.
///
/// **Ownership.** Refers to the caller's io_context; owns the listener and the
/// connections. Not copyable or movable.
///
/// **Threading.** Run the io_context on as many threads as you like: each connection
/// is a strand. The handler may be called concurrently for different connections. Or
/// give the server several io_contexts, one per thread (see the second constructor).
///
/// **Completion.** The handler answers through its `responder`, at once or later from
/// any thread; a dropped responder answers 500. A HEAD request reaches the handler as
/// HEAD; answer it as the GET it mirrors: the server sends that answer's headers,
/// `Content-Length` included, and drops its content.
///
/// **Cancellation.** `stop()`; requests have no per-request cancellation (a client that
/// goes away simply does not read its answer).
///
/// **Lifetime.** Construct, `start()`, and `stop()` before the io_context goes away.
/// `stop()` closes the listener and idle connections; connections with a request in
/// hand finish it (answered with `Connection: close`) and then close.
///
/// @code
/// asio::io_context io;
/// ingest::http::server srv(io, {.port = 8081}, [](auto req, auto&, auto respond) {
///   respond(ingest::http::json_response(req, boost::beast::http::status::ok, R"({"ok":true})"));
/// });
/// srv.start();
/// io.run();
/// @endcode
class server {
 public:
  /// Binds nothing yet (see `start()`); `io` must outlive the server and is run by the
  /// caller, on as many threads as wanted. Throws `ingest::error` for bad options.
  server(boost::asio::io_context& io, server_options options, handler h);
  /// Spreads the connections over `contexts`, round-robin; a connection stays on the
  /// context it started on. The listener and the deadline timer run on the first. Run
  /// each context on a thread of its own and the threads share no event loop: no
  /// scheduler lock between them, and a connection's work stays on one core. But work
  /// is no longer balanced between the threads: a handler that blocks holds up every
  /// connection of its context, and a context that also runs other work (a queue's
  /// completions) falls behind. Measure both forms (benchmarks/README.md: `bare_http`
  /// used 0.86x the CPU with one context per thread; `exam_server` gained nothing).
  /// Every context must outlive the server.
  /// Throws `ingest::error` for bad options, or when `contexts` is empty or holds null.
  server(std::vector<boost::asio::io_context*> contexts, server_options options, handler h);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Loads the TLS files (if any), binds and starts accepting. Throws `ingest::error`
  /// when the address cannot be bound or a TLS file cannot be loaded.
  void start();
  /// The bound port (after `start()`).
  std::uint16_t port() const noexcept;
  /// Stops accepting and closes idle connections; thread-safe, idempotent.
  void stop();
  /// True after `stop()`.
  bool stopping() const noexcept;
  /// A snapshot of the counters (thread-safe).
  server_stats stats() const;

 private:
  friend class detail::session;
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace ingest::http
