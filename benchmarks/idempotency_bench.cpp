// SQLite idempotency store: keys recorded per second, 1,000 keys per transaction,
// WAL + synchronous=FULL on a real file, time-ordered (UUIDv7) vs random (UUIDv4) keys.
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

// state.range(0): keys per transaction; range(1): 1 = time-ordered, 0 = random.
// Every iteration is one transaction on a table that keeps growing, as a sink's does.
void BM_record_batch(benchmark::State& state) {
  const auto per_tx = static_cast<std::size_t>(state.range(0));
  const bool ordered = state.range(1) == 1;
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
        ks[i] = ordered ? ingest::make_receipt_id() : uuid_v4(rng);
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
    ->ArgNames({"keys_per_tx", "time_ordered"})
    ->Args({1000, 1})
    ->Args({1000, 0})
    ->Iterations(300)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
