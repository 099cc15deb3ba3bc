#pragma once
// The scenarios that load the server: the wall (every student submits within a window,
// each on a connection opened beforehand, some clicking twice) and the open loop (a
// fixed rate on a pool of connections); with --one-student every submission comes from
// one abusive student.

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <optional>
#include <vector>

#include "client.hpp"
#include "results.hpp"
#include "settings.hpp"

namespace spike {

// The students of a run, each with the request it sends, made before the flood.
std::vector<student> make_students(const settings& s, const run_plan& plan);

// The connections of a run and the flood over them, on `settings::threads` threads.
class flood {
 public:
  flood(const settings& s, const run_plan& plan, results& r) : s_(s), plan_(plan), r_(r), io_(s.threads) {}

  // The servers' addresses, from --url.
  const std::vector<server_address>& resolve();
  // Connections first (the students are already on the page), then the wall.
  void connect();
  // Sets `results::t0` and schedules every submission from then on.
  void schedule(const std::vector<student>& students);
  // Runs the flood until every submission is answered or given up; returns its seconds.
  double run();
  // The status reads made during the flood (--poll-rate): their answers by status
  // ("200 received", "http_404", ...) in `errors`, their latency in `all_latency`.
  results& polls() { return polls_; }

 private:
  asio::any_io_executor client_executor();
  void schedule_wall(const std::vector<student>& students);
  void schedule_open_loop(const std::vector<student>& students);
  double scheduled_offset(int i) const;
  void run_threads();
  // poller.cpp: students polling the status of receipts already given, at
  // `settings::poll_rate` in all, while any submission is still being sent.
  void schedule_polls(const std::vector<student>& students);
  asio::awaitable<void> poll_loop(client& c, const std::vector<student>& students);

  const settings& s_;
  const run_plan& plan_;
  results& r_;
  asio::io_context io_;
  std::vector<server_address> servers_;
  std::size_t next_client_ = 0;  // spreads the clients over the servers
  int pool_ = 0;
  std::vector<std::unique_ptr<client>> clients_;
  std::vector<std::unique_ptr<client>> extra_;  // the second connection of a double click
  std::optional<deadline_sweeper> sweeper_;
  std::atomic<int> next_{0};        // open loop: the next submission to send (outlives the coroutines)
  std::atomic<int> submitting_{0};  // coroutines still sending submissions
  results polls_;
  std::vector<std::unique_ptr<client>> pollers_;
  std::atomic<std::int64_t> next_poll_{0};
};

}  // namespace spike
