#include "ingest/batching_consumer.hpp"

#include <atomic>
#include <boost/asio/error.hpp>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <semaphore>
#include <thread>

#include "ingest/error.hpp"
#include "rate_limiter.hpp"

namespace ingest {

batch::batch(std::vector<delivery> items) : items_(std::move(items)), results_(items_.size()) {}

void batch::retry(std::size_t i, std::string error) {
  results_.at(i) = {item_outcome::retry, std::move(error)};
}

void batch::retry(std::size_t i, std::string error, std::string reason) {
  results_.at(i) = {item_outcome::retry, std::move(error), std::move(reason)};
}

void batch::fail(std::size_t i, std::string error) {
  results_.at(i) = {item_outcome::fail, std::move(error)};
}

void batch::fail(std::size_t i, std::string error, std::string reason) {
  results_.at(i) = {item_outcome::fail, std::move(error), std::move(reason)};
}

void consumer_options::validate() const {
  auto bad = [](const char* what) { throw error(errc::invalid_config, std::string("consumer_options: ") + what); };
  if (workers == 0) bad("workers must be at least 1");
  if (max_batch == 0) bad("max_batch must be at least 1");
  if (linger.count() < 0 || poll_wait.count() < 0) bad("linger and poll_wait must not be negative");
  if (max_rate < 0) bad("max_rate must not be negative");
  if (lease_heartbeat.count() < 0 || lease_extension.count() < 0) bad("lease timings must not be negative");
  if (lease_heartbeat.count() > 0 && lease_extension <= lease_heartbeat)
    bad("lease_extension must be longer than lease_heartbeat");
  retry.validate();
}

namespace {

// Runs an async queue operation to completion from a consumer thread. The promise is
// shared with the completion so that it outlives set_value.
template <class T, class Start>
std::pair<error_code, T> wait_result(Start&& start) {
  auto promise = std::make_shared<std::promise<std::pair<error_code, T>>>();
  auto future = promise->get_future();
  start([promise](error_code ec, T value) { promise->set_value({ec, std::move(value)}); });
  return future.get();
}

template <class Start>
error_code wait_done(Start&& start) {
  auto promise = std::make_shared<std::promise<error_code>>();
  auto future = promise->get_future();
  start([promise](error_code ec) { promise->set_value(ec); });
  return future.get();
}

bool queue_closed(error_code ec) {
  return ec == std::errc::operation_canceled || ec == make_error_code(errc::shutting_down);
}

}  // namespace

struct batching_consumer::state {
  state(durable_queue& q, batch_handler h, consumer_options o)
      : queue(q),
        handler(std::move(h)),
        options(std::move(o)),
        limiter(options.max_rate),
        slots(static_cast<std::ptrdiff_t>(options.max_concurrency ? options.max_concurrency : options.workers)) {}

  durable_queue& queue;
  batch_handler handler;
  consumer_options options;
  detail::rate_limiter limiter;
  std::counting_semaphore<> slots;

  std::mutex mutex;  // guards the fields below
  std::condition_variable wake;
  bool started = false;
  bool stopping = false;
  bool stopped = false;
  std::vector<std::thread> threads;
  std::thread keeper;
  std::mutex drain_mutex;             // one drain at a time
  std::vector<std::thread> drainers;  // async_drain helpers, joined by the destructor
  std::uint64_t next_batch_id = 0;
  std::map<std::uint64_t, std::vector<std::string>> in_hand;  // leases to keep alive

  std::mt19937_64 rng{std::random_device{}()};  // guarded by mutex

  std::atomic<std::uint64_t> batches{0}, acked{0}, retried{0}, dead_lettered{0}, handler_errors{0}, settle_errors{0};

  bool should_stop() {
    std::lock_guard lock(mutex);
    return stopping;
  }

  // Sleeps up to `d`, returning early when a drain starts.
  void pause(std::chrono::milliseconds d) {
    std::unique_lock lock(mutex);
    wake.wait_for(lock, d, [&] { return stopping; });
  }

  std::vector<delivery> fetch(std::size_t max, std::chrono::milliseconds wait, bool& closed) {
    auto [ec, items] =
        wait_result<std::vector<delivery>>([&](auto done) { queue.async_fetch(max, wait, std::move(done)); });
    if (queue_closed(ec)) closed = true;
    if (ec && !closed) pause(std::min(options.poll_wait, std::chrono::milliseconds(1000)));
    return std::move(items);
  }

