#pragma once
// The drain side of the queue-based system: graders that write exam.db or PostgreSQL,
// one transaction per batch.

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "attachment_check.hpp"
#include "exams.hpp"
#include "ingest/batching_consumer.hpp"
#include "ingest/log.hpp"
#include "ingest/metrics.hpp"
#include "ingest/postgres/pool.hpp"
#include "ingest/sqlite/database.hpp"

namespace exam {

// The consumer's batch handler for exam.db: one transaction per batch with the
// idempotency records; grades each new submission. A submission postmarked after its
// exam's deadline plus grace (the server answered 403 deadline_passed; only a broker
// that stores before it can tell a key is new keeps one) is dead-lettered with the
// reason `deadline_passed`; an unknown exam or unreadable payload with
// `permanent_failure`.
struct grading_counters {
  std::atomic<std::uint64_t> graded{0};
  std::atomic<std::uint64_t> late{0};
  std::atomic<std::uint64_t> copied{0};  // queue_copies rows written (ledger.hpp)
  // Dead letters by the path the submission took (ledger.hpp): the exam server's own
  // (no exam-path header), a direct server's queue path, a direct write's copy.
  std::atomic<std::uint64_t> dead_plain{0};
  std::atomic<std::uint64_t> dead_queue_path{0};
  std::atomic<std::uint64_t> dead_copies{0};
};
// With `checker`, a submission's files are checked before it is graded
// (attachment_check.hpp).
ingest::batch_handler grading_handler(ingest::sqlite::database& db, const catalog& exams,
                                      std::shared_ptr<grading_counters> counters,
                                      std::shared_ptr<attachment_checker> checker = {});
// The same on PostgreSQL (grading_pg.cpp): the batch's keys in one statement, its rows
// in one, exam_stats bumped once per exam per batch. Migrates the schema first.
ingest::batch_handler grading_handler(ingest::postgres::connection_pool& pool, const catalog& exams,
                                      std::shared_ptr<grading_counters> counters,
                                      std::shared_ptr<attachment_checker> checker = {});

// How long a note that a grader holds a submission ("processing") lasts unless the
// grader finishes first; a grader that died leaves it "received" again after this.
constexpr std::chrono::milliseconds in_hand_lease{60'000};

struct consumer_settings {
  std::size_t max_batch = 500;
  std::chrono::milliseconds linger{20};
  double rate = 0;  // rows/s into exam.db (0: as fast as it goes)
  std::uint32_t max_attempts = 5;
  std::size_t workers = 1;  // consumer threads; more than 1 only with PostgreSQL (a connection each)
  // Where submissions' attachments are checked (null: a submission with files waits,
  // retried, for a grader that has the storage).
  std::shared_ptr<ingest::aws::s3_bucket> storage{};
};

// Graders writing `sink` (an exam.db path, or a postgresql:// URL) one transaction per
// batch; late submissions counted from their dead letters.
class grading_consumer {
 public:
  grading_consumer(ingest::durable_queue& queue, const std::string& sink, const catalog& exams,
                   consumer_settings settings, std::shared_ptr<ingest::pipeline_metrics> metrics,
                   std::shared_ptr<ingest::logger> log = {});
  void start() { consumer_->start(); }
  void drain();
  const grading_counters& counters() const { return *counters_; }
  const attachment_check_counters& attachment_counters() const { return checker_->counters(); }

 private:
  std::unique_ptr<ingest::sqlite::database> db_;
  std::unique_ptr<ingest::postgres::connection_pool> pool_;
  std::shared_ptr<ingest::postgres::connection_pool> notes_;  // dead letters noted for the servers
  std::shared_ptr<grading_counters> counters_;
  std::shared_ptr<attachment_checker> checker_;
  std::unique_ptr<ingest::batching_consumer> consumer_;
};

}  // namespace exam
