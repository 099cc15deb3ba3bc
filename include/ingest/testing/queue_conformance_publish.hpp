#pragma once
/// @file
/// Part of the queue conformance suite (see `queue_conformance.hpp`). Publishing: the features a backend claims,
/// receipts, repeated keys, deadlines and headers.

#include <doctest/doctest.h>

#include <string>

#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"
#include "ingest/receipt_signer.hpp"
#include "ingest/testing/queue_helpers.hpp"

namespace ingest::testing {

/// @cond INGEST_SUITE_BODY
TEST_CASE_TEMPLATE_DEFINE("conformance: publish", Backend, ingest_queue_conformance_publish) {
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

  SUBCASE("signed receipts: the id verifies with its postmark and claims, and travels unchanged") {
    auto q = backend.open(30s);
    auto signer = std::make_shared<receipt_signer>(std::vector<std::string>{"conformance-signing-key"});
    q->sign_receipts(signer);
    auto e = message("signed-1", "p");
    e.receipt_claims = R"(["exam-1","student 7"])";
    auto [ec, r] = publish(*q, e);
    REQUIRE_FALSE(ec);
    const auto said = signer->verify(r.id);
    REQUIRE(said.has_value());
    CHECK(said->claims == e.receipt_claims);
    CHECK(said->accepted_at == r.accepted_at);  // to the microsecond
    CHECK_FALSE(receipt_signer({"some-other-signing-key"}).verify(r.id).has_value());
    if (q->features().dedup_window > std::chrono::milliseconds::zero()) {
      auto [dec, again] = publish(*q, e);
      REQUIRE_FALSE(dec);
      CHECK(again.duplicate);
      CHECK(again.id == r.id);
      CHECK(again.accepted_at == r.accepted_at);
    }
    auto [fec, batch] = fetch(*q, 10, 1s);
    REQUIRE_FALSE(fec);
    REQUIRE(batch.size() == 1);
    CHECK(batch[0].message.receipt_id == r.id);
    CHECK(batch[0].message.accepted_at == r.accepted_at);
    REQUIRE_FALSE(ack(*q, batch));
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
    e.headers = {{"x-multi", "1"},
                 {"x-utf8", "\xC3\xA9 \xE2\x82\xAC"},
                 {"x-multi", "2"},
                 {"x-empty", ""},
                 {"x-inner", "a  b\tc: d"},
                 {"x!#$%&'*+-.^_`|~9", "v"},
                 {"X-Case", "kept"},
                 {"x-query", "a=1&b=%41"},
                 // One name a prefix of another, the longer first (nats.c 3.4 mixes these up).
                 {"X-Long", "long"},
                 {"X-Lo", "short"}};
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
}
/// @endcond

}  // namespace ingest::testing
