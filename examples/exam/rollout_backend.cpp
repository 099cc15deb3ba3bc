#include "rollout_backend.hpp"

#include <chrono>

namespace exam {

rollout_backend::rollout_backend(ingest::rollout& rollout, shadow_backend& direct, queue_backend& queue)
    : rollout_(rollout), direct_(direct), queue_(queue) {}

void rollout_backend::submit(const exam_info& exam, submission s, boost::asio::any_io_executor answer_on,
                             submit_done done) {
  const auto path = rollout_.route(s.student_id, s.queue_key());
  auto& target = path == ingest::write_path::queue ? static_cast<submit_backend&>(queue_) : direct_;
  // Each path's own accepts, refusals and latency, for comparing them while moving.
  auto metrics = rollout_.metrics(path);
  const auto started = std::chrono::steady_clock::now();
  target.submit(exam, std::move(s), std::move(answer_on),
                [metrics, started, done = std::move(done)](submit_outcome outcome) mutable {
                  using kind = submit_outcome::kind;
                  if (outcome.what == kind::queued || outcome.what == kind::stored)
                    metrics->accepted.inc();
                  else if (outcome.what == kind::repeat)
                    metrics->duplicates.inc();
                  else if (outcome.what == kind::refused)
                    metrics->reject(outcome.error);
                  else
                    metrics->reject(ingest::errc::conflict);
                  metrics->accept_latency.observe(
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
                  done(std::move(outcome));
                });
}

std::string rollout_backend::metrics() const {
  // The queue path's counters are the rollout's (its queue_backend records into them).
  return direct_.metrics() + ingest::to_prometheus(rollout_);
}

}  // namespace exam
