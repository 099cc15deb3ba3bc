#pragma once
// Parsing of backend URL query parameters, shared by the backends' from_url().

#include <chrono>
#include <cstdint>
#include <functional>
#include <string_view>

namespace ingest::detail {

/// A duration like `500us`, `250ms`, `30s`, `5m`, `24h`. Throws
/// `ingest::error(errc::invalid_config)` naming `what` otherwise.
std::chrono::microseconds parse_duration(std::string_view what, std::string_view text);

/// A whole number >= 0. Throws `ingest::error(errc::invalid_config)` naming `what` otherwise.
std::int64_t parse_count(std::string_view what, std::string_view text);

/// `true`/`false` (or `1`/`0`). Throws `ingest::error(errc::invalid_config)` naming `what` otherwise.
bool parse_bool(std::string_view what, std::string_view text);

/// Calls `each(part)` for every non-empty `&`-separated part of a query string.
void for_each_query_part(std::string_view query, const std::function<void(std::string_view)>& each);

/// Calls `each(name, value)` for every `name=value` of a query string (`a=1&b=2`).
/// Throws `ingest::error(errc::invalid_config)` for a parameter without `=`.
void for_each_param(std::string_view query, const std::function<void(std::string_view, std::string_view)>& each);

}  // namespace ingest::detail
