// The teachers' routes: the overview of where submissions stand (GET /v1/overview), an
// exam's dead letters (GET /v1/exams/{id}/dead-letters) and their replay, which the log
// records with the teacher who asked.

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "app.hpp"
#include "json_text.hpp"

namespace exam {

using ingest::http::status;

namespace {

// An action a teacher took, in the log at the level dead letters are (seen by default).
void audit(const std::shared_ptr<ingest::logger>& log, std::string_view event, std::string_view receipt_id,
           const std::string& by) {
  if (!log || !log->enabled(ingest::log_level::warning)) return;
  const auto who = "by teacher " + by;
  log->write(
      {.level = ingest::log_level::warning, .component = "teacher", .event = event, .receipt_id = receipt_id, .detail = who});
}

boost::json::object dead_letter_json(const ingest::dead_letter& d, const submission& s) {
  boost::json::object o;
  o["receipt_id"] = d.message.receipt_id;
  o["student_id"] = s.student_id;
  o["accepted_at"] = ingest::format_time(d.message.accepted_at);
  o["reason"] = d.reason;
  o["last_error"] = d.last_error;
  o["attempts"] = d.attempts;
  o["first_attempt_at"] = ingest::format_time(d.first_attempt_at);
  o["last_attempt_at"] = ingest::format_time(d.last_attempt_at);
  o["dead_lettered_at"] = ingest::format_time(d.dead_lettered_at);
  // The files it names, for a download link (GET /v1/exams/{id}/attachments?key=).
  if (!s.attachments.empty()) o["attachments"] = attachments_to_json(s.attachments);
  return o;
}

// One page of an exam's dead letters, read from the queue's (of every exam) a page at
// a time: at most `max_pages` pages per request, so that an exam with few dead letters
// among many answers in bounded time (the page then says where to go on).
struct dead_letter_scan {
  static constexpr int max_pages = 10;
  std::string exam_id;
  std::size_t limit = 100;
  int pages = 0;
  boost::json::array items{};
  std::function<void(ingest::error_code, boost::json::array, std::optional<std::string>)> done;
};

void scan(submit_backend& backend, const std::shared_ptr<dead_letter_scan>& s, const std::string& after) {
  const std::size_t ask = std::max<std::size_t>(s->limit, 100);
  backend.dead_letters(after, ask, [&backend, s, ask](ingest::error_code ec, std::vector<ingest::dead_letter> page) {
    if (ec) return s->done(ec, {}, std::nullopt);
    for (const auto& d : page) {
      const auto sub = submission::from_json(d.message.payload);
      if (!sub || sub->exam_id != s->exam_id) continue;
      s->items.push_back(dead_letter_json(d, *sub));
      if (s->items.size() == s->limit) return s->done({}, std::move(s->items), d.message.receipt_id);
    }
    if (page.size() < ask) return s->done({}, std::move(s->items), std::nullopt);
    if (++s->pages == dead_letter_scan::max_pages)
      return s->done({}, std::move(s->items), page.back().message.receipt_id);
    scan(backend, s, page.back().message.receipt_id);
  });
}

}  // namespace

void app::get_overview(request req, responder& respond) {
  auto who = authenticate(req, respond);
  if (!who) return;
  if (who->role != role::teacher)
    return fail(req, respond, status::forbidden, "forbidden", "only teachers see the overview");
  respond(ingest::http::json_response(req, status::ok, overview_->json()));
}

void app::list_dead_letters(const std::string& exam_id, request req, responder& respond) {
  auto who = authenticate(req, respond);
  if (!who) return;
  if (!exams_.find(exam_id)) return fail(req, respond, status::not_found, "exam_not_found", "no such exam");
  if (who->role != role::teacher)
    return fail(req, respond, status::forbidden, "forbidden", "only teachers list dead letters");
  const auto page = page_of(req, respond);
  if (!page) return;
  auto s = std::make_shared<dead_letter_scan>();
  s->exam_id = exam_id;
  s->limit = page->limit;
  auto shared = std::make_shared<std::pair<request, responder>>(std::move(req), std::move(respond));
  s->done = [this, shared](ingest::error_code ec, boost::json::array items, std::optional<std::string> next) {
    auto& [rq, rs] = *shared;
    // Without a queue (the direct server) nothing is ever dead-lettered.
    if (ec && ec != ingest::errc::not_supported)
      return fail(rq, rs, status::service_unavailable, "unavailable",
                  "the queue cannot be read right now (" + ec.message() + ")", std::chrono::seconds(1));
    boost::json::object o;
    o["items"] = std::move(items);
    o["next_after"] = next ? boost::json::value(*next) : boost::json::value(nullptr);
    rs(ingest::http::json_response(rq, status::ok, to_plain_json(o)));
  };
  scan(backend_, s, page->after);
}

void app::replay_dead_letter(const std::string& exam_id, const std::string& receipt_id, request req,
                             responder& respond) {
  auto who = authenticate(req, respond);
  if (!who) return;
  if (!exams_.find(exam_id)) return fail(req, respond, status::not_found, "exam_not_found", "no such exam");
  if (who->role != role::teacher)
    return fail(req, respond, status::forbidden, "forbidden", "only teachers replay dead letters");
  // A replay under another exam's path is refused: the exam is the one the signed
  // receipt names, else the one of the graders' note.
  std::optional<std::string> its_exam;
  if (options_.receipts)
    if (auto genuine = options_.receipts->verify(receipt_id))
      if (auto owner = parse_receipt_claims(genuine->claims)) its_exam = owner->exam_id;
  if (!its_exam)
    if (auto note = store_.progress(receipt_id); note && note->state == "dead_lettered") its_exam = note->exam_id;
  if (its_exam && *its_exam != exam_id)
    return fail(req, respond, status::not_found, "not_found", "no such dead letter in this exam");
  // Notes written from now on belong to a later attempt: only older ones are removed.
  const auto replayed_at = ingest::format_time(ingest::clock::now());
  auto shared = std::make_shared<std::pair<request, responder>>(std::move(req), std::move(respond));
  backend_.replay_dead_letter(
      receipt_id, [this, shared, receipt_id, replayed_at, by = who->sub](ingest::error_code ec, std::size_t moved) {
        auto& [rq, rs] = *shared;
        if (ec == ingest::errc::not_supported || (!ec && moved == 0))
          return fail(rq, rs, status::not_found, "not_found", "no such dead letter");
        if (ec)
          return fail(rq, rs, status::service_unavailable, "unavailable",
                      "the queue cannot replay right now (" + ec.message() + ")", std::chrono::seconds(1));
        audit(options_.log, "dead_letter_replayed", receipt_id, by);
        // Back in the queue: the graders' note goes, so that every server says "received".
        // Should the note stay (the database down just now), the graded row still wins.
        try {
          store_.forget_dead_letter(receipt_id, replayed_at);
        } catch (const std::exception& e) {
          if (auto& log = options_.log; log && log->enabled(ingest::log_level::warning))
            log->write({.level = ingest::log_level::warning,
                        .component = "http",
                        .event = "dead_letter_note_kept",
                        .receipt_id = receipt_id,
                        .detail = e.what()});
        }
        boost::json::object o;
        o["receipt_id"] = receipt_id;
        o["status"] = "received";
        rs(ingest::http::json_response(rq, status::accepted, to_plain_json(o)));
      });
}

}  // namespace exam
