#include <algorithm>
#include <boost/asio/post.hpp>
#include <iterator>
#include <mutex>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include "engine.hpp"
#include "ingest/error.hpp"

namespace ingest::sqlite {
namespace {

// An SQLite failure inside a transaction: busy (another process holds the lock) is
// "unavailable, retry later"; anything else is a storage failure.
error_code classify(const ingest::error& e) {
  if (is_busy(e.code())) return errc::backend_unavailable;
  return e.code().category() == sqlite_category() ? errc::storage_error : e.code();
}

}  // namespace

// ---- enqueue (any thread) ----

// Returns false (and leaves `op` alone) when the queue is closed.
bool queue::engine::enqueue(operation&& op, bool refused_when_closed) {
  bool notify = false;
  {
    std::lock_guard lock(mutex);
    if (closed && refused_when_closed) return false;
    if (stopping) return false;
    pending.push_back(std::move(op));
    // The writer is woken when it sleeps for want of work, or when its commit linger
    // can end early. Waking it for every operation during the linger cost a context
    // switch per publish and changed nothing.
    notify = idle || pending.size() >= options.max_ops_per_commit;
  }
  if (notify) wake.notify_one();
  return true;
}

// ---- the writer loop ----

void queue::engine::run() {
  std::vector<operation> batch;
  std::unique_lock lock(mutex);
  while (true) {
    if (closed && !waiters.empty()) {
      auto cancelled = std::move(waiters);
      waiters.clear();
      lock.unlock();
      for (auto& w : cancelled) w.done(std::make_error_code(std::errc::operation_canceled), std::vector<delivery>{});
      lock.lock();
    }
    if (stopping && pending.empty()) break;
    if (pending.empty()) {
      idle = true;
      wake.wait_until(lock, next_wake(), [&] { return stopping || !pending.empty() || (closed && !waiters.empty()); });
      idle = false;
      if (closed && !waiters.empty()) continue;
    }
    if (!pending.empty() && options.commit_linger > micros::zero() && pending.size() < options.max_ops_per_commit) {
      wake.wait_for(lock, options.commit_linger,
                    [&] { return stopping || pending.size() >= options.max_ops_per_commit; });
    }
    // The two vectors trade buffers: no allocation per operation on either side.
    batch.clear();
    if (pending.size() <= options.max_ops_per_commit) {
      batch.swap(pending);
    } else {
      const auto end = pending.begin() + static_cast<std::ptrdiff_t>(options.max_ops_per_commit);
      batch.assign(std::make_move_iterator(pending.begin()), std::make_move_iterator(end));
      pending.erase(pending.begin(), end);
    }
    lock.unlock();
    step(batch);
    lock.lock();
  }
}

queue::engine::steady::time_point queue::engine::next_wake() const {
  auto wake_at = next_compaction;
  for (const auto& w : waiters) wake_at = std::min(wake_at, w.deadline);
  if (!waiters.empty()) wake_at = std::min(wake_at, next_poll);
  return wake_at;
}

// Whether an operation can make messages deliverable to a waiting fetch.
bool queue::engine::feeds_waiters(const operation& op) {
  return std::holds_alternative<publish_op>(op) || std::holds_alternative<settle_op>(op) ||
         std::holds_alternative<replay_op>(op);
}

void queue::engine::step(std::vector<operation>& batch) {
  const auto now = steady::now();
  const bool serve = decide_serve(batch, now);
  const bool compact = now >= next_compaction;
  if (batch.empty() && !serve && !compact) {
    expire_waiters(now);
    return;
  }

  std::vector<fetch_op> served;
  error_code failure;
  keys_added.clear();
  keys_removed.clear();
  try {
    transaction tx(db);
    catch_up();
    deltas d;
    const auto t = detail::now_us();
    apply_operations(batch, t, d);
    if (serve) serve_waiters(t, served);
    if (compact) compact_rows(t, d);
    flush(d);
    read_results(batch, t);
    tx.commit();
  } catch (const ingest::error& e) {
    failure = classify(e);
    std::lock_guard lock(mutex);
    last_error = e.what();
  }
  // A pass that removed a full batch has more to do: the next step runs another
  // (between other work, so publishers are never held up by more than one pass).
  if (compact)
    next_compaction = !failure && compacted_full ? steady::now() : steady::now() + options.compaction_interval;
  compacted_full = false;

  after_transaction(failure, served);
  complete(batch, served, failure);
  expire_waiters(steady::now());
}

// Waiting fetches are served in the same transaction as the operations that may
// feed them (a publish here), and, every poll_interval, when another process may
// have published or a delay or lease ran out.
bool queue::engine::decide_serve(const std::vector<operation>& batch, steady::time_point now) {
  bool serve = false;
  if (!waiters.empty()) {
    const bool poll_due = now >= next_poll;
    if (poll_due) next_poll = now + options.poll_interval;
    if (std::any_of(batch.begin(), batch.end(), feeds_waiters))
      serve = true;
    else if (poll_due)
      serve = any_due();
  }
  return serve;
}

void queue::engine::apply_operations(std::vector<operation>& batch, std::int64_t t, deltas& d) {
  std::int64_t pending_now = -1;
  for (auto& op : batch) {
    std::visit(
        [&](auto& o) {
          using T = std::decay_t<decltype(o)>;
          if constexpr (std::is_same_v<T, publish_op>) {
            if (options.max_messages != 0 && pending_now < 0) pending_now = pending_count();
            apply_publish(o, t, d, pending_now);
          } else if constexpr (std::is_same_v<T, settle_op>) {
            apply_settle(o, t, d);
          } else if constexpr (std::is_same_v<T, extend_op>) {
            apply_extend(o, t);
          } else if constexpr (std::is_same_v<T, replay_op>) {
            apply_replay(o, t, d);
          } else if constexpr (std::is_same_v<T, fetch_op>) {
            lease(o, t);
          }
        },
        op);
  }
}

void queue::engine::serve_waiters(std::int64_t t, std::vector<fetch_op>& served) {
  for (auto it = waiters.begin(); it != waiters.end();) {
    lease(*it, t);
    if (it->result.empty()) {
      ++it;
    } else {
      served.push_back(std::move(*it));
      it = waiters.erase(it);
    }
  }
}

void queue::engine::read_results(std::vector<operation>& batch, std::int64_t t) {
  for (auto& op : batch) {
    if (auto* s = std::get_if<stats_op>(&op)) read_stats(*s, t);
    if (auto* l = std::get_if<list_op>(&op)) read_dead_letters(*l);
    if (auto* f = std::get_if<find_op>(&op)) read_message(*f, t);
  }
}

void queue::engine::after_transaction(error_code failure, std::vector<fetch_op>& served) {
  if (failure) {
    // Rolled back: nothing of this transaction happened, its keys included.
    for (const auto& [hash, seq] : keys_added) erase_key(hash, seq);
    if (!keys_added.empty()) last_seen_seq = keys_added.front().second - 1;
    // Waiters keep waiting.
    for (auto& w : served) {
      w.result.clear();
      waiters.push_back(std::move(w));
    }
    served.clear();
  } else {
    for (const auto& [hash, seq] : keys_removed) erase_key(hash, seq);
    if (sweep_below > 0)
      for (auto it = keys.begin(); it != keys.end();) it = it->second < sweep_below ? keys.erase(it) : std::next(it);
  }
  sweep_below = 0;
}

// Hands the step's results to the queue's executor in one post. Completing each
// operation here, on the writer thread, posted one handler per publish from this
// thread and freed every message on it, away from the threads that allocated them:
// at a few thousand publishes per commit the allocator's locks were contended on
// every request.
void queue::engine::complete(std::vector<operation>& batch, std::vector<fetch_op>& served, error_code failure) {
  std::vector<operation> done;
  done.reserve(batch.size() + served.size());
  const auto now = steady::now();
  for (auto& op : batch) {
    if (auto* f = std::get_if<fetch_op>(&op); f && !failure && f->result.empty() && f->deadline > now)
      waiters.push_back(std::move(*f));  // nothing yet: wait (still owned by us)
    else
      done.push_back(std::move(op));
  }
  for (auto& w : served) done.emplace_back(std::move(w));
  if (done.empty()) return;
  boost::asio::post(executor, [ops = std::move(done), failure]() mutable {
    for (auto& op : ops) finish(op, failure);
  });
}

void queue::engine::finish(operation& op, error_code failure) {
  std::visit(
      [&](auto& o) {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, publish_op>) {
          if (failure) return o.done(failure, receipt{});
          o.done(o.ec, o.ec ? receipt{} : std::move(o.result));
        } else if constexpr (std::is_same_v<T, fetch_op>) {
          if (failure) return o.done(failure, std::vector<delivery>{});
          o.done(error_code{}, std::move(o.result));
        } else if constexpr (std::is_same_v<T, settle_op> || std::is_same_v<T, extend_op>) {
          o.done(failure ? failure : o.ec);
        } else if constexpr (std::is_same_v<T, stats_op>) {
          o.done(failure, failure ? queue_stats{} : o.result);
        } else if constexpr (std::is_same_v<T, list_op>) {
          o.done(failure, failure ? std::vector<dead_letter>{} : std::move(o.result));
        } else if constexpr (std::is_same_v<T, replay_op>) {
          o.done(failure, failure ? 0 : o.result);
        } else if constexpr (std::is_same_v<T, find_op>) {
          o.done(failure ? failure : o.ec, failure ? message_status{} : std::move(o.result));
        }
      },
      op);
}

void queue::engine::expire_waiters(steady::time_point now) {
  for (auto it = waiters.begin(); it != waiters.end();) {
    if (it->deadline <= now) {
      it->done(error_code{}, std::vector<delivery>{});
      it = waiters.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace ingest::sqlite
