#pragma once
/// @file
/// Part of the queue conformance suite (see `queue_conformance.hpp`). Delivery: fetch, leases and their expiry and
/// extension, delayed retries, order, concurrency, close, and durability across a reopen.

#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"
#include "ingest/testing/queue_helpers.hpp"

namespace ingest::testing {

/// @cond INGEST_SUITE_BODY
TEST_CASE_TEMPLATE_DEFINE("conformance: delivery", Backend, ingest_queue_conformance_delivery) {
  io_thread io;
  Backend backend(io.executor());
  const std::string backend_name = Backend::name;
  CAPTURE(backend_name);

  SUBCASE("fetch returns at most max, waits when empty, and wakes on publish") {
    auto q = backend.open(30s);
    for (int i = 0; i < 10; ++i) REQUIRE_FALSE(publish(*q, message("m" + std::to_string(i))).first);
    // The contract waits up to `wait` for the first delivery only: a networked backend
    // (NATS) may answer a 0 ms fetch with what reached its consumer so far, so the wait
    // lets the batch fill; memory and SQLite answer at once either way.
    auto [ec, three] = fetch(*q, 3, 1s);
    REQUIRE_FALSE(ec);
    CHECK(three.size() == 3);
    auto [ec2, rest] = fetch(*q, 100, 200ms);
    CHECK(rest.size() == 7);
    REQUIRE_FALSE(ack(*q, three));
    REQUIRE_FALSE(ack(*q, rest));

    const auto t0 = std::chrono::steady_clock::now();
    auto [ec3, none] = fetch(*q, 5, 150ms);
    CHECK_FALSE(ec3);
    CHECK(none.empty());
    CHECK(std::chrono::steady_clock::now() - t0 >= 140ms);

    capture<std::vector<delivery>> waiting;
    q->async_fetch(5, 5s, waiting.handler());
    std::this_thread::sleep_for(50ms);
    const auto t1 = std::chrono::steady_clock::now();
    REQUIRE_FALSE(publish(*q, message("late")).first);
    auto [ec4, woke] = waiting.get();
    CHECK_FALSE(ec4);
    REQUIRE(woke.size() == 1);
    CHECK(woke[0].message.idempotency_key == "late");
    CHECK(std::chrono::steady_clock::now() - t1 < 2s);
  }

  SUBCASE("an unsettled delivery comes back after the visibility timeout; its old lease is void") {
    auto q = backend.open(300ms);
    REQUIRE_FALSE(publish(*q, message("lease")).first);
    auto [ec, first] = fetch(*q, 1, 1s);
    REQUIRE(first.size() == 1);
    auto [ec2, hidden] = fetch(*q, 1, 0ms);
    CHECK(hidden.empty());
    CHECK(stats(*q).leased == 1);

    auto [ec3, again] = fetch(*q, 1, 3s);
    REQUIRE(again.size() == 1);
    CHECK(again[0].message.receipt_id == first[0].message.receipt_id);
    CHECK(again[0].message.attempts == 2);
    CHECK(std::chrono::abs(again[0].first_attempt_at - first[0].first_attempt_at) < 1ms);

    CHECK(ack(*q, first) == errc::lease_expired);
    auto st = stats(*q);
    CHECK(st.pending == 1);
    CHECK(st.retrying == 1);
    CHECK(st.processed == 0);
    REQUIRE_FALSE(ack(*q, again));
    CHECK(stats(*q).processed == 1);
  }

  SUBCASE("retry after a delay is not delivered before the delay") {
    auto q = backend.open(30s);
    if (!q->features().delayed_retry) return;
    REQUIRE_FALSE(publish(*q, message("later")).first);
    auto [ec, got] = fetch(*q, 1, 1s);
    REQUIRE(got.size() == 1);
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE_FALSE(settle(*q, {{got[0].token, settle_action::retry, 400ms, {}, "db locked"}}));
    auto [ec2, early] = fetch(*q, 1, 100ms);
    CHECK(early.empty());
    auto [ec3, redelivered] = fetch(*q, 1, 5s);
    REQUIRE(redelivered.size() == 1);
    CHECK(std::chrono::steady_clock::now() - t0 >= 390ms);
    CHECK(redelivered[0].message.attempts == 2);
    auto st = stats(*q);
    CHECK(st.retrying == 1);
    check_books(*q, st);
  }

  SUBCASE("a lease can be extended while the batch is in hand") {
    auto q = backend.open(2s);
    if (!q->features().lease_extension) return;
    REQUIRE_FALSE(publish(*q, message("long")).first);
    auto [ec, got] = fetch(*q, 1, 1s);
    REQUIRE(got.size() == 1);
    const auto t0 = std::chrono::steady_clock::now();
    // Extended half-way through the 2 s lease. A backend may extend by its own lease
    // length from now rather than by what is asked (NATS), so the extended lease ends
    // at t0 + 3 s at the earliest; without the extension the message would come back at
    // t0 + 2 s. The extension only has to be sent within a second of its time, which
    // holds on a loaded machine.
    std::this_thread::sleep_until(t0 + 1s);
    capture_ec ext;
    q->async_extend({got[0].token}, 2s, ext.handler());
    REQUIRE_FALSE(ext.get());
    std::this_thread::sleep_until(t0 + 2200ms);
    auto [ec2, none] = fetch(*q, 1, 300ms);
    CHECK(none.empty());
    CHECK_FALSE(ack(*q, got));
  }

  SUBCASE("messages come in publish order") {
    auto q = backend.open(30s);
    if (!q->features().fifo) return;
    for (int i = 0; i < 20; ++i) REQUIRE_FALSE(publish(*q, message("o" + std::to_string(i))).first);
    std::vector<std::string> order;
    while (order.size() < 20) {
      auto [ec, got] = fetch(*q, 7, 1s);
      REQUIRE_FALSE(got.empty());
      for (const auto& d : got) order.push_back(d.message.idempotency_key);
      REQUIRE_FALSE(ack(*q, got));
    }
    for (int i = 0; i < 20; ++i) CHECK(order[static_cast<std::size_t>(i)] == "o" + std::to_string(i));
  }

  SUBCASE("concurrent publishers and consumers: every message processed once, books balanced") {
    auto q = backend.open(30s);
    constexpr int publishers = 4, per_publisher = 250;
    std::atomic<int> published{0};
    std::vector<std::thread> threads;
    for (int p = 0; p < publishers; ++p)
      threads.emplace_back([&, p] {
        for (int i = 0; i < per_publisher; ++i) {
          auto key = "c" + std::to_string(p) + "-" + std::to_string(i);
          if (!publish(*q, message(key)).first) ++published;
          if (i % 10 == 0) publish(*q, message(key));  // a double click
        }
      });
    std::mutex seen_mutex;
    std::multiset<std::string> seen;
    std::atomic<bool> done{false};
    std::vector<std::thread> consumers;
    for (int c = 0; c < 2; ++c)
      consumers.emplace_back([&] {
        while (!done) {
          auto [ec, got] = fetch(*q, 50, 50ms);
          std::vector<settlement> s;
          for (const auto& d : got) {
            // Keys ending in 5 are sent back once on their first delivery.
            if (d.message.attempts == 1 && d.message.idempotency_key.back() == '5') {
              s.push_back({d.token, settle_action::retry, 0ms, {}, "transient"});
            } else {
              s.push_back({d.token, settle_action::ack, {}, {}, {}});
              std::lock_guard lock(seen_mutex);
              seen.insert(d.message.idempotency_key);
            }
          }
          if (!s.empty()) CHECK_FALSE(settle(*q, std::move(s)));
        }
      });
    for (auto& t : threads) t.join();
    CHECK(published == publishers * per_publisher);
    CHECK(eventually([&] { return stats(*q).processed == static_cast<std::uint64_t>(published.load()); }, 20s));
    done = true;
    for (auto& t : consumers) t.join();
    auto st = stats(*q);
    CHECK(st.accepted == static_cast<std::uint64_t>(publishers * per_publisher));
    CHECK(st.pending == 0);
    check_books(*q, st);
    CHECK(seen.size() == static_cast<std::size_t>(publishers * per_publisher));
    std::set<std::string> unique(seen.begin(), seen.end());
    CHECK(unique.size() == seen.size());
  }

  SUBCASE("close ends waiting fetches and refuses new work; settling still works") {
    auto q = backend.open(30s);
    REQUIRE_FALSE(publish(*q, message("held")).first);
    auto [ec, held] = fetch(*q, 1, 1s);
    REQUIRE(held.size() == 1);
    capture<std::vector<delivery>> waiting;
    q->async_fetch(1, 10s, waiting.handler());
    std::this_thread::sleep_for(50ms);
    q->close();
    auto [wec, none] = waiting.get();
    CHECK(wec == std::errc::operation_canceled);
    CHECK(none.empty());
    CHECK(publish(*q, message("after")).first == errc::shutting_down);
    CHECK(fetch(*q, 1).first == errc::shutting_down);
    CHECK_FALSE(ack(*q, held));
    CHECK(stats(*q).processed == 1);
  }

  SUBCASE("a durable backend keeps acknowledged messages across a reopen") {
    auto q = backend.open(30s);
    if (!q->features().durable) return;
    auto [ec, r] = publish(*q, message("kept", "payload"));
    REQUIRE_FALSE(ec);
    q->close();
    q.reset();
    auto reopened = backend.open(30s);
    auto [fec, got] = fetch(*reopened, 1, 1s);
    REQUIRE(got.size() == 1);
    CHECK(got[0].message.receipt_id == r.id);
    CHECK(got[0].message.payload == "payload");
    if (reopened->features().dedup_window > std::chrono::milliseconds::zero()) {
      auto [dec, dup] = publish(*reopened, message("kept", "payload"));
      CHECK(dup.duplicate);
      CHECK(dup.id == r.id);
    }
  }
}
/// @endcond

}  // namespace ingest::testing
