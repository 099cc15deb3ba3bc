// SQLite idempotency store: keys recorded per second, 1,000 keys per transaction,
// WAL + synchronous=FULL on a real file: time-ordered (UUIDv7) keys, random (UUIDv4)
// keys, and the keys the exam graders really record (`<exam>/<student>/<browser key>`,
// the browser's key a random UUIDv4).
//
//   build/benchmarks/idempotency_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>

#include <filesystem>
#include <random>

#include "bench_support.hpp"
#include "ingest/envelope.hpp"
#include "ingest/sqlite/idempotency_store.hpp"

namespace {

using ingest::bench::uuid_v4;

// The key kinds of range(1).
enum key_kind : std::int64_t { random_v4 = 0, time_ordered = 1, exam_key = 2 };

std::string make_key(key_kind kind, std::mt19937_64& rng) {
  switch (kind) {
    case time_ordered:
      return ingest::make_receipt_id();
    case exam_key:
      return "algebra-midterm/s" + std::to_string(100000 + rng() % 900000) + "/" + uuid_v4(rng);
    default:
      return uuid_v4(rng);
  }
}

// state.range(0): keys per transaction; range(1): a key_kind.
// Every iteration is one transaction on a table that keeps growing, as a sink's does.
void BM_record_batch(benchmark::State& state) {
  const auto per_tx = static_cast<std::size_t>(state.range(0));
  const auto kind = static_cast<key_kind>(state.range(1));
  ingest::bench::scratch_dir dir;
  const auto file = dir.file("keys.db");
  {
    ingest::sqlite::database db(file);
    ingest::sqlite::idempotency_store keys(db);
    std::mt19937_64 rng(7);
    std::vector<std::string> ks(per_tx), fps(per_tx, std::string(64, 'f')), results(per_tx);
    for (auto _ : state) {
      state.PauseTiming();
      for (std::size_t i = 0; i < per_tx; ++i) {
        ks[i] = make_key(kind, rng);
        results[i] = ks[i];
      }
      state.ResumeTiming();
      ingest::sqlite::transaction tx(db);
      auto out = keys.record_many(ks, fps, results);
      tx.commit();
      benchmark::DoNotOptimize(out);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * per_tx));
  }
}
BENCHMARK(BM_record_batch)
    ->ArgNames({"keys_per_tx", "kind"})
    ->Args({1000, time_ordered})
    ->Args({1000, random_v4})
    ->Args({1000, exam_key})
    ->Iterations(300)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
