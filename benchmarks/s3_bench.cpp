// The graders' attachment checks against the S3 side of the fauxqs emulator (started on
// a free 127.0.0.1 port): checks per second through exam::attachment_checker (HEAD, then
// GET and SHA-256, since fauxqs keeps no checksum) at 1 and 8 files at once, for 64 KiB
// and 1 MiB files; and a plain HEAD on one keep-alive connection (the emulator's own
// ceiling for the cheapest call) against the library's HEAD, in the same run.
//
//   build/benchmarks/s3_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <map>

#include "attachment_check.hpp"
#include "ingest/aws/s3.hpp"
#include "ingest/aws/sigv4.hpp"
#include "submission.hpp"
#include "support/fauxqs.hpp"
#include "support/http_client.hpp"

namespace {

ingest::test::fauxqs& emulator() {
  static ingest::test::fauxqs instance;
  return instance;
}

std::shared_ptr<ingest::aws::s3_bucket> bucket() {
  static auto b = [] {
    auto o = ingest::aws::s3_options::from_url("s3+http://127.0.0.1:" + std::to_string(emulator().port()) +
                                               "/bench-files?create=true");
    o.max_connections = 16;
    return std::make_shared<ingest::aws::s3_bucket>(o);
  }();
  return b;
}

// `count` objects of `size` bytes, uploaded once per size; their references.
const std::vector<exam::attachment>& files(std::size_t size, std::size_t count) {
  static std::map<std::size_t, std::vector<exam::attachment>> made;
  auto& list = made[size];
  while (list.size() < count) {
    std::string body(size, 'a');
    body += std::to_string(list.size());
    body.resize(size);
    exam::attachment a{"bench/" + std::to_string(size) + "/" + std::to_string(list.size()),
                       ingest::aws::sha256_hex(body), size, "f.pdf"};
    bucket()->put(a.key, std::move(body), "application/pdf");
    list.push_back(std::move(a));
  }
  return list;
}

// A batch of `n` deliveries, each a submission naming one of the files.
ingest::batch make_batch(const std::vector<exam::attachment>& refs, std::size_t n) {
  std::vector<ingest::delivery> items(n);
  for (std::size_t i = 0; i < n; ++i) {
    exam::submission s{"e", "s" + std::to_string(i), "k", {{"q1", "A"}}, {refs[i % refs.size()]}};
    items[i].message.payload = s.to_json();
  }
  return ingest::batch(std::move(items));
}

void BM_attachment_checks(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto parallel = static_cast<std::size_t>(state.range(1));
  constexpr std::size_t per_batch = 100;
  const auto& refs = files(size, per_batch);
  exam::attachment_checker checker(bucket(), parallel);
  for (auto _ : state) {
    auto b = make_batch(refs, per_batch);
    checker.check(b);
    for (std::size_t i = 0; i < b.size(); ++i)
      if (b.outcome(i) != ingest::item_outcome::ok) state.SkipWithError(b.error(i).c_str());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * per_batch));
  state.counters["MiB/s"] = benchmark::Counter(static_cast<double>(state.iterations() * per_batch * size) / 1048576.0,
                                               benchmark::Counter::kIsRate);
}
BENCHMARK(BM_attachment_checks)
    ->ArgNames({"bytes", "parallel"})
    ->Args({64 << 10, 1})
    ->Args({64 << 10, 8})
    ->Args({1 << 20, 1})
    ->Args({1 << 20, 8})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_head_library(benchmark::State& state) {
  const auto& refs = files(64 << 10, 100);
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(bucket()->head(refs[i++ % refs.size()].key));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_head_library)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_head_plain(benchmark::State& state) {
  const auto& refs = files(64 << 10, 100);
  ingest::test::http_client c(static_cast<std::uint16_t>(emulator().port()));
  std::size_t i = 0;
  for (auto _ : state) {
    const auto r = c.head("/bench-files/" + refs[i++ % refs.size()].key);
    if (r.status != 200) state.SkipWithError("HEAD failed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_head_plain)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  if (!ingest::test::fauxqs::available()) {
    std::fprintf(stderr, "s3_bench: node or the fauxqs emulator (tests/sqs) is not installed\n");
    return 77;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