  void worker() {
    bool closed = false;
    while (!closed && !should_stop()) {
      auto items = fetch(options.max_batch, options.poll_wait, closed);
      if (items.empty()) continue;
      // Linger: let a partial batch fill up for a moment.
      const auto deadline = std::chrono::steady_clock::now() + options.linger;
      while (!closed && items.size() < options.max_batch) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left <= std::chrono::milliseconds::zero()) break;
        auto more = fetch(options.max_batch - items.size(), left, closed);
        if (more.empty()) break;
        std::move(more.begin(), more.end(), std::back_inserter(items));
      }
      process(std::move(items));  // the batch in hand is always finished, even while draining
    }
  }

  std::uint64_t hold(const batch& b) {
    std::lock_guard lock(mutex);
    auto id = next_batch_id++;
    auto& tokens = in_hand[id];
    for (const auto& d : b) tokens.push_back(d.token);
    return id;
  }

  void release(std::uint64_t id) {
    std::lock_guard lock(mutex);
    in_hand.erase(id);
  }

  // Runs the handler under the rate and concurrency limits; returns the exception it threw.
  std::exception_ptr run(batch& b) {
    limiter.acquire(b.size());
    slots.acquire();
    std::exception_ptr failure;
    const auto start = std::chrono::steady_clock::now();
    try {
      handler(b);
    } catch (...) {
      failure = std::current_exception();
    }
    const auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    slots.release();
    if (failure)
      ++handler_errors;
    else
      ++batches;
    if (auto& m = options.metrics) {
      if (failure) {
        m->handler_errors.inc();
      } else {
        m->batch_size.observe(static_cast<double>(b.size()));
        m->commit_latency.observe(took);
      }
    }
    return failure;
  }

  void mark_all(batch& b, std::exception_ptr failure) {
    const auto kind = options.retry.classify(failure);
    const auto text = failure_message(failure);
    for (std::size_t i = 0; i < b.size(); ++i) {
      if (kind == failure_kind::permanent)
        b.fail(i, text, failure_reason(failure));
      else
        b.retry(i, text);
    }
  }

  void process(std::vector<delivery> items) {
    batch b(std::move(items));
    const auto id = hold(b);
    const auto started_at = clock::now();

    // Deliveries past max_attempts never reached a settle (their consumer died or
    // overran its lease): park them instead of risking another crash.
    std::vector<delivery> runnable;
    std::vector<std::size_t> positions;
    for (std::size_t i = 0; i < b.size(); ++i) {
      if (!b[i].malformed.empty())  // never handed to the handler, never acked
        b.results_[i] = {item_outcome::fail, b[i].malformed, std::string(dead_letter_reason::malformed_envelope)};
      else if (b[i].message.attempts > options.retry.max_attempts)
        b.results_[i] = {item_outcome::fail,
                         "delivered " + std::to_string(b[i].message.attempts) + " times without being settled"};
      else {
        runnable.push_back(b[i]);
        positions.push_back(i);
      }
    }

    if (!runnable.empty()) {
      batch work(std::move(runnable));
      if (auto failure = run(work)) {
        if (options.isolate_failures && work.size() > 1) {
          for (std::size_t i = 0; i < work.size(); ++i) {
            batch single({work[i]});
            if (auto f = run(single)) mark_all(single, f);
            work.results_[i] = single.results_[0];
          }
        } else {
          mark_all(work, failure);
        }
      }
      for (std::size_t i = 0; i < work.size(); ++i) b.results_[positions[i]] = std::move(work.results_[i]);
    }

    settle(b, started_at);
    release(id);
  }

  void settle(batch& b, time_point attempted_at) {
    std::vector<settlement> bulk;
    std::vector<std::pair<settlement, std::size_t>> letters;
    for (std::size_t i = 0; i < b.size(); ++i) {
      const auto& d = b[i];
      const auto& r = b.results_[i];
      switch (r.kind) {
        case item_outcome::ok:
          bulk.push_back({d.token, settle_action::ack, {}, {}, {}});
          break;
        case item_outcome::retry:
          if (options.retry.may_retry(d.message.attempts)) {
            std::chrono::milliseconds delay;
            {
              std::lock_guard lock(mutex);
              delay = options.retry.backoff(d.message.attempts, rng);
            }
            bulk.push_back({d.token, settle_action::retry, delay, {}, r.error});
          } else {
            letters.push_back({{d.token, settle_action::dead_letter, {},
                                r.reason.empty() ? std::string(dead_letter_reason::max_attempts) : r.reason, r.error},
                               i});
          }
          break;
        case item_outcome::fail:
          letters.push_back({{d.token, settle_action::dead_letter, {},
                              r.reason.empty() ? std::string(dead_letter_reason::permanent_failure) : r.reason,
                              r.error},
                             i});
          break;
      }
    }

    if (!bulk.empty()) {
      // Logged before the settle takes the decisions; a failed settle is logged too.
      if (auto& log = options.log) {
        for (std::size_t i = 0; i < b.size(); ++i) {
          const auto& r = b.results_[i];
          const bool ack = r.kind == item_outcome::ok;
          const bool retry = r.kind == item_outcome::retry && options.retry.may_retry(b[i].message.attempts);
          const auto level = ack ? log_level::debug : log_level::warning;
          if ((ack || retry) && log->enabled(level))
            log->write({.level = level,
                        .component = "consumer",
                        .event = ack ? "processed" : "retry",
                        .receipt_id = b[i].message.receipt_id,
                        .idempotency_key = b[i].message.idempotency_key,
                        .detail = r.error,
                        .attempts = b[i].message.attempts});
        }
      }
      std::size_t acks = 0;
      for (const auto& s : bulk) acks += s.action == settle_action::ack;
      const auto retries = bulk.size() - acks;
      auto ec = wait_done([&](auto done) { queue.async_settle(std::move(bulk), std::move(done)); });
      if (ec) {
        ++settle_errors;
        if (auto& log = options.log; log && log->enabled(log_level::warning))
          log->write({.level = log_level::warning, .component = "consumer", .event = "settle_failed",
                      .detail = ec.message()});
      } else {
        acked += acks;
        retried += retries;
        if (auto& m = options.metrics) {
          m->processed.inc(acks);
          m->retried.inc(retries);
        }
      }
    }

    // Dead letters one by one, so that each alert follows its own confirmed write.
    for (auto& entry : letters) {
      auto& decision = entry.first;
      const auto i = entry.second;
      dead_letter letter{b[i].message,          decision.reason, decision.last_error, b[i].message.attempts,
                         b[i].first_attempt_at, attempted_at,    clock::now()};
      auto ec = wait_done([&](auto done) { queue.async_settle({std::move(decision)}, std::move(done)); });
      if (ec) {
        ++settle_errors;
        continue;
      }
      ++dead_lettered;
      if (options.metrics) options.metrics->dead_lettered.inc();
      if (auto& log = options.log; log && log->enabled(log_level::error))
        log->write({.level = log_level::error,
                    .component = "consumer",
                    .event = "dead_lettered",
                    .receipt_id = letter.message.receipt_id,
                    .idempotency_key = letter.message.idempotency_key,
                    .detail = letter.reason + ": " + letter.last_error,
                    .attempts = letter.attempts});
      if (options.dead_letter.alert) {
        try {
          options.dead_letter.alert(letter);
        } catch (...) {
          // An alert hook must not take the consumer down; the dead letter is stored.
        }
      }
    }
  }

  void keep_leases() {
    std::unique_lock lock(mutex);
    while (!stopped) {
      wake.wait_for(lock, options.lease_heartbeat, [&] { return stopped; });
      if (stopped) break;
      std::vector<std::string> tokens;
      for (const auto& [id, t] : in_hand) tokens.insert(tokens.end(), t.begin(), t.end());
      if (tokens.empty()) continue;
      lock.unlock();
      // A refused extension means a lease already ran out; settle will say so too.
      wait_done([&](auto done) { queue.async_extend(std::move(tokens), options.lease_extension, std::move(done)); });
      lock.lock();
    }
  }
};

