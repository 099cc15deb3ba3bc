#pragma once
// Students who submitted before the flood and keep their page open during it
// (--streams N): each follows its receipt over GET /v1/submissions/{id}/events on a
// connection of its own, as the student page does, so that what the open streams cost
// the server shows in the same run's accept latency; and the server's memory with
// them open.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "client.hpp"
#include "settings.hpp"

namespace spike {

struct followers_report {
  int asked = 0;
  int receipts = 0;         // followers whose submission got a receipt
  int opened = 0;           // streams answered 200 text/event-stream
  int refused = 0;          // a stream answered otherwise, or a connection that failed
  int open_at_end = 0;      // still open when they were closed
  std::uint64_t events = 0;  // `event: status` received on all of them
  double open_seconds = 0;   // how long opening them all took
  long rss_before_kib = -1;  // the server's resident memory before the streams (--server-pid)
  long rss_with_kib = -1;    // and with them open
};

class followers {
 public:
  followers(const settings& s, const run_plan& plan, std::vector<server_address> servers);
  ~followers();
  // Submits one submission per follower and opens its stream, at most 256 at a time;
  // returns once every one is open or failed.
  void open();
  // Closes every stream and stops; the counts.
  followers_report close();

 private:
  struct one;
  asio::awaitable<void> follow(std::size_t i);
  asio::awaitable<void> launch();

  const settings& s_;
  const run_plan& plan_;
  std::vector<server_address> servers_;
  asio::io_context io_;
  std::vector<std::unique_ptr<one>> all_;
  std::atomic<int> opening_{0};
  std::atomic<int> settled_{0};  // opened or failed
  std::atomic<int> receipts_{0}, opened_{0}, refused_{0}, open_now_{0};
  std::atomic<std::uint64_t> events_{0};
  followers_report report_{};
  std::thread thread_;
};

}  // namespace spike
