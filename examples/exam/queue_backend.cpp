#include "queue_backend.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>

#include "ingest/fingerprint.hpp"
#include "ledger.hpp"

namespace exam {

using kind = submit_outcome::kind;

queue_backend::queue_backend(ingest::durable_queue& queue, ingest::producer& producer, submission_reader& store,
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
    {
      std::lock_guard lock(p->mutex);
      p->counts = ec ? std::nullopt : std::optional(st);
    }
    if (p->stopped) return;
    p->timer.expires_after(std::chrono::seconds(1));
    p->timer.async_wait([p](boost::system::error_code wec) {
      if (!wec) probe(p);
    });
  });
}

std::optional<ingest::queue_stats> queue_backend::queue_counts() const {
  std::lock_guard lock(probe_->mutex);
  return probe_->counts;
}

void queue_backend::dead_letters(const std::string& after, std::size_t limit,
                                 std::function<void(ingest::error_code, std::vector<ingest::dead_letter>)> done) {
  queue_.async_dead_letters(after, limit, std::move(done));
}

void queue_backend::submit(const exam_info& exam, submission s, boost::asio::any_io_executor answer_on,
                           submit_done done) {
  std::string payload = s.to_json();
  // A retry of a submission already written to exam.db after the queue forgot its key
  // gets the stored receipt. While every submission to this exam is younger than the
  // queue's dedup window (the exam opened within it), the queue alone answers repeats
  // and this read is skipped.
  const auto window = queue_.features().dedup_window;
  const bool queue_remembers =
      !options_.beside_direct &&
      std::chrono::duration_cast<std::chrono::milliseconds>(ingest::clock::now() - exam.opens_at) < window;
  if (auto row = queue_remembers ? std::nullopt : store_.by_key(s.exam_id, s.student_id, s.idempotency_key)) {
    if (row->fingerprint != ingest::fingerprint(payload)) return done(submit_outcome{.what = kind::key_reused});
    return done(submit_outcome::receipt(kind::repeat, row->receipt_id, row->accepted_at, row->status));
  }
  // The receipt id is signed over the exam and the student when the queue signs
  // receipts: any server answers for it before the graders write it.
  ingest::submission item{.idempotency_key = s.queue_key(),
                          .subject = "exam." + s.exam_id,
                          .payload = std::move(payload),
                          .headers = {},
                          .not_after = exam.deadline + exam.grace,
                          .receipt_claims = receipt_claims(s.exam_id, s.student_id)};
  if (options_.beside_direct) item.headers.emplace_back(path_header, "queue");
  // Only what the answer needs travels with the completion.
  auto job = std::make_shared<publish_job>(publish_job{std::move(item),
                                                       std::chrono::steady_clock::now() + options_.in_flight_wait,
                                                       std::move(answer_on), std::move(done)});
  publish(std::move(job));
}

void queue_backend::publish(std::shared_ptr<publish_job> job) {
  auto item = job->item;  // kept for a second attempt
  // The outcome is reported on the connection's strand, where the answer is written.
  auto on = job->answer_on ? job->answer_on : queue_.get_executor();
  producer_.async_submit(
      std::move(item), boost::asio::bind_executor(on, [this, job](ingest::error_code ec, ingest::receipt r) mutable {
        // A double click: the first request with this key is still being stored. Wait for
        // it and answer with its receipt rather than refuse it in_flight.
        if (ec == ingest::errc::in_flight && std::chrono::steady_clock::now() < job->join_until) {
          auto timer = std::make_shared<boost::asio::steady_timer>(queue_.get_executor(), std::chrono::milliseconds(2));
          timer->async_wait([this, job, timer](boost::system::error_code) { publish(job); });
          return;
        }
        job->done(outcome_of(ec, r));
      }));
}

submit_outcome queue_backend::outcome_of(ingest::error_code ec, const ingest::receipt& r) {
  // Readiness follows the accept path at once (the stats probe runs once a second
  // and may itself wait on a dead backend): a backend that failed a publish is not
  // ready until one succeeds or the probe reaches it again.
  if (ec == ingest::errc::backend_unavailable || ec == ingest::errc::storage_error ||
      ec == ingest::errc::publish_timeout)
    probe_->ready = false;
  else if (!ec && !probe_->ready.load(std::memory_order_relaxed))
    probe_->ready = true;  // written only on a change: no shared-line store per accept
  if (ec == ingest::errc::conflict) return submit_outcome{.what = kind::key_reused};
  // (The deadline is the submission's not_after: the queue or the producer refused a
  // late one with deadline_passed.)
  if (ec) return submit_outcome::refusal(ec);
  if (!r.duplicate) return submit_outcome::receipt(kind::queued, r.id, ingest::format_time(r.accepted_at), "received");
  // A repeat reports where the submission is now (graded, perhaps), read from exam.db
  // on the repeat path only.
  std::string now_status = "received";
  try {
    if (auto row = store_.by_receipt(r.id)) now_status = row->status;
  } catch (const std::exception&) {
    // exam.db unreadable for the moment: the receipt stands, with the status it had.
  }
  return submit_outcome::receipt(kind::repeat, r.id, ingest::format_time(r.accepted_at), now_status);
}

void queue_backend::find_unprocessed(const std::string& receipt_id,
                                     std::function<void(ingest::error_code, std::optional<unprocessed>)> done) {
  queue_.async_find(receipt_id, [done = std::move(done)](ingest::error_code ec, ingest::message_status st) {
    if (ec == ingest::errc::not_found) return done({}, std::nullopt);
    if (ec) return done(ec, std::nullopt);
    auto what = submission::from_json(st.message.payload);
    if (!what) return done({}, std::nullopt);
    done({}, unprocessed{std::move(*what), ingest::format_time(st.message.accepted_at), st.state, st.reason});
  });
}

void queue_backend::replay_dead_letter(const std::string& receipt_id,
                                       std::function<void(ingest::error_code, std::size_t)> done) {
  queue_.async_replay(std::vector<std::string>{receipt_id},
                      [done = std::move(done)](ingest::error_code ec, std::size_t n) { done(ec, n); });
}

std::string queue_backend::metrics() const {
  return metrics_ ? ingest::to_prometheus(*metrics_, "exam_") : std::string{};
}

}  // namespace exam
