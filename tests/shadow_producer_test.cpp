#include "ingest/shadow_producer.hpp"

#include <doctest/doctest.h>

#include <map>
#include <mutex>
#include <set>

#include "ingest/error.hpp"
#include "ingest/memory_queue.hpp"
#include "support/test_support.hpp"

namespace ingest::test {

namespace {

submission copy_of(const std::string& key, std::string payload = R"({"answers":{"q1":"a"}})") {
  return submission{.idempotency_key = key, .subject = "exam.e1", .payload = std::move(payload)};
}

// The gaps reported, as a re-send list would keep them.
struct gap_list {
  std::mutex mutex;
  std::vector<shadow_gap> gaps;
  std::function<void(const shadow_gap&)> hook() {
    return [this](const shadow_gap& g) {
      std::lock_guard lock(mutex);
      gaps.push_back(g);
    };
  }
  std::vector<shadow_gap> get() {
    std::lock_guard lock(mutex);
    return gaps;
  }
};

std::uint64_t accepted(memory_queue& q) {
  capture<queue_stats> c;
  q.async_stats(c.handler());
  return c.get().second.accepted;
}

}  // namespace

TEST_CASE("shadow_producer: copies reach the queue once, repeats are counted as repeats") {
  io_thread io;
  memory_queue q(io.executor(), {.quiet = true});
  producer p(q);
  gap_list gaps;
  shadow_producer shadow(p, {.on_gap = gaps.hook()});
  for (int i = 0; i < 20; ++i) shadow.publish(copy_of("k" + std::to_string(i)));
  shadow.publish(copy_of("k3"));  // the same write shadowed twice
  REQUIRE(eventually([&] { return shadow.stats().pending == 0; }));
  REQUIRE(eventually([&] { return shadow.stats().sent + shadow.stats().repeats == 21; }));
  const auto st = shadow.stats();
  CHECK(st.sent == 20);
  CHECK(st.repeats == 1);
  CHECK(st.failed + st.skipped + st.conflicts == 0);
  CHECK(gaps.get().empty());
  CHECK(accepted(q) == 20);
}

TEST_CASE("shadow_producer: a queue that fails never fails the caller; each failure is a gap, re-sent later") {
  io_thread io;
  memory_queue q(io.executor(), {.quiet = true});
  producer p(q);
  gap_list gaps;
  shadow_producer shadow(p, {.on_gap = gaps.hook()});
  shadow.publish(copy_of("before"));
  REQUIRE(eventually([&] { return shadow.stats().sent == 1; }));
  q.fail_publishes(errc::backend_unavailable);
  for (int i = 0; i < 5; ++i) CHECK_NOTHROW(shadow.publish(copy_of("down-" + std::to_string(i))));
  REQUIRE(eventually([&] { return shadow.stats().failed == 5; }));
  const auto reported = gaps.get();
  REQUIRE(reported.size() == 5);
  std::set<std::string> keys;
  for (const auto& g : reported) {
    keys.insert(g.idempotency_key);
    CHECK(g.subject == "exam.e1");
    CHECK(is_retry_later(g.error));
  }
  CHECK(keys == std::set<std::string>{"down-0", "down-1", "down-2", "down-3", "down-4"});
  CHECK(accepted(q) == 1);

  // The queue is back: the gaps are re-sent from the source of truth; a second re-send
  // of the same write is a repeat with the same receipt.
  q.fail_publishes({});
  std::map<std::string, std::string> receipts;
  for (const auto& key : keys) {
    capture<receipt> c;
    shadow.async_resend(copy_of(key), c.handler());
    auto [ec, r] = c.get();
    REQUIRE_FALSE(ec);
    CHECK_FALSE(r.duplicate);
    receipts[key] = r.id;
  }
  capture<receipt> again;
  shadow.async_resend(copy_of("down-2"), again.handler());
  auto [aec, ar] = again.get();
  REQUIRE_FALSE(aec);
  CHECK(ar.duplicate);
  CHECK(ar.id == receipts["down-2"]);
  CHECK(shadow.stats().resent == 6);
  CHECK(accepted(q) == 6);
}

TEST_CASE("shadow_producer: past max_pending a copy is skipped at once (a gap), never queued in memory") {
  io_thread io;
  memory_queue q(io.executor(), {.quiet = true});
  producer p(q, {.publish_timeout = std::chrono::milliseconds(0)});
  gap_list gaps;
  shadow_producer shadow(p, {.max_pending = 2, .on_gap = gaps.hook()});
  q.hold_acks(true);
  shadow.publish(copy_of("a"));
  shadow.publish(copy_of("b"));
  shadow.publish(copy_of("c"));
  CHECK(shadow.stats().pending == 2);
  CHECK(shadow.stats().skipped == 1);
  REQUIRE(gaps.get().size() == 1);
  CHECK(gaps.get()[0].idempotency_key == "c");
  CHECK(gaps.get()[0].error == errc::backpressure);
  q.hold_acks(false);
  REQUIRE(eventually([&] { return shadow.stats().sent == 2; }));
  CHECK(shadow.stats().pending == 0);
}

TEST_CASE("shadow_producer: a key the queue holds with another payload is a conflict gap") {
  io_thread io;
  memory_queue q(io.executor(), {.quiet = true});
  producer p(q);
  gap_list gaps;
  shadow_producer shadow(p, {.on_gap = gaps.hook()});
  shadow.publish(copy_of("k", "one"));
  REQUIRE(eventually([&] { return shadow.stats().sent == 1; }));
  shadow.publish(copy_of("k", "two"));
  REQUIRE(eventually([&] { return shadow.stats().conflicts == 1; }));
  REQUIRE(gaps.get().size() == 1);
  CHECK(gaps.get()[0].error == errc::conflict);
}

TEST_CASE("shadow_producer: drain waits for the copies in flight, then refuses new ones as gaps") {
  io_thread io;
  memory_queue q(io.executor(), {.quiet = true});
  producer p(q, {.publish_timeout = std::chrono::milliseconds(0)});
  gap_list gaps;
  shadow_producer shadow(p, {.on_gap = gaps.hook()});
  q.hold_acks(true);
  for (int i = 0; i < 3; ++i) shadow.publish(copy_of("d" + std::to_string(i)));
  capture_ec drained;
  shadow.async_drain(drained.handler());
  CHECK(drained.future.wait_for(std::chrono::milliseconds(200)) == std::future_status::timeout);
  shadow.publish(copy_of("late"));
  CHECK(shadow.stats().skipped == 1);
  REQUIRE(gaps.get().size() == 1);
  CHECK(gaps.get()[0].error == errc::shutting_down);
  q.hold_acks(false);
  CHECK_FALSE(drained.get());
  CHECK(shadow.stats().sent == 3);
}

TEST_CASE("shadow_producer: bad options are refused") {
  io_thread io;
  memory_queue q(io.executor(), {.quiet = true});
  producer p(q);
  CHECK_THROWS_AS(shadow_producer(p, {.max_pending = 0}), error);
}

}  // namespace ingest::test
