#pragma once
// Queue backends by URL, and the two halves of the queue-based system: the accept
// side (a submit_backend on a producer) and the drain side (a grading consumer).

#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <string>

#include "app.hpp"
#include "ingest/batching_consumer.hpp"
#include "ingest/metrics.hpp"
#include "ingest/producer.hpp"

namespace exam {

// "sqlite://PATH[?options]" (the embedded default), "memory" (not durable),
// "nats://HOST:PORT[?options]" / "tls://..." when built with NATS,
// "sqs+http[s]://HOST:PORT/ACCOUNT/QUEUE[?options]" when built with SQS.
// Throws std::runtime_error naming the URL (its password or token hidden), what went
// wrong and what to check, when the URL is bad or the queue cannot be opened.
std::unique_ptr<ingest::durable_queue> open_queue(const std::string& url, ingest::durable_queue::executor_type ex);
// `url` with the password or token of its user information replaced by `***`.
std::string redact_url(const std::string& url);

struct queue_backend_options {
  // A request whose key is being published by another request waits this long for
  // that one's receipt before it is answered 409 (a double click gets the receipt).
  std::chrono::milliseconds in_flight_wait{1000};
};

// The accept side: sink check for retries of processed submissions, then publish;
// answers 202 with the receipt once the queue acknowledged it durably.
class queue_backend final : public submit_backend {
 public:
  queue_backend(ingest::durable_queue& queue, ingest::producer& producer, store_pool& store,
                std::shared_ptr<ingest::pipeline_metrics> metrics, queue_backend_options options = {});
  ~queue_backend() override;
  // Starts the readiness/backlog probe (once a second).
  void start();
  void stop();

  void submit(const exam_info& exam, submission s, const ingest::http::request& req,
              ingest::http::responder& respond) override;
  void find_unprocessed(const std::string& receipt_id,
                        std::function<void(ingest::error_code, std::optional<unprocessed>)> done) override;
  bool ready() const override { return probe_->ready; }
  std::string metrics() const override;

 private:
  struct publish_job {
    ingest::submission item;
    ingest::http::reply_to to;
    std::chrono::steady_clock::time_point join_until;
    ingest::http::responder respond;
  };
  void publish(std::shared_ptr<publish_job> job);

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
  };
  static void probe(std::shared_ptr<probe_state> p);

  ingest::durable_queue& queue_;
  ingest::producer& producer_;
  store_pool& store_;
  std::shared_ptr<ingest::pipeline_metrics> metrics_;
  std::shared_ptr<probe_state> probe_;
};

struct consumer_settings {
  std::size_t max_batch = 500;
  std::chrono::milliseconds linger{20};
  double rate = 0;  // rows/s into exam.db (0: as fast as it goes)
  std::uint32_t max_attempts = 5;
};

// The drain side: one worker writing exam.db one transaction per batch.
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
