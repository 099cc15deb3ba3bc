// The pages (web_assets.hpp) and what they read of an exam before a submission.
#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "app.hpp"
#include "ingest/envelope.hpp"
#include "json_text.hpp"

namespace exam {

using ingest::http::status;

namespace {

// "q2" before "q10": the questions in the order a person numbers them.
bool natural_less(std::string_view a, std::string_view b) {
  auto split = [](std::string_view s) {
    auto i = s.size();
    while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9') --i;
    return std::pair{s.substr(0, i), s.substr(i)};
  };
  const auto [pa, na] = split(a);
  const auto [pb, nb] = split(b);
  if (pa != pb) return a < b;
  if (na.size() != nb.size()) return na.size() < nb.size();
  return na < nb;
}

}  // namespace

std::string app::exam_json(const exam_info& e, bool uploads) {
  std::vector<std::string_view> ids;
  for (const auto& [q, answer] : e.answer_key) ids.push_back(q);
  std::sort(ids.begin(), ids.end(), natural_less);
  boost::json::array questions;
  for (auto q : ids) questions.emplace_back(q);
  boost::json::array choices;
  for (const auto& c : e.choices) choices.emplace_back(c);
  boost::json::object o;
  o["exam_id"] = e.id;
  o["title"] = e.title;
  o["questions"] = std::move(questions);
  o["choices"] = std::move(choices);
  o["opens_at"] = ingest::format_time(e.opens_at);
  o["deadline"] = ingest::format_time(e.deadline);
  o["grace_seconds"] = e.grace.count();
  if (uploads && e.attachments.allowed()) {
    boost::json::array types;
    for (const auto& t : e.attachments.content_types) types.emplace_back(t);
    o["attachments"] = boost::json::object{{"max_files", e.attachments.max_files},
                                           {"max_bytes", e.attachments.max_bytes},
                                           {"content_types", std::move(types)}};
  }
  return to_plain_json(o);
}

void app::get_exam(const std::string& exam_id, request req, responder& respond) {
  auto who = authenticate(req, respond);
  if (!who) return;
  const exam_info* e = exams_.find(exam_id);
  if (!e) return fail(req, respond, status::not_found, "exam_not_found", "no such exam");
  if (who->role == role::student && !e->allows(who->sub))
    return fail(req, respond, status::forbidden, "forbidden", "this exam is not open to " + who->sub);
  respond(ingest::http::json_response(req, status::ok, exam_json(*e, options_.storage != nullptr)));
}

}  // namespace exam
