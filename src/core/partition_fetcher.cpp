// The fetch of a partitioned_queue (see partition_fetcher.hpp).

#include "partition_fetcher.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <charconv>

namespace ingest::detail {

std::string partition_token(std::size_t partition, const std::string& token) {
  return std::to_string(partition) + "/" + token;
}

bool split_partition_token(const std::string& token, std::size_t count, std::size_t& partition, std::string& inner) {
  const auto slash = token.find('/');
  if (slash == std::string::npos || slash == 0) return false;
  const auto* first = token.data();
  const auto [end, ec] = std::from_chars(first, first + slash, partition);
  if (ec != std::errc{} || end != first + slash || partition >= count) return false;
  inner = token.substr(slash + 1);
  return true;
}

}  // namespace ingest::detail

namespace ingest {

namespace {
// How long a partition whose fetch failed is left out of sweeps and waits.
constexpr auto failure_pause = std::chrono::milliseconds(250);
}  // namespace

partitioned_queue::fetcher::fetcher(executor_type ex, std::vector<durable_queue*> partitions, duration hold_limit)
    : ex_(std::move(ex)),
      parts_(std::move(partitions)),
      busy_(parts_.size(), 0),
      failing_until_(parts_.size()),
      hold_limit_(hold_limit) {}

void partitioned_queue::fetcher::fetch(std::size_t max, duration wait, fetch_done done) {
  actions later;
  {
    std::lock_guard lock(mutex_);
    if (closed_ || max == 0) {
      later.push_back([done = std::make_shared<fetch_done>(std::move(done)), closed = closed_]() mutable {
        (*done)(closed ? error_code(make_error_code(errc::shutting_down)) : error_code{}, {});
      });
    } else if (auto kept = take_ready(max); !kept.empty()) {
      later.push_back([done = std::make_shared<fetch_done>(std::move(done)), b = std::move(kept)]() mutable {
        (*done)(error_code{}, std::move(b));
      });
    } else {
      const auto now = steady::now();
      std::vector<std::size_t> idle;
      for (std::size_t i = 0; i < parts_.size(); ++i) {
        const auto p = (turn_ + i) % parts_.size();
        if (usable(p, now)) idle.push_back(p);
      }
      turn_ = (turn_ + 1) % parts_.size();
      if (idle.empty() && all_failing(now)) {
        later.push_back(
            [done = std::make_shared<fetch_done>(std::move(done)), ec = last_error_]() mutable { (*done)(ec, {}); });
      } else if (idle.empty()) {
        add_waiter(max, now + wait, std::move(done), later);
      } else {
        // Every idle partition at once, the batch shared among them (none is asked for
        // more than its share, so nothing is taken that the batch cannot hold).
        auto s = std::make_shared<sweep>();
        s->max = max;
        s->deadline = now + wait;
        s->done = std::move(done);
        ask(s, idle);
      }
    }
  }
  for (auto& a : later) a();
}

void partitioned_queue::fetcher::ask(const std::shared_ptr<sweep>& s, const std::vector<std::size_t>& partitions) {
  // With room for fewer messages than there are partitions, each is still asked for
  // one, so that none is passed over: what does not fit is kept for the next fetch.
  const auto want = s->max - s->got.size();
  const auto k = partitions.size();
  s->outstanding = k;
  s->asked += k;
  s->full.clear();
  for (std::size_t i = 0; i < k; ++i) {
    const auto share = std::max<std::size_t>(1, want / k + (i < want % k ? 1 : 0));
    launch(partitions[i], share, duration::zero(),
           [self = shared_from_this(), s, p = partitions[i], share](error_code ec, std::vector<delivery> batch) {
             self->swept(s, p, share, ec, std::move(batch));
           });
  }
}

void partitioned_queue::fetcher::swept(const std::shared_ptr<sweep>& s, std::size_t partition, std::size_t share,
                                       error_code ec, std::vector<delivery> batch) {
  actions later;
  {
    std::lock_guard lock(mutex_);
    busy_[partition] = 0;
    note(partition, ec, batch.empty());
    if (ec && batch.empty() && ec != std::errc::operation_canceled) {
      ++s->failed;
      s->error = ec;
    }
    if (batch.size() >= share) s->full.push_back(partition);
    tag(partition, batch);
    std::move(batch.begin(), batch.end(), std::back_inserter(s->got));
    if (--s->outstanding == 0) finish(s, later);
    pump(later);  // a waiter may want the partition now idle
  }
  for (auto& a : later) a();
}

// Under the lock, when every partition of the round answered: another round for the
// partitions that gave all they were asked while the batch has room, else the answer,
// or a wait when nothing came.
void partitioned_queue::fetcher::finish(const std::shared_ptr<sweep>& s, actions& later) {
  const auto now = steady::now();
  std::vector<std::size_t> more;
  for (auto p : s->full)
    if (usable(p, now)) more.push_back(p);
  if (!closed_ && !more.empty() && s->got.size() < s->max) return ask(s, more);
  if (!s->got.empty() || closed_) {
    // What waited in `ready_` is older than what the sweep brought: it goes first.
    auto first = take_ready(s->max - std::min(s->max, s->got.size()));
    std::move(s->got.begin(), s->got.end(), std::back_inserter(first));
    if (first.size() > s->max) {
      std::vector<delivery> extra(std::make_move_iterator(first.begin() + static_cast<std::ptrdiff_t>(s->max)),
                                  std::make_move_iterator(first.end()));
      first.resize(s->max);
      if (closed_)
        release(std::move(extra));
      else
        hold(std::move(extra));
    }
    const error_code result =
        !first.empty() ? error_code{} : error_code(std::make_error_code(std::errc::operation_canceled));
    later.push_back([done = std::make_shared<fetch_done>(std::move(s->done)), result, b = std::move(first)]() mutable {
      (*done)(result, std::move(b));
    });
  } else if (s->failed == s->asked && all_failing(now)) {
    later.push_back(
        [done = std::make_shared<fetch_done>(std::move(s->done)), ec = s->error]() mutable { (*done)(ec, {}); });
  } else {
    add_waiter(s->max, s->deadline, std::move(s->done), later);
  }
}

void partitioned_queue::fetcher::woken(std::size_t partition, error_code ec, std::vector<delivery> batch) {
  actions later;
  {
    std::lock_guard lock(mutex_);
    busy_[partition] = 0;
    note(partition, ec, batch.empty());
    tag(partition, batch);
    if (closed_) {
      release(std::move(batch));
    } else {
      hold(std::move(batch));
      pump(later);
    }
  }
  for (auto& a : later) a();
}

// A waiter's deadline: it is answered empty; what its wake-ups bring later is kept.
void partitioned_queue::fetcher::expire(std::uint64_t waiter_id) {
  actions later;
  {
    std::lock_guard lock(mutex_);
    auto w = std::find_if(waiters_.begin(), waiters_.end(), [&](const waiter& x) { return x.id == waiter_id; });
    if (w == waiters_.end()) return;
    answer(*w, error_code{}, take_ready(w->max), later);
    waiters_.erase(w);
  }
  for (auto& a : later) a();
}

void partitioned_queue::fetcher::add_waiter(std::size_t max, steady::time_point deadline, fetch_done done,
                                            actions& later) {
  waiter w{next_waiter_++, max, deadline, std::move(done), std::make_shared<boost::asio::steady_timer>(ex_, deadline)};
  w.timer->async_wait([self = shared_from_this(), id = w.id](const boost::system::error_code& ec) {
    if (!ec) self->expire(id);
  });
  waiters_.push_back(std::move(w));
  pump(later);
}

void partitioned_queue::fetcher::answer(waiter& w, error_code ec, std::vector<delivery> batch, actions& later) {
  w.timer->cancel();
  later.push_back([done = std::make_shared<fetch_done>(std::move(w.done)), ec, b = std::move(batch)]() mutable {
    (*done)(ec, std::move(b));
  });
}

void partitioned_queue::fetcher::pump(actions& later) {
  while (!waiters_.empty()) {
    auto batch = take_ready(waiters_.front().max);
    if (batch.empty()) break;
    answer(waiters_.front(), error_code{}, std::move(batch), later);
    waiters_.pop_front();
  }
  const auto now = steady::now();
  if (!waiters_.empty() && all_failing(now)) {
    // Nothing can come: the waiters learn why at once instead of at their deadline.
    for (auto& w : waiters_) answer(w, last_error_, {}, later);
    waiters_.clear();
    return;
  }
  if (closed_) return;
  for (std::size_t p = 0; p < parts_.size(); ++p) {
    if (!usable(p, now)) continue;
    auto w = std::find_if(waiters_.begin(), waiters_.end(), [&](const waiter& x) { return x.deadline > now; });
    if (w == waiters_.end()) return;
    // One message each: what comes after the first answer is kept for the next fetch.
    launch(p, 1, std::chrono::ceil<duration>(w->deadline - now),
           [self = shared_from_this(), p](error_code ec, std::vector<delivery> batch) {
             self->woken(p, ec, std::move(batch));
           });
  }
}

// Under the lock. The partition's answer is taken on our executor, never inside this
// call, so that it may lock again.
void partitioned_queue::fetcher::launch(std::size_t partition, std::size_t max, duration wait,
                                        std::function<void(error_code, std::vector<delivery>)> then) {
  busy_[partition] = 1;
  parts_[partition]->do_fetch(
      max, wait, [ex = ex_, then = std::move(then)](error_code ec, std::vector<delivery> batch) mutable {
        boost::asio::post(ex, [then = std::move(then), ec, b = std::move(batch)]() mutable { then(ec, std::move(b)); });
      });
}

void partitioned_queue::fetcher::note(std::size_t partition, error_code ec, bool empty) {
  if (ec && empty && ec != std::errc::operation_canceled) {
    failing_until_[partition] = steady::now() + failure_pause;
    last_error_ = ec;
    if (!closed_) pump_at(failing_until_[partition]);
  } else {
    failing_until_[partition] = {};
  }
}

// A waiter whose wake-ups hold the other partitions would not see a failed partition
// usable again until one of them answers: a pump when its pause is over.
void partitioned_queue::fetcher::pump_at(steady::time_point when) {
  auto timer = std::make_shared<boost::asio::steady_timer>(ex_, when);
  timer->async_wait([self = shared_from_this(), timer](const boost::system::error_code& ec) {
    if (ec) return;
    actions later;
    {
      std::lock_guard lock(self->mutex_);
      self->pump(later);
    }
    for (auto& a : later) a();
  });
}

bool partitioned_queue::fetcher::usable(std::size_t partition, steady::time_point now) const {
  return !busy_[partition] && failing_until_[partition] <= now;
}

bool partitioned_queue::fetcher::all_failing(steady::time_point now) const {
  return std::all_of(failing_until_.begin(), failing_until_.end(), [&](auto t) { return t > now; });
}

void partitioned_queue::fetcher::release(std::vector<delivery> held) {
  if (forgotten_ || held.empty()) return;
  std::vector<std::vector<settlement>> by_partition(parts_.size());
  for (auto& d : held) {
    std::size_t p = 0;
    std::string inner;
    if (detail::split_partition_token(d.token, parts_.size(), p, inner))
      by_partition[p].push_back({inner, settle_action::retry, {}, {}, {}});
  }
  for (std::size_t p = 0; p < parts_.size(); ++p)
    if (!by_partition[p].empty()) parts_[p]->do_settle(std::move(by_partition[p]), [](error_code) {});
}

void partitioned_queue::fetcher::hold(std::vector<delivery> batch) {
  const auto now = steady::now();
  for (auto& d : batch) ready_.push_back({std::move(d), now});
}

void partitioned_queue::fetcher::release_stale() {
  const auto oldest = steady::now() - hold_limit_;
  std::vector<delivery> stale;
  while (!ready_.empty() && ready_.front().since < oldest) {
    stale.push_back(std::move(ready_.front().d));
    ready_.pop_front();
  }
  release(std::move(stale));
}

std::vector<delivery> partitioned_queue::fetcher::take_ready(std::size_t max) {
  release_stale();
  std::vector<delivery> out;
  while (!ready_.empty() && out.size() < max) {
    out.push_back(std::move(ready_.front().d));
    ready_.pop_front();
  }
  return out;
}

std::vector<delivery> partitioned_queue::fetcher::take_all() {
  std::vector<delivery> out;
  for (auto& h : ready_) out.push_back(std::move(h.d));
  ready_.clear();
  return out;
}

void partitioned_queue::fetcher::tag(std::size_t partition, std::vector<delivery>& batch) const {
  for (auto& d : batch) d.token = detail::partition_token(partition, d.token);
}

void partitioned_queue::fetcher::close() {
  actions later;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    for (auto& w : waiters_) answer(w, std::make_error_code(std::errc::operation_canceled), {}, later);
    waiters_.clear();
    release(take_all());
  }
  for (auto& a : later) a();
}

void partitioned_queue::fetcher::forget() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  forgotten_ = true;
  ready_.clear();
}

}  // namespace ingest
