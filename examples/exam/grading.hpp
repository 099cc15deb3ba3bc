#pragma once
// The drain side of the queue-based system: graders that write exam.db one
// transaction per batch.

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "exams.hpp"
#include "ingest/batching_consumer.hpp"
#include "ingest/log.hpp"
#include "ingest/metrics.hpp"
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
};
ingest::batch_handler grading_handler(ingest::sqlite::database& db, const catalog& exams,
                                      std::shared_ptr<grading_counters> counters);

struct consumer_settings {
  std::size_t max_batch = 500;
  std::chrono::milliseconds linger{20};
  double rate = 0;  // rows/s into exam.db (0: as fast as it goes)
  std::uint32_t max_attempts = 5;
};

// One worker writing exam.db one transaction per batch.
class grading_consumer {
 public:
  grading_consumer(ingest::durable_queue& queue, const std::string& db_path, const catalog& exams,
                   consumer_settings settings, std::shared_ptr<ingest::pipeline_metrics> metrics,
                   std::shared_ptr<ingest::logger> log = {});
  void start() { consumer_->start(); }
  void drain();
  const grading_counters& counters() const { return *counters_; }

 private:
  ingest::sqlite::database db_;
  std::shared_ptr<grading_counters> counters_;
  std::unique_ptr<ingest::batching_consumer> consumer_;
};

}  // namespace exam
