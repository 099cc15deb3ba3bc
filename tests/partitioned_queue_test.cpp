#include "ingest/partitioned_queue.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <set>

#include "ingest/error.hpp"
#include "ingest/memory_queue.hpp"
#include "ingest/testing/queue_conformance.hpp"
#include "support/forwarding_queue.hpp"
#include "support/test_support.hpp"

namespace ingest::test {

namespace {

std::vector<std::unique_ptr<durable_queue>> memory_partitions(boost::asio::any_io_executor ex, std::size_t n,
                                                              std::chrono::milliseconds visibility = 30s) {
  std::vector<std::unique_ptr<durable_queue>> parts;
  for (std::size_t i = 0; i < n; ++i)
    parts.push_back(
        std::make_unique<memory_queue>(ex, memory_queue_options{.visibility_timeout = visibility, .quiet = true}));
  return parts;
}

// A key that partition_of sends to partition `p` of `n`.
std::string key_in(std::size_t p, std::size_t n, const std::string& prefix = "k") {
  for (int i = 0;; ++i) {
    auto k = prefix + std::to_string(i);
    if (partition_of(k, n) == p) return k;
  }
}

// One fetch waits on both partitions of `q`; a message lands in each, straight into
// the partitions: one answers the fetch (returned), the other is held for the next.
std::vector<delivery> answer_one_hold_one(partitioned_queue& q) {
  capture<std::vector<delivery>> waiting;
  q.async_fetch(5, 10s, waiting.handler());
  std::this_thread::sleep_for(100ms);
  REQUIRE_FALSE(publish(q.partition(0), message("p0")).first);
  REQUIRE_FALSE(publish(q.partition(1), message("p1")).first);
  auto [ec, first] = waiting.get();
  REQUIRE(first.size() == 1);
  REQUIRE(eventually([&] { return stats(q).leased == 2; }));
  return first;
}

// A queue that claims no dedup: what partitions of one kind never mix with.
class no_dedup_queue final : public durable_queue {
 public:
  explicit no_dedup_queue(executor_type ex) : ex_(ex) {}
  executor_type get_executor() const override { return ex_; }
  queue_features features() const override { return {}; }
  void close() override {}

 private:
  void do_publish(envelope, callback<error_code, receipt> done) override { done(errc::not_supported, {}); }
  void do_fetch(std::size_t, duration, callback<error_code, std::vector<delivery>> done) override {
    done(errc::not_supported, {});
  }
  void do_settle(std::vector<settlement>, callback<error_code> done) override { done(errc::not_supported); }
  void do_extend(std::vector<std::string>, duration, callback<error_code> done) override { done(errc::not_supported); }
  void do_stats(callback<error_code, queue_stats> done) override { done(errc::not_supported, {}); }
  void do_dead_letters(std::string, std::size_t, callback<error_code, std::vector<dead_letter>> done) override {
    done(errc::not_supported, {});
  }
  void do_replay(std::vector<std::string>, callback<error_code, std::size_t> done) override {
    done(errc::not_supported, 0);
  }
  void do_purge(std::vector<std::string>, callback<error_code, std::size_t> done) override {
    done(errc::not_supported, 0);
  }
  executor_type ex_;
};

}  // namespace

struct partitioned_memory_backend {
  static constexpr const char* name = "partitioned memory (3)";
  explicit partitioned_memory_backend(boost::asio::any_io_executor ex) : ex_(ex) {}
  std::unique_ptr<durable_queue> open(std::chrono::milliseconds visibility) {
    return std::make_unique<partitioned_queue>(ex_, memory_partitions(ex_, 3, visibility));
  }
  // The memory queue's, but in order only within a partition.
  queue_features expected_features() const {
    return {.durable = false,
            .native_dedup = true,
            .fifo = false,
            .delayed_retry = true,
            .lease_extension = true,
            .exact_stats = true,
            .lookup = true,
            .deadline_before_store = true,
            .dedup_window = std::chrono::milliseconds::max()};
  }
  boost::asio::any_io_executor ex_;
};

INGEST_QUEUE_CONFORMANCE(std::tuple<partitioned_memory_backend>);

TEST_CASE("partition_of is 64-bit FNV-1a of the key, modulo the count, for good") {
  // Written down in docs/wire-format.md; other programs compute the same.
  CHECK(partition_of("", 1000) == 0xcbf29ce484222325ull % 1000);
  CHECK(partition_of("a", 1000) == 996);
  CHECK(partition_of("foobar", 7) == 6);
  CHECK(partition_of("exam-42/student-7", 7) == 2);
  CHECK(partition_of("anything", 1) == 0);
  // Keys spread evenly enough: 20,000 keys over 4 partitions, each 22-28 %.
  std::map<std::size_t, int> count;
  for (int i = 0; i < 20000; ++i) ++count[partition_of("demo/student-" + std::to_string(i), 4)];
  REQUIRE(count.size() == 4);
  for (auto [p, n] : count) {
    CHECK(n > 4400);
    CHECK(n < 5600);
  }
}

TEST_CASE("partitioned_queue: a key and its repeats live in one partition, which answers them") {
  io_thread io;
  partitioned_queue q(io.executor(), memory_partitions(io.executor(), 3));
  std::map<std::size_t, int> expected;
  for (int i = 0; i < 60; ++i) {
    const auto key = "student-" + std::to_string(i);
    auto [ec, first] = publish(q, message(key, "{\"a\":1}"));
    REQUIRE_FALSE(ec);
    auto [ec2, again] = publish(q, message(key, "{\"a\":1}"));
    REQUIRE_FALSE(ec2);
    CHECK(again.duplicate);
    CHECK(again.id == first.id);
    CHECK(publish(q, message(key, "{\"a\":2}")).first == errc::conflict);
    ++expected[partition_of(key, 3)];
  }
  for (std::size_t p = 0; p < 3; ++p) CHECK(stats(q.partition(p)).accepted == static_cast<std::uint64_t>(expected[p]));
  CHECK(stats(q).accepted == 60);
}

TEST_CASE("partitioned_queue: a fetch answers from the partition that has work, not after the wait") {
  io_thread io;
  partitioned_queue q(io.executor(), memory_partitions(io.executor(), 3));
  REQUIRE_FALSE(publish(q, message(key_in(2, 3))).first);
  const auto t0 = std::chrono::steady_clock::now();
  auto [ec, got] = fetch(q, 10, 10s);
  REQUIRE(got.size() == 1);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);

