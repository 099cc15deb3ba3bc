#pragma once
// Moving a live direct-write platform to the queue: what the queued path produced,
// kept beside the direct path's rows so that the two can be reconciled.
//
// The direct server with --shadow-queue publishes a copy of every submission it
// stores, with the header `exam-path: shadow` and its own receipt. A grader writes
// such a copy into queue_copies only (the direct row is authoritative). A submission
// whose authoritative path was the queue (`exam-path: queue`) gets its submissions row
// and a queue_copies row in the same transaction. Submissions without the header (the
// exam server's) are graded as before and leave no copy.

#include <optional>
#include <string>
#include <vector>

#include "exams.hpp"
#include "ingest/envelope.hpp"
#include "ingest/postgres/connection.hpp"
#include "ingest/producer.hpp"
#include "ingest/sqlite/database.hpp"
#include "store.hpp"
#include "submission.hpp"

namespace exam {

// The header naming the path a submission took, and the direct write's receipt.
inline constexpr const char* path_header = "exam-path";
inline constexpr const char* direct_receipt_header = "exam-direct-receipt";
inline constexpr const char* direct_accepted_header = "exam-direct-accepted-at";

enum class copy_path { none, shadow, queue };
// What a delivered message says of its path (none: no header, or one not known).
copy_path path_of(const ingest::envelope& m);

// One queue_copies row.
struct queue_copy {
  std::string exam_id;
  std::string student_id;
  std::string idempotency_key;
  std::string path;         // "shadow" | "queue"
  std::string receipt_id;   // the queue's
  std::string direct_receipt_id;  // shadow: the direct write's receipt (empty otherwise)
  std::string accepted_at;  // shadow: the direct write's accept time; queue: the queue's
  std::string queued_at;    // the queue's accept time
  std::string fingerprint;  // of the submission's canonical JSON, as the direct row's
  std::optional<double> score;
  std::string written_at;
};

// The row for a delivered copy of `s`, graded against `exam` (null: unknown exam).
queue_copy copy_row(const ingest::envelope& m, const submission& s, const exam_info* exam, copy_path path);

// The queue message for a submission the direct path stored with this receipt.
ingest::submission shadow_message(const submission& s, const std::string& receipt_id, const std::string& accepted_at);

// The submission a stored row was made from (nullopt when its JSON cannot be read).
std::optional<submission> submission_of(const stored_submission& row);

// exam.db: creates queue_copies when missing.
void create_copies_table(ingest::sqlite::database& db);

// Writes queue_copies rows inside the caller's transaction.
class copy_writer {
 public:
  explicit copy_writer(ingest::sqlite::database& db);
  void insert(const queue_copy& c);

 private:
  ingest::sqlite::statement insert_;
};

// PostgreSQL: of queue-path rows about to be written, takes out those whose key the
// direct path stored meanwhile (a retry that reached another server after the share
// moved past its student): the direct row stays, and the queue receipt reads it (an
// alias in exam_receipt_aliases). Locks the rows it finds, in the caller's transaction.
// Throws ingest::permanent_error (reason `conflict`) when the stored body differs.
void keep_direct_rows(ingest::postgres::connection& db, std::vector<stored_submission>& queue_rows);

// PostgreSQL: writes queue_copies rows in one statement, inside the caller's
// transaction (the table is schema version 5, pg_store.hpp).
void write_copies(ingest::postgres::connection& db, const std::vector<queue_copy>& rows);

}  // namespace exam
