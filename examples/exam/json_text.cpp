#include "json_text.hpp"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cmath>
#include <set>
#include <vector>

namespace exam {
namespace {

namespace json = boost::json;
using boost::system::error_code;

// A SAX handler that keeps the keys of every open object.
struct key_checker {
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  std::vector<std::set<std::string, std::less<>>> open;  // keys per open object
  std::string key;                                       // the key being read
  std::optional<std::string> repeated;

  bool on_document_begin(error_code&) { return true; }
  bool on_document_end(error_code&) { return true; }
  bool on_object_begin(error_code&) {
    open.emplace_back();
    return true;
  }
  bool on_object_end(std::size_t, error_code&) {
    open.pop_back();
    return true;
  }
  bool on_array_begin(error_code&) { return true; }
  bool on_array_end(std::size_t, error_code&) { return true; }
  bool on_key_part(json::string_view s, std::size_t, error_code&) {
    key.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, error_code& ec) {
    key.append(s.data(), s.size());
    if (!open.back().insert(key).second) {
      repeated = key;
      ec = json::error::extra_data;  // any error stops the parse
      return false;
    }
    key.clear();
    return true;
  }
  bool on_string_part(json::string_view, std::size_t, error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, error_code&) { return true; }
  bool on_number_part(json::string_view, error_code&) { return true; }
  bool on_int64(std::int64_t, json::string_view, error_code&) { return true; }
  bool on_uint64(std::uint64_t, json::string_view, error_code&) { return true; }
  bool on_double(double, json::string_view, error_code&) { return true; }
  bool on_bool(bool, error_code&) { return true; }
  bool on_null(error_code&) { return true; }
  bool on_comment_part(json::string_view, error_code&) { return true; }
  bool on_comment(json::string_view, error_code&) { return true; }
};

void write_plain(const json::value& v, std::string& out) {
  switch (v.kind()) {
    case json::kind::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, item] : v.get_object()) {
        if (!first) out.push_back(',');
        first = false;
        out += json::serialize(json::string(key));
        out.push_back(':');
        write_plain(item, out);
      }
      out.push_back('}');
      return;
    }
    case json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        write_plain(item, out);
      }
      out.push_back(']');
      return;
    }
    case json::kind::double_: {
      const double d = v.get_double();
      if (!std::isfinite(d)) {
        out += "null";  // JSON has no infinities
        return;
      }
      char text[64];
      const auto a = std::fabs(d);
      const bool plain = a == 0 || (a >= 1e-6 && a < 1e21);
      const auto r = plain ? std::to_chars(text, text + sizeof text, d, std::chars_format::fixed)
                           : std::to_chars(text, text + sizeof text, d);
      out.append(text, r.ptr);
      return;
    }
    default:
      out += json::serialize(v);
  }
}

}  // namespace

std::string to_plain_json(const boost::json::value& v) {
  std::string out;
  write_plain(v, out);
  return out;
}

std::optional<std::string> repeated_json_key(std::string_view text, unsigned max_depth) {
  json::parse_options options;
  options.max_depth = max_depth;
  json::basic_parser<key_checker> parser(options);
  error_code ec;
  parser.write_some(false, text.data(), text.size(), ec);
  return parser.handler().repeated;
}

std::optional<std::string> receipt_id_in(const std::string& body) {
  constexpr std::string_view field = "\"receipt_id\":\"";
  if (const auto at = body.find(field); at != std::string::npos) {
    const auto start = at + field.size();
    const auto end = body.find('"', start);
    if (end != std::string::npos && body.find('\\', start) > end)
      return end > start ? std::optional<std::string>(body.substr(start, end - start)) : std::nullopt;
  }
  boost::system::error_code ec;
  const auto v = boost::json::parse(body, ec);
  const auto* id = !ec && v.is_object() ? v.as_object().if_contains("receipt_id") : nullptr;
  if (!id || !id->is_string() || id->as_string().empty()) return std::nullopt;
  return std::string(id->as_string());
}

}  // namespace exam
