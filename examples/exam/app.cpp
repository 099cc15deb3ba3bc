#include "app.hpp"

#include <boost/asio/post.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <vector>

#include "ingest/fingerprint.hpp"
#include "ingest/postgres/error.hpp"
#include "ingest/sqlite/database.hpp"
#include "json_text.hpp"
#include "web_assets.hpp"

namespace exam {

namespace bhttp = boost::beast::http;
using ingest::http::status;

namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash);
  }
  return out;
}

std::optional<std::string> percent_decode(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i] == '+' ? ' ' : in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return std::nullopt;
    int v = 0;
    if (std::from_chars(in.data() + i + 1, in.data() + i + 3, v, 16).ec != std::errc{}) return std::nullopt;
    out.push_back(static_cast<char>(v));
    i += 2;
  }
  return out;
}

std::map<std::string, std::string> parse_query(std::string_view q) {
  std::map<std::string, std::string> out;
  while (!q.empty()) {
    const auto amp = q.find('&');
    const auto pair = q.substr(0, amp);
    const auto eq = pair.find('=');
    auto k = percent_decode(pair.substr(0, eq));
    auto v = percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
    if (k && v) out.emplace(std::move(*k), std::move(*v));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}

// The token of an `Authorization: Bearer <token>` header; the scheme's name is
// case-insensitive (RFC 9110), and spaces may follow it.
std::optional<std::string_view> bearer_token(std::string_view header) {
  constexpr std::string_view scheme = "bearer";
  if (header.size() <= scheme.size() || header[scheme.size()] != ' ') return std::nullopt;
  for (std::size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(header[i])) != scheme[i]) return std::nullopt;
  auto token = header.substr(scheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty()) return std::nullopt;
  return token;
}

bool is_json_media_type(std::string_view ct) {
  const auto semi = ct.find(';');
  auto type = ct.substr(0, semi);
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  if (type.size() != 16) return false;
  for (std::size_t i = 0; i < type.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(type[i])) != "application/json"[i]) return false;
  return true;
}

// The id is echoed only when it is one (error bodies stay valid JSON: a path may hold
// any bytes).
std::string unknown_exam(std::string_view id) {
  return valid_id(id) ? "no exam '" + std::string(id) + "'" : std::string("no such exam");
}

}  // namespace

app::app(const catalog& exams, submission_reader& store, submit_backend& backend, app_options options)
    : exams_(exams),
      store_(store),
      backend_(backend),
      options_(std::move(options)),
      per_student_(options_.student_rate, options_.student_burst),
      per_ip_(options_.ip_rate, options_.ip_burst),
      reads_(make_read_pool(options_.read_threads, options_.read_nice)),
      // Two queries at once at most: under load the reads wait for the next batch
      // instead of each taking a query (and the cores the submissions need).
      records_(store_, reads_.get(), {.max_batch = 256, .lanes = std::min<std::size_t>(2, options_.read_threads)}),
      graded_(options_.graded_cache),
      upload_keys_(options_.jwt_secret),
      streams_(status_streams::make(
          [this](const std::string& id, const std::string& authorization,
                 std::function<void(ingest::http::response)> done) { read_status(id, authorization, std::move(done)); },
          options_.streams)) {
  overview_sources sources{
      .queue = {},
      .written = [this] { return store_.written_total(); },
      .accepted_here = [this] { return accepted_.load(std::memory_order_relaxed); },
  };
  if (backend_.has_queue()) sources.queue = [this] { return backend_.queue_counts(); };
  overview_ = std::make_unique<overview>(std::move(sources), options_.overview);
}

app::~app() {
  overview_.reset();
  streams_->stop();  // no status read starts after this
  streams_.reset();
  if (reads_) reads_->join();
}

std::string app::receipt_json(std::string_view receipt_id, std::string_view accepted_at, std::string_view st) {
  boost::json::object o;
  o["receipt_id"] = receipt_id;
  o["accepted_at"] = accepted_at;
  o["status"] = st;
  return to_plain_json(o);
}

