#include "ingest/memory_queue.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <cstdio>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <unordered_map>

#include "ingest/error.hpp"

namespace ingest {
namespace {

using steady = std::chrono::steady_clock;

enum class place { ready, delayed, leased };

struct item {
  envelope message;
  place at = place::ready;
  std::uint64_t generation = 0;  // validates entries in the ready list and the timer queue
  std::uint64_t lease = 0;       // the lease id carried in the delivery token
  steady::time_point lease_deadline{};
  time_point first_attempt_at{};
  time_point last_attempt_at{};
  std::string last_error;
};

struct key_record {
  std::string fingerprint;
  std::string receipt_id;
  time_point accepted_at;
};

std::string make_token(std::uint64_t seq, std::uint64_t lease) {
  return std::to_string(seq) + ':' + std::to_string(lease);
}

bool parse_token(const std::string& token, std::uint64_t& seq, std::uint64_t& lease) {
  const auto colon = token.find(':');
  if (colon == std::string::npos) return false;
  const char* b = token.data();
  const char* e = b + token.size();
  return std::from_chars(b, b + colon, seq).ec == std::errc{} &&
         std::from_chars(b + colon + 1, e, lease).ec == std::errc{};
}

void warn_not_durable() {
  static std::once_flag once;
  std::call_once(once, [] {
    std::fputs(
        "ingest: memory_queue is NOT durable: everything it holds is lost when the process exits. "
        "Use the SQLite backend (or a broker) for real work.\n",
        stderr);
  });
}

}  // namespace

struct memory_queue::state : std::enable_shared_from_this<state> {
  template <class... Args>
  using callback = detail::callback<void(Args...)>;

  struct waiter {
    std::size_t max;
    steady::time_point deadline;
    callback<error_code, std::vector<delivery>> done;
  };

  state(executor_type ex, memory_queue_options o) : executor(ex), options(o), timer(ex) {}

  executor_type executor;
  memory_queue_options options;

  std::mutex mutex;
  bool closed = false;
  error_code publish_fault;
  error_code lookup_fault;
  bool holding_acks = false;
  bool dropping_settlements = false;
  std::vector<std::pair<callback<error_code, receipt>, receipt>> held_acks;

  std::uint64_t next_seq = 1;
  std::uint64_t next_lease = 1;
  std::map<std::uint64_t, item> items;  // not yet processed, by publish order
  std::unordered_map<std::string, key_record> keys;
  std::map<std::string, dead_letter> dead;                    // by receipt id (time-ordered)
  std::deque<std::pair<std::uint64_t, std::uint64_t>> ready;  // (seq, generation); stale entries skipped
  std::multimap<steady::time_point, std::pair<std::uint64_t, std::uint64_t>> timed;  // delays and lease expiries
  std::list<waiter> waiters;

  boost::asio::steady_timer timer;
  steady::time_point timer_at = steady::time_point::max();

  std::uint64_t accepted = 0;
  std::uint64_t processed = 0;
  std::uint64_t purged = 0;
  std::uint64_t leased = 0;

  // ---- everything below runs with `mutex` held ----

  void make_ready(std::uint64_t seq, item& it) {
    if (it.at == place::leased) --leased;
    it.at = place::ready;
    ++it.generation;
    ready.emplace_back(seq, it.generation);
  }

  void schedule(std::uint64_t seq, item& it, place at, steady::time_point when) {
    if (it.at == place::leased && at != place::leased) --leased;
    if (it.at != place::leased && at == place::leased) ++leased;
    it.at = at;
    ++it.generation;
    timed.emplace(when, std::make_pair(seq, it.generation));
  }

  void promote(steady::time_point now) {
    while (!timed.empty() && timed.begin()->first <= now) {
      const auto [seq, generation] = timed.begin()->second;
      timed.erase(timed.begin());
      auto found = items.find(seq);
      if (found != items.end() && found->second.generation == generation && found->second.at != place::ready)
        make_ready(seq, found->second);
    }
  }

