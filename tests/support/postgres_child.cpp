// Helper process for the PostgreSQL crash tests (it is killed with SIGKILL mid-work).
//
//   postgres_child <queue.db> <postgresql://...> <batch> <visibility_ms> <stop_at> <where>
//       drains the SQLite queue into PostgreSQL through ingest::postgres::transactional_handler
//       (table rows, written as tests/support/postgres_sink.hpp writes it), printing
//       "committed <n>" after each batch; at batch <stop_at> it prints "stopped" and
//       waits forever, <where> being `in_transaction` (rows written, not committed) or
//       `before_ack` (committed, not acked). The test kills it there.

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <string>
#include <thread>

#include "ingest/ingest.hpp"
#include "ingest/sqlite/queue.hpp"
#include "support/postgres_sink.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

[[noreturn]] void stop_here() {
  std::printf("stopped\n");
  std::fflush(stdout);
  while (true) std::this_thread::sleep_for(1s);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: postgres_child <queue.db> <url> <batch> <visibility_ms> <stop_at> <where>\n");
    return 2;
  }
  const std::string where = argv[6];
  const int stop_at = std::stoi(argv[5]);
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });
  ingest::sqlite::queue queue(io.get_executor(),
                              {.path = argv[1], .visibility_timeout = std::chrono::milliseconds(std::stoi(argv[4]))});
  ingest::postgres::connection_pool pool(argv[2], {.size = 1});
  int batches = 0;
  auto handler = ingest::postgres::transactional_handler(pool, [&](auto& db, auto items) {
    ingest::test::insert_rows(db, items);
    if (batches + 1 == stop_at && where == "in_transaction") stop_here();
  });
  ingest::batching_consumer consumer(
      queue,
      [&](ingest::batch& b) {
        handler(b);
        std::printf("committed %d\n", ++batches);
        std::fflush(stdout);
        if (batches == stop_at && where == "before_ack") stop_here();
      },
      {.workers = 1,
       .max_batch = static_cast<std::size_t>(std::stoul(argv[3])),
       .linger = 0ms,
       .poll_wait = 50ms,
       .lease_heartbeat = 0ms});
  consumer.start();
  while (true) std::this_thread::sleep_for(1s);  // until killed
}