std::string app::submission_json(const stored_submission& s) {
  boost::json::object o;
  o["receipt_id"] = s.receipt_id;
  o["exam_id"] = s.exam_id;
  o["student_id"] = s.student_id;
  o["accepted_at"] = s.accepted_at;
  o["status"] = s.status;
  if (s.score) o["score"] = *s.score;
  if (s.graded_at) o["graded_at"] = *s.graded_at;
  // The files it names, as the graders stored them (written by this program: a row that
  // does not parse says nothing rather than failing the read).
  if (!s.attachments_json.empty()) {
    boost::system::error_code ec;
    auto files = boost::json::parse(s.attachments_json, ec);
    if (!ec && files.is_array()) o["attachments"] = std::move(files);
  }
  return to_plain_json(o);
}

void app::reject(std::string_view reason) {
  std::lock_guard lock(mutex_);
  auto it = rejected_.find(reason);
  if (it == rejected_.end()) it = rejected_.emplace(std::string(reason), 0).first;
  ++it->second;
}

std::string app::metrics() const {
  std::string out =
      "# HELP exam_http_rejected_total Requests refused, by the error code of the answer.\n"
      "# TYPE exam_http_rejected_total counter\n";
  std::lock_guard lock(mutex_);
  for (const auto& [reason, n] : rejected_)
    out += "exam_http_rejected_total{reason=\"" + reason + "\"} " + std::to_string(n) + "\n";
  out +=
      "# HELP exam_status_reads_total Receipts looked up in the database for status reads.\n"
      "# TYPE exam_status_reads_total counter\n"
      "exam_status_reads_total " +
      std::to_string(records_.reads()) +
      "\n"
      "# HELP exam_status_queries_total Database queries those lookups took (several receipts each under load).\n"
      "# TYPE exam_status_queries_total counter\n"
      "exam_status_queries_total " +
      std::to_string(records_.queries()) +
      "\n"
      "# HELP exam_status_cache_hits_total Status reads of graded submissions answered from memory, without a query.\n"
      "# TYPE exam_status_cache_hits_total counter\n"
      "exam_status_cache_hits_total " +
      std::to_string(graded_.hits()) + "\n";
  out +=
      "# HELP exam_status_streams Status event streams open (GET /v1/submissions/{id}/events).\n"
      "# TYPE exam_status_streams gauge\n"
      "exam_status_streams " +
      std::to_string(streams_->open()) +
      "\n"
      "# HELP exam_status_events_total Status changes and errors pushed on those streams.\n"
      "# TYPE exam_status_events_total counter\n"
      "exam_status_events_total " +
      std::to_string(streams_->events()) + "\n";
  return out;
}

void app::fail(ingest::http::reply_to to, responder& respond, status s, std::string_view code, std::string_view message,
               std::chrono::seconds retry_after) {
  reject(code);
  respond(ingest::http::error_response(to, s, code, message, retry_after));
}

std::optional<principal> app::authenticate(const request& req, responder& respond) {
  const auto token = bearer_token(req[bhttp::field::authorization]);
  // RFC 6750: a 401 names the scheme, and says when a token was given but refused.
  auto refuse = [&](std::string_view challenge, std::string_view message) {
    reject("unauthorized");
    auto r = ingest::http::error_response(req, status::unauthorized, "unauthorized", message);
    r.set(bhttp::field::www_authenticate, challenge);
    respond(std::move(r));
  };
  if (!token) {
    refuse("Bearer", "an Authorization: Bearer <token> header is required");
    return std::nullopt;
  }
  auto v = verify_token(*token, options_.jwt_secret, options_.jwt);
  if (v.error != token_error::none) {
    refuse("Bearer error=\"invalid_token\"", "token refused (" + std::string(to_string(v.error)) + ")");
    return std::nullopt;
  }
  return std::move(v.who);
}

void app::handle(request req, const ingest::http::request_info& info, responder respond) {
  const ingest::http::reply_to to(req);
  try {
    route(std::move(req), info, respond);
  } catch (const std::exception& e) {
    if (respond) answer_exception(to, respond, e);
  }
}

