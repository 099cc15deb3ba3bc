#include "ingest/producer.hpp"

#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <future>

#include "ingest/error.hpp"
#include "ingest/memory_queue.hpp"
#include "support/forwarding_queue.hpp"
#include "support/test_support.hpp"

namespace ingest::test {

namespace {

submission item(std::string key, std::string payload = R"({"answers":{}})") {
  return submission{.idempotency_key = std::move(key), .subject = {}, .payload = std::move(payload), .headers = {}};
}

std::pair<error_code, receipt> submit(producer& p, submission s) {
  capture<receipt> c;
  p.async_submit(std::move(s), c.handler());
  return c.get();
}

// A backend that stores first and learns only afterwards whether a key was new, as
// NATS and SQS do: the memory queue with the deadline taken off every publish.
class stores_then_tells final : public forwarding_queue {
 public:
  explicit stores_then_tells(memory_queue& inner) : forwarding_queue(inner) {}
  queue_features features() const override {
    auto f = inner_.features();
    f.deadline_before_store = false;
    return f;
  }

 private:
  void do_publish(envelope m, callback<error_code, receipt> done) override {
    m.not_after = time_point::max();
    inner_.async_publish(std::move(m), std::move(done));
  }
};

}  // namespace

TEST_CASE("guarantee 7: a deadline refuses what is postmarked after it, on every kind of backend") {
  io_thread io;
  memory_queue inner(io.executor(), {.quiet = true});
  stores_then_tells broker_like(inner);
  for (durable_queue* q : {static_cast<durable_queue*>(&inner), static_cast<durable_queue*>(&broker_like)}) {
    CAPTURE(q->features().deadline_before_store);
    producer p(*q);
    const auto prefix = q->features().deadline_before_store ? std::string("m-") : std::string("b-");
    auto on_time = item(prefix + "on-time");
    on_time.not_after = clock::now() + 1h;
    auto [ec, first] = submit(p, on_time);
    REQUIRE_FALSE(ec);
    // After the deadline: a repeat of what came in time still gets its receipt...
    auto repeat = item(prefix + "on-time");
    repeat.not_after = first.accepted_at;
    auto [rec, again] = submit(p, repeat);
    REQUIRE_FALSE(rec);
    CHECK(again.id == first.id);
    // ...a new submission gets none, now or on any retry.
    auto late = item(prefix + "late");
    late.not_after = clock::now() - 1s;
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto [lec, r] = submit(p, late);
      CHECK(lec == errc::deadline_passed);
      CHECK(r.id.empty());
      CHECK_FALSE(is_retry_later(lec));
    }
  }
  // The broker-like backend kept the late one (the consumer dead-letters it); the
  // memory queue never stored its own.
  CHECK(stats(inner).accepted == 3);
}

TEST_CASE("guarantee 1: no receipt before the durable ack") {
  io_thread io;
  memory_queue q(io.executor(), {.quiet = true});
  producer p(q, {.publish_timeout = 0ms});
  q.hold_acks(true);
  capture<receipt> c;
  p.async_submit(item("k1"), c.handler());
  CHECK(c.future.wait_for(200ms) == std::future_status::timeout);
  CHECK(p.stats().in_flight == 1);
  q.hold_acks(false);
  auto [ec, r] = c.get();
  REQUIRE_FALSE(ec);
  CHECK_FALSE(r.duplicate);

  // Guarantee 7: the receipt carries the time the backend stamped on the stored message.
  auto [fec, got] = fetch(q, 1, 1s);
  REQUIRE(got.size() == 1);
  CHECK(got[0].message.receipt_id == r.id);
  CHECK(got[0].message.accepted_at == r.accepted_at);
  CHECK(got[0].message.subject == "ingest");
}

TEST_CASE("guarantee 3 at the producer: repeats, conflicts and in-flight repeats") {
  io_thread io;
  memory_queue q(io.executor(), {.quiet = true});
  producer p(q);

  auto [ec, first] = submit(p, item("same"));
  REQUIRE_FALSE(ec);
  auto [ec2, again] = submit(p, item("same"));
  REQUIRE_FALSE(ec2);
  CHECK(again.duplicate);
  CHECK(again.id == first.id);
  CHECK(again.accepted_at == first.accepted_at);
  CHECK(submit(p, item("same", "other body")).first == errc::conflict);

  q.hold_acks(true);
  capture<receipt> slow;
  p.async_submit(item("slow"), slow.handler());
  CHECK(submit(p, item("slow")).first == errc::in_flight);
  CHECK(submit(p, item("slow", "other body")).first == errc::conflict);
  q.hold_acks(false);
  auto [sec, slow_receipt] = slow.get();
  REQUIRE_FALSE(sec);
  auto [sec2, slow_again] = submit(p, item("slow"));
  CHECK(slow_again.id == slow_receipt.id);

  auto st = p.stats();
  CHECK(st.accepted == 2);
  CHECK(st.duplicates == 2);
  CHECK(st.rejected == 3);
}

TEST_CASE("guarantee 6: the in-flight bound answers backpressure at once, without blocking") {
  io_thread io;
  memory_queue q(io.executor(), {.quiet = true});
  producer p(q, {.max_in_flight = 4, .publish_timeout = 0ms});
  q.hold_acks(true);
  std::vector<capture<receipt>> held(4);
  for (int i = 0; i < 4; ++i)
    p.async_submit(item("h" + std::to_string(i)), held[static_cast<std::size_t>(i)].handler());

  // Acks are withheld, so an answer to the fifth can only be the bound's refusal.
  capture<receipt> fifth;
  p.async_submit(item("h4"), fifth.handler());
  REQUIRE(fifth.future.wait_for(2s) == std::future_status::ready);
  auto [ec, r] = fifth.get();
  CHECK(ec == errc::backpressure);
  CHECK(is_retry_later(ec));
  CHECK(r.id.empty());
  // Bad input is refused as itself even at the bound: it is checked before a slot is taken.
  CHECK(submit(p, item("bad key\n")).first == errc::invalid_key);

  q.hold_acks(false);
  for (auto& c : held) CHECK_FALSE(c.get().first);
  CHECK_FALSE(submit(p, item("h4")).first);  // room again
  CHECK(stats(q).accepted == 5);
}