batching_consumer::batching_consumer(durable_queue& queue, batch_handler handler, consumer_options options) {
  options.validate();
  if (!handler) throw error(errc::invalid_config, "batching_consumer: handler must be set");
  state_ = std::make_unique<state>(queue, std::move(handler), std::move(options));
}

batching_consumer::~batching_consumer() {
  drain();
  std::vector<std::thread> drainers;
  {
    std::lock_guard lock(state_->mutex);
    drainers.swap(state_->drainers);
  }
  for (auto& t : drainers) t.join();
}

batching_consumer::executor_type batching_consumer::get_executor() const {
  return state_->queue.get_executor();
}

void batching_consumer::start() {
  auto& s = *state_;
  std::lock_guard lock(s.mutex);
  if (s.started || s.stopping) return;
  s.started = true;
  for (std::size_t i = 0; i < s.options.workers; ++i) s.threads.emplace_back([&s] { s.worker(); });
  if (s.options.lease_heartbeat.count() > 0 && s.queue.features().lease_extension)
    s.keeper = std::thread([&s] { s.keep_leases(); });
}

void batching_consumer::drain() {
  auto& s = *state_;
  std::lock_guard serial(s.drain_mutex);
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(s.mutex);
    s.stopping = true;
    threads.swap(s.threads);
  }
  s.wake.notify_all();
  for (auto& t : threads) t.join();
  {
    std::lock_guard lock(s.mutex);
    s.stopped = true;
  }
  s.wake.notify_all();
  if (s.keeper.joinable()) s.keeper.join();
}

void batching_consumer::do_drain(detail::callback<void(error_code)> done) {
  std::lock_guard lock(state_->mutex);
  state_->drainers.emplace_back([this, done = std::move(done)]() mutable {
    drain();
    done(error_code{});
  });
}

consumer_stats batching_consumer::stats() const {
  const auto& s = *state_;
  return {s.batches.load(),       s.acked.load(),          s.retried.load(),
          s.dead_lettered.load(), s.handler_errors.load(), s.settle_errors.load()};
}

}  // namespace ingest