  void take(std::size_t max, std::vector<delivery>& out) {
    const auto now = steady::now();
    const auto wall = clock::now();
    promote(now);
    while (out.size() < max && !ready.empty()) {
      const auto [seq, generation] = ready.front();
      ready.pop_front();
      auto found = items.find(seq);
      if (found == items.end() || found->second.generation != generation || found->second.at != place::ready) continue;
      item& it = found->second;
      ++it.message.attempts;
      if (it.message.attempts == 1) it.first_attempt_at = wall;
      it.last_attempt_at = wall;
      it.lease = next_lease++;
      it.lease_deadline = now + options.visibility_timeout;
      schedule(seq, it, place::leased, it.lease_deadline);
      out.push_back(delivery{it.message, make_token(seq, it.lease), it.first_attempt_at});
    }
  }

  bool has_ready() {
    promote(steady::now());
    while (!ready.empty()) {
      const auto [seq, generation] = ready.front();
      auto found = items.find(seq);
      if (found != items.end() && found->second.generation == generation && found->second.at == place::ready)
        return true;
      ready.pop_front();
    }
    return false;
  }

  void serve_waiters() {
    while (!waiters.empty() && has_ready()) {
      std::vector<delivery> batch;
      take(waiters.front().max, batch);
      auto done = std::move(waiters.front().done);
      waiters.pop_front();
      done(error_code{}, std::move(batch));
    }
    const auto now = steady::now();
    for (auto it = waiters.begin(); it != waiters.end();) {
      if (it->deadline <= now) {
        auto done = std::move(it->done);
        it = waiters.erase(it);
        done(error_code{}, std::vector<delivery>{});
      } else {
        ++it;
      }
    }
    rearm();
  }

  void rearm() {
    if (waiters.empty()) return;  // promotion is lazy when nobody waits
    auto next = steady::time_point::max();
    for (const auto& w : waiters) next = std::min(next, w.deadline);
    if (!timed.empty()) next = std::min(next, timed.begin()->first);
    if (next >= timer_at) return;
    timer_at = next;
    timer.expires_at(next);
    timer.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      if (ec == boost::asio::error::operation_aborted) return;
      if (auto self = weak.lock()) {
        std::lock_guard lock(self->mutex);
        self->timer_at = steady::time_point::max();
        self->serve_waiters();
      }
    });
  }

  void complete_publish(callback<error_code, receipt> done, receipt r) {
    if (holding_acks)
      held_acks.emplace_back(std::move(done), std::move(r));
    else
      done(error_code{}, std::move(r));
  }

  // A settle or extend may only act on the lease it names, and only while it lasts.
  item* leased_item(const std::string& token, std::uint64_t& seq, steady::time_point now) {
    std::uint64_t lease = 0;
    if (!parse_token(token, seq, lease)) return nullptr;
    auto found = items.find(seq);
    if (found == items.end()) return nullptr;
    item& it = found->second;
    if (it.at != place::leased || it.lease != lease || it.lease_deadline <= now) return nullptr;
    return &it;
  }
};

memory_queue::memory_queue(executor_type ex, memory_queue_options options)
    : state_(std::make_shared<state>(ex, options)) {
  if (!options.quiet) warn_not_durable();
}

memory_queue::~memory_queue() {
  close();
}

durable_queue::executor_type memory_queue::get_executor() const {
  return state_->executor;
}

queue_features memory_queue::features() const {
  return {.durable = false,
          .native_dedup = true,
          .fifo = true,
          .delayed_retry = true,
          .lease_extension = true,
          .exact_stats = true,
          .lookup = true,
          .deadline_before_store = true,
          .dedup_window = std::chrono::milliseconds::max()};  // for the queue's lifetime
}

void memory_queue::close() {
  std::lock_guard lock(state_->mutex);
  if (state_->closed) return;
  state_->closed = true;
  for (auto& w : state_->waiters) w.done(std::make_error_code(std::errc::operation_canceled), std::vector<delivery>{});
  state_->waiters.clear();
  state_->holding_acks = false;
  for (auto& [done, r] : state_->held_acks) done(error_code{}, std::move(r));
  state_->held_acks.clear();
  state_->timer.cancel();
}

void memory_queue::fail_publishes(error_code ec) {
  std::lock_guard lock(state_->mutex);
  state_->publish_fault = ec;
}