TEST_CASE("guarantee 6: a failing or silent backend gives errors, never receipts") {
  io_thread io;
  memory_queue q(io.executor(), {.quiet = true});

  SUBCASE("backend down") {
    producer p(q);
    q.fail_publishes(errc::backend_unavailable);
    auto [ec, r] = submit(p, item("down"));
    CHECK(ec == errc::backend_unavailable);
    CHECK(r.id.empty());
    CHECK(p.stats().in_flight == 0);
  }

  SUBCASE("backend slow: publish_timeout, and a retry with the same key finds the receipt") {
    producer p(q, {.publish_timeout = 100ms});
    q.hold_acks(true);
    const auto t0 = std::chrono::steady_clock::now();
    auto [ec, r] = submit(p, item("slow"));
    CHECK(ec == errc::publish_timeout);
    CHECK(is_retry_later(ec));
    CHECK(r.id.empty());
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    q.hold_acks(false);
    CHECK(eventually([&] { return p.stats().in_flight == 0; }));
    auto [ec2, r2] = submit(p, item("slow"));
    CHECK_FALSE(ec2);
    CHECK(r2.duplicate);
  }
}

TEST_CASE("publish_timeout: one sweeper answers every late publish, and stops when nothing is in flight") {
  boost::asio::io_context io;
  memory_queue q(io.get_executor(), {.quiet = true});
  producer p(q, {.publish_timeout = 50ms});
  q.hold_acks(true);
  std::vector<capture<receipt>> held(5);
  for (std::size_t i = 0; i < held.size(); ++i) p.async_submit(item("late" + std::to_string(i)), held[i].handler());
  // No work guard: the io_context runs only while something waits on it.
  auto runner = std::async(std::launch::async, [&io] { io.run(); });
  for (auto& c : held) {
    REQUIRE(c.future.wait_for(5s) == std::future_status::ready);
    CHECK(c.get().first == errc::publish_timeout);
  }
  CHECK(p.stats().in_flight == 5);  // each slot stays taken until the backend answers
  CHECK(runner.wait_for(200ms) == std::future_status::timeout);  // still sweeping
  q.hold_acks(false);
  // Every publish has its answer: the sweeper stops, and run() returns by itself.
  const bool finished = runner.wait_for(5s) == std::future_status::ready;
  if (!finished) io.stop();
  runner.get();
  CHECK(finished);
  CHECK(p.stats().in_flight == 0);
  CHECK(p.stats().rejected == 5);
  CHECK(p.stats().accepted == 0);
}

TEST_CASE("bad input is refused before anything is published") {
  io_thread io;
  memory_queue q(io.executor(), {.quiet = true});
  producer p(q, {.max_payload_bytes = 16});
  CHECK(submit(p, item("")).first == errc::invalid_key);
  CHECK(submit(p, item("bad key\n")).first == errc::invalid_key);
  CHECK(submit(p, item(std::string(256, 'k'))).first == errc::invalid_key);
  CHECK(submit(p, item("big", std::string(17, 'x'))).first == errc::payload_too_large);
  auto injected = item("headers");
  injected.headers = {{"x-a", "1\r\nIngest-Receipt-Id: forged"}};
  CHECK(submit(p, injected).first == errc::invalid_header);
  auto odd_subject = item("subject");
  odd_subject.subject = "a\nb";
  CHECK(submit(p, odd_subject).first == errc::invalid_header);
  CHECK(stats(q).accepted == 0);
  CHECK_THROWS_AS(producer(q, {.max_in_flight = 0}), ingest::error);
}

TEST_CASE("guarantee 8: drain stops accepting and waits for in-flight publishes") {
  io_thread io;
  memory_queue q(io.executor(), {.quiet = true});
  producer p(q, {.publish_timeout = 0ms});
  q.hold_acks(true);
  std::vector<capture<receipt>> held(3);
  for (std::size_t i = 0; i < 3; ++i) p.async_submit(item("d" + std::to_string(i)), held[i].handler());

  capture_ec drained;
  p.async_drain(drained.handler());
  CHECK(drained.future.wait_for(100ms) == std::future_status::timeout);
  CHECK(submit(p, item("late")).first == errc::shutting_down);
  q.hold_acks(false);
  CHECK_FALSE(drained.get());
  for (auto& c : held) CHECK_FALSE(c.get().first);
}

TEST_CASE("completion tokens: use_future and C++20 coroutines") {
  io_thread io;
  memory_queue q(io.executor(), {.quiet = true});
  producer p(q);

  auto future = p.async_submit(item("fut"), boost::asio::use_future);
  CHECK_FALSE(future.get().id.empty());
  CHECK_THROWS_AS(p.async_submit(item("fut", "other"), boost::asio::use_future).get(), boost::system::system_error);

  std::promise<receipt> out;
  boost::asio::co_spawn(
      io.executor(),
      [&]() -> boost::asio::awaitable<void> {
        out.set_value(co_await p.async_submit(item("coro"), boost::asio::use_awaitable));
      },
      boost::asio::detached);
  CHECK(out.get_future().get().idempotency_key == "coro");
}

}  // namespace ingest::test
