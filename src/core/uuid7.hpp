#pragma once
// UUIDv7 text, shared by the receipt ids of envelope.cpp and receipt_signer.cpp.

#include <cstdint>
#include <string>

namespace ingest::detail {

// A random word from a per-thread generator (uniqueness, not secrecy).
std::uint64_t random_u64();
// UUIDv7 layout as 36 lower-case characters: 48-bit milliseconds, version 7, the 12
// bits `twelve`, the variant, the low 62 bits of `tail`.
std::string uuid7(std::uint64_t ms, std::uint64_t twelve, std::uint64_t tail);

}  // namespace ingest::detail
