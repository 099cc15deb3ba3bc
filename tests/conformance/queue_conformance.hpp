#pragma once
// The conformance suite every durable_queue backend runs.
//
// A backend joins by defining a factory type and applying the suite to it:
//
//   struct my_backend {
//     static constexpr const char* name = "mine";
//     explicit my_backend(boost::asio::any_io_executor ex);
//     // Opens the queue; for a durable backend a second open reaches the same storage.
//     std::unique_ptr<ingest::durable_queue> open(std::chrono::milliseconds visibility_timeout);
//     // What the backend must claim with the options `open` uses: pinned, so that a
//     // backend that stops claiming a feature fails instead of skipping its tests.
//     ingest::queue_features expected_features() const;
//   };
//   TEST_CASE_TEMPLATE_APPLY(ingest_queue_conformance, std::tuple<my_backend>);
//
// What a backend cannot do is read from its `features()`; every test that depends on
// a feature checks it, so a backend is held to exactly what it claims, and the first
// test holds the claims to the factory's pinned list.

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"
#include "support/test_support.hpp"

namespace ingest::test {

// The balance of guarantee 4: checked where the backend counts every state exactly on
// its own, and never claimed where it does not.
inline void check_books(const durable_queue& q, const queue_stats& st) {
  CHECK(st.balance_known() == q.features().exact_stats);
  if (q.features().exact_stats) {
    CHECK(st.balanced());
  } else {
    CHECK_FALSE(st.balanced());
  }
}

TEST_CASE_TEMPLATE_DEFINE("conformance", Backend, ingest_queue_conformance) {
  io_thread io;
  Backend backend(io.executor());
  const std::string backend_name = Backend::name;
  CAPTURE(backend_name);

  SUBCASE("the backend claims exactly the features its tests pin") {
    auto q = backend.open(30s);
    const auto got = q->features();
    const auto want = backend.expected_features();
    CHECK(got.durable == want.durable);
    CHECK(got.native_dedup == want.native_dedup);
    CHECK(got.fifo == want.fifo);
    CHECK(got.delayed_retry == want.delayed_retry);
    CHECK(got.lease_extension == want.lease_extension);
    CHECK(got.exact_stats == want.exact_stats);
    CHECK(got.lookup == want.lookup);
    CHECK(got.deadline_before_store == want.deadline_before_store);
    CHECK(got.dedup_window == want.dedup_window);
  }

  SUBCASE("publish returns a receipt stamped at accept time; fetch delivers the message whole") {
    auto q = backend.open(30s);
    auto e = message("k-1", R"({"a":1})");
    e.headers = {{"x-trace", "abc"}};
    const auto before = clock::now();
    auto [ec, r] = publish(*q, e);
    REQUIRE_FALSE(ec);
    CHECK_FALSE(r.duplicate);
    CHECK(r.idempotency_key == "k-1");
    CHECK(r.id.size() == 36);
    CHECK(r.accepted_at >= before - 1ms);
    CHECK(r.accepted_at <= clock::now() + 1ms);

    auto [fec, batch] = fetch(*q, 10, 1s);
    REQUIRE_FALSE(fec);
    REQUIRE(batch.size() == 1);
    const auto& m = batch[0].message;
    CHECK(m.receipt_id == r.id);
    CHECK(m.idempotency_key == "k-1");
    CHECK(m.subject == "test");
    CHECK(m.payload == R"({"a":1})");
    CHECK(m.fingerprint == fingerprint(R"({"a":1})"));
    CHECK(m.headers == header_list{{"x-trace", "abc"}});
    CHECK(m.attempts == 1);
    CHECK(std::chrono::abs(m.accepted_at - r.accepted_at) < 1ms);
    CHECK(!batch[0].token.empty());

    REQUIRE_FALSE(ack(*q, batch));
    auto st = stats(*q);
    CHECK(st.accepted == 1);
    CHECK(st.processed == 1);
    CHECK(st.pending == 0);
    check_books(*q, st);
  }

  SUBCASE("a repeated key returns the original receipt; another payload is a conflict") {
    auto q = backend.open(30s);
    // A backend that cannot give the original receipt back says so with a zero window
    // (SQS); its own tests cover what it does instead.
    if (q->features().dedup_window == std::chrono::milliseconds::zero()) return;
    auto [ec1, first] = publish(*q, message("dup", "same"));
    REQUIRE_FALSE(ec1);
    std::this_thread::sleep_for(5ms);
    auto [ec2, again] = publish(*q, message("dup", "same"));
    REQUIRE_FALSE(ec2);
    CHECK(again.duplicate);
    CHECK(again.id == first.id);
    CHECK(std::chrono::abs(again.accepted_at - first.accepted_at) < 1ms);

    auto [ec3, other] = publish(*q, message("dup", "different"));
    CHECK(ec3 == errc::conflict);
    CHECK(other.id.empty());

    auto [fec, batch] = fetch(*q, 10, 200ms);
    CHECK(batch.size() == 1);
    // Still a duplicate after it was processed.
    REQUIRE_FALSE(ack(*q, batch));
    auto [ec4, later] = publish(*q, message("dup", "same"));
    REQUIRE_FALSE(ec4);
    CHECK(later.duplicate);
    CHECK(later.id == first.id);
    CHECK(stats(*q).accepted == 1);
  }

  SUBCASE("a deadline refuses a new message postmarked after it, before storing it where the backend can") {
    auto q = backend.open(30s);
    auto on_time = message("in-time", "a");
    on_time.not_after = clock::now() + 1h;
    auto [ec, first] = publish(*q, on_time);
    REQUIRE_FALSE(ec);
    auto late = message("too-late", "b");
    late.not_after = clock::now() - 1s;
    auto [lec, refused] = publish(*q, late);
    if (q->features().deadline_before_store) {
      CHECK(lec == errc::deadline_passed);
      CHECK(refused.id.empty());
    } else {
      // Stored by the broker before it could tell the key was new: the receipt's
      // postmark shows it late, and the producer refuses it (producer_test).
      REQUIRE_FALSE(lec);
      CHECK(refused.accepted_at > late.not_after);
    }
    // A repeat of the key accepted in time, after the deadline, is the original receipt.
    if (q->features().dedup_window > std::chrono::milliseconds::zero()) {
      auto again = message("in-time", "a");
      again.not_after = first.accepted_at;
      auto [aec, dup] = publish(*q, again);
      REQUIRE_FALSE(aec);
      CHECK(dup.duplicate);
      CHECK(dup.id == first.id);
    }
    const std::size_t stored = q->features().deadline_before_store ? 1 : 2;
    std::set<std::string> keys;
    for (int i = 0; i < 10 && keys.size() < stored; ++i) {
      auto [fec, got] = fetch(*q, 10, 1s);
      for (const auto& d : got) keys.insert(d.message.idempotency_key);
    }
    CHECK(keys.count("in-time") == 1);
    CHECK(keys.count("too-late") == (q->features().deadline_before_store ? 0u : 1u));
    if (q->features().deadline_before_store) CHECK(stats(*q).accepted == 1);
  }

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

  SUBCASE("dead letters keep reason, attempts and times; replay and purge keep the books balanced") {
    auto q = backend.open(30s);
    REQUIRE_FALSE(publish(*q, message("poison", "bad")).first);
    REQUIRE_FALSE(publish(*q, message("fine", "good")).first);
    auto [ec, got] = fetch(*q, 2, 1s);
    REQUIRE(got.size() == 2);
    const auto poison = got[0].message.idempotency_key == "poison" ? got[0] : got[1];
    const auto fine = got[0].message.idempotency_key == "poison" ? got[1] : got[0];
    REQUIRE_FALSE(settle(*q, {{poison.token, settle_action::dead_letter, {}, "permanent_failure", "bad answers"},
                              {fine.token, settle_action::ack, {}, {}, {}}}));

    auto letters = dead_letters(*q);
    REQUIRE(letters.size() == 1);
    CHECK(letters[0].message.idempotency_key == "poison");
    CHECK(letters[0].message.payload == "bad");
    CHECK(letters[0].reason == "permanent_failure");
    CHECK(letters[0].last_error == "bad answers");
    CHECK(letters[0].attempts == 1);
    CHECK(letters[0].first_attempt_at <= letters[0].last_attempt_at);
    CHECK(letters[0].last_attempt_at <= letters[0].dead_lettered_at);
    auto st = stats(*q);
    CHECK(st.dead_lettered == 1);
    CHECK(st.processed == 1);
    CHECK(st.pending == 0);
    check_books(*q, st);

    // A dead-lettered key is still known: a client retry gets the original receipt.
    if (q->features().dedup_window > std::chrono::milliseconds::zero()) {
      auto [dec, dup] = publish(*q, message("poison", "bad"));
      CHECK_FALSE(dec);
      CHECK(dup.duplicate);
    }

    capture<std::size_t> replay;
    q->async_replay({letters[0].message.receipt_id}, replay.handler());
    CHECK(replay.get().second == 1);
    CHECK(dead_letters(*q).empty());
    auto [ec2, back] = fetch(*q, 1, 1s);
    REQUIRE(back.size() == 1);
    CHECK(back[0].message.receipt_id == letters[0].message.receipt_id);
    CHECK(back[0].message.attempts == 1);
    REQUIRE_FALSE(settle(*q, {{back[0].token, settle_action::dead_letter, {}, "max_attempts", "again"}}));

    capture<std::size_t> purge;
    q->async_purge({}, purge.handler());
    CHECK(purge.get().second == 1);
    st = stats(*q);
    CHECK(st.dead_lettered == 0);
    if (q->features().exact_stats) CHECK(st.purged == 1);
    check_books(*q, st);
  }

  SUBCASE("headers every backend can carry arrive unchanged; others are refused and nothing is stored") {
    auto q = backend.open(30s);
    const std::vector<header_list> refused_headers = {
        {{"", "v"}},
        {{"bad name", "v"}},
        {{"x:y", "v"}},
        {{"Ingest-Receipt-Id", "forged"}},
        {{"nats-msg-id", "forged"}},
        {{"x-crlf", "a\r\nIngest-Receipt-Id: forged"}},
        {{"x-nul", std::string("a\0b", 3)}},
        {{"x-lead", " a"}},
        {{"x-trail", "a\t"}},
        {{std::string(256, 'n'), "v"}},
    };
    for (const auto& h : refused_headers) {
      CAPTURE(h.front().first);
      CAPTURE(h.front().second);
      auto e = message("h-refused", "x");
      e.headers = h;
      CHECK(publish(*q, e).first == errc::invalid_header);
    }
    auto odd_subject = message("h-refused", "x");
    odd_subject.subject = "a\nb";
    CHECK(publish(*q, odd_subject).first == errc::invalid_header);
    CHECK(stats(*q).accepted == 0);

    auto e = message("h-odd", "y");
    e.headers = {{"x-multi", "1"},  {"x-utf8", "\xC3\xA9 \xE2\x82\xAC"},   {"x-multi", "2"},
                 {"x-empty", ""},   {"x-inner", "a  b\tc: d"}, {"x!#$%&'*+-.^_`|~9", "v"},
                 {"X-Case", "kept"}, {"x-query", "a=1&b=%41"},
                 // One name a prefix of another, the longer first (nats.c 3.4 mixes these up).
                 {"X-Long", "long"}, {"X-Lo", "short"}};
    REQUIRE_FALSE(publish(*q, e).first);
    auto [fec, batch] = fetch(*q, 1, 1s);
    REQUIRE(batch.size() == 1);
    // Values of one name keep their order; the order across names is the backend's.
    auto by_name = [](header_list h) {
      std::stable_sort(h.begin(), h.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      return h;
    };
    CHECK(by_name(batch[0].message.headers) == by_name(e.headers));

    // Reasons and errors are any text: multi-line exception messages included.
    const std::string error_text = "line 1\r\nIngest-Receipt-Id: forged\n 100% \t";
    REQUIRE_FALSE(settle(*q, {{batch[0].token, settle_action::dead_letter, {}, " odd reason:\n", error_text}}));
    auto letters = dead_letters(*q);
    REQUIRE(letters.size() == 1);
    CHECK(letters[0].reason == " odd reason:\n");
    CHECK(letters[0].last_error == error_text);
    CHECK(by_name(letters[0].message.headers) == by_name(e.headers));
  }

  SUBCASE("find follows a message through pending, leased, processed and dead-lettered") {
    auto q = backend.open(30s);
    auto find = [&](const std::string& id) {
      capture<message_status> c;
      q->async_find(id, c.handler());
      return c.get();
    };
    if (!q->features().lookup) {
      CHECK(find("anything").first == errc::not_supported);
      return;
    }
    CHECK(find("no-such-receipt").first == errc::not_found);
    auto [e1, one] = publish(*q, message("find-1", "p1"));
    auto [e2, two] = publish(*q, message("find-2", "p2"));
    REQUIRE_FALSE(e1);
    REQUIRE_FALSE(e2);
    auto [fec, pending] = find(one.id);
    REQUIRE_FALSE(fec);
    CHECK(pending.state == message_state::pending);
    CHECK(pending.message.idempotency_key == "find-1");
    CHECK(pending.message.payload == "p1");
    CHECK(pending.message.accepted_at == one.accepted_at);

    auto [ec, got] = fetch(*q, 2, 1s);
    REQUIRE(got.size() == 2);
    CHECK(find(one.id).second.state == message_state::leased);
    const auto& d1 = got[0].message.receipt_id == one.id ? got[0] : got[1];
    const auto& d2 = got[0].message.receipt_id == one.id ? got[1] : got[0];
    REQUIRE_FALSE(settle(*q, {{d1.token, settle_action::ack, {}, {}, {}},
                              {d2.token, settle_action::dead_letter, {}, "permanent_failure", "unreadable"}}));
    auto [pec, processed] = find(one.id);
    if (!pec) CHECK(processed.state == message_state::processed);  // or compacted already
    else CHECK(pec == errc::not_found);
    auto [dec, dead] = find(two.id);
    REQUIRE_FALSE(dec);
    CHECK(dead.state == message_state::dead_lettered);
    CHECK(dead.reason == "permanent_failure");
    CHECK(dead.message.idempotency_key == "find-2");
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

}  // namespace ingest::test
