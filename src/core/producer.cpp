#include "ingest/producer.hpp"

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
    std::unique_ptr<boost::asio::steady_timer> timer;
    std::string fingerprint;
  };

  state(durable_queue& q, producer_options o) : queue(q), options(std::move(o)) {}

  durable_queue& queue;
  producer_options options;

  mutable std::mutex mutex;
  bool draining = false;
  std::uint64_t next_id = 0;
  std::unordered_map<std::string, std::shared_ptr<pending>> in_flight;  // by idempotency key
  std::vector<detail::callback<void(error_code)>> drain_waiters;
  producer_stats counters;

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
    if (p->timer) p->timer->cancel();
    if (done) done(ec, std::move(r));
    for (auto& d : drained) d(error_code{});
  }

  void time_out(const std::shared_ptr<pending>& p) {
    done_fn done;
    {
      std::lock_guard lock(mutex);
      done = std::move(p->done);
      if (done) ++counters.rejected;
    }
    if (done) done(errc::publish_timeout, receipt{});
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

void producer::do_submit(submission item, detail::callback<void(error_code, receipt)> done) {
  auto& s = *state_;
  if (s.options.log) {
    done = [log = s.options.log, key = item.idempotency_key, inner = std::move(done)](error_code ec,
                                                                                       receipt r) mutable {
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
          log->write({.level = level,
                      .component = "producer",
                      .event = "rejected",
                      .idempotency_key = key,
                      .detail = detail});
        }
      }
      inner(ec, std::move(r));
    };
  }
  if (s.options.metrics) {
    // Every answer, receipt or refusal, is counted and timed.
    done = [m = s.options.metrics, start = std::chrono::steady_clock::now(), inner = std::move(done)](
               error_code ec, receipt r) mutable {
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
  message.receipt_id = make_receipt_id();
  if (const auto invalid = validate_envelope(message)) return reject(invalid);

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
    s.in_flight.emplace(message.idempotency_key, p);
  }

  if (s.options.publish_timeout > std::chrono::milliseconds::zero()) {
    p->timer = std::make_unique<boost::asio::steady_timer>(s.queue.get_executor(), s.options.publish_timeout);
    p->timer->async_wait([weak = state_->weak_from_this(), p](const boost::system::error_code& ec) {
      if (ec) return;  // cancelled: the ack came first
      if (auto self = weak.lock()) self->time_out(p);
    });
  }

  auto key = message.idempotency_key;
  s.queue.async_publish(std::move(message), [self = state_, key = std::move(key), p](error_code ec, receipt r) {
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