void memory_queue::fail_lookups(error_code ec) {
  std::lock_guard lock(state_->mutex);
  state_->lookup_fault = ec;
}

void memory_queue::hold_acks(bool hold) {
  std::lock_guard lock(state_->mutex);
  state_->holding_acks = hold;
  if (hold) return;
  for (auto& [done, r] : state_->held_acks) done(error_code{}, std::move(r));
  state_->held_acks.clear();
}

void memory_queue::drop_settlements(bool drop) {
  std::lock_guard lock(state_->mutex);
  state_->dropping_settlements = drop;
}

void memory_queue::do_publish(envelope message, callback<error_code, receipt> done) {
  auto& s = *state_;
  std::lock_guard lock(s.mutex);
  if (s.closed) return done(errc::shutting_down, receipt{});
  if (s.publish_fault) return done(s.publish_fault, receipt{});

  if (auto known = s.keys.find(message.idempotency_key); known != s.keys.end()) {
    if (known->second.fingerprint != message.fingerprint) return done(errc::conflict, receipt{});
    return s.complete_publish(
        std::move(done), receipt{known->second.receipt_id, message.idempotency_key, known->second.accepted_at, true});
  }
  // The postmark first: a late message is late whether or not there is room for it.
  // To the microsecond, as the other backends keep it (and a signed receipt carries it).
  message.accepted_at = std::chrono::time_point_cast<std::chrono::microseconds>(clock::now());
  sign_receipt(receipt_signing().get(), message);
  if (message.accepted_at > message.not_after) return done(errc::deadline_passed, receipt{});
  if (s.options.max_messages != 0 && s.items.size() >= s.options.max_messages) return done(errc::queue_full, receipt{});

  message.attempts = 0;
  receipt r{message.receipt_id, message.idempotency_key, message.accepted_at, false};
  s.keys.emplace(message.idempotency_key, key_record{message.fingerprint, message.receipt_id, message.accepted_at});
  const auto seq = s.next_seq++;
  auto& it = s.items.emplace(seq, item{}).first->second;
  it.message = std::move(message);
  s.ready.emplace_back(seq, it.generation);
  ++s.accepted;
  s.complete_publish(std::move(done), std::move(r));
  s.serve_waiters();
}

void memory_queue::do_fetch(std::size_t max, duration wait, callback<error_code, std::vector<delivery>> done) {
  auto& s = *state_;
  std::lock_guard lock(s.mutex);
  if (s.closed) return done(errc::shutting_down, std::vector<delivery>{});
  if (max == 0) return done(error_code{}, std::vector<delivery>{});
  std::vector<delivery> batch;
  s.take(max, batch);
  if (!batch.empty() || wait <= duration::zero()) return done(error_code{}, std::move(batch));
  s.waiters.push_back(state::waiter{max, steady::now() + wait, std::move(done)});
  s.rearm();
}

void memory_queue::do_settle(std::vector<settlement> decisions, callback<error_code> done) {
  auto& s = *state_;
  std::lock_guard lock(s.mutex);
  if (s.dropping_settlements) return done(error_code{});
  error_code result;
  const auto now = steady::now();
  for (auto& d : decisions) {
    std::uint64_t seq = 0;
    item* it = s.leased_item(d.token, seq, now);
    if (it == nullptr) {
      result = errc::lease_expired;
      continue;
    }
    switch (d.action) {
      case settle_action::ack:
        --s.leased;
        ++s.processed;
        s.items.erase(seq);
        break;
      case settle_action::retry:
        it->last_error = std::move(d.last_error);
        if (d.delay > duration::zero())
          s.schedule(seq, *it, place::delayed, now + d.delay);
        else
          s.make_ready(seq, *it);
        break;
      case settle_action::dead_letter: {
        dead_letter letter{it->message,          std::move(d.reason),  std::move(d.last_error),
                           it->message.attempts, it->first_attempt_at, it->last_attempt_at,
                           clock::now()};
        s.dead.insert_or_assign(it->message.receipt_id, std::move(letter));
        --s.leased;
        s.items.erase(seq);
        break;
      }
    }
  }
  done(result);
  s.serve_waiters();
}

