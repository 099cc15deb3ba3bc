#include "submission.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "ingest/fingerprint.hpp"
#include "json_text.hpp"

namespace exam {

std::string submission::to_json() const {
  boost::json::object a;
  for (const auto& [q, v] : answers) a[q] = v;  // std::map: sorted
  boost::json::object o;
  o["exam_id"] = exam_id;
  o["student_id"] = student_id;
  o["idempotency_key"] = idempotency_key;
  o["answers"] = std::move(a);
  // Only when there are some: a submission without files keeps the bytes (and the
  // fingerprint) it always had.
  if (!attachments.empty()) o["attachments"] = attachments_to_json(attachments);
  return boost::json::serialize(o);
}

std::string submission::answers_json() const {
  boost::json::object a;
  for (const auto& [q, v] : answers) a[q] = v;
  return boost::json::serialize(a);
}

std::string submission::attachments_json() const {
  return attachments.empty() ? std::string() : boost::json::serialize(attachments_to_json(attachments));
}

std::optional<submission> submission::from_json(std::string_view text) {
  boost::system::error_code ec;
  const auto v = boost::json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.as_object();
  auto str = [&](const char* name) -> const boost::json::string* {
    const auto* f = o.if_contains(name);
    return f && f->is_string() ? &f->as_string() : nullptr;
  };
  const auto* exam = str("exam_id");
  const auto* student = str("student_id");
  const auto* key = str("idempotency_key");
  const auto* answers = o.if_contains("answers");
  if (!exam || !student || !key || !answers || !answers->is_object()) return std::nullopt;
  submission s{std::string(*exam), std::string(*student), std::string(*key), {}};
  for (const auto& [q, a] : answers->as_object()) {
    if (!a.is_string()) return std::nullopt;
    s.answers.emplace(std::string(q), std::string(a.as_string()));
  }
  if (!parse_attachments(o.if_contains("attachments"), s.attachments).empty()) return std::nullopt;
  return s;
}

std::string submission::queue_key() const {
  std::string key = exam_id + '/' + student_id + '/' + idempotency_key;
  if (key.size() <= 255) return key;
  return "sha256:" + ingest::fingerprint(key);
}

std::string receipt_claims(const std::string& exam_id, const std::string& student_id) {
  return boost::json::serialize(boost::json::array{boost::json::string(exam_id), boost::json::string(student_id)});
}

std::optional<receipt_owner> parse_receipt_claims(std::string_view claims) {
  boost::system::error_code ec;
  const auto v = boost::json::parse(claims, ec);
  if (ec || !v.is_array() || v.as_array().size() != 2) return std::nullopt;
  const auto& a = v.as_array();
  if (!a[0].is_string() || !a[1].is_string()) return std::nullopt;
  return receipt_owner{std::string(a[0].as_string()), std::string(a[1].as_string())};
}

parsed_answers parse_answers(std::string_view body, std::size_t max_questions) {
  parsed_answers out;
  boost::system::error_code ec;
  boost::json::parse_options options;
  options.max_depth = 8;  // the body is two levels deep; refuse deep nesting early
  const auto v = boost::json::parse(body, ec, {}, options);
  if (ec) {
    out.error = "body is not valid JSON: " + ec.message();
    return out;
  }
  // Boost.JSON keeps the last of repeated keys; a question answered twice is refused.
  if (auto key = repeated_json_key(body, options.max_depth)) {
    out.error = "the key \"" + *key + "\" appears twice in one object";
    return out;
  }
  const auto* answers = v.is_object() ? v.as_object().if_contains("answers") : nullptr;
  if (!answers || !answers->is_object()) {
    out.error = "body must be {\"answers\": {\"<question>\": \"<answer>\", ...}}";
    return out;
  }
  if (answers->as_object().size() > max_questions) {
    out.error = "too many answers (at most " + std::to_string(max_questions) + ")";
    return out;
  }
  for (const auto& [q, a] : answers->as_object()) {
    if (q.empty() || !a.is_string()) {
      out.error = "every answer must be a string under a non-empty question id";
      out.answers.clear();
      return out;
    }
    out.answers.emplace(std::string(q), std::string(a.as_string()));
  }
  if (auto error = parse_attachments(v.as_object().if_contains("attachments"), out.attachments); !error.empty()) {
    out.error = std::move(error);
    out.answers.clear();
  }
  return out;
}

}  // namespace exam
