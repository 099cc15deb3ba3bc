#include "ingest/metrics.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <sstream>
#include <thread>

#include "ingest/batching_consumer.hpp"
#include "ingest/memory_queue.hpp"
#include "ingest/producer.hpp"
#include "support/test_support.hpp"

namespace ingest::test {

TEST_CASE("histogram quantiles stay within 12.5% of the exact values") {
  histogram h;
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> latency(std::log(0.004), 1.0);  // ~4 ms median, long tail
  std::vector<double> samples;
  for (int i = 0; i < 100000; ++i) {
    samples.push_back(latency(rng));
    h.observe(samples.back());
  }
  std::sort(samples.begin(), samples.end());
  CHECK(h.count() == samples.size());
  for (double q : {0.5, 0.9, 0.95, 0.99, 0.999}) {
    const double exact = samples[static_cast<std::size_t>(q * static_cast<double>(samples.size())) - 1];
    const double estimate = h.quantile(q);
    CAPTURE(q);
    CHECK(estimate >= exact);  // an upper bound of the sample's bucket
    CHECK(estimate <= exact * 1.125 + 1e-12);
  }
  double sum = 0;
  for (double s : samples) sum += s;
  CHECK(h.sum() == doctest::Approx(sum).epsilon(1e-9));
}

TEST_CASE("histogram edges: zero, tiny, huge and non-finite values land in the end buckets") {
  histogram h;
  h.observe(0);
  h.observe(1e-9);
  h.observe(-1);
  h.observe(1e12);
  h.observe(std::numeric_limits<double>::infinity());
  const auto counts = h.counts();
  CHECK(counts.front() == 3);
  CHECK(counts.back() == 2);
  CHECK(h.count() == 5);
  CHECK(histogram::upper_bound(0) == doctest::Approx(std::ldexp(1.125, histogram::min_exponent)));
  CHECK(h.quantile(0) == histogram::upper_bound(0));
  CHECK(histogram{}.quantile(0.99) == 0);
  // A value on a bucket edge belongs to the bucket below (le is inclusive).
  histogram one;
  one.observe(1.0);
  CHECK(one.quantile(1) == 1.0);
  one.observe(1.0000001);
  CHECK(one.quantile(1) == 1.125);
}

TEST_CASE("histogram is safe to observe from many threads") {
  histogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) h.observe(0.001);
    });
  for (auto& t : threads) t.join();
  CHECK(h.count() == 40000);
  CHECK(h.sum() == doctest::Approx(40.0));
}

TEST_CASE("Prometheus exposition: counters, labelled rejections, cumulative histogram buckets") {
  pipeline_metrics m;
  m.accepted.inc(3);
  m.reject(errc::backpressure);
  m.reject(errc::backpressure);
  m.reject(errc::conflict);
  m.accept_latency.observe(0.002);
  m.accept_latency.observe(0.5);
  m.backlog.set(42);
  const auto text = to_prometheus(m, "exam_");
  CHECK(text.find("# TYPE exam_accepted_total counter\nexam_accepted_total 3\n") != std::string::npos);
  CHECK(text.find("exam_rejected_total{reason=\"backpressure\"} 2\n") != std::string::npos);
  CHECK(text.find("exam_rejected_total{reason=\"conflict\"} 1\n") != std::string::npos);
  CHECK(text.find("exam_rejected_total{reason=\"queue_full\"} 0\n") != std::string::npos);
  CHECK(text.find("# TYPE exam_accept_latency_seconds histogram") != std::string::npos);
  CHECK(text.find("exam_accept_latency_seconds_bucket{le=\"+Inf\"} 2\n") != std::string::npos);
  CHECK(text.find("exam_accept_latency_seconds_count 2\n") != std::string::npos);
  CHECK(text.find("exam_backlog 42\n") != std::string::npos);

  // Buckets are cumulative and never decrease; 0.002 s is in every bucket from 2^-8 on.
  std::istringstream lines(text);
  std::string line;
  std::uint64_t previous = 0;
  int buckets = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("exam_accept_latency_seconds_bucket", 0) != 0) continue;
    const auto value = std::stoull(line.substr(line.rfind(' ') + 1));
    CHECK(value >= previous);
    previous = value;
    ++buckets;
    if (line.find("le=\"0.00390625\"") != std::string::npos) CHECK(value == 1);
    if (line.find("le=\"0.5\"") != std::string::npos) CHECK(value == 2);
  }
  CHECK(buckets == 24);  // 2^-17 .. 2^5, and +Inf
}

TEST_CASE("producer and consumer record into one shared instance, in step with the queue") {
  io_thread io;
  memory_queue q(io.executor(), {.quiet = true});
  auto m = std::make_shared<pipeline_metrics>();
  producer p(q, {.metrics = m});
  std::atomic<int> calls{0};
  auto options = consumer_options{.workers = 1, .max_batch = 50, .linger = 0ms, .poll_wait = 20ms, .metrics = m};
  options.retry.max_attempts = 2;
  options.retry.initial_backoff = 1ms;
  options.retry.max_backoff = 2ms;
  batching_consumer c(
      q,
      [&](batch& b) {
        ++calls;
        for (std::size_t i = 0; i < b.size(); ++i)
          if (b[i].message.idempotency_key == "bad") b.retry(i, "always");
      },
      options);
  c.start();
  auto submit = [&](std::string key, std::string body = "{}") {
    capture<receipt> r;
    p.async_submit({.idempotency_key = std::move(key), .subject = {}, .payload = std::move(body), .headers = {}},
                   r.handler());
    return r.get().first;
  };
  for (int i = 0; i < 100; ++i) REQUIRE_FALSE(submit("k" + std::to_string(i)));
  REQUIRE_FALSE(submit("k1"));                     // a duplicate
  CHECK(submit("k1", "other") == errc::conflict);  // a conflict
  CHECK(submit("") == errc::invalid_key);          // a bad key
  REQUIRE_FALSE(submit("bad"));
  REQUIRE(eventually([&] { return stats(q).processed == 100 && stats(q).dead_lettered == 1; }));
  c.drain();

  CHECK(m->accepted.value() == 101);
  CHECK(m->duplicates.value() == 1);
  CHECK(m->rejected(errc::conflict) == 1);
  CHECK(m->rejected(errc::invalid_key) == 1);
  CHECK(m->accept_latency.count() == 104);  // every answer timed
  CHECK(m->processed.value() == 100);
  CHECK(m->retried.value() == 1);
  CHECK(m->dead_lettered.value() == 1);
  CHECK(m->batch_size.count() == static_cast<std::uint64_t>(calls.load()));
  CHECK(m->commit_latency.count() == static_cast<std::uint64_t>(calls.load()));
  CHECK(m->batch_size.sum() == doctest::Approx(102));  // 101 items, "bad" delivered twice
}

}  // namespace ingest::test
