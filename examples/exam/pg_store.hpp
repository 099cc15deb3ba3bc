#pragma once
// The exam tables in PostgreSQL: the same tables as exam.db (schema in
// examples/README.md), a schema version with migrations applied at start, a reader
// for the servers, and the batch write of the graders.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "ingest/durable_queue.hpp"
#include "ingest/postgres/pool.hpp"
#include "ingest/postgres/transactional_handler.hpp"
#include "store.hpp"

namespace exam {

// True for a postgresql:// or postgres:// URL (else a path to an SQLite file).
bool is_postgres_url(const std::string& sink);

// Brings the exam schema to the current version (exam_schema_version), under an
// advisory lock so that servers and workers starting together migrate it once.
// Returns the version found before.
int migrate_schema(ingest::postgres::connection& db);
// The version this program writes.
constexpr int schema_version = 5;

// Reads submissions on a small pool of connections.
class pg_reader final : public submission_reader {
 public:
  pg_reader(const std::string& url, std::size_t connections);
  std::optional<stored_submission> by_receipt(const std::string& receipt_id) override;
  std::optional<stored_submission> by_key(const std::string& exam_id, const std::string& student_id,
                                          const std::string& key) override;
  std::vector<stored_submission> list(const std::string& exam_id, const std::string& after, std::size_t limit) override;
  std::optional<progress_note> progress(const std::string& receipt_id) override;
  // One statement for all of them: rows, aliases and notes.
  std::vector<receipt_record> records(std::span<const std::string> receipt_ids) override;
  void forget_dead_letter(const std::string& receipt_id, const std::string& at) override;
  void forget_dead_letters(const std::string& at) override;
  std::uint64_t written_total() override;

 private:
  // A leased connection with the readers' statements registered on it.
  ingest::postgres::connection_pool::lease acquire();
  std::vector<stored_submission> query(const std::string& statement, std::initializer_list<ingest::postgres::param> p);
  ingest::postgres::connection_pool pool_;
  std::vector<char> registered_;  // per pool slot: statements registered on that connection
};

// Writes `rows` (one INSERT of arrays) and adds them to their exams' exam_stats rows,
// inside the caller's transaction.
void write_graded(ingest::postgres::connection& db, const std::vector<stored_submission>& rows);

// The graders' notes, outside their batch transactions (see progress_note). A grader
// holds `receipt_ids` until `lease` from now: written to an unlogged table, so that the
// note costs no fsync (a PostgreSQL crash forgets it: "received" again, still true).
void note_in_hand(ingest::postgres::connection& db, const std::vector<std::string>& receipt_ids,
                  std::chrono::milliseconds lease);
// Removes the notes of receipts no grader holds any more (retried later, or failed).
void clear_in_hand(ingest::postgres::connection& db, const std::vector<std::string>& receipt_ids);
// Removes the notes whose lease ran out.
void prune_in_hand(ingest::postgres::connection& db);
// Records a dead letter (its exam and student read from the payload when it is a
// submission), so that every server shows it to teachers.
void note_dead_letter(ingest::postgres::connection& db, const ingest::dead_letter& d);

// The same key accepted twice with two receipts (two servers on SQS, or a retry after
// NATS's dedup window): the copy accepted first keeps the row (its receipt id and
// accept time; the answers are the same), and every other receipt of the key points at
// it (exam_receipt_aliases), so that it reads the kept submission's status. Inside the
// batch's transaction.
void keep_earliest(ingest::postgres::connection& db, std::span<const ingest::postgres::repeated_item> repeats);

// The reader for `sink`: exam.db at that path, or PostgreSQL at that URL.
std::unique_ptr<submission_reader> open_reader(const std::string& sink);

}  // namespace exam
