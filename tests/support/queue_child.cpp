// Helper process for the SQLite queue crash tests (it is killed with SIGKILL mid-work).
//
//   queue_child publish <queue.db> <count> <concurrency>
//       publishes keys k0..k<count-1>, printing "ok <key> <receipt_id>" after each receipt
//   queue_child consume <queue.db | nats://...> <sink.db> <batch> <visibility_ms> [<hold_after>]
//       drains into <sink.db> through the transactional handler, printing "committed <n>"
//       after each batch's commit and pausing before the ack; after batch <hold_after>
//       commits it prints "holding" and never acks it (the test kills it there)

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include "ingest/ingest.hpp"
#include "ingest/sqlite/queue.hpp"
#include "ingest/sqlite/transactional_handler.hpp"
#ifdef INGEST_HAVE_NATS
#include "ingest/nats/queue.hpp"
#endif

namespace asio = boost::asio;
using namespace std::chrono_literals;

int publish(const std::string& path, int count, int concurrency) {
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });
  ingest::sqlite::queue queue(io.get_executor(), {.path = path});
  std::mutex out;
  std::atomic<int> in_flight{0}, done{0};
  for (int i = 0; i < count; ++i) {
    while (in_flight.load() >= concurrency) std::this_thread::yield();
    ++in_flight;
    ingest::envelope e;
    e.idempotency_key = "k" + std::to_string(i);
    e.payload = "payload " + std::to_string(i);
    queue.async_publish(std::move(e), [&, key = "k" + std::to_string(i)](ingest::error_code ec, ingest::receipt r) {
      if (!ec) {
        std::lock_guard lock(out);
        std::printf("ok %s %s\n", key.c_str(), r.id.c_str());
        std::fflush(stdout);
      }
      --in_flight;
      ++done;
    });
  }
  while (done.load() < count) std::this_thread::sleep_for(1ms);
  std::printf("done\n");
  std::fflush(stdout);
  work.reset();
  runner.join();
  return 0;
}

int consume(const std::string& queue_path, const std::string& sink_path, std::size_t batch, int visibility_ms,
            int hold_after) {
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });
  std::unique_ptr<ingest::durable_queue> queue_ptr;
#ifdef INGEST_HAVE_NATS
  if (queue_path.rfind("nats://", 0) == 0)
    queue_ptr =
        ingest::nats::open_queue(io.get_executor(), ingest::nats::queue_options::from_url(queue_path));
#endif
  if (!queue_ptr)
    queue_ptr = std::make_unique<ingest::sqlite::queue>(
        io.get_executor(), ingest::sqlite::queue_options{
                               .path = queue_path, .visibility_timeout = std::chrono::milliseconds(visibility_ms)});
  auto& queue = *queue_ptr;
  ingest::sqlite::database sink(sink_path);
  // The same table as the tests' sqlite_sink, which finishes the job after the kill.
  sink.exec("CREATE TABLE IF NOT EXISTS rows(receipt_id TEXT NOT NULL, key TEXT NOT NULL, payload TEXT NOT NULL)");
  ingest::sqlite::idempotency_store keys(sink);
  ingest::sqlite::statement insert(sink, "INSERT INTO rows(receipt_id, key, payload) VALUES (?1, ?2, ?3)");
  auto handler = ingest::sqlite::transactional_handler(sink, keys, [&](auto&, const ingest::delivery& d) {
    insert.bind(1, d.message.receipt_id).bind(2, d.message.idempotency_key).bind(3, d.message.payload);
    insert.run();
  });
  int batches = 0;
  ingest::batching_consumer consumer(
      queue,
      [&](ingest::batch& b) {
        handler(b);
        std::printf("committed %d\n", ++batches);
        std::fflush(stdout);
        if (batches == hold_after) {
          std::printf("holding\n");
          std::fflush(stdout);
          while (true) std::this_thread::sleep_for(1s);  // committed, never acked
        }
        std::this_thread::sleep_for(20ms);  // a window between commit and ack
      },
      {.workers = 1, .max_batch = batch, .linger = 0ms, .poll_wait = 50ms, .lease_heartbeat = 0ms});
  consumer.start();
  while (true) std::this_thread::sleep_for(1s);  // until killed
}

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "publish" && argc == 5) return publish(argv[2], std::stoi(argv[3]), std::stoi(argv[4]));
  if (mode == "consume" && (argc == 6 || argc == 7))
    return consume(argv[2], argv[3], static_cast<std::size_t>(std::stoul(argv[4])), std::stoi(argv[5]),
                   argc == 7 ? std::stoi(argv[6]) : -1);
  std::fprintf(stderr,
               "usage: queue_child publish <db> <count> <concurrency> | consume <db> <sink> <batch> <vis_ms> [<hold>]\n");
  return 2;
}
