#pragma once
/// @file
/// The conformance suite every `ingest::idempotency_store` passes (doctest): the
/// SQLite and PostgreSQL stores, and one written for another database. Part of the
/// `ingest::testing` component.
///
/// A store joins with a fixture type: a fresh database per test, and sessions on it,
/// each a connection of its own with a store bound to it:
///
/// ```cpp
/// #include <ingest/testing/idempotency_conformance.hpp>
/// using namespace ingest::testing;
///
/// struct my_store {
///   static constexpr const char* name = "mine";
///   my_store();                                  // a fresh, empty database
///   struct session {
///     ingest::idempotency_store& keys();         // the store on this session's connection
///     void begin();                              // waits while another session writes
///     void commit();
///     void rollback();
///     void write_row(const std::string& key);    // a business row, in the open transaction
///     std::int64_t rows();                       // business rows this session can see
///   };
///   std::unique_ptr<session> open();             // a new connection to the same database
/// };
/// INGEST_IDEMPOTENCY_CONFORMANCE(std::tuple<my_store>);
/// ```

#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "ingest/error.hpp"
#include "ingest/idempotency_store.hpp"

namespace ingest::testing {

/// Keys that a store must keep exactly as given: quotes, backslashes, separators and
/// braces of array and CSV syntax, the word NULL, spaces at the edges.
inline std::vector<std::string> awkward_keys() {
  return {"plain", "with \"quotes\"", "back\\slash", "{braces,comma}", "NULL", " edge spaces ", "semi;colon'quote"};
}

}  // namespace ingest::testing

/// @cond INGEST_SUITE_BODY
TEST_CASE_TEMPLATE_DEFINE("idempotency store conformance: claim, record, complete, find", F,
                          ingest_idempotency_conformance_basics) {
  using namespace ingest;
  F fixture;
  INFO("store: " << F::name);
  auto s = fixture.open();
  auto& keys = s->keys();
  s->begin();
  CHECK(keys.record("k1", "fp1", "receipt-1").status == key_status::fresh);
  const auto again = keys.record("k1", "fp1", "ignored");
  CHECK(again.status == key_status::completed);
  CHECK(again.result == "receipt-1");
  CHECK(keys.record("k1", "fp2", "x").status == key_status::conflict);

  CHECK(keys.claim("k2", "fp").status == key_status::fresh);
  CHECK(keys.claim("k2", "fp").status == key_status::in_progress);
  CHECK(keys.claim("k2", "other").status == key_status::conflict);
  keys.complete("k2", "done");
  const auto k2 = keys.claim("k2", "fp");
  CHECK(k2.status == key_status::completed);
  CHECK(k2.result == "done");
  CHECK_THROWS_AS(keys.complete("never-claimed", "x"), ingest::error);
  s->commit();

  const auto rec = keys.find("k1");
  REQUIRE(rec);
  CHECK(rec->key == "k1");
  CHECK(rec->completed);
  CHECK(rec->fingerprint == "fp1");
  CHECK(rec->result == "receipt-1");
  CHECK(rec->created_at <= clock::now());
  CHECK(rec->completed_at >= rec->created_at);
  CHECK_FALSE(keys.find("nope"));
}

TEST_CASE_TEMPLATE_DEFINE("idempotency store conformance: the record commits and rolls back with the row", F,
                          ingest_idempotency_conformance_transactions) {
  using namespace ingest;
  F fixture;
  INFO("store: " << F::name);
  auto s = fixture.open();
  auto& keys = s->keys();

  s->begin();
  REQUIRE(keys.record("k", "fp", "r").status == key_status::fresh);
  s->write_row("k");
  s->rollback();
  CHECK(s->rows() == 0);
  CHECK_FALSE(keys.find("k"));

  s->begin();
  REQUIRE(keys.record("k", "fp", "r").status == key_status::fresh);
  s->write_row("k");
  s->commit();
  s->begin();  // the redelivery
  if (keys.record("k", "fp", "r").status == key_status::fresh) s->write_row("k");
  s->commit();
  CHECK(s->rows() == 1);

  // Another connection sees the committed record.
  auto other = fixture.open();
  other->begin();
  const auto seen = other->keys().record("k", "fp", "other");
  other->commit();
  CHECK(seen.status == key_status::completed);
  CHECK(seen.result == "r");
}

TEST_CASE_TEMPLATE_DEFINE("idempotency store conformance: record_many answers per key", F,
                          ingest_idempotency_conformance_many) {
  using namespace ingest;
  F fixture;
  INFO("store: " << F::name);
  auto s = fixture.open();
  auto& keys = s->keys();
  s->begin();
  keys.record("done", "fd", "r-done");
  keys.claim("held", "fh");
  const auto out = keys.record_many({"a", "b", "a", "a", "done", "done", "held", "b"},
                                    {"1", "2", "1", "9", "fd", "zz", "fh", "2"},
                                    {"ra", "rb", "x", "y", "r2", "r3", "r4", "r5"});
  REQUIRE(out.size() == 8);
  CHECK(out[0].status == key_status::fresh);
  CHECK(out[1].status == key_status::fresh);
  CHECK(out[2].status == key_status::completed);
  CHECK(out[2].result == "ra");
  CHECK(out[3].status == key_status::conflict);
  CHECK(out[4].status == key_status::completed);
  CHECK(out[4].result == "r-done");
  CHECK(out[5].status == key_status::conflict);
  CHECK(out[6].status == key_status::in_progress);
  CHECK(out[7].status == key_status::completed);
  CHECK(out[7].result == "rb");
  CHECK(keys.record_many({}, {}, {}).empty());
  CHECK_THROWS_AS(keys.record_many({"a"}, {}, {}), ingest::error);
  s->commit();
  const auto a = keys.find("a");
  REQUIRE(a);
  CHECK(a->fingerprint == "1");
  CHECK(a->result == "ra");
}