void app::answer_exception(ingest::http::reply_to to, responder& respond, const std::exception& e) {
  // Nothing was accepted by this request (a receipt is only ever sent last). The
  // client learns no internals; the log gets them.
  if (auto& log = options_.log; log && log->enabled(ingest::log_level::error))
    log->write({.level = ingest::log_level::error, .component = "http", .event = "handler_failed", .detail = e.what()});
  // A database that cannot be read now (busy, the disk, PostgreSQL restarting or out
  // of connections) may be readable in a moment.
  const auto* ie = dynamic_cast<const ingest::error*>(&e);
  if (ie && (ie->code().category() == ingest::sqlite::sqlite_category() || ingest::postgres::is_transient(ie->code()) ||
             ie->code() == ingest::errc::backpressure))
    return fail(to, respond, status::service_unavailable, "unavailable", "the database cannot be read right now; retry",
                std::chrono::seconds(2));
  fail(to, respond, status::internal_server_error, "internal", "an unexpected error; retry later");
}

void app::off_loop(request req, responder& respond, std::function<void(request, responder&)> read) {
  if (!reads_) return read(std::move(req), respond);
  auto job = std::make_shared<std::pair<request, responder>>(std::move(req), std::move(respond));
  boost::asio::post(*reads_, [this, job, read = std::move(read)] {
    auto& [rq, rs] = *job;
    const ingest::http::reply_to to(rq);
    try {
      read(std::move(rq), rs);
    } catch (const std::exception& e) {
      if (rs) answer_exception(to, rs, e);
    }
  });
}

void app::route(request req, const ingest::http::request_info& info, responder& respond) {
  const std::string_view target = req.target();
  const auto qmark = target.find('?');
  const auto path = split_path(target.substr(0, qmark));
  const auto verb = req.method();
  const bool get = verb == bhttp::verb::get || verb == bhttp::verb::head;  // the server drops HEAD's content
  auto not_allowed = [&](std::string_view allow) {
    reject("method_not_allowed");
    auto r = ingest::http::error_response(req, status::method_not_allowed, "method_not_allowed",
                                          "allowed here: " + std::string(allow));
    r.set(bhttp::field::allow, allow);
    respond(std::move(r));
  };
  // The pages are never under /v1: a submission does not search for one.
  const auto* page = !path.empty() && path[0] == "v1" ? nullptr : web::find(target.substr(0, qmark));
  if (page) {
    if (!get) return not_allowed("GET, HEAD");
    return respond(web::answer(req, *page, options_.storage ? options_.storage->origin() : std::string()));
  }
  if (path.size() == 1 && (path[0] == "healthz" || path[0] == "readyz" || path[0] == "metrics")) {
    if (!get) return not_allowed("GET, HEAD");
    if (path[0] == "healthz") return respond(ingest::http::json_response(req, status::ok, R"({"status":"ok"})"));
    if (path[0] == "readyz") {
      const bool ready = !draining_ && backend_.ready();
      return respond(ingest::http::json_response(req, ready ? status::ok : status::service_unavailable,
                                                 ready ? R"({"ready":true})" : R"({"ready":false})"));
    }
    auto r = ingest::http::json_response(req, status::ok, backend_.metrics() + metrics());
    r.set(bhttp::field::content_type, "text/plain; version=0.0.4");
    return respond(std::move(r));
  }
  const bool submissions_of_exam =
      path.size() == 4 && path[0] == "v1" && path[1] == "exams" && path[3] == "submissions";
  const bool one_submission = path.size() == 3 && path[0] == "v1" && path[1] == "submissions";
  const bool one_exam = path.size() == 3 && path[0] == "v1" && path[1] == "exams";
  const bool events = path.size() == 4 && path[0] == "v1" && path[1] == "submissions" && path[3] == "events";
  const bool replay =
      path.size() == 6 && path[0] == "v1" && path[1] == "exams" && path[3] == "dead-letters" && path[5] == "replay";
  const bool dead_letters =
      path.size() == 4 && path[0] == "v1" && path[1] == "exams" && path[3] == "dead-letters";
  const bool overview_route = path.size() == 2 && path[0] == "v1" && path[1] == "overview";
  const bool uploads = path.size() == 4 && path[0] == "v1" && path[1] == "exams" && path[3] == "uploads";
  const bool attachments = path.size() == 4 && path[0] == "v1" && path[1] == "exams" && path[3] == "attachments";
  if (submissions_of_exam && !get && verb != bhttp::verb::post) return not_allowed("GET, HEAD, POST");
  if ((one_submission || one_exam || events || dead_letters || overview_route || attachments) && !get)
    return not_allowed("GET, HEAD");
  if ((replay || uploads) && verb != bhttp::verb::post) return not_allowed("POST");
  // Per address before anything else, bad tokens included: a bot probing with forged
  // tokens is limited like anyone else.
  if (!path.empty() && path[0] == "v1" && per_ip_.enabled()) {
    if (auto wait = per_ip_.take(info.remote.to_string()); wait.count() > 0)
      return fail(req, respond, status::too_many_requests, "rate_limited", "too many requests from this address",
                  std::chrono::ceil<std::chrono::seconds>(wait));
  }
  if (submissions_of_exam && !get) return post_submission(std::string(path[2]), std::move(req), respond);
  // The reads wait on the database: off the connection threads, which accept submissions.
  if (submissions_of_exam)
    return off_loop(std::move(req), respond, [this, id = std::string(path[2])](request rq, responder& rs) {
      list_submissions(id, std::move(rq), rs);
    });
  // Status reads are gathered into batches on the read threads (record_batcher.hpp).
  if (one_submission) return get_submission(std::string(path[2]), std::move(req), respond);
  if (events) return follow_submission(std::string(path[2]), std::move(req), respond);
  if (one_exam) return get_exam(std::string(path[2]), std::move(req), respond);
  if (dead_letters) return list_dead_letters(std::string(path[2]), std::move(req), respond);
  if (overview_route) return get_overview(std::move(req), respond);
  if (replay) return replay_dead_letter(std::string(path[2]), std::string(path[4]), std::move(req), respond);
  if (uploads) return post_upload(std::string(path[2]), std::move(req), respond);
  if (attachments) return get_attachment(std::string(path[2]), std::move(req), respond);
  fail(req, respond, status::not_found, "not_found", "no such route");
}

