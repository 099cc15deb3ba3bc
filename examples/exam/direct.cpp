#include "direct.hpp"

#include <boost/asio/post.hpp>

#include "ingest/envelope.hpp"
#include "ingest/fingerprint.hpp"
#include "ingest/sqlite/database.hpp"

namespace exam {

using ingest::http::status;

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

void direct_backend::submit(const exam_info& exam, submission s, const ingest::http::request& req,
                            ingest::http::responder& respond) {
  const auto queued_at = std::chrono::steady_clock::now();
  ++waiting_;
  const ingest::http::reply_to to(req);
  // pool_size threads, pool_size connections: a task always finds one idle.
  boost::asio::post(pool_, [this, &exam, s = std::move(s), to, respond = std::move(respond),
                            queued_at]() mutable {
    --waiting_;
    if (std::chrono::steady_clock::now() - queued_at > settings_.pool_timeout) {
      ++pool_timeouts_;
      return respond(ingest::http::error_response(to, status::service_unavailable, "unavailable",
                                                  "no database connection free in time", std::chrono::seconds(2)));
    }
    auto c = acquire();
    const std::string payload = s.to_json();
    const std::string fp = ingest::fingerprint(payload);
    try {
      ingest::sqlite::transaction tx(c->db);  // BEGIN IMMEDIATE: waits for the write lock
      auto& find = c->find;
      find.bind(1, s.exam_id).bind(2, s.student_id).bind(3, s.idempotency_key);
      if (find.step()) {
        const auto id = find.column_text(0), at = find.column_text(1), old_fp = find.column_text(2),
                   st = find.column_text(3);
        find.reset();
        tx.rollback();
        release(std::move(c));
        ++duplicates_;
        if (old_fp != fp)
          return respond(ingest::http::error_response(to, status::unprocessable_entity, "idempotency_key_reused",
                                                      "this Idempotency-Key was used with a different body"));
        return respond(ingest::http::json_response(to, status::ok, app::receipt_json(id, at, st)));
      }
      find.reset();
      const auto now = ingest::clock::now();
      if (exam.late(now)) {
        tx.rollback();
        release(std::move(c));
        return respond(ingest::http::error_response(to, status::forbidden, "deadline_passed",
                                                    "the deadline has passed"));
      }
      stored_submission row;
      row.receipt_id = ingest::make_receipt_id();
      row.idempotency_key = s.idempotency_key;
      row.exam_id = s.exam_id;
      row.student_id = s.student_id;
      row.accepted_at = ingest::format_time(now);
      row.answers_json = s.answers_json();
      row.fingerprint = fp;
      row.status = "graded";
      row.score = exam.grade(s.answers);
      row.graded_at = row.accepted_at;
      c->writer.insert(row);  // the submission and the exam_stats hot row
      tx.commit();
      release(std::move(c));
      ++committed_;
      respond(ingest::http::json_response(to, status::created,
                                          app::receipt_json(row.receipt_id, row.accepted_at, row.status)));
    } catch (const std::exception& e) {
      if (c) {
        c->find.reset();
        release(std::move(c));
      }
      ++db_errors_;
      respond(ingest::http::error_response(to, status::service_unavailable, "unavailable",
                                           std::string("database: ") + e.what(), std::chrono::seconds(2)));
    }
  });
}

std::string direct_backend::metrics() const {
  return "# TYPE direct_committed_total counter\ndirect_committed_total " + std::to_string(committed_) +
         "\n# TYPE direct_duplicates_total counter\ndirect_duplicates_total " + std::to_string(duplicates_) +
         "\n# TYPE direct_pool_timeouts_total counter\ndirect_pool_timeouts_total " + std::to_string(pool_timeouts_) +
         "\n# TYPE direct_db_errors_total counter\ndirect_db_errors_total " + std::to_string(db_errors_) +
         "\n# TYPE direct_waiting gauge\ndirect_waiting " + std::to_string(waiting_) + "\n";
}

}  // namespace exam
