#include "direct.hpp"

#include <boost/asio/post.hpp>

#include "ingest/envelope.hpp"
#include "ingest/fingerprint.hpp"
#include "ingest/sqlite/database.hpp"

namespace exam {

struct direct_backend::connection {
  explicit connection(const std::string& path, std::chrono::milliseconds busy)
      : db(path, {.busy_timeout = busy}),
        writer((create_schema(db), db)),
        find(db,
             "SELECT receipt_id, accepted_at, fingerprint, status FROM submissions"
             " WHERE exam_id = ?1 AND student_id = ?2 AND idempotency_key = ?3") {}
  ingest::sqlite::database db;
  store_writer writer;
  ingest::sqlite::statement find;
};

direct_backend::direct_backend(const std::string& db_path, direct_settings settings)
    : settings_(settings), path_(db_path), pool_(settings.pool_size) {
  for (std::size_t i = 0; i < settings_.pool_size; ++i)
    idle_.push_back(std::make_unique<connection>(path_, settings_.busy_timeout));
}

direct_backend::~direct_backend() {
  stop();
}

void direct_backend::stop() {
  pool_.join();
}

std::unique_ptr<direct_backend::connection> direct_backend::acquire() {
  std::lock_guard lock(mutex_);
  auto c = std::move(idle_.back());
  idle_.pop_back();
  return c;
}

void direct_backend::release(std::unique_ptr<connection> c) {
  std::lock_guard lock(mutex_);
  idle_.push_back(std::move(c));
}

void direct_backend::submit(const exam_info& exam, submission s, boost::asio::any_io_executor, submit_done done) {
  const auto queued_at = std::chrono::steady_clock::now();
  ++counters_.waiting;
  // pool_size threads, pool_size connections: a task always finds one idle.
  boost::asio::post(pool_, [this, &exam, s = std::move(s), done = std::move(done), queued_at]() mutable {
    --counters_.waiting;
    if (std::chrono::steady_clock::now() - queued_at > settings_.pool_timeout) {
      ++counters_.pool_timeouts;
      return done(submit_outcome::refusal(ingest::errc::backend_unavailable, "no database connection free in time"));
    }
    auto c = acquire();
    submit_outcome outcome;
    try {
      outcome = store(*c, exam, s);
    } catch (const std::exception& e) {
      c->find.reset();
      ++counters_.db_errors;
      outcome = submit_outcome::refusal(ingest::errc::storage_error, std::string("database: ") + e.what());
    }
    release(std::move(c));
    done(std::move(outcome));
  });
}

submit_outcome direct_backend::store(connection& c, const exam_info& exam, const submission& s) {
  using kind = submit_outcome::kind;
  const std::string payload = s.to_json();
  const std::string fp = ingest::fingerprint(payload);
  ingest::sqlite::transaction tx(c.db);  // BEGIN IMMEDIATE: waits for the write lock
  auto& find = c.find;
  find.bind(1, s.exam_id).bind(2, s.student_id).bind(3, s.idempotency_key);
  if (find.step()) {
    auto found = submit_outcome::receipt(kind::repeat, find.column_text(0), find.column_text(1), find.column_text(3));
    const auto old_fp = find.column_text(2);
    find.reset();
    tx.rollback();
    ++counters_.duplicates;
    if (old_fp != fp) return submit_outcome{.what = kind::key_reused};
    return found;
  }
  find.reset();
  const auto now = ingest::clock::now();
  if (exam.late(now)) {
    tx.rollback();
    return submit_outcome::refusal(ingest::errc::deadline_passed, "the deadline has passed");
  }
  const auto row = graded_row(exam, s, ingest::make_receipt_id(), now, fp, now);
  c.writer.insert(row);  // the submission and the exam_stats hot row
  tx.commit();
  ++counters_.committed;
  return submit_outcome::receipt(kind::stored, row.receipt_id, row.accepted_at, row.status);
}

std::string direct_counters::text() const {
  return "# TYPE direct_committed_total counter\ndirect_committed_total " + std::to_string(committed) +
         "\n# TYPE direct_duplicates_total counter\ndirect_duplicates_total " + std::to_string(duplicates) +
         "\n# TYPE direct_pool_timeouts_total counter\ndirect_pool_timeouts_total " + std::to_string(pool_timeouts) +
         "\n# TYPE direct_db_errors_total counter\ndirect_db_errors_total " + std::to_string(db_errors) +
         "\n# TYPE direct_waiting gauge\ndirect_waiting " + std::to_string(waiting) + "\n";
}

std::string direct_backend::metrics() const {
  return counters_.text();
}

}  // namespace exam
