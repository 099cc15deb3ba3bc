#pragma once
/// @file
/// Payload fingerprints: how "same key, same payload" is told from "same key, other payload".

#include <string>
#include <string_view>

namespace ingest {

/// Lower-case hex SHA-256 of `payload` (64 characters). Thread-safe, no allocation
/// beyond the result.
std::string fingerprint(std::string_view payload);

/// True when `key` is a valid idempotency key: 1-255 bytes of printable ASCII
/// (0x20-0x7E; no control characters, nothing outside ASCII).
bool valid_idempotency_key(std::string_view key) noexcept;

}  // namespace ingest
