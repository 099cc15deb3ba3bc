// The yardstick for the exam server's accept path: the same ingest::http server with a
// handler that answers every request 202 at once (no auth, no queue, no disk).
//
//   bare_http [--listen 127.0.0.1:8082] [--threads 0] [--io-per-thread]

#include <CLI/CLI.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "ingest/envelope.hpp"
#include "ingest/http/response.hpp"
#include "ingest/http/server.hpp"

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:8082";
  unsigned threads = 0;
  bool per_thread = false;
  CLI::App cli{"bare_http: answers every request 202 (the HTTP layer alone)"};
  cli.add_option("--listen", listen, "HOST:PORT")->capture_default_str();
  cli.add_option("--threads", threads, "threads (0: one per core)")->capture_default_str();
  cli.add_flag("--io-per-thread", per_thread,
               "one io_context per thread, connections spread over them (default: one shared by all, as in the "
               "exam servers)");
  CLI11_PARSE(cli, argc, argv);
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    std::fputs("bare_http: --listen must be HOST:PORT\n", stderr);
    return 2;
  }
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  // One io_context shared by every thread, or one per thread (the first serves the signals).
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts;
  for (unsigned i = 0; i < (per_thread ? threads : 1); ++i)
    contexts.push_back(std::make_unique<boost::asio::io_context>(per_thread ? 1 : static_cast<int>(threads)));
  std::vector<boost::asio::io_context*> loops;
  for (auto& c : contexts) loops.push_back(c.get());
  ingest::http::server server(
      loops,
      {.host = listen.substr(0, colon), .port = static_cast<std::uint16_t>(std::stoi(listen.substr(colon + 1)))},
      [](auto req, const auto&, auto respond) {
        respond(ingest::http::json_response(req, ingest::http::status::accepted,
                                            R"({"receipt_id":")" + ingest::make_receipt_id() + R"(","accepted_at":")" +
                                                ingest::format_time(ingest::clock::now()) +
                                                R"(","status":"received"})"));
      });
  server.start();
  std::printf("bare_http listening on http://%s:%u\n", listen.substr(0, colon).c_str(), server.port());
  std::fflush(stdout);
  auto& first = *contexts.front();
  boost::asio::signal_set signals(first, SIGINT, SIGTERM);
  auto guards = std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>{};
  for (auto& c : contexts) guards.push_back(boost::asio::make_work_guard(*c));
  signals.async_wait([&](auto, int) {
    server.stop();
    for (auto& c : contexts) c->stop();
  });
  std::vector<std::thread> pool;
  for (unsigned i = 0; i < threads; ++i) pool.emplace_back([&, i] { contexts[i % contexts.size()]->run(); });
  for (auto& t : pool) t.join();
  return 0;
}
