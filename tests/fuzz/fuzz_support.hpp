#pragma once
// Shared by the fuzz targets: a reader that splits the fuzzer's bytes into fields, and
// a check that aborts (a crash the fuzzer reports) instead of returning.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ingest/envelope.hpp"
#include "ingest/fingerprint.hpp"

#define FUZZ_CHECK(cond)                                                                          \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      std::fprintf(stderr, "fuzz check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);         \
      std::abort();                                                                               \
    }                                                                                             \
  } while (false)

namespace ingest::fuzz {

class reader {
 public:
  reader(const std::uint8_t* data, std::size_t size) : rest_(reinterpret_cast<const char*>(data), size) {}

  bool empty() const noexcept { return rest_.empty(); }
  std::uint8_t byte() noexcept {
    if (rest_.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }
  std::int64_t int64() noexcept {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | byte();
    return static_cast<std::int64_t>(v);
  }
  // A field: one length byte, then that many bytes (fewer at the end of the input).
  std::string field() {
    const std::size_t n = byte();
    const auto out = rest_.substr(0, n);
    rest_.remove_prefix(out.size());
    return std::string(out);
  }
  std::string rest() {
    std::string out(rest_);
    rest_ = {};
    return out;
  }

 private:
  std::string_view rest_;
};

// An envelope made of fuzzer bytes; whether it is publishable is for the caller to ask.
inline envelope make_envelope(reader& in) {
  envelope m;
  m.receipt_id = in.field();
  m.idempotency_key = in.field();
  m.subject = in.field();
  m.fingerprint = in.field();
  m.accepted_at = time_from_us(in.int64());
  for (std::size_t n = in.byte() % 8; n > 0; --n) {
    auto name = in.field();
    auto value = in.field();
    m.headers.emplace_back(std::move(name), std::move(value));
  }
  m.payload = in.rest();
  return m;
}

// Makes a publishable envelope also one a consumer reads as well-formed, as the
// library publishes them: a receipt id of 1-255 characters (the backends always set
// one), the fingerprint of its payload, and an accept time in microseconds since 1970
// that docs/wire-format.md allows (1973 to 5138).
inline void make_well_formed(envelope& m) {
  if (m.receipt_id.empty() || m.receipt_id.size() > 255) m.receipt_id = "r-1";
  m.fingerprint = fingerprint(m.payload);
  constexpr std::int64_t lo = 100'000'000'000'000, hi = 100'000'000'000'000'000;
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(m.accepted_at.time_since_epoch()).count();
  if (us < lo || us >= hi) us = lo + static_cast<std::int64_t>(static_cast<std::uint64_t>(us) % (hi - lo));
  m.accepted_at = time_from_us(us);
}

// Checks that a message read back carries what was written (headers aside: backends
// differ in the order they keep across names).
inline void check_same_fields(const envelope& back, const envelope& sent) {
  FUZZ_CHECK(back.receipt_id == sent.receipt_id);
  FUZZ_CHECK(back.idempotency_key == sent.idempotency_key);
  FUZZ_CHECK(back.subject == sent.subject);
  FUZZ_CHECK(back.fingerprint == sent.fingerprint);
  FUZZ_CHECK(back.payload == sent.payload);
  FUZZ_CHECK(std::chrono::abs(back.accepted_at - sent.accepted_at) < std::chrono::microseconds(1));
}

}  // namespace ingest::fuzz
