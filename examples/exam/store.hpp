#pragma once
// exam.db: the graded submissions and the per-exam counters (schema in examples/README.md).

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "exams.hpp"
#include "ingest/sqlite/database.hpp"
#include "submission.hpp"

namespace exam {

struct stored_submission {
  std::string receipt_id;
  std::string idempotency_key;
  std::string exam_id;
  std::string student_id;
  std::string accepted_at;  // RFC 3339 UTC, milliseconds
  std::string answers_json;
  std::string fingerprint;
  std::string status;  // "received" | "processing" | "graded"
  std::optional<double> score;
  std::optional<std::string> graded_at;
  std::string attachments_json{};  // the files it names (JSON array, as submitted); empty when none
};

// Where a submission without a row stands, as the graders noted it in PostgreSQL
// (pg_store.hpp): held by a grader right now, or dead-lettered.
struct progress_note {
  std::string state;  // "processing" | "dead_lettered"
  // Dead letters only:
  std::string exam_id;
  std::string student_id;
  std::string accepted_at;
  std::string reason;
  std::string last_error;
  std::int64_t attempts = 0;
  std::string dead_lettered_at;
};

// What the records say of one receipt: its row (the kept row, for a receipt of a copy
// not kept), else the graders' note; both empty when they know nothing of it.
struct receipt_record {
  std::optional<stored_submission> row;
  std::optional<progress_note> note;
};

// Creates the tables when missing.
void create_schema(ingest::sqlite::database& db);

// Where the servers read submissions (exam.db, or PostgreSQL: pg_store.hpp).
// Thread-safe: request threads call it at once.
class submission_reader {
 public:
  virtual ~submission_reader() = default;
  virtual std::optional<stored_submission> by_receipt(const std::string& receipt_id) = 0;
  virtual std::optional<stored_submission> by_key(const std::string& exam_id, const std::string& student_id,
                                                  const std::string& key) = 0;
  virtual std::vector<stored_submission> list(const std::string& exam_id, const std::string& after,
                                              std::size_t limit) = 0;
  // The graders' note on a receipt without a row: nullopt when there is none (or the
  // store keeps no notes: exam.db).
  virtual std::optional<progress_note> progress(const std::string& receipt_id) {
    (void)receipt_id;
    return std::nullopt;
  }
  // The records of several receipts at once, in the order of `receipt_ids`: one query
  // for all of them where the store can (PostgreSQL), else by_receipt and progress for
  // each.
  virtual std::vector<receipt_record> records(std::span<const std::string> receipt_ids);
  // A dead letter was replayed (or purged) at `at` (RFC 3339): its note goes, unless a
  // grader wrote a newer one since (the replayed copy failed again).
  virtual void forget_dead_letter(const std::string& receipt_id, const std::string& at) {
    (void)receipt_id;
    (void)at;
  }
  // Every dead letter was replayed or purged at `at`: the notes older than that go.
  virtual void forget_dead_letters(const std::string& at) { (void)at; }
  // The rows written so far, of every exam (the sum of the exam_stats counters, bumped
  // in the transaction that writes the rows): the teachers' overview samples it.
  virtual std::uint64_t written_total() = 0;
};

// Reads on one connection (not thread-safe; see store_pool).
class store_reader {
 public:
  explicit store_reader(const std::string& path);
  std::optional<stored_submission> by_receipt(const std::string& receipt_id);
  std::optional<stored_submission> by_key(const std::string& exam_id, const std::string& student_id,
                                          const std::string& key);
  std::vector<stored_submission> list(const std::string& exam_id, const std::string& after, std::size_t limit);
  ingest::sqlite::database& db() { return db_; }

 private:
  ingest::sqlite::database db_;
  ingest::sqlite::statement by_receipt_, by_key_, list_;
};

// exam.db read by the request threads: a reader connection per concurrent user.
class store_pool final : public submission_reader {
 public:
  explicit store_pool(std::string path) : path_(std::move(path)) {}
  std::optional<stored_submission> by_receipt(const std::string& receipt_id) override;
  std::optional<stored_submission> by_key(const std::string& exam_id, const std::string& student_id,
                                          const std::string& key) override;
  std::vector<stored_submission> list(const std::string& exam_id, const std::string& after, std::size_t limit) override;
  std::uint64_t written_total() override;
  template <class F>
  auto with(F&& f) {
    std::unique_ptr<store_reader> r;
    {
      std::lock_guard lock(mutex_);
      if (!idle_.empty()) {
        r = std::move(idle_.back());
        idle_.pop_back();
      }
    }
    if (!r) r = std::make_unique<store_reader>(path_);
    struct give_back {
      store_pool* pool;
      std::unique_ptr<store_reader>& r;
      ~give_back() {
        std::lock_guard lock(pool->mutex_);
        pool->idle_.push_back(std::move(r));
      }
    } guard{this, r};
    return f(*r);
  }

 private:
  std::string path_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<store_reader>> idle_;
};

// Writes one submission row and bumps its exam's counter (inside the caller's transaction).
class store_writer {
 public:
  explicit store_writer(ingest::sqlite::database& db);
  void insert(const stored_submission& s);

 private:
  ingest::sqlite::statement insert_, bump_;
};

// The exam.db row of a submission graded now: its answers scored against the exam's
// key, with the receipt and accept time it was given. The graders and the direct
// server both write this.
stored_submission graded_row(const exam_info& exam, const submission& s, std::string receipt_id, time_point accepted_at,
                             std::string fingerprint, time_point graded_at);

}  // namespace exam
