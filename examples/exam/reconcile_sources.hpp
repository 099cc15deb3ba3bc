#pragma once
// The two sides of a dual-write reconciliation in the exam database (exam.db or
// PostgreSQL): the submissions rows, the source of truth, and the queue_copies rows,
// what the queued path produced (ledger.hpp). A record's key is exam id, student id
// and client key joined by U+001F, which sorts as the tables' (exam_id, student_id,
// idempotency_key) index does; its detail is the score.

#include <memory>
#include <string>
#include <string_view>

#include "ingest/reconciler.hpp"

namespace exam {

enum class rows_table { submissions, copies };

// A reader of one table of `sink` (a path, or a postgresql:// URL) on its own connection.
std::unique_ptr<ingest::record_source> open_rows(const std::string& sink, rows_table table);

// exam/student/key of a record's key (for people and for reading the row back).
struct row_key {
  std::string exam_id, student_id, idempotency_key;
  std::string text() const { return exam_id + '/' + student_id + '/' + idempotency_key; }
};
std::string join_key(std::string_view exam_id, std::string_view student_id, std::string_view key);
row_key split_key(std::string_view key);

// Two records of one submission agree: the same body (fingerprint) and the same score.
bool same_submission(const ingest::reconcile_record& truth, const ingest::reconcile_record& copy);

}  // namespace exam