  // Waiting on all of them: a message published into any partition ends the wait.
  capture<std::vector<delivery>> waiting;
  q.async_fetch(10, 10s, waiting.handler());
  std::this_thread::sleep_for(100ms);
  const auto t1 = std::chrono::steady_clock::now();
  REQUIRE_FALSE(publish(q, message(key_in(1, 3))).first);
  auto [ec2, woken] = waiting.get();
  REQUIRE(woken.size() == 1);
  CHECK(partition_of(woken[0].message.idempotency_key, 3) == 1);
  CHECK(std::chrono::steady_clock::now() - t1 < 5s);
}

TEST_CASE("partitioned_queue: the sweep starts one partition further each time, so none is starved") {
  io_thread io;
  partitioned_queue q(io.executor(), memory_partitions(io.executor(), 2));
  for (int i = 0; i < 40; ++i) {
    REQUIRE_FALSE(publish(q, message(key_in(0, 2, "a" + std::to_string(i) + "-"))).first);
    REQUIRE_FALSE(publish(q, message(key_in(1, 2, "b" + std::to_string(i) + "-"))).first);
  }
  // Room for 3 over 2 full partitions: the partition the sweep starts with is asked
  // for 2, the other for 1; which one that is must change from fetch to fetch.
  std::vector<std::size_t> larger;
  for (int f = 0; f < 4; ++f) {
    auto [ec, got] = fetch(q, 3, 1s);
    REQUIRE(got.size() == 3);
    std::size_t from_0 = 0;
    for (const auto& d : got) from_0 += partition_of(d.message.idempotency_key, 2) == 0 ? 1 : 0;
    larger.push_back(from_0 >= 2 ? 0 : 1);
    REQUIRE_FALSE(ack(q, got));
  }
  for (std::size_t f = 1; f < larger.size(); ++f) CHECK(larger[f] != larger[f - 1]);
}

