#include "ingest/envelope.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>
#include <limits>
#include <mutex>
#include <random>

#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"
#include "uuid7.hpp"

namespace ingest {
namespace detail {

std::uint64_t random_u64() {
  thread_local std::mt19937_64 engine{[] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device()};
    return std::mt19937_64(seed);
  }()};
  return engine();
}

}  // namespace detail

namespace {

using detail::random_u64;

// RFC 9562 method 1: a 12-bit counter in rand_a keeps ids monotonic within one
// millisecond; when it runs out the timestamp is advanced by one millisecond.
struct uuid7_clock {
  std::mutex mutex;
  std::uint64_t last_ms = 0;
  std::uint32_t counter = 0;

  std::pair<std::uint64_t, std::uint32_t> next() {
    const auto now_ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(clock::now().time_since_epoch()).count());
    std::lock_guard lock(mutex);
    if (now_ms > last_ms) {
      last_ms = now_ms;
      counter = static_cast<std::uint32_t>(random_u64() & 0x3FF);  // leave room to count up
    } else if (++counter > 0xFFF) {
      ++last_ms;
      counter = 0;
    }
    return {last_ms, counter};
  }
};

}  // namespace

namespace detail {
namespace {

std::string uuid_text(const std::array<unsigned char, 16>& b) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(hex[b[i] >> 4]);
    out.push_back(hex[b[i] & 0x0F]);
  }
  return out;
}

}  // namespace

// UUIDv7 layout: 48-bit milliseconds, version 7, 12 bits, variant, 62 bits.
std::string uuid7(std::uint64_t ms, std::uint64_t twelve, std::uint64_t tail) {
  std::array<unsigned char, 16> b{};
  for (int i = 0; i < 6; ++i) b[i] = static_cast<unsigned char>(ms >> (40 - 8 * i));
  b[6] = static_cast<unsigned char>(0x70 | ((twelve >> 8) & 0x0F));
  b[7] = static_cast<unsigned char>(twelve & 0xFF);
  b[8] = static_cast<unsigned char>(0x80 | ((tail >> 56) & 0x3F));
  for (int i = 9; i < 16; ++i) b[i] = static_cast<unsigned char>(tail >> (8 * (15 - i)));
  return uuid_text(b);
}

}  // namespace detail

namespace {

using detail::uuid7;

// splitmix64's finaliser: spreads the bits of a number over the whole word.
std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

std::string make_receipt_id() {
  static uuid7_clock state;
  const auto [ms, counter] = state.next();
  return uuid7(ms, counter, random_u64());
}

std::string derived_receipt_id(time_point at, std::string_view source, std::uint64_t number) {
  std::uint64_t h = 14695981039346656037ull;  // FNV-1a of the source
  for (unsigned char c : source) {
    h ^= c;
    h *= 1099511628211ull;
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
  const auto tail = mix(h ^ mix(number));
  return uuid7(static_cast<std::uint64_t>(std::max<std::int64_t>(ms, 0)), mix(tail) >> 52, tail);
}

std::string format_time(time_point t) {
  const auto ms_total = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(ms_total / 1000);
  auto ms = static_cast<int>(ms_total % 1000);
  if (ms < 0) {
    ms += 1000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

time_point parse_time(std::string_view text) {
  auto fail = [&] { throw error(errc::invalid_config, "malformed RFC 3339 time: " + std::string(text)); };
  auto digits = [&](std::size_t pos, std::size_t n) {
    if (pos + n > text.size()) fail();
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
      if (text[i] < '0' || text[i] > '9') fail();
      v = v * 10 + (text[i] - '0');
    }
    return v;
  };
  auto expect = [&](std::size_t pos, char c) {
    if (pos >= text.size() || (text[pos] != c && !(c == 'T' && text[pos] == 't'))) fail();
  };
  std::tm tm{};
  tm.tm_year = digits(0, 4) - 1900;
  expect(4, '-');
  tm.tm_mon = digits(5, 2) - 1;
  expect(7, '-');
  tm.tm_mday = digits(8, 2);
  expect(10, 'T');
  tm.tm_hour = digits(11, 2);
  expect(13, ':');
  tm.tm_min = digits(14, 2);
  expect(16, ':');
  tm.tm_sec = digits(17, 2);
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
    fail();
  std::size_t pos = 19;
  std::chrono::nanoseconds fraction{0};
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    std::int64_t scale = 100000000, ns = 0;
    std::size_t start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (pos - start >= 9) fail();
      ns += (text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) fail();
    fraction = std::chrono::nanoseconds(ns);
  }
  if (pos + 1 != text.size() || (text[pos] != 'Z' && text[pos] != 'z')) fail();
  const std::time_t secs = timegm(&tm);
  // Years 0000-9999 parse; a time_point of nanoseconds holds about 1678-2262.
  constexpr auto limit = std::chrono::duration_cast<std::chrono::seconds>(clock::duration::max()).count() - 1;
  if (secs > limit || secs < -limit) throw error(errc::invalid_config, "time out of range: " + std::string(text));
  return time_point(std::chrono::duration_cast<clock::duration>(std::chrono::seconds(secs) + fraction));
}

time_point time_from_us(std::int64_t us) noexcept {
  using rep = clock::duration::rep;
  constexpr auto per_us = std::chrono::duration_cast<clock::duration>(std::chrono::microseconds(1)).count();
  constexpr auto max_us = std::numeric_limits<rep>::max() / per_us;
  const auto clamped = std::clamp<std::int64_t>(us, -max_us, max_us);
  return time_point(clock::duration(static_cast<rep>(clamped) * per_us));
}

bool valid_header_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 255) return false;
  auto reserved = [&](std::string_view prefix) {
    if (name.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
      if ((name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]) != prefix[i]) return false;
    return true;
  };
  if (reserved("ingest-") || reserved("nats-")) return false;
  constexpr std::string_view punctuation = "!#$%&'*+-.^_`|~";
  for (const char c : name) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && punctuation.find(c) == std::string_view::npos) return false;
  }
  return true;
}

bool valid_header_value(std::string_view value) noexcept {
  if (!value.empty() && (value.front() == ' ' || value.front() == '\t' || value.back() == ' ' || value.back() == '\t'))
    return false;
  for (const unsigned char c : value)
    if ((c < 0x20 && c != '\t') || c == 0x7F) return false;
  return true;
}

error_code validate_envelope(const envelope& message) noexcept {
  if (!valid_idempotency_key(message.idempotency_key)) return errc::invalid_key;
  if (!valid_header_value(message.subject) || !valid_header_value(message.receipt_id) ||
      !valid_header_value(message.fingerprint))
    return errc::invalid_header;
  for (const auto& [name, value] : message.headers)
    if (!valid_header_name(name) || !valid_header_value(value)) return errc::invalid_header;
  return {};
}

}  // namespace ingest
