#include "queues.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <cstdio>

#include "ingest/fingerprint.hpp"
#include "ingest/memory_queue.hpp"
#include "ingest/sqlite/queue.hpp"
#ifdef EXAM_HAVE_NATS
#include "ingest/nats/queue.hpp"
#endif
#ifdef EXAM_HAVE_SQS
#include "ingest/sqs/queue.hpp"
#endif

namespace exam {

using ingest::http::status;

namespace {

std::unique_ptr<ingest::durable_queue> make_queue(const std::string& url, ingest::durable_queue::executor_type ex) {
  if (url == "memory") return std::make_unique<ingest::memory_queue>(ex);
  if (url.starts_with("sqlite://")) {
    auto options = ingest::sqlite::queue_options::from_url(url);
    return std::make_unique<ingest::sqlite::queue>(ex, options);
  }
  if (url.starts_with("nats://") || url.starts_with("tls://")) {
#ifdef EXAM_HAVE_NATS
    return std::make_unique<ingest::nats::queue>(ex, ingest::nats::queue_options::from_url(url));
#else
    throw ingest::error(ingest::errc::invalid_config, "this build has no NATS backend (INGEST_WITH_NATS=OFF)");
#endif
  }
  if (url.starts_with("sqs+http://") || url.starts_with("sqs+https://")) {
#ifdef EXAM_HAVE_SQS
    return std::make_unique<ingest::sqs::queue>(ex, ingest::sqs::queue_options::from_url(url));
#else
    throw ingest::error(ingest::errc::invalid_config, "this build has no SQS backend (INGEST_WITH_SQS=OFF)");
#endif
  }
  throw ingest::error(ingest::errc::invalid_config,
                      "unknown queue URL (sqlite://FILE, nats://HOST:PORT, tls://HOST:PORT, "
                      "sqs+http[s]://HOST:PORT/ACCOUNT/QUEUE or memory)");
}

// What to look at when a queue of this kind cannot be opened.
const char* what_to_check(const std::string& url) {
  if (url.starts_with("sqlite://"))
    return "that the directory exists and is writable, the disk has room, and the file is an ingest queue";
  if (url.starts_with("nats://") || url.starts_with("tls://"))
    return "that nats-server runs with JetStream (-js) at that address, the credentials, and the stream's settings";
  if (url.starts_with("sqs+"))
    return "that the endpoint answers, the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE), "
           "the region and the queue's attributes";
  return "the URL";
}

}  // namespace

std::string redact_url(const std::string& url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const auto start = scheme + 3;
  const auto end = url.find_first_of("/?", start);
  const auto at = url.rfind('@', end == std::string::npos ? url.size() : end);
  if (at == std::string::npos || at < start) return url;
  const auto colon = url.find(':', start);
  const bool user_and_password = colon != std::string::npos && colon < at;
  return url.substr(0, start) + (user_and_password ? url.substr(start, colon - start) + ":***" : "***") +
         url.substr(at);
}

std::unique_ptr<ingest::durable_queue> open_queue(const std::string& url, ingest::durable_queue::executor_type ex) {
  try {
    return make_queue(url, std::move(ex));
  } catch (const ingest::error& e) {
    throw std::runtime_error("cannot open the queue " + redact_url(url) + ": " + e.what() + "; check " +
                             what_to_check(url));
  }
}

queue_backend::queue_backend(ingest::durable_queue& queue, ingest::producer& producer, store_pool& store,
                             std::shared_ptr<ingest::pipeline_metrics> metrics, queue_backend_options options)
    : options_(options),
      queue_(queue),
      producer_(producer),
      store_(store),
      metrics_(metrics),
      probe_(std::make_shared<probe_state>(queue, std::move(metrics))) {}

queue_backend::~queue_backend() {
  stop();
}

void queue_backend::start() {
  probe(probe_);
}

void queue_backend::stop() {
  probe_->stopped = true;
  boost::asio::post(probe_->timer.get_executor(), [p = probe_] { p->timer.cancel(); });
}

// Readiness and the backlog gauge, refreshed once a second from the queue's stats.
void queue_backend::probe(std::shared_ptr<probe_state> p) {
  if (p->stopped) return;
  p->queue.async_stats([p](ingest::error_code ec, ingest::queue_stats st) {
    p->ready = !ec;
    if (!ec && p->metrics) p->metrics->backlog.set(static_cast<std::int64_t>(st.pending));
    if (p->stopped) return;
    p->timer.expires_after(std::chrono::seconds(1));
    p->timer.async_wait([p](boost::system::error_code wec) {
      if (!wec) probe(p);
    });
  });
}

void queue_backend::submit(const exam_info& exam, submission s, const ingest::http::request& req,
                           ingest::http::responder& respond) {
  std::string payload = s.to_json();
  // A retry of a submission already written to exam.db after the queue forgot its key
  // gets the stored receipt. While every submission to this exam is younger than the
  // queue's dedup window (the exam opened within it), the queue alone answers repeats
  // and this read is skipped.
  const auto window = queue_.features().dedup_window;
  const bool queue_remembers =
      std::chrono::duration_cast<std::chrono::milliseconds>(ingest::clock::now() - exam.opens_at) < window;
  if (auto row = queue_remembers ? std::nullopt : store_.with([&](store_reader& r) {
        return r.by_key(s.exam_id, s.student_id, s.idempotency_key);
      })) {
    if (row->fingerprint != ingest::fingerprint(payload))
      return respond(ingest::http::error_response(req, status::unprocessable_entity, "idempotency_key_reused",
                                                  "this Idempotency-Key was used with a different body"));
    return respond(ingest::http::json_response(req, status::ok,
                                               app::receipt_json(row->receipt_id, row->accepted_at, row->status)));
  }
  // Only what the answer needs travels with the completion.
  auto job = std::make_shared<publish_job>(publish_job{
      ingest::submission{.idempotency_key = s.queue_key(),
                         .subject = "exam." + s.exam_id,
                         .payload = std::move(payload),
                         .headers = {},
                         .not_after = exam.deadline + exam.grace},
      ingest::http::reply_to(req),
      std::chrono::steady_clock::now() + options_.in_flight_wait, std::move(respond)});
  publish(std::move(job));
}

void queue_backend::publish(std::shared_ptr<publish_job> job) {
  auto item = job->item;  // kept for a second attempt
  // The answer is made on the connection's strand, where it is written.
  auto on = job->respond.executor();
  if (!on) on = queue_.get_executor();
  producer_.async_submit(std::move(item), boost::asio::bind_executor(on, [this, job](ingest::error_code ec,
                                                                                     ingest::receipt r) mutable {
    // A double click: the first request with this key is still being stored. Wait for
    // it and answer with its receipt rather than send the browser a 409.
    if (ec == ingest::errc::in_flight && std::chrono::steady_clock::now() < job->join_until) {
      auto timer = std::make_shared<boost::asio::steady_timer>(queue_.get_executor(), std::chrono::milliseconds(2));
      timer->async_wait([this, job, timer](boost::system::error_code) { publish(job); });
      return;
    }
    auto& respond = job->respond;
    // Readiness follows the accept path at once (the stats probe runs once a second
    // and may itself wait on a dead backend): a backend that failed a publish is not
    // ready until one succeeds or the probe reaches it again.
    if (ec == ingest::errc::backend_unavailable || ec == ingest::errc::storage_error ||
        ec == ingest::errc::publish_timeout)
      probe_->ready = false;
    else if (!ec && !probe_->ready.load(std::memory_order_relaxed))
      probe_->ready = true;  // written only on a change: no shared-line store per accept
    if (ec) {
      if (ec == ingest::errc::conflict)
        return respond(ingest::http::error_response(job->to, status::unprocessable_entity, "idempotency_key_reused",
                                                    "this Idempotency-Key was used with a different body"));
      return respond(ingest::http::error_response(job->to, ec));
    }
    // (The deadline is the submission's not_after: the queue or the producer refused a
    // late one with deadline_passed, a 403, above.)
    // A repeat answers with where the submission is now (graded, perhaps), read from
    // exam.db on the repeat path only.
    std::string now_status = "received";
    if (r.duplicate) {
      try {
        if (auto row = store_.with([&](store_reader& rd) { return rd.by_receipt(r.id); })) now_status = row->status;
      } catch (const std::exception&) {
        // exam.db unreadable for the moment: the receipt stands, with the status it had.
      }
    }
    respond(ingest::http::json_response(job->to, r.duplicate ? status::ok : status::accepted,
                                        app::receipt_json(r.id, ingest::format_time(r.accepted_at), now_status)));
  }));
}

void queue_backend::find_unprocessed(const std::string& receipt_id,
                                     std::function<void(ingest::error_code, std::optional<unprocessed>)> done) {
  queue_.async_find(receipt_id, [done = std::move(done)](ingest::error_code ec, ingest::message_status st) {
    if (ec == ingest::errc::not_found || ec == ingest::errc::not_supported) return done({}, std::nullopt);
    if (ec) return done(ec, std::nullopt);
    auto what = submission::from_json(st.message.payload);
    if (!what) return done({}, std::nullopt);
    done({}, unprocessed{std::move(*what), ingest::format_time(st.message.accepted_at), st.state, st.reason});
  });
}

std::string queue_backend::metrics() const {
  return metrics_ ? ingest::to_prometheus(*metrics_, "exam_") : std::string{};
}

grading_consumer::grading_consumer(ingest::durable_queue& queue, const std::string& db_path, const catalog& exams,
                                   consumer_settings settings, std::shared_ptr<ingest::pipeline_metrics> metrics,
                                   std::shared_ptr<ingest::logger> log)
    : db_(db_path), counters_(std::make_shared<grading_counters>()) {
  ingest::consumer_options options{.workers = 1,
                                   .max_batch = settings.max_batch,
                                   .linger = settings.linger,
                                   .max_rate = settings.rate,
                                   .metrics = std::move(metrics),
                                   .log = std::move(log)};
  options.retry.max_attempts = settings.max_attempts;
  options.dead_letter.alert = [](const ingest::dead_letter& d) {
    std::fprintf(stderr, "ALERT dead letter receipt=%s key=%s reason=%s attempts=%u error=%s\n",
                 d.message.receipt_id.c_str(), d.message.idempotency_key.c_str(), d.reason.c_str(), d.attempts,
                 d.last_error.c_str());
  };
  consumer_ = std::make_unique<ingest::batching_consumer>(queue, grading_handler(db_, exams, counters_), options);
}

void grading_consumer::drain() {
  consumer_->drain();
}

}  // namespace exam