TEST_CASE("partitioned_queue: what arrives after its fetch was answered goes to the next, or back at close") {
  io_thread io;
  partitioned_queue q(io.executor(), memory_partitions(io.executor(), 2));
  const auto first = answer_one_hold_one(q);

  SUBCASE("the next fetch takes it at once") {
    const auto t0 = std::chrono::steady_clock::now();
    auto [ec2, second] = fetch(q, 5, 10s);
    REQUIRE(second.size() == 1);
    CHECK(second[0].message.idempotency_key != first[0].message.idempotency_key);
    CHECK(second[0].message.attempts == 1);  // the delivery that was held
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
    CHECK_FALSE(ack(q, first));
    CHECK_FALSE(ack(q, second));
    CHECK(stats(q).processed == 2);
  }
  SUBCASE("close releases it (a retry with no delay), instead of leaving it to its lease") {
    q.close();
    CHECK(eventually([&] { return stats(q).leased == 1; }));
    auto& held = first[0].message.idempotency_key == "p0" ? q.partition(1) : q.partition(0);
    CHECK(stats(held).leased == 0);
    CHECK(stats(held).pending == 1);
    CHECK(fetch(q, 5, 1s).first == errc::shutting_down);
    CHECK_FALSE(ack(q, first));  // settling still works after close
    CHECK(stats(q).processed == 1);
  }
}

TEST_CASE("partitioned_queue: a delivery held past the hold limit is released and comes again with a fresh lease") {
  io_thread io;
  partitioned_queue q(io.executor(), memory_partitions(io.executor(), 2, 2s), 300ms);
  const auto first = answer_one_hold_one(q);
  // Held longer than 300 ms (its lease of 2 s still running): not handed out as it is.
  std::this_thread::sleep_for(600ms);
  auto [ec2, second] = fetch(q, 5, 5s);
  REQUIRE(second.size() == 1);
  CHECK(second[0].message.idempotency_key != first[0].message.idempotency_key);
  CHECK(second[0].message.attempts == 2);  // released, then delivered again
  CHECK(stats(q).leased == 2);             // the first and the new delivery, nothing else
  CHECK_FALSE(ack(q, first));
  CHECK_FALSE(ack(q, second));
  CHECK(stats(q).processed == 2);
  CHECK(stats(q).pending == 0);
  CHECK_THROWS_AS(partitioned_queue(io.executor(), memory_partitions(io.executor(), 2), 0ms), ingest::error);
}

TEST_CASE("partitioned_queue: a fetch ends at its own deadline while others wait on every partition") {
  io_thread io;
  partitioned_queue q(io.executor(), memory_partitions(io.executor(), 2));
  capture<std::vector<delivery>> long_wait;
  q.async_fetch(5, 10s, long_wait.handler());  // its wake-ups hold both partitions
  std::this_thread::sleep_for(100ms);
  const auto t0 = std::chrono::steady_clock::now();
  auto [ec, got] = fetch(q, 5, 200ms);
  CHECK_FALSE(ec);
  CHECK(got.empty());
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);
  CHECK(fetch(q, 0, 10s).second.empty());  // max 0: answered at once
  REQUIRE_FALSE(publish(q, message("late")).first);
  CHECK(long_wait.get().second.size() == 1);
}

TEST_CASE("partitioned_queue: a failing partition does not fail the fetch while another can answer") {
  io_thread io;
  partitioned_queue q(io.executor(), memory_partitions(io.executor(), 2));
  REQUIRE_FALSE(publish(q, message(key_in(0, 2))).first);
  q.partition(1).close();  // its fetches fail at once from now on
  for (int i = 0; i < 3; ++i) {
    auto [ec, got] = fetch(q, 5, 1s);
    CHECK_FALSE(ec);
    if (i == 0) CHECK(got.size() == 1);
    if (i > 0) CHECK(got.empty());  // waited on the healthy one, not failed at once
  }
  q.partition(0).close();
  auto [ec, got] = fetch(q, 5, 10s);
  CHECK(ec);  // every partition failing: the error, at once
}

namespace {
// A memory queue whose fetches fail at once while `failing` is set.
class flaky final : public forwarding_queue {
 public:
  explicit flaky(std::unique_ptr<memory_queue> inner) : forwarding_queue(*inner), owned_(std::move(inner)) {}
  std::atomic<bool> failing{false};

 private:
  void do_fetch(std::size_t max, duration wait, callback<error_code, std::vector<delivery>> done) override {
    if (failing) return done(errc::backend_unavailable, {});
    forwarding_queue::do_fetch(max, wait, std::move(done));
  }
  std::unique_ptr<memory_queue> owned_;
};
}  // namespace

TEST_CASE("partitioned_queue: a partition that recovers is fetched from by a fetch already waiting") {
  io_thread io;
  auto parts = memory_partitions(io.executor(), 1);
  auto sick = std::make_unique<flaky>(
      std::make_unique<memory_queue>(io.executor(), memory_queue_options{.visibility_timeout = 30s, .quiet = true}));
  auto* one = sick.get();
  one->failing = true;
  parts.push_back(std::move(sick));
  partitioned_queue q(io.executor(), std::move(parts));
  capture<std::vector<delivery>> waiting;
  q.async_fetch(5, 20s, waiting.handler());  // its wake-up holds partition 0 for 20 s
  std::this_thread::sleep_for(100ms);
  one->failing = false;
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE_FALSE(publish(q, message(key_in(1, 2))).first);
  auto [ec, got] = waiting.get();
  CHECK_FALSE(ec);
  CHECK(got.size() == 1);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);  // not at the wait's end
}

