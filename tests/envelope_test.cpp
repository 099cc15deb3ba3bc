#include "ingest/envelope.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <limits>

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
  // Years a time_point of nanoseconds cannot hold are refused, not overflowed.
  CHECK_THROWS_AS(parse_time("9999-12-31T23:59:59.999Z"), ingest::error);
  CHECK_THROWS_AS(parse_time("0001-01-01T00:00:00Z"), ingest::error);
  CHECK(format_time(parse_time("2262-01-01T00:00:00Z")) == "2262-01-01T00:00:00.000Z");
}

TEST_CASE("stored microseconds become time points clamped to what they can hold") {
  CHECK(time_from_us(1'795'341'600'123'456) == parse_time("2026-11-22T10:00:00.123456Z"));
  CHECK(time_from_us(0) == time_point{});
  const auto high = time_from_us(std::numeric_limits<std::int64_t>::max());
  const auto low = time_from_us(std::numeric_limits<std::int64_t>::min());
  CHECK(high > parse_time("2262-01-01T00:00:00Z"));
  CHECK(low < parse_time("1678-01-01T00:00:00Z"));
  CHECK(time_from_us(std::numeric_limits<std::int64_t>::max() / 1000 + 1) == high);
}

TEST_CASE("headers and subjects: what every backend carries unchanged") {
  CHECK(valid_header_name("x-trace"));
  CHECK(valid_header_name("X!#$%&'*+-.^_`|~9"));
  CHECK(valid_header_name(std::string(255, 'h')));
  CHECK_FALSE(valid_header_name(""));
  CHECK_FALSE(valid_header_name(std::string(256, 'h')));
  CHECK_FALSE(valid_header_name("two words"));
  CHECK_FALSE(valid_header_name("colon:"));
  CHECK_FALSE(valid_header_name("caf\xc3\xa9"));
  CHECK_FALSE(valid_header_name("Ingest-Receipt-Id"));
  CHECK_FALSE(valid_header_name("ingest-anything"));
  CHECK_FALSE(valid_header_name("NATS-Msg-Id"));
  CHECK(valid_header_name("Ingestion"));

  CHECK(valid_header_value(""));
  CHECK(valid_header_value("a b\tc: d"));
  CHECK(valid_header_value("caf\xc3\xa9 \xff"));
  CHECK_FALSE(valid_header_value("a\r\nInjected: yes"));
  CHECK_FALSE(valid_header_value("a\nb"));
  CHECK_FALSE(valid_header_value(std::string_view("a\0b", 3)));
  CHECK_FALSE(valid_header_value("del\x7f"));
  CHECK_FALSE(valid_header_value(" lead"));
  CHECK_FALSE(valid_header_value("trail\t"));

  envelope m;
  m.idempotency_key = "k";
  m.subject = "submissions";
  m.headers = {{"x-a", "1"}};
  CHECK_FALSE(validate_envelope(m));
  m.subject = "two\nlines";
  CHECK(validate_envelope(m) == errc::invalid_header);
  m.subject = "s";
  m.receipt_id = "r\r\n";
  CHECK(validate_envelope(m) == errc::invalid_header);
  m.receipt_id.clear();
  m.headers.emplace_back("nats-msg-id", "x");
  CHECK(validate_envelope(m) == errc::invalid_header);
  m.headers.pop_back();
  m.idempotency_key.clear();
  CHECK(validate_envelope(m) == errc::invalid_key);
}

TEST_CASE("fingerprint is the hex SHA-256 of the payload") {
  CHECK(fingerprint("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(fingerprint("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(fingerprint("abc") != fingerprint("abd"));
  // FIPS 180-2's two-block example, then the one-block one again: nothing of one call
  // is left in the next.
  CHECK(fingerprint("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(fingerprint("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // The same answers on other threads at the same time.
  std::vector<std::string> payloads, expected;
  for (int i = 0; i < 200; ++i) {
    payloads.push_back(std::string(static_cast<std::size_t>(i) * 7, static_cast<char>('a' + i % 26)));
    expected.push_back(fingerprint(payloads.back()));
  }
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int round = 0; round < 20; ++round)
        for (std::size_t i = 0; i < payloads.size(); ++i)
          if (fingerprint(payloads[i]) != expected[i]) ++wrong;
    });
  for (auto& t : threads) t.join();
  CHECK(wrong == 0);
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

TEST_CASE("derived receipt ids: the same message always gets the same id, time-ordered by the broker's time") {
  const auto at = time_point(std::chrono::milliseconds(1763800000123));
  const auto id = derived_receipt_id(at, "EXAMS", 42);
  CHECK(id == derived_receipt_id(at, "EXAMS", 42));
  CHECK(id.size() == 36);
  CHECK(id.substr(0, 13) == "019aaaac-267b");  // 1763800000123 ms in the first 48 bits
  CHECK(id[14] == '7');                         // version 7
  CHECK(std::string("89ab").find(id[19]) != std::string::npos);  // RFC 9562 variant
  CHECK(id != derived_receipt_id(at, "EXAMS", 43));
  CHECK(id != derived_receipt_id(at, "OTHER", 42));
  CHECK(id < derived_receipt_id(at + std::chrono::milliseconds(1), "EXAMS", 1));
  CHECK_FALSE(validate_envelope(envelope{.receipt_id = id, .idempotency_key = "k"}));
}