void app::post_submission(const std::string& exam_id, request req, responder& respond) {
  auto who = authenticate(req, respond);
  if (!who) return;
  if (rate_limited(*who, req, respond)) return;
  const exam_info* e = exams_.find(exam_id);
  if (!e) return fail(req, respond, status::not_found, "exam_not_found", unknown_exam(exam_id));
  if (who->role != role::student)
    return fail(req, respond, status::forbidden, "forbidden", "only students submit answers");
  if (!e->allows(who->sub))
    return fail(req, respond, status::forbidden, "forbidden", "this exam is not open to " + who->sub);
  if (!e->open_at(ingest::clock::now()))
    return fail(req, respond, status::forbidden, "exam_not_open",
                "the exam opens at " + ingest::format_time(e->opens_at));
  if (!is_json_media_type(req[bhttp::field::content_type]))
    return fail(req, respond, status::unsupported_media_type, "unsupported_media_type",
                "Content-Type must be application/json");
  const auto key = req["Idempotency-Key"];
  if (!ingest::valid_idempotency_key(key))
    return fail(req, respond, status::bad_request, "invalid_idempotency_key",
                "an Idempotency-Key header of 1-255 printable ASCII characters is required");
  auto parsed = parse_answers(req.body(), options_.max_answers);
  if (!parsed.error.empty()) return fail(req, respond, status::bad_request, "invalid_body", parsed.error);
  // Files are checked by their reference alone: no storage call on the accept path.
  if (!parsed.attachments.empty() && !backend_.takes_attachments())
    return fail(req, respond, status::bad_request, "invalid_attachments",
                "this server takes no attachments (it grades at once and checks no files)");
  if (auto why = check_attachments(parsed.attachments, e->attachments, upload_keys_, exam_id, who->sub); !why.empty())
    return fail(req, respond, status::bad_request, "invalid_attachments", why);
  // Answers only to this exam's questions (none at all is a blank submission, allowed).
  for (const auto& [question, answer] : parsed.answers)
    if (!e->answer_key.contains(question))
      return fail(req, respond, status::bad_request, "invalid_body",
                  "answers.\"" + question + "\": this exam has no such question");
  if (draining_)
    return fail(req, respond, status::service_unavailable, "shutting_down", "the server is shutting down",
                std::chrono::seconds(5));
  submission s{exam_id, who->sub, std::string(key), std::move(parsed.answers), std::move(parsed.attachments)};
  // The responder waits in a slot the outcome's completion shares: an exception the
  // backend throws before it hands the completion on leaves it here for handle().
  auto slot = std::make_shared<responder>(std::move(respond));
  const ingest::http::reply_to to(req);
  try {
    backend_.submit(*e, std::move(s), slot->executor(),
                    [this, to, slot](submit_outcome outcome) { answer(to, *slot, outcome); });
  } catch (...) {
    if (*slot) respond = std::move(*slot);
    throw;
  }
}

