// The embedded queue shared by processes: one publishing and one consuming the same
// file, a publisher SIGKILLed mid-flood, a consumer SIGKILLed mid-batch (the child
// programs are tests/support/queue_child.cpp).

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>

#include "ingest/batching_consumer.hpp"
#include "ingest/error.hpp"
#include "ingest/sqlite/database.hpp"
#include "ingest/sqlite/queue.hpp"
#include "ingest/testing/queue_helpers.hpp"
#include "support/child_process.hpp"
#include "support/sqlite_sink.hpp"
#include "support/test_support.hpp"

namespace ingest::test {

TEST_CASE("sqlite queue: a publishing process and a consuming process share one file") {
  temp_dir dir;
  const auto path = dir.file("queue.db");
  constexpr int n = 5000;
  io_thread io;
  sqlite::queue q(io.executor(), {.path = path, .poll_interval = 5ms});  // creates the file first
  sqlite_sink sink(dir.file("sink.db"));
  batching_consumer consumer(q, sink.handler(), {.workers = 1, .max_batch = 200, .linger = 0ms, .poll_wait = 50ms});
  consumer.start();
  child_process child({INGEST_QUEUE_CHILD, "publish", path, std::to_string(n), "64"});
  int receipts = 0;
  while (auto line = child.read_line()) {
    if (*line == "done") break;
    ++receipts;
  }
  CHECK(child.wait_exit().first == 0);
  CHECK(receipts == n);
  REQUIRE(eventually([&] { return stats(q).processed == n; }, 30s));
  consumer.drain();
  CHECK(sink.rows() == n);
  CHECK(sink.distinct_receipts() == n);
  CHECK(stats(q).balanced());
}

TEST_CASE("crash: a publisher SIGKILLed mid-flood loses no acknowledged publish and duplicates none") {
  temp_dir dir;
  const auto path = dir.file("queue.db");
  std::map<std::string, std::string> acked;  // key -> receipt id, as the dead process was told
  {
    child_process child({INGEST_QUEUE_CHILD, "publish", path, "200000", "256"});
    while (acked.size() < 3000) {
      auto line = child.read_line();
      REQUIRE(line);
      REQUIRE(line->rfind("ok ", 0) == 0);
      const auto space = line->find(' ', 3);
      acked.emplace(line->substr(3, space - 3), line->substr(space + 1));
    }
    CHECK(child.kill() == SIGKILL);
    // Receipts printed before the kill but not yet read are acknowledged too.
    while (auto line = child.read_line(100ms)) {
      if (line->rfind("ok ", 0) != 0) continue;
      const auto space = line->find(' ', 3);
      acked.emplace(line->substr(3, space - 3), line->substr(space + 1));
    }
  }
  io_thread io;
  sqlite::queue q(io.executor(), {.path = path});
  std::map<std::string, std::string> stored;
  std::size_t deliveries = 0;
  while (true) {
    auto [ec, got] = fetch(q, 1000, 0ms);
    REQUIRE_FALSE(ec);
    if (got.empty()) break;
    deliveries += got.size();
    for (const auto& d : got) stored.emplace(d.message.idempotency_key, d.message.receipt_id);
    REQUIRE_FALSE(ack(q, got));
  }
  CHECK(deliveries == stored.size());  // no key twice
  for (const auto& [key, id] : acked) {
    auto found = stored.find(key);
    REQUIRE(found != stored.end());
    CHECK(found->second == id);
  }
  CHECK(stored.size() < 200000);  // it really died mid-flood
  CHECK(stats(q).balanced());
}

TEST_CASE("crash: a consumer SIGKILLed mid-batch: its batch comes back, the sink holds each key once") {
  temp_dir dir;
  const auto path = dir.file("queue.db");
  const auto sink_path = dir.file("sink.db");
  constexpr int n = 3000;
  {
    io_thread io;
    sqlite::queue q(io.executor(), {.path = path});
    std::vector<capture<receipt>> results(n);
    for (int i = 0; i < n; ++i)
      q.async_publish(message("k" + std::to_string(i)), results[static_cast<std::size_t>(i)].handler());
    for (auto& r : results) REQUIRE_FALSE(r.get().first);
  }
  {
    // The child commits its fifth batch of 100 and is killed before it acks it. Its
    // leases last 3 s, so that a batch of 100 never outlives its lease on a loaded
    // machine and the counts below are exact.
    child_process child({INGEST_QUEUE_CHILD, "consume", path, sink_path, "100", "3000", "5"});
    while (true) {
      auto line = child.read_line();
      REQUIRE(line);
      if (*line == "holding") break;
    }
    CHECK(child.kill() == SIGKILL);
  }
  CHECK(count_rows(sink_path, "SELECT count(*) FROM rows") == 500);  // five batches committed
  CHECK(count_rows(path, "SELECT count(*) FROM ingest_messages WHERE state = 2") == 400);  // four acked
  CHECK(count_rows(path, "SELECT count(*) FROM ingest_messages WHERE state = 1") == 100);  // one held

  io_thread io;
  sqlite::queue q(io.executor(), {.path = path, .visibility_timeout = 10s});
  sqlite_sink sink(sink_path);
  batching_consumer consumer(q, sink.handler(), {.workers = 1, .max_batch = 200, .linger = 0ms, .poll_wait = 50ms});
  consumer.start();
  REQUIRE(eventually([&] { return stats(q).processed == n; }, 60s));
  consumer.drain();
  // The held batch came back once its lease ran out, and its keys, already committed,
  // were recognised: no row twice.
  CHECK(sink.redelivered() == 100);
  CHECK(count_rows(path, "SELECT count(*) FROM ingest_messages WHERE attempts = 2") == 100);
  CHECK(sink.rows() == n);
  CHECK(sink.distinct_receipts() == n);
  auto st = stats(q);
  CHECK(st.retrying == 0);
  CHECK(st.balanced());
}

}  // namespace ingest::test
