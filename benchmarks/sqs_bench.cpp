// SQS (against the fauxqs emulator, started on a free 127.0.0.1 port): acknowledged
// publishes per second and drain rate through the library, and the same work done by a
// plain batched HTTP client (blocking Beast, SendMessageBatch / ReceiveMessage +
// DeleteMessageBatch of 10, unsigned, several connections) in the same run: the
// emulator's own ceiling on this machine.
//
//   build/benchmarks/sqs_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json.hpp>
#include <atomic>
#include <thread>

#include "bench_support.hpp"
#include "ingest/sqs/queue.hpp"
#include "support/fauxqs.hpp"

namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
namespace bhttp = boost::beast::http;
using ingest::bench::io_runner;

ingest::test::fauxqs& emulator() {
  static ingest::test::fauxqs instance;
  return instance;
}

std::string fresh_queue() {
  static int n = 0;
  return "bench-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
}

ingest::sqs::queue_options options(const std::string& name) {
  ingest::sqs::queue_options o;
  o.endpoint = emulator().endpoint();
  o.queue = name;
  o.dead_letter_queue = name + "-dlq";
  return o;
}

// The plain client: one blocking keep-alive connection, one request at a time.
class plain_client {
 public:
  plain_client() : socket_(io_) {
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<std::uint16_t>(emulator().port())});
    socket_.set_option(boost::asio::ip::tcp::no_delay(true));
  }
  json::value call(const char* action, const json::object& body) {
    bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/", 11};
    req.set(bhttp::field::host, "127.0.0.1");
    req.set(bhttp::field::content_type, "application/x-amz-json-1.0");
    req.set("x-amz-target", std::string("AmazonSQS.") + action);
    req.body() = json::serialize(body);
    req.prepare_payload();
    bhttp::write(socket_, req);
    bhttp::response<bhttp::string_body> res;
    bhttp::read(socket_, buffer_, res);
    if (res.result_int() != 200) throw std::runtime_error(action + (": " + res.body()));
    return json::parse(res.body());
  }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
};

std::string plain_queue(const std::string& name) {
  plain_client c;
  return std::string(c.call("CreateQueue", json::object{{"QueueName", name}}).at("QueueUrl").as_string());
}

constexpr int plain_connections = 8;

// n messages in batches of 10 over `connections` connections.
void plain_publish(const std::string& url, std::int64_t n, int connections = plain_connections) {
  std::atomic<std::int64_t> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < connections; ++t)
    threads.emplace_back([&, t] {
      plain_client c;
      std::mt19937_64 rng(static_cast<std::uint64_t>(t) + 7);
      while (next.fetch_add(10) < n) {
        json::array entries;
        for (int i = 0; i < 10; ++i)
          entries.push_back(json::object{{"Id", "e" + std::to_string(i)},
                                         {"MessageBody", ingest::bench::sample_payload()},
                                         {"MessageAttributes",
                                          json::object{{"k", json::object{{"DataType", "String"},
                                                                          {"StringValue", ingest::bench::uuid_v4(rng)}}}}}});
        c.call("SendMessageBatch", json::object{{"QueueUrl", url}, {"Entries", std::move(entries)}});
      }
    });
  for (auto& t : threads) t.join();
}

void BM_sqs_publish_plain(benchmark::State& state) {
  const auto n = state.range(0);
  for (auto _ : state) {
    state.PauseTiming();
    const auto url = plain_queue(fresh_queue());
    state.ResumeTiming();
    plain_publish(url, n, static_cast<int>(state.range(1)));
  }
  state.SetItemsProcessed(state.iterations() * n);
}
// Connections: 8, and 32 (as many batches in flight as the library keeps).
BENCHMARK(BM_sqs_publish_plain)->Args({20000, 8})->Args({20000, 32})->Unit(benchmark::kMillisecond)->UseRealTime();

// One SendMessage per message (the emulator's unbatched ceiling).
void BM_sqs_publish_plain_unbatched(benchmark::State& state) {
  const auto n = state.range(0);
  for (auto _ : state) {
    state.PauseTiming();
    const auto url = plain_queue(fresh_queue());
    state.ResumeTiming();
    std::atomic<std::int64_t> next{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < plain_connections; ++t)
      threads.emplace_back([&] {
        plain_client c;
        while (next.fetch_add(1) < n)
          c.call("SendMessage", json::object{{"QueueUrl", url}, {"MessageBody", ingest::bench::sample_payload()}});
      });
    for (auto& t : threads) t.join();
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_sqs_publish_plain_unbatched)->Arg(10000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_sqs_publish_library(benchmark::State& state) {
  const auto n = state.range(0);
  io_runner runner;
  std::mt19937_64 rng(1);
  for (auto _ : state) {
    state.PauseTiming();
    ingest::sqs::queue q(runner.io.get_executor(), options(fresh_queue()));
    state.ResumeTiming();
    if (ingest::bench::publish_flood(q, n, 2048, rng) != 0) state.SkipWithError("a publish failed");
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_sqs_publish_library)->Arg(20000)->Unit(benchmark::kMillisecond)->UseRealTime();

// Receive 10 + delete 10 in a loop on each connection until n are deleted.
void BM_sqs_drain_plain(benchmark::State& state) {
  const auto n = state.range(0);
  for (auto _ : state) {
    state.PauseTiming();
    const auto url = plain_queue(fresh_queue());
    plain_publish(url, n);
    state.ResumeTiming();
    std::atomic<std::int64_t> deleted{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < plain_connections; ++t)
      threads.emplace_back([&] {
        plain_client c;
        while (deleted < n) {
          auto r = c.call("ReceiveMessage", json::object{{"QueueUrl", url}, {"MaxNumberOfMessages", 10}});
          const auto* msgs = r.as_object().if_contains("Messages");
          if (!msgs) continue;
          json::array entries;
          for (const auto& m : msgs->as_array())
            entries.push_back(json::object{{"Id", "d" + std::to_string(entries.size())},
                                           {"ReceiptHandle", m.at("ReceiptHandle")}});
          const auto count = static_cast<std::int64_t>(entries.size());
          c.call("DeleteMessageBatch", json::object{{"QueueUrl", url}, {"Entries", std::move(entries)}});
          deleted += count;
        }
      });
    for (auto& t : threads) t.join();
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_sqs_drain_plain)->Arg(20000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_sqs_drain_library(benchmark::State& state) {
  const auto n = state.range(0);
  const auto batch = static_cast<std::size_t>(state.range(1));
  io_runner runner;
  std::mt19937_64 rng(3);
  for (auto _ : state) {
    state.PauseTiming();
    ingest::sqs::queue q(runner.io.get_executor(), options(fresh_queue()));
    if (ingest::bench::publish_flood(q, n, 2048, rng) != 0) state.SkipWithError("a publish failed");
    ingest::bench::timed_drain(state, q, n, batch);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_sqs_drain_library)->Args({20000, 100})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  if (!ingest::test::fauxqs::available()) {
    std::fprintf(stderr, "sqs_bench: node or the fauxqs emulator (tests/sqs) is not installed\n");
    return 77;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
