#pragma once
// Parsing of backend URL query parameters, shared by the backends' from_url(); private
// to the library (src/ is on the include path of its targets only).

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace ingest::detail {

/// A duration like `500us`, `250ms`, `30s`, `5m`, `24h`. Throws
/// `ingest::error(errc::invalid_config)` naming `what` otherwise.
std::chrono::microseconds parse_duration(std::string_view what, std::string_view text);

/// A whole number >= 0. Throws `ingest::error(errc::invalid_config)` naming `what` otherwise.
std::int64_t parse_count(std::string_view what, std::string_view text);

/// `true`/`false` (or `1`/`0`). Throws `ingest::error(errc::invalid_config)` naming
/// `what` otherwise (`yes`, `on`, ... included: one spelling of each, no guessing).
bool parse_bool(std::string_view what, std::string_view text);

/// RFC 3986 percent-decoding (`%41` is `A`; `+` stays `+`). Throws
/// `ingest::error(errc::invalid_config)` naming `what` for a `%` not followed by two
/// hex digits, quoting `text` unless it is `secret` (a password, a token).
std::string percent_decode(std::string_view what, std::string_view text, bool secret = false);

/// The parameters of a backend URL's query, percent-decoded, each name at most once.
/// A backend takes the ones it knows; `finish()` refuses the rest by name.
class url_query {
 public:
  /// Parses `query` (`a=1&b=%2F`). Throws `ingest::error(errc::invalid_config)`, its
  /// text starting with `what` (e.g. "nats URL"), for a parameter without `=`, a name
  /// given twice or a malformed `%XX`.
  url_query(std::string_view what, std::string_view query);
  /// The value of `name` if it was given, and notes it as known.
  std::optional<std::string> take(std::string_view name);
  /// True when `name` was given (whether or not taken).
  bool has(std::string_view name) const;

  /// Sets `field` from `name` when given: text as it is, ...
  void set(std::string_view name, std::string& field) {
    if (auto v = take(name)) field = std::move(*v);
  }
  /// ... a boolean (`parse_bool`), ...
  void set(std::string_view name, bool& field) {
    if (auto v = take(name)) field = parse_bool(name, *v);
  }
  /// ... a duration (`parse_duration`), ...
  template <class Rep, class Period>
  void set(std::string_view name, std::chrono::duration<Rep, Period>& field) {
    if (auto v = take(name))
      field = std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(parse_duration(name, *v));
  }
  /// ... or a whole number (`parse_count`).
  template <class Int, class = std::enable_if_t<std::is_integral_v<Int> && !std::is_same_v<Int, bool>>>
  void set(std::string_view name, Int& field) {
    if (auto v = take(name)) {
      const auto n = parse_count(name, *v);
      if (static_cast<std::uint64_t>(n) > static_cast<std::uint64_t>(std::numeric_limits<Int>::max()))
        too_large(name, *v);
      field = static_cast<Int>(n);
    }
  }
  /// Throws naming every parameter that no `take` asked for.
  void finish() const;

 private:
  [[noreturn]] void too_large(std::string_view name, const std::string& text) const;
  struct param {
    std::string name, value;
    bool taken = false;
  };
  std::string what_;
  std::vector<param> params_;
};

/// Calls `each(part)` for every non-empty `&`-separated part of a query string.
void for_each_query_part(std::string_view query, const std::function<void(std::string_view)>& each);

}  // namespace ingest::detail