void app::answer(ingest::http::reply_to to, responder& respond, const submit_outcome& o) {
  using kind = submit_outcome::kind;
  switch (o.what) {
    case kind::queued:
    case kind::stored:
    case kind::repeat: {
      const auto s = o.what == kind::queued ? status::accepted : o.what == kind::stored ? status::created : status::ok;
      if (o.what != kind::repeat) accepted_.fetch_add(1, std::memory_order_relaxed);
      return respond(ingest::http::json_response(to, s, receipt_json(o.receipt_id, o.accepted_at, o.status)));
    }
    case kind::key_reused:
      return fail(to, respond, status::unprocessable_entity, "idempotency_key_reused",
                  "this Idempotency-Key was used with a different body");
    case kind::refused: {
      // 503 with Retry-After for every reason to retry later, 403 for the deadline,
      // 409 for a key still being stored (ingest::http::map_error).
      const auto m = ingest::http::map_error(o.error);
      reject(m.error);
      if (o.detail.empty()) return respond(ingest::http::error_response(to, o.error));
      return respond(ingest::http::error_response(to, m.code, m.error, o.detail, m.retry_after));
    }
  }
}

bool app::rate_limited(const principal& who, const request& req, responder& respond) {
  if (!per_student_.enabled()) return false;
  const auto wait = per_student_.take(who.sub);
  if (wait.count() <= 0) return false;
  fail(req, respond, status::too_many_requests, "rate_limited", "too many requests for this account",
       std::chrono::ceil<std::chrono::seconds>(wait));
  return true;
}

std::map<std::string, std::string> app::query_of(const request& req) {
  const std::string_view target = req.target();
  const auto qmark = target.find('?');
  return parse_query(qmark == std::string_view::npos ? std::string_view{} : target.substr(qmark + 1));
}

bool app::json_body(const request& req) { return is_json_media_type(req[bhttp::field::content_type]); }

std::optional<app::page_query> app::page_of(const request& req, responder& respond) {
  const auto query = query_of(req);
  page_query page;
  if (auto it = query.find("limit"); it != query.end()) {
    const auto& v = it->second;
    if (std::from_chars(v.data(), v.data() + v.size(), page.limit).ec != std::errc{} || page.limit == 0 ||
        page.limit > options_.max_page) {
      fail(req, respond, status::bad_request, "invalid_query", "limit must be 1-" + std::to_string(options_.max_page));
      return std::nullopt;
    }
  }
  if (auto it = query.find("after"); it != query.end()) page.after = it->second;
  return page;
}

void app::list_submissions(const std::string& exam_id, request req, responder& respond) {
  auto who = authenticate(req, respond);
  if (!who) return;
  if (!exams_.find(exam_id)) return fail(req, respond, status::not_found, "exam_not_found", unknown_exam(exam_id));
  if (who->role != role::teacher)
    return fail(req, respond, status::forbidden, "forbidden", "only teachers list an exam's submissions");
  const auto page = page_of(req, respond);
  if (!page) return;
  const auto limit = page->limit;
  const auto rows = store_.list(exam_id, page->after, limit);
  boost::json::array items;
  for (const auto& row : rows) items.push_back(boost::json::parse(submission_json(row)));
  boost::json::object o;
  o["items"] = std::move(items);
  if (rows.size() == limit)
    o["next_after"] = rows.back().receipt_id;
  else
    o["next_after"] = nullptr;
  respond(ingest::http::json_response(req, status::ok, to_plain_json(o)));
}

}  // namespace exam
