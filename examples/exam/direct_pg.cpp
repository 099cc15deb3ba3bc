#include "direct_pg.hpp"

#include <boost/asio/post.hpp>

#include "ingest/envelope.hpp"
#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"
#include "pg_store.hpp"

namespace exam {
namespace pg = ingest::postgres;

pg_direct_backend::pg_direct_backend(const std::string& url, direct_settings settings)
    : settings_(settings),
      pool_(url, {.size = settings.pool_size,
                  .acquire_timeout = settings.pool_timeout,
                  .connection = {.application_name = "direct_server"}}),
      threads_(settings.pool_size) {
  auto db = pool_.acquire();
  migrate_schema(*db);
}

pg_direct_backend::~pg_direct_backend() {
  stop();
}

void pg_direct_backend::stop() {
  threads_.join();
}

void pg_direct_backend::submit(const exam_info& exam, submission s, boost::asio::any_io_executor, submit_done done) {
  const auto queued_at = std::chrono::steady_clock::now();
  ++counters_.waiting;
  // pool_size threads, pool_size connections: a task finds a connection at once, but
  // may wait for a thread; one that waited past pool_timeout is answered 503.
  boost::asio::post(threads_, [this, &exam, s = std::move(s), done = std::move(done), queued_at]() mutable {
    --counters_.waiting;
    if (std::chrono::steady_clock::now() - queued_at > settings_.pool_timeout) {
      ++counters_.pool_timeouts;
      return done(submit_outcome::refusal(ingest::errc::backend_unavailable, "no database connection free in time"));
    }
    submit_outcome outcome;
    try {
      auto db = pool_.acquire();
      outcome = store(*db, exam, s);
    } catch (const ingest::error& e) {
      ++counters_.db_errors;
      const bool retry_later = pg::is_transient(e.code()) || e.code() == ingest::errc::backpressure;
      outcome = submit_outcome::refusal(retry_later ? ingest::errc::backend_unavailable : ingest::errc::storage_error,
                                        std::string("database: ") + e.what());
    } catch (const std::exception& e) {
      ++counters_.db_errors;
      outcome = submit_outcome::refusal(ingest::errc::storage_error, std::string("database: ") + e.what());
    }
    done(std::move(outcome));
  });
}

submit_outcome pg_direct_backend::store(pg::connection& db, const exam_info& exam, const submission& s) {
  using kind = submit_outcome::kind;
  db.prepare("direct_find",
             "SELECT receipt_id, accepted_at, fingerprint, status FROM submissions"
             " WHERE exam_id = $1 AND student_id = $2 AND idempotency_key = $3");
  const std::string payload = s.to_json();
  const std::string fp = ingest::fingerprint(payload);
  auto repeat = [&](const pg::result& found) {
    ++counters_.duplicates;
    if (found.text(0, 2) != fp) return submit_outcome{.what = kind::key_reused};
    return submit_outcome::receipt(kind::repeat, std::string(found.text(0, 0)), std::string(found.text(0, 1)),
                                   std::string(found.text(0, 3)));
  };
  if (const auto found = db.exec_prepared("direct_find", {s.exam_id, s.student_id, s.idempotency_key}); found.rows())
    return repeat(found);
  pg::transaction tx(db);
  // The exam's hot row first: the accept time is taken once this request's turn has
  // come, as the SQLite baseline takes it once it holds the write lock, so a request
  // that waited past the deadline is refused rather than stored with an earlier time.
  db.prepare("direct_lock_exam",
             "INSERT INTO exam_stats(exam_id, submissions) VALUES ($1, 0) "
             "ON CONFLICT (exam_id) DO UPDATE SET submissions = exam_stats.submissions");
  db.exec_prepared("direct_lock_exam", {s.exam_id});
  const auto now = ingest::clock::now();
  if (exam.late(now)) return submit_outcome::refusal(ingest::errc::deadline_passed, "the deadline has passed");
  const auto row = graded_row(exam, s, ingest::make_receipt_id(), now, fp, now);
  try {
    write_graded(db, {row});  // the submission, and its count on the exam's row
  } catch (const ingest::error& e) {
    // A double click committed first: answer with its receipt.
    if (pg::sqlstate(e.code()) != "23505") throw;
    tx.rollback();
    return repeat(db.exec_prepared("direct_find", {s.exam_id, s.student_id, s.idempotency_key}));
  }
  tx.commit();
  ++counters_.committed;
  return submit_outcome::receipt(kind::stored, row.receipt_id, row.accepted_at, row.status);
}

std::string pg_direct_backend::metrics() const {
  return counters_.text();
}

}  // namespace exam
