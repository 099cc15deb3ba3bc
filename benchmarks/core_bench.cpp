// In-memory pipeline throughput: the cost of the library itself, with no disk.
//
//   build/benchmarks/core_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <latch>
#include <thread>

#include "bench_support.hpp"
#include "ingest/ingest.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

using ingest::bench::io_runner;

std::string key(std::int64_t run, std::int64_t i) {
  return std::to_string(run) + "-" + std::to_string(i);
}

// Producer -> memory queue: receipts per second with `window` submissions outstanding.
void BM_memory_submit(benchmark::State& state) {
  const auto n = state.range(0);
  const auto window = state.range(1);
  io_runner runner;
  std::int64_t run = 0;
  for (auto _ : state) {
    ingest::memory_queue queue(runner.io.get_executor(), {.quiet = true});
    ingest::producer producer(queue, {.max_in_flight = static_cast<std::size_t>(window)});
    std::latch done(n);
    std::atomic<std::int64_t> outstanding{0}, failed{0};
    ++run;
    for (std::int64_t i = 0; i < n; ++i) {
      while (outstanding.load(std::memory_order_relaxed) >= window) std::this_thread::yield();
      ++outstanding;
      producer.async_submit(
          {.idempotency_key = key(run, i), .subject = {}, .payload = R"({"answers":{"q1":"B"}})", .headers = {}},
          [&](ingest::error_code ec, ingest::receipt) {
            if (ec) ++failed;
            --outstanding;
            done.count_down();
          });
    }
    done.wait();
    if (failed) state.SkipWithError("a submit failed");
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_memory_submit)->Args({20000, 1024})->Unit(benchmark::kMillisecond)->UseRealTime();

// Memory queue -> batching consumer (no-op handler): drained items per second.
void BM_memory_drain(benchmark::State& state) {
  const auto n = state.range(0);
  const auto batch = static_cast<std::size_t>(state.range(1));
  io_runner runner;
  for (auto _ : state) {
    state.PauseTiming();
    ingest::memory_queue queue(runner.io.get_executor(), {.quiet = true});
    for (std::int64_t i = 0; i < n; ++i) {
      ingest::envelope e;
      e.idempotency_key = key(0, i);
      e.payload = R"({"answers":{"q1":"B"}})";
      queue.async_publish(std::move(e), asio::use_future).get();
    }
    std::atomic<std::int64_t> seen{0};
    ingest::batching_consumer consumer(queue, [&](ingest::batch& b) { seen += static_cast<std::int64_t>(b.size()); },
                                       {.workers = 2, .max_batch = batch, .linger = 0ms, .poll_wait = 5ms});
    state.ResumeTiming();
    consumer.start();
    while (queue.async_stats(asio::use_future).get().processed < static_cast<std::uint64_t>(n))
      std::this_thread::sleep_for(100us);
    state.PauseTiming();
    consumer.drain();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_memory_drain)->Args({50000, 100})->Args({50000, 1000})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
