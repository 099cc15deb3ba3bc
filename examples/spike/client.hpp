#pragma once
// The HTTP client of the flood: connections opened ahead of the flood, requests written
// from bytes made beforehand, timed, expired by one sweeper, and retried as a browser
// retries.

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "results.hpp"
#include "settings.hpp"

namespace spike {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

struct target {
  std::string host;
  std::string port;
};

// A server of the flood: its address, and how the report names it.
struct server_address {
  tcp::endpoint endpoint;
  std::string name;  // host:port
};

target parse_url(const std::string& url);

struct student {
  std::string id;
  std::string token;
  std::string key;
  std::string body;
  std::string wire;  // the whole HTTP request
  bool double_click = false;
};

// One connection. Its requests' timeout is a deadline time stamp that one sweeper
// checks for every client (see `deadline_sweeper`), up to 50 ms late: arming and
// cancelling a timer per request cost the load generator CPU that it shares with the
// server it measures (see benchmarks/README.md).
class client {
 public:
  // Starts on `servers[first % size]`; moves to the next after a connection error.
  client(asio::any_io_executor ex, const settings& s, results& r, const std::vector<server_address>& servers,
         std::size_t first)
      : stream_(ex), s_(s), r_(r), servers_(servers), at_(first % servers.size()) {}

  asio::any_io_executor executor() { return stream_.get_executor(); }

  // Called by the sweeper (any thread): closes the connection, on its own executor,
  // if its request is still unanswered past the deadline.
  void expire_if_late(steady::time_point now);

  asio::awaitable<bool> connect();

  // One request; returns the status (0: no answer) and the body.
  asio::awaitable<std::pair<int, std::string>> post(const student& st, steady::time_point scheduled);

 private:
  static constexpr steady::rep never = std::numeric_limits<steady::rep>::max();

  steady::duration timeout() const {
    return std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(s_.timeout_s));
  }
  // Drops the connection (and what was read of it); the next request connects again.
  void disconnect();
  // After a connection error: the next request goes to the next server.
  void fail_over();
  const server_address& server() const { return servers_[at_]; }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  const settings& s_;
  results& r_;
  const std::vector<server_address>& servers_;
  std::size_t at_;
  bool connected_ = false;
  bool timed_out_ = false;                    // the sweeper closed the connection
  std::atomic<steady::rep> deadline_{never};  // of the request in flight
};

// Expires late requests for a set of clients, every 50 ms, while any of the work it
// guards is running: `start()` once per coroutine, `finish()` when it ends; the last
// `finish()` stops the sweeper so that `io.run()` returns.
class deadline_sweeper {
 public:
  deadline_sweeper(asio::io_context& io, std::vector<client*> clients)
      : strand_(asio::make_strand(io)), timer_(strand_), clients_(std::move(clients)) {}

  void start() { active_.fetch_add(1, std::memory_order_relaxed); }
  void finish();
  void run();

 private:
  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer timer_;
  std::vector<client*> clients_;
  std::atomic<int> active_{0};
};

// Sends one student's submission with a browser's retries; records the receipt.
asio::awaitable<void> submit(client& c, const student& st, const settings& s, results& r, steady::time_point scheduled);

}  // namespace spike
