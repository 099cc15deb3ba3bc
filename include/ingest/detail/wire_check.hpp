#pragma once
/// @file
/// Checks every backend applies to a message it reads off the wire (docs/wire-format.md).

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

namespace ingest::detail {

/// Adds one problem to the `malformed` text of a delivery ("; " between them).
inline void note_malformed(std::string& malformed, std::string_view what) {
  if (!malformed.empty()) malformed += "; ";
  malformed += what;
}

/// True for 64 lower-case hex digits, the form of a fingerprint.
inline bool is_sha256_hex(std::string_view s) noexcept {
  return s.size() == 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

/// True for an accept time in microseconds since 1970 between 1973 and 5138: anything
/// else is another unit or damage (a nanosecond value is a thousand times too large).
inline bool plausible_accept_us(std::int64_t us) noexcept {
  return us >= 100'000'000'000'000 && us < 100'000'000'000'000'000;
}

}  // namespace ingest::detail