void memory_queue::do_extend(std::vector<std::string> tokens, duration by, callback<error_code> done) {
  auto& s = *state_;
  std::lock_guard lock(s.mutex);
  error_code result;
  const auto now = steady::now();
  for (const auto& token : tokens) {
    std::uint64_t seq = 0;
    item* it = s.leased_item(token, seq, now);
    if (it == nullptr) {
      result = errc::lease_expired;
      continue;
    }
    it->lease_deadline = now + by;
    s.schedule(seq, *it, place::leased, it->lease_deadline);
  }
  done(result);
}

void memory_queue::do_stats(callback<error_code, queue_stats> done) {
  auto& s = *state_;
  std::lock_guard lock(s.mutex);
  s.promote(steady::now());
  queue_stats st;
  st.accepted = s.accepted;
  st.pending = s.items.size();
  st.leased = s.leased;
  for (const auto& [seq, it] : s.items)
    if (it.message.attempts > 0) ++st.retrying;
  st.processed = s.processed;
  st.dead_lettered = s.dead.size();
  st.purged = s.purged;
  // Pending and dead letters are counted from the items themselves; accepted,
  // processed and purged are counters of their own, moved by the operations alone.
  st.exact = {.accepted = true, .pending = true, .processed = true, .dead_lettered = true, .purged = true};
  done(error_code{}, st);
}

void memory_queue::do_dead_letters(std::string after, std::size_t limit,
                                   callback<error_code, std::vector<dead_letter>> done) {
  auto& s = *state_;
  std::lock_guard lock(s.mutex);
  std::vector<dead_letter> out;
  for (auto it = s.dead.upper_bound(after); it != s.dead.end() && out.size() < limit; ++it) out.push_back(it->second);
  done(error_code{}, std::move(out));
}

void memory_queue::do_find(std::string receipt_id, callback<error_code, message_status> done) {
  auto& s = *state_;
  std::lock_guard lock(s.mutex);
  if (s.lookup_fault) return done(s.lookup_fault, message_status{});
  message_status out;
  if (auto found = s.dead.find(receipt_id); found != s.dead.end()) {
    out.message = found->second.message;
    out.state = message_state::dead_lettered;
    out.reason = found->second.reason;
    out.last_error = found->second.last_error;
    return done(error_code{}, std::move(out));
  }
  // A test backend: a scan is fine here.
  for (const auto& [seq, it] : s.items) {
    if (it.message.receipt_id != receipt_id) continue;
    out.message = it.message;
    out.state = it.at == place::leased ? message_state::leased : message_state::pending;
    out.last_error = it.last_error;
    return done(error_code{}, std::move(out));
  }
  for (const auto& [key, record] : s.keys) {
    if (record.receipt_id != receipt_id) continue;
    out.message.receipt_id = record.receipt_id;
    out.message.idempotency_key = key;
    out.message.fingerprint = record.fingerprint;
    out.message.accepted_at = record.accepted_at;
    out.state = message_state::processed;
    return done(error_code{}, std::move(out));
  }
  done(make_error_code(errc::not_found), std::move(out));
}

void memory_queue::do_replay(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) {
  auto& s = *state_;
  std::lock_guard lock(s.mutex);
  if (receipt_ids.empty())
    for (const auto& [id, letter] : s.dead) receipt_ids.push_back(id);
  std::size_t moved = 0;
  for (const auto& id : receipt_ids) {
    auto found = s.dead.find(id);
    if (found == s.dead.end()) continue;
    const auto seq = s.next_seq++;
    auto& it = s.items.emplace(seq, item{}).first->second;
    it.message = std::move(found->second.message);
    it.message.attempts = 0;
    s.ready.emplace_back(seq, it.generation);
    s.dead.erase(found);
    ++moved;
  }
  done(error_code{}, moved);
  s.serve_waiters();
}

void memory_queue::do_purge(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) {
  auto& s = *state_;
  std::lock_guard lock(s.mutex);
  std::size_t removed = 0;
  if (receipt_ids.empty()) {
    removed = s.dead.size();
    s.dead.clear();
  } else {
    for (const auto& id : receipt_ids) removed += s.dead.erase(id);
  }
  s.purged += removed;
  done(error_code{}, removed);
}

}  // namespace ingest
