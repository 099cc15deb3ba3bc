#pragma once
// Headers stored in one BLOB column: for each header, a 4-byte little-endian length
// and the name, then a 4-byte length and the value.

#include <string>
#include <string_view>

#include "ingest/envelope.hpp"

namespace ingest::sqlite::detail {

std::string encode_headers(const header_list& headers);
/// Throws `ingest::error(errc::storage_error)` on malformed input.
header_list decode_headers(std::string_view bytes);

}  // namespace ingest::sqlite::detail
