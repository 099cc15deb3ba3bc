#include "exams.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "ingest/envelope.hpp"

namespace exam {

bool valid_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool exam_info::allows(std::string_view student) const {
  return any_student || students.count(std::string(student)) > 0;
}

double exam_info::grade(const std::map<std::string, std::string>& answers) const {
  if (answer_key.empty()) return 0;
  std::size_t right = 0;
  for (const auto& [q, a] : answer_key)
    if (auto it = answers.find(q); it != answers.end() && it->second == a) ++right;
  return std::round(10000.0 * static_cast<double>(right) / static_cast<double>(answer_key.size())) / 100.0;
}

namespace {

std::string text_field(const boost::json::object& o, const char* name, const std::string& where) {
  const auto* v = o.if_contains(name);
  if (!v || !v->is_string()) throw std::runtime_error(where + ": \"" + name + "\" must be a string");
  return std::string(v->as_string());
}

time_point time_field(const boost::json::object& o, const char* name, const std::string& where) {
  const auto text = text_field(o, name, where);
  try {
    return ingest::parse_time(text);
  } catch (const std::exception&) {
    throw std::runtime_error(where + ": \"" + name + "\" is not an RFC 3339 UTC time: " + text);
  }
}

std::uint64_t count_field(const boost::json::object& o, const char* name, const std::string& where) {
  const auto* v = o.if_contains(name);
  if (!v || !(v->is_uint64() || (v->is_int64() && v->as_int64() >= 0)))
    throw std::runtime_error(where + ": \"" + name + "\" must be a non-negative integer");
  return v->is_uint64() ? v->as_uint64() : static_cast<std::uint64_t>(v->as_int64());
}

// "attachments": {"max_files": 3, "max_bytes": 10485760, "content_types": ["application/pdf", ...]}
attachment_rules attachment_field(const boost::json::value& v, const std::string& where) {
  const std::string at = where + ": \"attachments\"";
  if (!v.is_object()) throw std::runtime_error(at + " must be an object");
  const auto& o = v.as_object();
  attachment_rules r;
  for (const auto& [name, value] : o)
    if (name != "max_files" && name != "max_bytes" && name != "content_types")
      throw std::runtime_error(at + ": unknown field \"" + std::string(name) + "\"");
  r.max_files = static_cast<std::size_t>(count_field(o, "max_files", at));
  if (r.max_files > 20) throw std::runtime_error(at + ": max_files is at most 20");
  if (o.contains("max_bytes")) r.max_bytes = count_field(o, "max_bytes", at);
  // The graders read a file whole to hash it where the store keeps no checksum.
  if (r.max_bytes == 0 || r.max_bytes > (64ull << 20)) throw std::runtime_error(at + ": max_bytes must be 1 to 64 MiB");
  if (const auto* types = o.if_contains("content_types")) {
    if (!types->is_array() || types->as_array().empty())
      throw std::runtime_error(at + ": content_types must be a non-empty list of media types");
    r.content_types.clear();
    for (const auto& t : types->as_array()) {
      if (!t.is_string() || t.as_string().find('/') == boost::json::string::npos)
        throw std::runtime_error(at + ": content_types must be media types like application/pdf");
      r.content_types.emplace_back(t.as_string());
    }
  }
  return r;
}

}  // namespace

catalog catalog::from_json(std::string_view text) {
  boost::system::error_code ec;
  const auto doc = boost::json::parse(text, ec);
  if (ec) throw std::runtime_error("exams: not JSON: " + ec.message());
  const auto* list = doc.is_object() ? doc.as_object().if_contains("exams") : nullptr;
  if (!list || !list->is_array()) throw std::runtime_error("exams: expected {\"exams\": [...]}");
  catalog out;
  for (const auto& item : list->as_array()) {
    if (!item.is_object()) throw std::runtime_error("exams: every exam must be an object");
    const auto& o = item.as_object();
    exam_info e;
    e.id = text_field(o, "id", "exam");
    const std::string where = "exam '" + e.id + "'";
    if (!valid_id(e.id)) throw std::runtime_error(where + ": id must be 1-64 of [A-Za-z0-9._-]");
    e.title = o.if_contains("title") ? text_field(o, "title", where) : e.id;
    const auto* key = o.if_contains("answer_key");
    if (!key || !key->is_object()) throw std::runtime_error(where + ": \"answer_key\" must be an object");
    for (const auto& [q, a] : key->as_object()) {
      if (!a.is_string()) throw std::runtime_error(where + ": answers in the key must be strings");
      e.answer_key.emplace(std::string(q), std::string(a.as_string()));
    }
    if (const auto* c = o.if_contains("choices")) {
      if (!c->is_array()) throw std::runtime_error(where + ": \"choices\" must be a list of strings");
      for (const auto& v : c->as_array()) {
        if (!v.is_string() || v.as_string().empty())
          throw std::runtime_error(where + ": \"choices\" must be a list of non-empty strings");
        e.choices.emplace_back(v.as_string());
      }
    }
    e.opens_at = time_field(o, "opens_at", where);
    e.deadline = time_field(o, "deadline", where);
    if (e.deadline < e.opens_at) throw std::runtime_error(where + ": deadline before opens_at");
    if (const auto* g = o.if_contains("grace_seconds")) {
      if (!g->is_int64() || g->as_int64() < 0)
        throw std::runtime_error(where + ": \"grace_seconds\" must be a non-negative integer");
      e.grace = std::chrono::seconds(g->as_int64());
    }
    const auto* students = o.if_contains("students");
    if (!students || (students->is_string() && students->as_string() == "any")) {
      e.any_student = true;
    } else if (students->is_array()) {
      e.any_student = false;
      for (const auto& s : students->as_array()) {
        if (!s.is_string() || !valid_id(s.as_string()))
          throw std::runtime_error(where + ": student ids must be strings of [A-Za-z0-9._-]");
        e.students.emplace(s.as_string());
      }
    } else {
      throw std::runtime_error(where + ": \"students\" must be \"any\" or a list of ids");
    }
    if (const auto* a = o.if_contains("attachments")) e.attachments = attachment_field(*a, where);
    if (!out.exams_.emplace(e.id, e).second) throw std::runtime_error(where + ": defined twice");
  }
  return out;
}

catalog catalog::from_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("exams: cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  return from_json(text.str());
}

catalog catalog::demo(time_point now) {
  exam_info e;
  e.id = "demo";
  e.title = "Demo exam (10 questions)";
  const char* key = "BDACBADCCA";
  for (int i = 0; i < 10; ++i) e.answer_key.emplace("q" + std::to_string(i + 1), std::string(1, key[i]));
  e.choices = {"A", "B", "C", "D"};
  e.opens_at = now;
  e.deadline = now + std::chrono::hours(24);
  e.grace = std::chrono::seconds(60);
  e.attachments.max_files = 3;
  catalog out;
  out.exams_.emplace(e.id, std::move(e));
  return out;
}

const exam_info* catalog::find(std::string_view id) const {
  auto it = exams_.find(id);
  return it == exams_.end() ? nullptr : &it->second;
}

}  // namespace exam