TEST_CASE_TEMPLATE_DEFINE("idempotency store conformance: keys are kept exactly as given", F,
                          ingest_idempotency_conformance_text) {
  using namespace ingest;
  F fixture;
  INFO("store: " << F::name);
  auto s = fixture.open();
  auto& keys = s->keys();
  const auto awkward = testing::awkward_keys();
  std::vector<std::string> fps, results;
  for (const auto& k : awkward) {
    fps.push_back("fp of " + k);
    results.push_back("result of " + k);
  }
  s->begin();
  const auto out = keys.record_many(awkward, fps, results);
  s->commit();
  for (std::size_t i = 0; i < awkward.size(); ++i) {
    INFO("key: [" << awkward[i] << "]");
    CHECK(out[i].status == key_status::fresh);
    const auto rec = keys.find(awkward[i]);
    REQUIRE(rec);
    CHECK(rec->fingerprint == fps[i]);
    CHECK(rec->result == results[i]);
  }
  s->begin();
  const auto again = keys.record_many(awkward, fps, results);
  s->commit();
  for (std::size_t i = 0; i < awkward.size(); ++i) CHECK(again[i].result == results[i]);
}

TEST_CASE_TEMPLATE_DEFINE("idempotency store conformance: prune keeps what is recent or in progress", F,
                          ingest_idempotency_conformance_prune) {
  using namespace ingest;
  F fixture;
  INFO("store: " << F::name);
  auto s = fixture.open();
  auto& keys = s->keys();
  s->begin();
  keys.record("old", "fp", "r");
  keys.claim("claimed", "fp");
  s->commit();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto cutoff = clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  s->begin();
  keys.record("new", "fp", "r");
  CHECK(keys.prune(cutoff) == 1);
  s->commit();
  CHECK_FALSE(keys.find("old"));
  CHECK(keys.find("claimed"));
  CHECK(keys.find("new"));
}

TEST_CASE_TEMPLATE_DEFINE("idempotency store conformance: two connections never both own a key", F,
                          ingest_idempotency_conformance_race) {
  using namespace ingest;
  F fixture;
  INFO("store: " << F::name);
  auto first = fixture.open();
  auto second = fixture.open();
  for (const int round : {0, 1, 2, 3}) {
    const bool commit_first = round % 2 == 0;
    const bool many = round >= 2;  // the second asks through record_many
    CAPTURE(commit_first);
    CAPTURE(many);
    const std::string key = std::string(commit_first ? "raced-commit" : "raced-rollback") + (many ? "-many" : "");
    first->begin();
    REQUIRE(first->keys().record(key, "fp", "first").status == key_status::fresh);
    first->write_row(key);
    // The second connection asks while the first has not finished: it must wait for it.
    auto asked = std::async(std::launch::async, [&] {
      second->begin();
      const auto check = many ? second->keys().record_many({key}, {"fp"}, {"second"}).at(0)
                              : second->keys().record(key, "fp", "second");
      if (check.status == key_status::fresh) second->write_row(key);
      second->commit();
      return check;
    });
    CHECK(asked.wait_for(std::chrono::milliseconds(300)) == std::future_status::timeout);
    if (commit_first)
      first->commit();
    else
      first->rollback();
    const auto check = asked.get();
    if (commit_first) {
      CHECK(check.status == key_status::completed);
      CHECK(check.result == "first");
    } else {
      CHECK(check.status == key_status::fresh);
    }
  }
  CHECK(first->rows() == 4);  // one row per key, whichever connection wrote it
}

/// @endcond

/// Applies every part of the idempotency-store conformance suite to the fixtures in
/// `...` (a `std::tuple` of them), at namespace scope.
#define INGEST_IDEMPOTENCY_CONFORMANCE(...)                                       \
  TEST_CASE_TEMPLATE_APPLY(ingest_idempotency_conformance_basics, __VA_ARGS__);       \
  TEST_CASE_TEMPLATE_APPLY(ingest_idempotency_conformance_transactions, __VA_ARGS__); \
  TEST_CASE_TEMPLATE_APPLY(ingest_idempotency_conformance_many, __VA_ARGS__);         \
  TEST_CASE_TEMPLATE_APPLY(ingest_idempotency_conformance_text, __VA_ARGS__);         \
  TEST_CASE_TEMPLATE_APPLY(ingest_idempotency_conformance_prune, __VA_ARGS__);        \
  TEST_CASE_TEMPLATE_APPLY(ingest_idempotency_conformance_race, __VA_ARGS__)
