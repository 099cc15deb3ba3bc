// Where a submission stands, from any server: the database's row, the queue's record,
// the graders' notes, and the receipt's own signature.

#include <boost/json/object.hpp>

#include "app.hpp"
#include "json_text.hpp"

namespace exam {

using ingest::http::status;

namespace {

const char* state_name(ingest::message_state s) {
  switch (s) {
    case ingest::message_state::leased:
      return "processing";
    case ingest::message_state::processed:
      return "graded";
    default:
      return "received";
  }
}

// The status JSON of a submission without a row. A student never sees "failed" or
// "dead_lettered": it sends students into retry loops.
std::string unprocessed_json(const std::string& receipt_id, const std::string& exam_id, const std::string& student_id,
                             const std::string& accepted_at, std::string_view state, const std::string& reason,
                             role asker) {
  boost::json::object o;
  o["receipt_id"] = receipt_id;
  o["exam_id"] = exam_id;
  o["student_id"] = student_id;
  o["accepted_at"] = accepted_at;
  if (state == "dead_lettered" && asker == role::teacher) {
    o["status"] = "dead_lettered";
    o["reason"] = reason;
  } else {
    o["status"] = state == "dead_lettered" ? "received" : state;
  }
  return to_plain_json(o);
}

}  // namespace

namespace {

// Every receipt this system gives out is made of these (a UUID, base64url, dots), and
// is at most 255 long: anything else is unknown without asking the database.
bool plausible_receipt(std::string_view id) noexcept {
  if (id.empty() || id.size() > 255) return false;
  for (char c : id) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

void app::get_submission(const std::string& receipt_id, request req, responder& respond) {
  auto who = authenticate(req, respond);
  if (!who) return;
  if (!plausible_receipt(receipt_id)) return fail(req, respond, status::not_found, "not_found", "no such submission");
  if (auto graded = graded_.find(receipt_id)) {
    if (who->role != role::teacher && graded->student_id != who->sub)
      return fail(req, respond, status::not_found, "not_found", "no such submission");
    return respond(ingest::http::json_response(req, status::ok, graded->json));
  }
  auto job = std::make_shared<std::pair<request, responder>>(std::move(req), std::move(respond));
  records_.look_up(receipt_id, [this, job, who = *who, receipt_id](std::exception_ptr failed, receipt_record rec) {
    guarded(*job, [&](request& rq, responder& rs) {
      if (failed) return answer_read_failure(receipt_id, failed, rq, rs);
      if (rec.row) return answer_from_records(receipt_id, who, rec, rq, rs);
      // The queue may hold it (the embedded queue can say so; NATS and SQS cannot).
      backend_.find_unprocessed(receipt_id, [this, job, who, receipt_id, first = std::move(rec)](
                                                ingest::error_code ec, std::optional<unprocessed> u) {
        guarded(*job,
                [&](request& rq, responder& rs) { answer_from_queue(receipt_id, who, first, ec, u, job, rq, rs); });
      });
    });
  });
}

void app::answer_from_queue(const std::string& receipt_id, const principal& who, const receipt_record& first,
                            ingest::error_code ec, const std::optional<unprocessed>& u,
                            const std::shared_ptr<std::pair<request, responder>>& job, request& rq, responder& rs) {
  // The queue cannot look receipts up: the records read before are the answer.
  if (ec == ingest::errc::not_supported) return answer_from_records(receipt_id, who, first, rq, rs);
  // The queue could not be asked: "no such submission" could be false, so retry later.
  if (ec)
    return fail(rq, rs, status::service_unavailable, "unavailable",
                "the queue cannot be read right now (" + ec.message() + ")", std::chrono::seconds(1));
  if (!u || u->state == ingest::message_state::processed) {
    // Graded since the first read (and perhaps gone from the queue since): read again.
    return records_.look_up(receipt_id, [this, job, who, receipt_id](std::exception_ptr f, receipt_record r) {
      guarded(*job, [&](request& rq, responder& rs) {
        if (f) return answer_read_failure(receipt_id, f, rq, rs);
        answer_from_records(receipt_id, who, r, rq, rs);
      });
    });
  }
  if (who.role != role::teacher && u->what.student_id != who.sub)
    return fail(rq, rs, status::not_found, "not_found", "no such submission");
  const std::string_view state =
      u->state == ingest::message_state::dead_lettered ? "dead_lettered" : state_name(u->state);
  rs(ingest::http::json_response(
      rq, status::ok,
      unprocessed_json(receipt_id, u->what.exam_id, u->what.student_id, u->accepted_at, state, u->reason, who.role)));
}

void app::guarded(std::pair<request, responder>& job, const std::function<void(request&, responder&)>& step) {
  // What a step of an answer throws is answered (and logged) like any handler's.
  const ingest::http::reply_to to(job.first);
  try {
    step(job.first, job.second);
  } catch (const std::exception& e) {
    if (job.second) answer_exception(to, job.second, e);
  }
}

void app::answer_from_records(const std::string& receipt_id, const principal& who, const receipt_record& rec,
                              const request& rq, responder& rs) {
  auto not_found = [&] { fail(rq, rs, status::not_found, "not_found", "no such submission"); };
  if (rec.row) {
    if (who.role != role::teacher && rec.row->student_id != who.sub) return not_found();
    auto json = submission_json(*rec.row);
    if (rec.row->status == "graded") graded_.remember(receipt_id, rec.row->student_id, json);
    return rs(ingest::http::json_response(rq, status::ok, std::move(json)));
  }
  std::optional<ingest::signed_receipt> genuine;
  std::optional<receipt_owner> owner;
  if (options_.receipts && (genuine = options_.receipts->verify(receipt_id)))
    owner = parse_receipt_claims(genuine->claims);
  const auto& note = rec.note;
  const bool dead = note && note->state == "dead_lettered";
  // Neither signed by this system nor noted by its graders: unknown.
  if (!owner && !dead) return not_found();
  const auto& exam_id = owner ? owner->exam_id : note->exam_id;
  const auto& student_id = owner ? owner->student_id : note->student_id;
  if (who.role != role::teacher && student_id != who.sub) return not_found();
  const auto accepted_at = genuine ? ingest::format_time(genuine->accepted_at) : note->accepted_at;
  const std::string_view state = note ? std::string_view(note->state) : "received";
  rs(ingest::http::json_response(rq, status::ok,
                                 unprocessed_json(receipt_id, exam_id, student_id, accepted_at, state,
                                                  note ? note->reason : std::string(), who.role)));
}

void app::answer_read_failure(const std::string& receipt_id, std::exception_ptr failed, const request& rq,
                              responder& rs) {
  std::string what = "unknown";
  try {
    std::rethrow_exception(failed);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  if (auto& log = options_.log; log && log->enabled(ingest::log_level::error))
    log->write({.level = ingest::log_level::error,
                .component = "http",
                .event = "store_read_failed",
                .receipt_id = receipt_id,
                .detail = what});
  fail(rq, rs, status::service_unavailable, "unavailable", "the database cannot be read right now; retry",
       std::chrono::seconds(2));
}

}  // namespace exam
