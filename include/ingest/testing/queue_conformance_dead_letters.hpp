#pragma once
/// @file
/// Part of the queue conformance suite (see `queue_conformance.hpp`). Dead letters (reason, attempts, replay, purge)
/// and looking a message up through its states.

#include <doctest/doctest.h>

#include <string>

#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"
#include "ingest/testing/queue_helpers.hpp"

namespace ingest::testing {

/// @cond INGEST_SUITE_BODY
TEST_CASE_TEMPLATE_DEFINE("conformance: dead letters and lookup", Backend, ingest_queue_conformance_dead_letters) {
  io_thread io;
  Backend backend(io.executor());
  const std::string backend_name = Backend::name;
  CAPTURE(backend_name);

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
    if (!pec)
      CHECK(processed.state == message_state::processed);  // or compacted already
    else
      CHECK(pec == errc::not_found);
    auto [dec, dead] = find(two.id);
    REQUIRE_FALSE(dec);
    CHECK(dead.state == message_state::dead_lettered);
    CHECK(dead.reason == "permanent_failure");
    CHECK(dead.message.idempotency_key == "find-2");
  }
}
/// @endcond

}  // namespace ingest::testing
