#include "core/url_params.hpp"

#include <charconv>
#include <string>

#include "ingest/error.hpp"

namespace ingest::detail {

std::chrono::microseconds parse_duration(std::string_view what, std::string_view text) {
  auto fail = [&] {
    throw error(
        errc::invalid_config,
        std::string(what) + " must be a duration like 250ms, 30s, 5m, 24h or 500us, not '" + std::string(text) + "'");
  };
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || value < 0) fail();
  const std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
  std::int64_t us_per = 0;
  if (unit == "us") us_per = 1;
  if (unit == "ms") us_per = 1'000;
  if (unit == "s") us_per = 1'000'000;
  if (unit == "m") us_per = 60'000'000;
  if (unit == "h") us_per = 3'600'000'000;
  if (us_per == 0) fail();
  // Up to a year: anything longer is a mistake, and would overflow further on.
  constexpr std::int64_t year_us = 366LL * 24 * 3'600'000'000;
  if (value > year_us / us_per)
    throw error(errc::invalid_config, std::string(what) + " must be at most a year, not '" + std::string(text) + "'");
  return std::chrono::microseconds(value * us_per);
}

std::int64_t parse_count(std::string_view what, std::string_view text) {
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < 0)
    throw error(errc::invalid_config, std::string(what) + " must be a whole number, not '" + std::string(text) + "'");
  return value;
}

bool parse_bool(std::string_view what, std::string_view text) {
  if (text == "true" || text == "1") return true;
  if (text == "false" || text == "0") return false;
  throw error(errc::invalid_config, std::string(what) + " must be true or false, not '" + std::string(text) + "'");
}

std::string percent_decode(std::string_view what, std::string_view text, bool secret) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size() || hex(text[i + 1]) < 0 || hex(text[i + 2]) < 0)
      throw error(errc::invalid_config, std::string(what) + ": '%' must be followed by two hex digits" +
                                            (secret ? std::string(" (in the credentials)")
                                                    : " in '" + std::string(text) + "'"));
    out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
    i += 2;
  }
  return out;
}

url_query::url_query(std::string_view what, std::string_view query) : what_(what) {
  for_each_query_part(query, [&](std::string_view pair) {
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos)
      throw error(errc::invalid_config, what_ + ": parameter without a value: '" + std::string(pair) + "'");
    auto name = percent_decode(what_, pair.substr(0, eq));
    if (has(name)) throw error(errc::invalid_config, what_ + ": parameter '" + name + "' given twice");
    params_.push_back({std::move(name), percent_decode(what_, pair.substr(eq + 1))});
  });
}

std::optional<std::string> url_query::take(std::string_view name) {
  for (auto& p : params_)
    if (p.name == name) {
      p.taken = true;
      return p.value;
    }
  return std::nullopt;
}

bool url_query::has(std::string_view name) const {
  for (const auto& p : params_)
    if (p.name == name) return true;
  return false;
}

void url_query::too_large(std::string_view name, const std::string& text) const {
  throw error(errc::invalid_config, what_ + ": " + std::string(name) + " is too large: '" + text + "'");
}

void url_query::finish() const {
  std::string unknown;
  for (const auto& p : params_)
    if (!p.taken) unknown += (unknown.empty() ? "'" : ", '") + p.name + "'";
  if (!unknown.empty()) throw error(errc::invalid_config, what_ + ": unknown parameter " + unknown);
}

void for_each_query_part(std::string_view query, const std::function<void(std::string_view)>& each) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (!part.empty()) each(part);
  }
}

}  // namespace ingest::detail
