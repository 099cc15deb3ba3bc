#include "ingest/producer.hpp"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <mutex>
#include <unordered_map>

#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"

namespace ingest {

void producer_options::validate() const {
  if (max_in_flight == 0) throw error(errc::invalid_config, "producer: max_in_flight must be at least 1");
  if (max_payload_bytes == 0) throw error(errc::invalid_config, "producer: max_payload_bytes must be at least 1");
  if (publish_timeout < std::chrono::milliseconds::zero())
    throw error(errc::invalid_config, "producer: publish_timeout must not be negative");
  if (default_subject.empty()) throw error(errc::invalid_config, "producer: default_subject must not be empty");
}

struct producer::state : std::enable_shared_from_this<state> {
  using done_fn = detail::callback<void(error_code, receipt)>;

  // One publish awaiting its ack; the caller is answered by whichever comes first,
  // the ack or the timeout. The in-flight slot is held until the backend answers.
  struct pending {
    done_fn done;
    std::chrono::steady_clock::time_point deadline{};  // of the answer to the caller
    std::string fingerprint;
  };

  state(durable_queue& q, producer_options o) : queue(q), options(std::move(o)), sweep(q.get_executor()) {}

  durable_queue& queue;
  producer_options options;

  mutable std::mutex mutex;
  bool draining = false;
  bool sweeping = false;  // the sweep timer is armed (or its handler is running)
  std::unordered_map<std::string, std::shared_ptr<pending>> in_flight;  // by idempotency key
  std::vector<detail::callback<void(error_code)>> drain_waiters;
  producer_stats counters;
  // Enforces publish_timeout for every publish in flight: one timer, not one per publish
  // (arming and cancelling a timer per publish cost the accept path a timer-queue
  // insertion, a cancellation and one more handler to run).
  boost::asio::steady_timer sweep;

  std::chrono::steady_clock::duration sweep_period() const {
    return std::clamp<std::chrono::steady_clock::duration>(options.publish_timeout / 8, std::chrono::milliseconds(10),
                                                           std::chrono::seconds(1));
  }

  // Called with the mutex held, after a publish joined in_flight.
  void start_sweeping() {
    if (sweeping || options.publish_timeout <= std::chrono::milliseconds::zero()) return;
    sweeping = true;
    arm_sweep();
  }

  void arm_sweep() {
    sweep.expires_after(sweep_period());
    sweep.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto self = weak.lock()) self->sweep_due();
    });
  }

  // Answers every caller whose deadline has passed with publish_timeout; the slot stays
  // taken until the backend answers. Stops when nothing is in flight.
  void sweep_due() {
    std::vector<done_fn> late;
    {
      std::lock_guard lock(mutex);
      const auto now = std::chrono::steady_clock::now();
      for (auto& [key, p] : in_flight) {
        if (p->done && p->deadline <= now) {
          late.push_back(std::move(p->done));
          ++counters.rejected;
        }
      }
      if (in_flight.empty())
        sweeping = false;
      else
        arm_sweep();
    }
    for (auto& done : late) done(errc::publish_timeout, receipt{});
  }

  void finish(const std::string& key, const std::shared_ptr<pending>& p, error_code ec, receipt r) {
    std::vector<detail::callback<void(error_code)>> drained;
    done_fn done;
    {
      std::lock_guard lock(mutex);
      if (auto found = in_flight.find(key); found != in_flight.end() && found->second == p) in_flight.erase(found);
      done = std::move(p->done);
      if (done) {
        if (ec)
          ++counters.rejected;
        else if (r.duplicate)
          ++counters.duplicates;
        else
          ++counters.accepted;
      }
      if (draining && in_flight.empty()) drained.swap(drain_waiters);
    }
    if (done) done(ec, std::move(r));
    for (auto& d : drained) d(error_code{});
  }
};

producer::producer(durable_queue& queue, producer_options options) {
  options.validate();
  state_ = std::make_shared<state>(queue, std::move(options));
}

producer::~producer() = default;

producer::executor_type producer::get_executor() const {
  return state_->queue.get_executor();
}

producer_stats producer::stats() const {
  std::lock_guard lock(state_->mutex);
  auto s = state_->counters;
  s.in_flight = state_->in_flight.size();
  return s;
}