TEST_CASE("partitioned_queue: settle and extend route by token; a foreign token is an expired lease") {
  io_thread io;
  partitioned_queue q(io.executor(), memory_partitions(io.executor(), 3));
  for (int i = 0; i < 9; ++i) REQUIRE_FALSE(publish(q, message("s" + std::to_string(i))).first);
  std::vector<delivery> all;
  for (int f = 0; f < 10 && all.size() < 9; ++f) {
    auto [ec, got] = fetch(q, 9, 1s);
    std::move(got.begin(), got.end(), std::back_inserter(all));
  }
  REQUIRE(all.size() == 9);
  std::vector<std::string> tokens;
  for (const auto& d : all) tokens.push_back(d.token);
  capture_ec extended;
  q.async_extend(tokens, 30s, extended.handler());
  CHECK_FALSE(extended.get());
  CHECK(settle(q, {{"7/1", settle_action::ack, {}, {}, {}}}) == errc::lease_expired);
  CHECK(settle(q, {{"no-partition", settle_action::ack, {}, {}, {}}}) == errc::lease_expired);
  std::vector<settlement> s;
  for (const auto& d : all) s.push_back({d.token, settle_action::ack, {}, {}, {}});
  s.push_back({"1/unknown", settle_action::ack, {}, {}, {}});
  CHECK(settle(q, std::move(s)) == errc::lease_expired);  // the others are settled
  auto st = stats(q);
  CHECK(st.processed == 9);
  CHECK(st.pending == 0);
  CHECK(st.balanced());
}

TEST_CASE("partitioned_queue: dead letters are listed across partitions in receipt order, page by page") {
  io_thread io;
  partitioned_queue q(io.executor(), memory_partitions(io.executor(), 3));
  std::set<std::string> ids;
  for (int i = 0; i < 12; ++i) ids.insert(publish(q, message("d" + std::to_string(i))).second.id);
  std::vector<delivery> all;
  for (int f = 0; f < 10 && all.size() < 12; ++f) {
    auto [ec, got] = fetch(q, 12, 1s);
    std::move(got.begin(), got.end(), std::back_inserter(all));
  }
  REQUIRE(all.size() == 12);
  std::vector<settlement> s;
  for (const auto& d : all) s.push_back({d.token, settle_action::dead_letter, {}, "permanent_failure", "bad"});
  REQUIRE_FALSE(settle(q, std::move(s)));
  std::vector<std::string> listed;
  std::string after;
  for (int page = 0; page < 10; ++page) {
    capture<std::vector<dead_letter>> c;
    q.async_dead_letters(after, 5, c.handler());
    auto [ec, letters] = c.get();
    REQUIRE_FALSE(ec);
    CHECK(letters.size() <= 5);
    if (letters.empty()) break;
    for (const auto& l : letters) listed.push_back(l.message.receipt_id);
    after = letters.back().message.receipt_id;
  }
  CHECK(std::is_sorted(listed.begin(), listed.end()));
  CHECK(std::set<std::string>(listed.begin(), listed.end()) == ids);
  CHECK(listed.size() == 12);
  capture<std::size_t> replayed;
  q.async_replay({listed[0], listed[5]}, replayed.handler());
  CHECK(replayed.get().second == 2);
  auto st = stats(q);
  CHECK(st.dead_lettered == 10);
  CHECK(st.pending == 2);
}

TEST_CASE("partitioned_queue: partitions of one kind, at least one") {
  io_thread io;
  CHECK_THROWS_AS(partitioned_queue(io.executor(), {}), ingest::error);
  auto parts = memory_partitions(io.executor(), 1);
  parts.push_back(std::make_unique<no_dedup_queue>(io.executor()));
  try {
    partitioned_queue q(io.executor(), std::move(parts));
    FAIL("accepted partitions that differ");
  } catch (const ingest::error& e) {
    CHECK(e.code() == errc::invalid_config);
  }
  partitioned_queue one(io.executor(), memory_partitions(io.executor(), 1));
  CHECK(one.features().fifo);  // a single partition keeps its order
}

}  // namespace ingest::test
