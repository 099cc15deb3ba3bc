#include "ingest/auditor.hpp"

#include <condition_variable>
#include <mutex>
#include <thread>

#include "ingest/error.hpp"

namespace ingest {

void audit_options::validate() const {
  if (every.count() <= 0) throw error(errc::invalid_config, "auditor: every must be positive");
  if (lookback.count() <= 0) throw error(errc::invalid_config, "auditor: lookback must be positive");
  if (settle.count() < 0) throw error(errc::invalid_config, "auditor: settle must not be negative");
  reconcile_options probe = compare;
  probe.window = {};
  probe.validate();
}

struct auditor::state {
  state(source_factory t, source_factory c, audit_options o)
      : truth(std::move(t)), copy(std::move(c)), options(std::move(o)) {}

  reconcile_report run(time_point now, std::stop_token stop) {
    reconcile_options o = options.compare;
    o.window = {now - options.settle - options.lookback, now - options.settle};
    o.stop = std::move(stop);
    o.on_page = {};
    auto t = truth();
    auto c = copy();
    auto report = reconcile(*t, *c, o);
    {
      std::lock_guard lock(mutex);
      if (report.complete) {
        ++counters.runs;
        if (!report.clean()) ++counters.alerts;
        counters.last = report;
      }
    }
    // The callbacks must not throw; one that does is not the run's failure.
    try {
      if (report.complete && !report.clean() && options.alert) options.alert(report);
      if (report.complete && options.on_run) options.on_run(report);
    } catch (...) {
    }
    return report;
  }

  void loop(std::stop_token stop) {
    while (!stop.stop_requested()) {
      // A run that overran `every` is followed by one at once, not by the ones missed.
      const auto next = std::chrono::steady_clock::now() + options.every;
      try {
        run(clock::now(), stop);
      } catch (const std::exception& e) {
        failed(e.what());
      } catch (...) {
        failed("unknown error");
      }
      std::unique_lock lock(mutex);
      wake.wait_until(lock, stop, next, [] { return false; });
    }
  }

  void failed(std::string why) {
    std::lock_guard lock(mutex);
    ++counters.failed_runs;
    counters.last_error = std::move(why);
  }

  source_factory truth, copy;
  audit_options options;
  mutable std::mutex mutex;
  std::condition_variable_any wake;
  audit_stats counters;
  std::jthread thread;
};

auditor::auditor(source_factory truth, source_factory copy, audit_options options) {
  options.validate();
  if (!truth || !copy) throw error(errc::invalid_config, "auditor: both source factories are needed");
  state_ = std::make_shared<state>(std::move(truth), std::move(copy), std::move(options));
}

auditor::~auditor() {
  stop();
}

void auditor::start() {
  std::lock_guard lock(state_->mutex);
  if (state_->thread.joinable()) return;
  state_->thread = std::jthread([s = state_](std::stop_token stop) { s->loop(std::move(stop)); });
}

void auditor::stop() {
  std::jthread t;
  {
    std::lock_guard lock(state_->mutex);
    t = std::move(state_->thread);
  }
  if (t.joinable()) {
    t.request_stop();
    t.join();
  }
}

reconcile_report auditor::run_once(time_point now) {
  return state_->run(now, {});
}

audit_stats auditor::stats() const {
  std::lock_guard lock(state_->mutex);
  return state_->counters;
}

}  // namespace ingest
