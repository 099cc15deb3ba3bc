// NATS JetStream: acknowledged publishes per second through the library and through
// raw nats.c in the same run (both with Nats-Msg-Id), and drain rate by batch size.
// Starts its own nats-server -js on a free loopback port.
//
//   build/benchmarks/nats_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>
#include <nats/nats.h>

#include <atomic>
#include <latch>
#include <semaphore>

#include "bench_support.hpp"
#include "ingest/batching_consumer.hpp"
#include "ingest/nats/queue.hpp"
#include "support/nats_server.hpp"

namespace {

using namespace std::chrono_literals;
using ingest::bench::io_runner;

ingest::test::nats_server& server() {
  static ingest::bench::scratch_dir dir;
  static ingest::test::nats_server instance(dir.path / "nats");
  return instance;
}

std::string fresh_stream() {
  static int n = 0;
  return "BENCH" + std::to_string(++n);
}

ingest::nats::queue_options options(const std::string& stream) {
  ingest::nats::queue_options o;
  o.servers = {server().url()};
  o.stream = stream;
  o.subject = "bench." + stream;
  o.dead_letter_stream = stream + "_DLQ";
  o.dead_letter_subject = "bench." + stream + ".dead";
  o.consumer = stream + "_workers";
  return o;
}

using ingest::bench::publish_flood;
using ingest::bench::publish_keys;
using ingest::bench::random_keys;
const std::string& payload = ingest::bench::sample_payload();

void BM_nats_publish_library(benchmark::State& state) {
  const auto n = state.range(0);
  io_runner runner;
  std::mt19937_64 rng(1);
  for (auto _ : state) {
    state.PauseTiming();
    auto q = std::make_unique<ingest::nats::queue>(runner.io.get_executor(), options(fresh_stream()));
    auto keys = random_keys(n, rng);  // made outside the timed part, as the raw benchmark's
    state.ResumeTiming();
    if (publish_keys(*q, std::move(keys), 1024) != 0) state.SkipWithError("a publish failed");
    state.PauseTiming();
    q.reset();  // closing is not publishing (the raw benchmark leaves it out too)
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_nats_publish_library)->Arg(50000)->Unit(benchmark::kMillisecond)->UseRealTime();

// Raw nats.c: js_PublishMsgAsync with a Nats-Msg-Id and 1,024 outstanding, counting
// PubAcks, on a stream configured as the library configures its own.
struct raw_counts {
  std::atomic<std::int64_t> acked{0}, failed{0};
};
void raw_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr*, void* closure) {
  auto* c = static_cast<raw_counts*>(closure);
  (pa ? c->acked : c->failed)++;
  natsMsg_Destroy(msg);
}

// Second argument 1: each message also carries the three Ingest-* headers the library
// writes on a publish (receipt id, accept time, subject; the key and the fingerprint
// come from Nats-Msg-Id and the payload), with values of their real sizes (what the
// headers alone cost nats.c).
void BM_nats_publish_raw(benchmark::State& state) {
  const auto n = state.range(0);
  const bool headers = state.range(1) == 1;
  std::mt19937_64 rng(2);
  for (auto _ : state) {
    state.PauseTiming();
    io_runner runner;
    const auto stream = fresh_stream();
    // Let the library create the stream exactly as it does for itself.
    { ingest::nats::queue setup(runner.io.get_executor(), options(stream)); }
    natsConnection* conn = nullptr;
    natsConnection_ConnectTo(&conn, server().url().c_str());
    raw_counts counts;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = 1024;
    jo.PublishAsync.AckHandler = raw_ack;
    jo.PublishAsync.AckHandlerClosure = &counts;
    jsCtx* js = nullptr;
    natsConnection_JetStream(&js, conn, &jo);
    const auto subject = "bench." + stream;
    const auto keys = random_keys(n, rng);
    state.ResumeTiming();
    for (std::int64_t i = 0; i < n; ++i) {
      natsMsg* m = nullptr;
      natsMsg_Create(&m, subject.c_str(), nullptr, payload.data(), static_cast<int>(payload.size()));
      const auto& key = keys[static_cast<std::size_t>(i)];
      if (headers) {
        natsMsgHeader_Set(m, "Ingest-Receipt-Id", key.c_str());
        natsMsgHeader_Set(m, "Ingest-Accepted-At", std::to_string(1764806400000000 + i).c_str());
        natsMsgHeader_Set(m, "Ingest-Subject", "exam.demo");
      }
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MsgId = key.c_str();
      if (js_PublishMsgAsync(js, &m, &po) != NATS_OK) natsMsg_Destroy(m);
    }
    jsPubOptions wait;
    jsPubOptions_Init(&wait);
    wait.MaxWait = 60000;
    js_PublishAsyncComplete(js, &wait);
    state.PauseTiming();
    if (counts.acked != n) state.SkipWithError("raw publishes failed");
    jsCtx_Destroy(js);
    natsConnection_Destroy(conn);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_nats_publish_raw)
    ->ArgNames({"", "headers"})
    ->Args({50000, 0})
    ->Args({50000, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The library over N streams (nats::open_queue with partitions=N): one connection per
// partition, keys spread by their hash.
void BM_nats_publish_partitioned(benchmark::State& state) {
  const auto n = state.range(0);
  io_runner runner;
  std::mt19937_64 rng(4);
  for (auto _ : state) {
    state.PauseTiming();
    auto o = options(fresh_stream());
    o.partitions = static_cast<int>(state.range(1));
    auto q = ingest::nats::open_queue(runner.io.get_executor(), o);
    auto keys = random_keys(n, rng);
    state.ResumeTiming();
    if (publish_keys(*q, std::move(keys), 1024) != 0) state.SkipWithError("a publish failed");
    state.PauseTiming();
    q.reset();  // closing N partitions takes N times as long: not publishing
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_nats_publish_partitioned)
    ->ArgNames({"", "partitions"})
    ->Args({50000, 2})
    ->Args({50000, 4})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Third argument: partitions (1: one stream, the plain queue).
void BM_nats_drain(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto n = state.range(1);
  io_runner runner;
  std::mt19937_64 rng(3);
  for (auto _ : state) {
    state.PauseTiming();
    auto o = options(fresh_stream());
    o.partitions = static_cast<int>(state.range(2));
    auto q = ingest::nats::open_queue(runner.io.get_executor(), o);
    publish_flood(*q, n, 1024, rng);
    ingest::bench::timed_drain(state, *q, n, batch);
    q.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_nats_drain)
    ->ArgNames({"batch", "messages", "partitions"})
    ->Args({100, 50000, 1})
    ->Args({1000, 50000, 1})
    ->Args({1000, 50000, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
