#include "ingest/shadow_producer.hpp"

#include <mutex>
#include <vector>

#include "ingest/error.hpp"

namespace ingest {

void shadow_options::validate() const {
  if (max_pending == 0) throw error(errc::invalid_config, "shadow_producer: max_pending must be at least 1");
}

struct shadow_producer::state {
  explicit state(shadow_options o) : options(std::move(o)) {}
  shadow_options options;
  mutable std::mutex mutex;
  bool draining = false;
  shadow_stats counters;
  std::vector<detail::callback<void(error_code)>> drain_waiters;

  // A copy that is not in the queue as it is (mutex not held).
  void gap(const submission& item, error_code ec) noexcept {
    if (options.log && options.log->enabled(log_level::warning)) {
      const std::string detail = ec.message();
      options.log->write({.level = log_level::warning,
                          .component = "shadow_producer",
                          .event = "shadow_gap",
                          .idempotency_key = item.idempotency_key,
                          .detail = detail});
    }
    if (options.on_gap) {
      try {
        options.on_gap({item.idempotency_key, item.subject, ec});
      } catch (...) {
        // The hook must not throw; the gap is counted all the same.
      }
    }
  }

  enum class outcome { sent, repeat, failed, conflict, skipped };

  static outcome classify(error_code ec, const receipt& r) {
    if (!ec) return r.duplicate ? outcome::repeat : outcome::sent;
    if (ec == errc::in_flight) return outcome::repeat;  // the first copy's outcome is counted where it lands
    if (ec == errc::conflict) return outcome::conflict;
    return outcome::failed;
  }

  // One copy's outcome; `started`: it held a pending slot. A gap is reported before it
  // is counted, so that whoever sees the count (or the drain end) sees the report too.
  void settle(const submission& item, outcome o, error_code ec, bool started) {
    if (o != outcome::sent && o != outcome::repeat) gap(item, ec);
    std::vector<detail::callback<void(error_code)>> drained;
    {
      std::lock_guard lock(mutex);
      if (started) --counters.pending;
      switch (o) {
        case outcome::sent: ++counters.sent; break;
        case outcome::repeat: ++counters.repeats; break;
        case outcome::failed: ++counters.failed; break;
        case outcome::conflict: ++counters.conflicts; break;
        case outcome::skipped: ++counters.skipped; break;
      }
      if (draining && counters.pending == 0) drained.swap(drain_waiters);
    }
    for (auto& d : drained) d(error_code{});
  }
};

shadow_producer::shadow_producer(producer& target, shadow_options options) : target_(target) {
  options.validate();
  state_ = std::make_shared<state>(std::move(options));
}

shadow_producer::~shadow_producer() = default;

void shadow_producer::publish(submission item) {
  auto s = state_;
  error_code refused;
  {
    std::lock_guard lock(s->mutex);
    if (s->draining)
      refused = errc::shutting_down;
    else if (s->counters.pending >= s->options.max_pending)
      refused = errc::backpressure;
    else
      ++s->counters.pending;
  }
  if (refused) return s->settle(item, state::outcome::skipped, refused, false);
  // What a gap report names (not the payload).
  auto copy = std::make_shared<submission>(submission{.idempotency_key = item.idempotency_key, .subject = item.subject});
  target_.async_submit(std::move(item), [s, copy](error_code ec, const receipt& r) {
    s->settle(*copy, state::classify(ec, r), ec, true);
  });
}

void shadow_producer::do_resend(submission item, detail::callback<void(error_code, receipt)> done) {
  auto s = state_;
  target_.async_submit(std::move(item), [s, done = std::move(done)](error_code ec, receipt r) mutable {
    if (!ec) {
      std::lock_guard lock(s->mutex);
      ++s->counters.resent;
    }
    done(ec, std::move(r));
  });
}

void shadow_producer::do_drain(detail::callback<void(error_code)> done) {
  {
    std::lock_guard lock(state_->mutex);
    state_->draining = true;
    if (state_->counters.pending > 0) {
      state_->drain_waiters.push_back(std::move(done));
      return;
    }
  }
  done(error_code{});
}

shadow_stats shadow_producer::stats() const {
  std::lock_guard lock(state_->mutex);
  return state_->counters;
}

}  // namespace ingest
