#include "ingest/rollout.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <map>
#include <thread>
#include <vector>

#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"

namespace ingest::test {

namespace {

// The bucket as another program computes it: the first 16 hex digits of the SHA-256
// digest, as a number, modulo 10,000.
std::uint32_t bucket_from_hex(const std::string& principal) {
  return static_cast<std::uint32_t>(std::stoull(fingerprint(principal).substr(0, 16), nullptr, 16) % 10'000);
}

std::string student(int i) {
  return "student-" + std::to_string(i);
}

}  // namespace

TEST_CASE("rollout: the bucket is the documented hash, the same in another language") {
  // Computed with Python: int.from_bytes(hashlib.sha256(p).digest()[:8], "big") % 10000.
  CHECK(rollout::bucket("student-1") == 1572);
  CHECK(rollout::bucket("s0042") == 6822);
  CHECK(rollout::bucket("") == 1652);
  for (int i = 0; i < 200; ++i) CHECK(rollout::bucket(student(i)) == bucket_from_hex(student(i)));
}

TEST_CASE("rollout: the percentage picks that share of principals, and moving it only moves principals one way") {
  rollout r({.queue_percent = 0, .pin_for = std::chrono::seconds(0)});
  constexpr int n = 10'000;
  std::map<double, std::vector<bool>> on_queue;
  for (double percent : {0.0, 10.0, 30.0, 55.5, 100.0}) {
    r.set_queue_percent(percent);
    auto& v = on_queue[percent];
    int count = 0;
    for (int i = 0; i < n; ++i) {
      v.push_back(r.route(student(i)) == write_path::queue);
      count += v.back();
      CHECK(r.path_of(student(i)) == (v.back() ? write_path::queue : write_path::direct));
    }
    CAPTURE(percent);
    CHECK(count >= n * percent / 100 - 200);
    CHECK(count <= n * percent / 100 + 200);
  }
  CHECK(on_queue[0.0] == std::vector<bool>(n, false));
  CHECK(on_queue[100.0] == std::vector<bool>(n, true));
  // Raising the share never sends anyone back to the direct path.
  const std::vector<double> steps{0.0, 10.0, 30.0, 55.5, 100.0};
  for (std::size_t s = 1; s < steps.size(); ++s)
    for (int i = 0; i < n; ++i)
      if (on_queue[steps[s - 1]][i]) CHECK(on_queue[steps[s]][i]);
  const auto st = r.stats();
  CHECK(st.routed_direct + st.routed_queue == 5u * n);
  CHECK(st.pins == 0);
}

TEST_CASE("rollout: a key keeps its first path while the percentage moves, until its pin goes") {
  rollout r({.queue_percent = 0, .max_pins = 3});
  CHECK(r.route("alice", "k1") == write_path::direct);
  r.set_queue_percent(100);
  CHECK(r.route("alice", "k1") == write_path::direct);  // a retry: pinned
  CHECK(r.route("alice", "k2") == write_path::queue);   // a new submission: the percentage
  CHECK(r.route("alice") == write_path::queue);         // no key, no pin
  CHECK(r.stats().pinned_answers == 1);
  r.set_queue_percent(0);
  CHECK(r.route("alice", "k2") == write_path::queue);
  CHECK(r.route("alice", "k1") == write_path::direct);
  // The oldest pin goes when more than max_pins are kept.
  CHECK(r.route("bob", "k3") == write_path::direct);
  CHECK(r.route("bob", "k4") == write_path::direct);
  CHECK(r.stats().pins == 3);
  r.set_queue_percent(100);
  CHECK(r.route("alice", "k1") == write_path::queue);  // k1 was evicted: decided again
  CHECK(r.route("bob", "k4") == write_path::direct);   // still pinned
  r.clear_pins();
  CHECK(r.stats().pins == 0);
  CHECK(r.route("bob", "k4") == write_path::queue);
}

TEST_CASE("rollout: pins expire after pin_for") {
  rollout r({.queue_percent = 0, .pin_for = std::chrono::seconds(1)});
  CHECK(r.route("carol", "k") == write_path::direct);
  r.set_queue_percent(100);
  CHECK(r.route("carol", "k") == write_path::direct);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  CHECK(r.route("carol", "k") == write_path::queue);
}

TEST_CASE("rollout: bad settings are refused with a clear error") {
  CHECK_THROWS_AS(rollout({.queue_percent = 101}), error);
  CHECK_THROWS_AS(rollout({.queue_percent = -1}), error);
  CHECK_THROWS_AS(rollout({.pin_for = std::chrono::seconds(-1)}), error);
  CHECK_THROWS_AS(rollout({.max_pins = 0}), error);
  rollout r;
  try {
    r.set_queue_percent(std::nan(""));
    FAIL("NaN accepted");
  } catch (const error& e) {
    CHECK(e.code() == errc::invalid_config);
  }
  r.set_queue_percent(33.337);
  CHECK(r.queue_percent() == doctest::Approx(33.33));
  r.set_queue_percent(12.5);
  CHECK(r.queue_percent() == doctest::Approx(12.5));
}

TEST_CASE("rollout: routing while the percentage flips never changes a pinned key's path") {
  rollout r({.queue_percent = 50});
  constexpr int keys = 2'000;
  std::vector<std::atomic<int>> first(keys);  // 0: not seen, 1: direct, 2: queue
  std::atomic<int> changed{0};
  std::atomic<bool> done{false};
  std::thread flipper([&] {
    for (int i = 0; !done; ++i) r.set_queue_percent(i % 2 ? 0 : 100);
  });
  std::vector<std::thread> routers;
  for (int t = 0; t < 3; ++t)
    routers.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round)
        for (int k = t; k < keys; k += 2) {
          const int path = r.route(student(k % 97), "key-" + std::to_string(k)) == write_path::queue ? 2 : 1;
          int expected = 0;
          if (!first[k].compare_exchange_strong(expected, path) && expected != path) ++changed;
        }
    });
  for (auto& t : routers) t.join();
  done = true;
  flipper.join();
  CHECK(changed == 0);
  CHECK(r.stats().pins == keys);
}

TEST_CASE("rollout: Prometheus text names the share, the routes and each path's metrics") {
  rollout r({.queue_percent = 25});
  r.route("dave", "k");
  r.metrics(write_path::queue)->accepted.inc();
  CHECK(r.metrics(write_path::queue) == r.metrics(write_path::queue));
  CHECK(r.metrics(write_path::queue) != r.metrics(write_path::direct));
  const auto text = to_prometheus(r);
  CHECK(text.find("ingest_rollout_queue_percent 25.00\n") != std::string::npos);
  CHECK(text.find("ingest_rollout_routed_total{path=\"") != std::string::npos);
  CHECK(text.find("ingest_rollout_path_queue_accepted_total 1\n") != std::string::npos);
  CHECK(text.find("ingest_rollout_path_direct_accepted_total 0\n") != std::string::npos);
  CHECK(text.find("ingest_rollout_pins 1\n") != std::string::npos);
}

}  // namespace ingest::test