namespace {

using answer_fn = detail::callback<void(error_code, receipt)>;

// Logs every answer: receipts at info, refusals at info (retry later) or warning.
answer_fn logged(std::shared_ptr<logger> log, std::string key, answer_fn inner) {
  return [log = std::move(log), key = std::move(key), inner = std::move(inner)](error_code ec, receipt r) mutable {
    if (!ec) {
      if (log->enabled(log_level::info))
        log->write({.level = log_level::info,
                    .component = "producer",
                    .event = r.duplicate ? "duplicate" : "accepted",
                    .receipt_id = r.id,
                    .idempotency_key = r.idempotency_key});
    } else {
      const auto level = is_retry_later(ec) ? log_level::info : log_level::warning;
      if (log->enabled(level)) {
        const std::error_code code(ec);
        const std::string detail =
            std::string(code.category() == ingest_category() ? errc_name(static_cast<errc>(code.value())) : "error") +
            ": " + code.message();
        log->write(
            {.level = level, .component = "producer", .event = "rejected", .idempotency_key = key, .detail = detail});
      }
    }
    inner(ec, std::move(r));
  };
}

// Counts and times every answer, receipt or refusal.
answer_fn measured(std::shared_ptr<pipeline_metrics> m, answer_fn inner) {
  return [m = std::move(m), start = std::chrono::steady_clock::now(), inner = std::move(inner)](error_code ec,
                                                                                                receipt r) mutable {
    m->accept_latency.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (ec)
      m->reject(ec);
    else if (r.duplicate)
      m->duplicates.inc();
    else
      m->accepted.inc();
    inner(ec, std::move(r));
  };
}

}  // namespace

void producer::do_submit(submission item, detail::callback<void(error_code, receipt)> done) {
  auto& s = *state_;
  if (s.options.log) done = logged(s.options.log, item.idempotency_key, std::move(done));
  if (s.options.metrics) done = measured(s.options.metrics, std::move(done));
  auto reject = [&](error_code ec) {
    {
      std::lock_guard lock(s.mutex);
      ++s.counters.rejected;
    }
    done(ec, receipt{});
  };
  if (item.payload.size() > s.options.max_payload_bytes) return reject(errc::payload_too_large);

  envelope message;
  message.fingerprint = fingerprint(item.payload);
  message.idempotency_key = std::move(item.idempotency_key);
  message.subject = item.subject.empty() ? s.options.default_subject : std::move(item.subject);
  message.payload = std::move(item.payload);
  message.headers = std::move(item.headers);
  message.not_after = item.not_after;
  message.receipt_claims = std::move(item.receipt_claims);
  // The queue's one check, before a slot is taken: a message it refuses never holds
  // one, and is refused as itself (not as backpressure or in_flight).
  if (const auto invalid = durable_queue::prepare(message)) return reject(invalid);

  auto p = std::make_shared<state::pending>();
  p->fingerprint = message.fingerprint;
  {
    std::lock_guard lock(s.mutex);
    if (s.draining) {
      ++s.counters.rejected;
      return done(errc::shutting_down, receipt{});
    }
    if (auto found = s.in_flight.find(message.idempotency_key); found != s.in_flight.end()) {
      ++s.counters.rejected;
      return done(found->second->fingerprint == message.fingerprint ? errc::in_flight : errc::conflict, receipt{});
    }
    if (s.in_flight.size() >= s.options.max_in_flight) {
      ++s.counters.rejected;
      return done(errc::backpressure, receipt{});
    }
    p->done = std::move(done);
    p->deadline = std::chrono::steady_clock::now() + s.options.publish_timeout;
    s.in_flight.emplace(message.idempotency_key, p);
    s.start_sweeping();
  }

  // The backend's answer is handled on the backend's thread: `done` posts the caller's
  // handler to its executor, so a hop to the queue's executor first would only add a
  // handler to run per publish.
  auto key = message.idempotency_key;
  const auto not_after = message.not_after;
  s.queue.do_publish(std::move(message),
                     [self = state_, key = std::move(key), p, not_after](error_code ec, receipt r) mutable {
                       // A backend that stores first and tells later (NATS, SQS): a message postmarked
                       // after the deadline gets no receipt, now or on any repeat.
                       if (!ec && r.accepted_at > not_after) {
                         ec = errc::deadline_passed;
                         r = receipt{};
                       }
                       self->finish(key, p, ec, std::move(r));
                     });
}

void producer::do_drain(detail::callback<void(error_code)> done) {
  auto& s = *state_;
  {
    std::lock_guard lock(s.mutex);
    s.draining = true;
    if (!s.in_flight.empty()) {
      s.drain_waiters.push_back(std::move(done));
      return;
    }
  }
  done(error_code{});
}

}  // namespace ingest
