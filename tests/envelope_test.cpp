#include "ingest/envelope.hpp"

#include <doctest/doctest.h>

#include <algorithm>

#include "support/test_support.hpp"

#include <set>
#include <thread>

#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"

using namespace ingest;

TEST_CASE("receipt ids are UUIDv7 text, unique and time-ordered") {
  const auto first = make_receipt_id();
  REQUIRE(first.size() == 36);
  CHECK(first[8] == '-');
  CHECK(first[13] == '-');
  CHECK(first[14] == '7');                                          // version
  CHECK(std::string("89ab").find(first[19]) != std::string::npos);  // RFC 9562 variant

  // The first 12 hex digits are the Unix time in milliseconds.
  const auto ms = std::stoull(first.substr(0, 8) + first.substr(9, 4), nullptr, 16);
  const auto now_ms = static_cast<unsigned long long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(clock::now().time_since_epoch()).count());
  CHECK(ms <= now_ms);
  CHECK(now_ms - ms < 1000);

  std::vector<std::string> ids;
  for (int i = 0; i < 20000; ++i) ids.push_back(make_receipt_id());
  CHECK(std::is_sorted(ids.begin(), ids.end()));
  CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == ids.size());
}

TEST_CASE("receipt ids from many threads never collide") {
  std::vector<std::vector<std::string>> per_thread(4);
  std::vector<std::thread> threads;
  for (auto& out : per_thread)
    threads.emplace_back([&out] {
      for (int i = 0; i < 5000; ++i) out.push_back(make_receipt_id());
    });
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  for (const auto& out : per_thread) {
    CHECK(std::is_sorted(out.begin(), out.end()));
    all.insert(out.begin(), out.end());
  }
  CHECK(all.size() == 20000);
}

TEST_CASE("time text round-trips with millisecond precision") {
  const auto t = parse_time("2026-11-22T10:00:00.123Z");
  CHECK(format_time(t) == "2026-11-22T10:00:00.123Z");
  CHECK(std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() == 1795341600123LL);
  CHECK(format_time(parse_time("1999-12-31T23:59:59Z")) == "1999-12-31T23:59:59.000Z");
  CHECK(format_time(parse_time("2026-01-02T03:04:05.987654321Z")) == "2026-01-02T03:04:05.987Z");
  CHECK_THROWS_AS(parse_time("2026-11-22 10:00:00Z"), ingest::error);
  CHECK_THROWS_AS(parse_time("2026-11-22T10:00:00.Z"), ingest::error);
  CHECK_THROWS_AS(parse_time("2026-13-22T10:00:00Z"), ingest::error);
  CHECK_THROWS_AS(parse_time("2026-11-22T10:00:00+01:00"), ingest::error);
  CHECK_THROWS_AS(parse_time(""), ingest::error);
}

TEST_CASE("fingerprint is the hex SHA-256 of the payload") {
  CHECK(fingerprint("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(fingerprint("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(fingerprint("abc") != fingerprint("abd"));
}

TEST_CASE("idempotency keys: 1-255 printable ASCII") {
  CHECK(valid_idempotency_key("a"));
  CHECK(valid_idempotency_key("550e8400-e29b-41d4-a716-446655440000"));
  CHECK(valid_idempotency_key(std::string(255, 'k')));
  CHECK_FALSE(valid_idempotency_key(""));
  CHECK_FALSE(valid_idempotency_key(std::string(256, 'k')));
  CHECK_FALSE(valid_idempotency_key("tab\there"));
  CHECK_FALSE(valid_idempotency_key("new\nline"));
  CHECK_FALSE(valid_idempotency_key("caf\xc3\xa9"));
  CHECK_FALSE(valid_idempotency_key(std::string_view("nul\0", 4)));
}
