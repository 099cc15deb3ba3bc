#pragma once
// The accept side of the queue-based server: a submit_backend on a producer.

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>

#include "ingest/metrics.hpp"
#include "ingest/producer.hpp"
#include "store.hpp"
#include "submit_backend.hpp"

namespace exam {

struct queue_backend_options {
  // A request whose key is being published by another request waits this long for
  // that one's receipt before it is refused in_flight (a double click gets the receipt).
  std::chrono::milliseconds in_flight_wait{1000};
  // Beside a direct-write path (rollout_backend.hpp): every message is tagged
  // `exam-path: queue` (ledger.hpp), and a key is looked up in the database before it
  // is published, as the direct path may have stored it (its copy in the queue then
  // carries the queue's receipt, not the one the student was given).
  bool beside_direct = false;
};

// A retry of a processed submission is answered from exam.db; anything else is
// published, and reported queued once the queue acknowledged it durably.
class queue_backend final : public submit_backend {
 public:
  queue_backend(ingest::durable_queue& queue, ingest::producer& producer, submission_reader& store,
                std::shared_ptr<ingest::pipeline_metrics> metrics, queue_backend_options options = {});
  ~queue_backend() override;
  // Starts the readiness/backlog probe (once a second).
  void start();
  void stop();

  void submit(const exam_info& exam, submission s, boost::asio::any_io_executor answer_on, submit_done done) override;
  void find_unprocessed(const std::string& receipt_id,
                        std::function<void(ingest::error_code, std::optional<unprocessed>)> done) override;
  void replay_dead_letter(const std::string& receipt_id,
                          std::function<void(ingest::error_code, std::size_t)> done) override;
  void dead_letters(const std::string& after, std::size_t limit,
                    std::function<void(ingest::error_code, std::vector<ingest::dead_letter>)> done) override;
  // The stats the readiness probe read last (once a second): no read of its own.
  std::optional<ingest::queue_stats> queue_counts() const override;
  bool has_queue() const override { return true; }
  bool ready() const override { return probe_->ready; }
  std::string metrics() const override;

 private:
  struct publish_job {
    ingest::submission item;
    std::chrono::steady_clock::time_point join_until;
    boost::asio::any_io_executor answer_on;
    submit_done done;
  };
  void publish(std::shared_ptr<publish_job> job);
  // The outcome of a publish that completed with `ec` and `r`.
  submit_outcome outcome_of(ingest::error_code ec, const ingest::receipt& r);

  queue_backend_options options_;
  // Shared with the probe's pending completions, which may outlive this object.
  struct probe_state {
    probe_state(ingest::durable_queue& q, std::shared_ptr<ingest::pipeline_metrics> m)
        : queue(q), metrics(std::move(m)), timer(q.get_executor()) {}
    ingest::durable_queue& queue;
    std::shared_ptr<ingest::pipeline_metrics> metrics;
    boost::asio::steady_timer timer;
    std::atomic<bool> ready{false};
    std::atomic<bool> stopped{false};
    mutable std::mutex mutex;
    std::optional<ingest::queue_stats> counts;  // the last read; nullopt after a failed one
  };
  static void probe(std::shared_ptr<probe_state> p);

  ingest::durable_queue& queue_;
  ingest::producer& producer_;
  submission_reader& store_;
  std::shared_ptr<ingest::pipeline_metrics> metrics_;
  std::shared_ptr<probe_state> probe_;
};

}  // namespace exam
