// The embedded SQLite queue: durable publishes per second by concurrency (group
// commit), drain rate by batch size, and file size under a sustained publish + drain.
//
//   build/benchmarks/sqlite_queue_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>

#include <atomic>
#include <boost/asio/use_future.hpp>
#include <latch>
#include <semaphore>

#include "bench_support.hpp"
#include "ingest/batching_consumer.hpp"
#include "ingest/sqlite/database.hpp"
#include "ingest/sqlite/queue.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using ingest::bench::io_runner;
using ingest::bench::scratch_dir;

using ingest::bench::publish_flood;

void BM_sqlite_publish(benchmark::State& state) {
  const auto window = state.range(0);
  const auto n = state.range(1);
  io_runner runner;
  std::mt19937_64 rng(1);
  for (auto _ : state) {
    state.PauseTiming();
    scratch_dir dir;
    ingest::sqlite::queue queue(runner.io.get_executor(), {.path = dir.file("queue.db")});
    state.ResumeTiming();
    if (publish_flood(queue, n, window, rng) != 0) state.SkipWithError("a publish failed");
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_sqlite_publish)
    ->ArgNames({"concurrency", "messages"})
    ->Args({1, 2000})
    ->Args({64, 30000})
    ->Args({1024, 100000})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The fsync bound: plain SQLite, one single-row transaction after another, same file
// settings (WAL, synchronous=FULL). A sequential publisher cannot beat this.
void BM_sqlite_raw_row_per_tx(benchmark::State& state) {
  scratch_dir dir;
  ingest::sqlite::database db(dir.file("raw.db"));
  db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB)");
  ingest::sqlite::statement insert(db, "INSERT INTO t(body) VALUES (?1)");
  for (auto _ : state) {
    ingest::sqlite::transaction tx(db);
    insert.bind_blob(1, R"({"answers":{"q1":"B","q2":"D","q3":"A","q4":"C","q5":"A"}})");
    insert.run();
    tx.commit();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_sqlite_raw_row_per_tx)->Iterations(2000)->Unit(benchmark::kMicrosecond)->UseRealTime();

// The SQLite ceiling for the queue's row layout: plain SQLite, 1,000 rows per
// transaction into a table with the queue's columns and due index. With
// key_index:1 the table also indexes the (random) key hashes, the layout the queue
// had before it kept that lookup in memory.
void BM_sqlite_raw_batched_rows(benchmark::State& state) {
  const std::int64_t per_tx = 1000;
  const bool key_index = state.range(0) == 1;
  scratch_dir dir;
  ingest::sqlite::database db(dir.file("raw.db"));
  db.exec("PRAGMA cache_size = -65536");
  db.exec(
      "CREATE TABLE m(seq INTEGER PRIMARY KEY, key_hash INTEGER NOT NULL, idempotency_key TEXT NOT NULL,"
      " receipt_id TEXT NOT NULL, fingerprint TEXT NOT NULL, subject TEXT NOT NULL, payload BLOB NOT NULL,"
      " headers BLOB NOT NULL, accepted_at INTEGER NOT NULL, state INTEGER NOT NULL, visible_at INTEGER NOT NULL);"
      "CREATE INDEX m_due ON m(visible_at, seq) WHERE state < 2;");
  if (key_index) db.exec("CREATE INDEX m_key ON m(key_hash)");
  ingest::sqlite::statement insert(
      db,
      "INSERT INTO m(key_hash, idempotency_key, receipt_id, fingerprint, subject, payload, headers, accepted_at, state,"
      " visible_at) VALUES (?1, ?2, ?3, ?4, 'exam.demo', ?5, x'', ?6, 0, ?6)");
  std::mt19937_64 rng(4);
  std::int64_t t = 0;
  for (auto _ : state) {
    ingest::sqlite::transaction tx(db);
    for (std::int64_t i = 0; i < per_tx; ++i) {
      insert.bind(1, static_cast<std::int64_t>(rng() >> 1))
          .bind(2, ingest::bench::uuid_v4(rng))
          .bind(3, ingest::make_receipt_id())
          .bind(4, std::string(64, 'f'))
          .bind_blob(5, R"({"answers":{"q1":"B","q2":"D","q3":"A","q4":"C","q5":"A"}})")
          .bind(6, ++t);
      insert.run();
    }
    tx.commit();
  }
  state.SetItemsProcessed(state.iterations() * per_tx);
}
BENCHMARK(BM_sqlite_raw_batched_rows)
    ->ArgName("key_index")
    ->Arg(0)
    ->Arg(1)
    ->Iterations(100)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Drains a backlog through a batching consumer (no-op handler), acking every batch.
void BM_sqlite_drain(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto n = state.range(1);
  const bool receipt_index = state.range(2) != 0;
  const auto checkpoint = std::chrono::milliseconds(state.range(3));
  io_runner runner;
  std::mt19937_64 rng(2);
  for (auto _ : state) {
    state.PauseTiming();
    scratch_dir dir;
    ingest::sqlite::queue queue(runner.io.get_executor(), {.path = dir.file("queue.db"),
                                                           .receipt_index = receipt_index,
                                                           .checkpoint_interval = checkpoint});
    publish_flood(queue, n, 1024, rng);
    ingest::bench::timed_drain(state, queue, n, batch);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_sqlite_drain)
    ->ArgNames({"batch", "messages", "receipt_index", "checkpoint_ms"})
    ->Args({100, 100000, 1, 100})
    ->Args({1000, 100000, 1, 100})
    ->Args({1000, 100000, 0, 100})
    ->Args({1000, 100000, 1, 0})
    ->Args({1000, 100000, 0, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Publishes and drains at once for `seconds`, with a one-second dedup window, and
// reports the largest size of the queue's files (database + WAL) in each quarter of
// the run: bounded means the later quarters are no larger than the first.
void BM_sqlite_sustained(benchmark::State& state) {
  const auto seconds = state.range(0);
  io_runner runner;
  std::mt19937_64 rng(3);
  for (auto _ : state) {
    scratch_dir dir;
    const auto path = dir.file("queue.db");
    ingest::sqlite::queue queue(runner.io.get_executor(),
                                {.path = path, .dedup_window = 1s, .compaction_interval = 100ms});
    ingest::batching_consumer consumer(queue, [](ingest::batch&) {},
                                       {.workers = 2, .max_batch = 1000, .linger = 0ms, .poll_wait = 5ms});
    consumer.start();
    auto size = [&] {
      std::error_code ec;
      auto db = std::filesystem::file_size(path, ec);
      auto wal = std::filesystem::file_size(path + "-wal", ec);
      return static_cast<double>(db + (ec ? 0 : wal));
    };
    double published = 0;
    const auto start = std::chrono::steady_clock::now();
    const auto end = start + std::chrono::seconds(seconds);
    std::vector<double> quarter_mb(4, 0);  // largest size seen in each quarter of the run
    while (std::chrono::steady_clock::now() < end) {
      publish_flood(queue, 20000, 512, rng);
      published += 20000;
      const auto q = std::min<std::size_t>(
          3, static_cast<std::size_t>(4 * (std::chrono::steady_clock::now() - start) / std::chrono::seconds(seconds)));
      quarter_mb[q] = std::max(quarter_mb[q], size() / 1e6);
    }
    const auto backlog = published - static_cast<double>(consumer.stats().acked);
    consumer.drain();
    state.counters["published"] = published;
    state.counters["backlog_at_end"] = backlog;
    for (std::size_t q = 0; q < 4; ++q) state.counters["MB_q" + std::to_string(q + 1)] = quarter_mb[q];
  }
}
BENCHMARK(BM_sqlite_sustained)->Arg(20)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
