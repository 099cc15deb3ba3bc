#pragma once
// Inside the HTTP server: its shared state, and what the responder and the server see of
// a connection (connection.hpp has the connection itself).

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ingest/http/server.hpp"

namespace ingest::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct server::state : std::enable_shared_from_this<server::state> {
  state(std::vector<asio::io_context*> c, server_options o, handler h)
      : contexts(std::move(c)),
        options(std::move(o)),
        on_request(std::move(h)),
        acceptor(asio::make_strand(*contexts.front())),
        pause(acceptor.get_executor()),
        sweep(acceptor.get_executor()) {}

  const std::vector<asio::io_context*> contexts;  // connections go round-robin over them
  std::size_t next_context = 0;                   // on the acceptor's strand
  const server_options options;
  const handler on_request;
  tcp::acceptor acceptor;
  asio::steady_timer pause;               // after EMFILE: wait before accepting again
  asio::steady_timer sweep;               // enforces the connections' read and write deadlines
  std::optional<asio::ssl::context> tls;  // set by start() when TLS files are given
  std::atomic<bool> stopped{false};
  std::atomic<std::uint16_t> bound_port{0};
  std::atomic<std::uint64_t> open{0}, total{0}, refused{0}, requests{0}, timeouts{0}, tls_failures{0}, next_id{0},
      streams{0};
  std::mutex mutex;
  std::unordered_map<std::uint64_t, std::weak_ptr<detail::session>> sessions;

  void accept();
  void close_idle();
  void sweep_deadlines();
  // The open connections, copied under the mutex; drop them outside it (a connection's
  // destructor takes the same mutex).
  std::vector<std::shared_ptr<detail::session>> live_sessions();
};

namespace detail {

class stream_state;

// What the responder and the server see of a connection, plain or TLS.
class session : public std::enable_shared_from_this<session> {
 public:
  using clock_ticks = std::chrono::steady_clock::rep;
  virtual ~session() = default;
  // From any thread: write the answer on the connection's strand.
  virtual void send(response r) = 0;
  // From any thread: write `head`, then what `s` is given until it ends (open_stream).
  virtual void begin_stream(response head, std::shared_ptr<stream_state> s) = 0;
  virtual void stream_write(std::string data) = 0;
  virtual void stream_close() = 0;
  virtual void close_if_idle() = 0;
  // From the sweeper: closes the connection on its strand if its deadline has passed.
  virtual void expire_if_due(clock_ticks now) = 0;
  // Where send() writes (empty: no connection).
  virtual asio::any_io_executor executor() = 0;

 protected:
  using owner = server::state;  // a friend of the server names its state for the connections
};

// The body_stream a responder hands out: forwards to its connection while both live.
class stream_state final : public body_stream {
 public:
  stream_state(std::weak_ptr<session> s, std::function<void()> on_end)
      : session_(std::move(s)), on_end_(std::move(on_end)) {}
  bool write(std::string data) override;
  void close() override;
  bool open() const noexcept override { return open_.load(); }
  // Once, from the connection (on its strand): the stream is over; calls on_end.
  void ended();

 private:
  std::weak_ptr<session> session_;
  std::function<void()> on_end_;
  std::atomic<bool> open_{true};
};

}  // namespace detail
}  // namespace ingest::http
