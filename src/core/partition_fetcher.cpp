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

partitioned_queue::fetcher::fetcher(executor_type ex, std::vector<durable_queue*> partitions)
    : ex_(std::move(ex)), parts_(std::move(partitions)), busy_(parts_.size(), 0) {}

void partitioned_queue::fetcher::fetch(std::size_t max, duration wait, fetch_done done) {
  std::unique_lock lock(mutex_);
  if (closed_) {
    lock.unlock();
    return done(errc::shutting_down, {});
  }
  if (!ready_.empty()) {
    auto batch = take_ready(max);
    lock.unlock();
    return done(error_code{}, std::move(batch));
  }
  auto s = std::make_shared<sweep>();
  s->max = max;
  s->deadline = steady::now() + wait;
  s->done = std::move(done);
  s->start = turn_;
  turn_ = (turn_ + 1) % parts_.size();
  lock.unlock();
  step(std::move(s));
}

// Asks the sweep's next idle partition for what is left of its batch, without waiting;
// after the last one, answers the fetch or turns it into a waiter.
void partitioned_queue::fetcher::step(std::shared_ptr<sweep> s) {
  actions later;
  {
    std::lock_guard lock(mutex_);
    while (!closed_ && s->visited < parts_.size() && s->got.size() < s->max) {
      const auto p = (s->start + s->visited++) % parts_.size();
      if (busy_[p]) continue;  // a wake-up of ours is out there: what it brings is handed on
      launch(p, s->max - s->got.size(), duration::zero(),
             [self = shared_from_this(), s, p](error_code ec, std::vector<delivery> batch) {
               self->swept(s, p, ec, std::move(batch));
             });
      return;
    }
    if (s->got.size() < s->max && !ready_.empty()) {
      auto more = take_ready(s->max - s->got.size());
      std::move(more.begin(), more.end(), std::back_inserter(s->got));
    }
    if (!s->got.empty() || closed_ || s->error) {
      const error_code ec = !s->got.empty() ? error_code{}
                            : closed_       ? error_code(std::make_error_code(std::errc::operation_canceled))
                                            : s->error;
      later.push_back([done = std::make_shared<fetch_done>(std::move(s->done)), ec, got = std::move(s->got)]() mutable {
        (*done)(ec, std::move(got));
      });
    } else {
      waiters_.push_back(waiter{next_waiter_++, s->max, s->deadline, std::move(s->done), 0, {}});
      pump(later);
    }
  }
  for (auto& a : later) a();
}

void partitioned_queue::fetcher::swept(const std::shared_ptr<sweep>& s, std::size_t partition, error_code ec,
                                       std::vector<delivery> batch) {
  actions later;
  {
    std::lock_guard lock(mutex_);
    busy_[partition] = 0;
    tag(partition, batch);
    std::move(batch.begin(), batch.end(), std::back_inserter(s->got));
    if (ec && ec != std::errc::operation_canceled && !s->error) s->error = ec;
    pump(later);  // a waiter may want the partition now idle
  }
  for (auto& a : later) a();
  step(s);
}

void partitioned_queue::fetcher::woken(std::size_t partition, std::uint64_t waiter_id, error_code ec,
                                       std::vector<delivery> batch) {
  actions later;
  {
    std::lock_guard lock(mutex_);
    busy_[partition] = 0;
    tag(partition, batch);
    auto w = std::find_if(waiters_.begin(), waiters_.end(), [&](const waiter& x) { return x.id == waiter_id; });
    if (w != waiters_.end()) {
      --w->outstanding;
      if (ec && batch.empty() && ec != std::errc::operation_canceled) w->error = ec;
    }
    if (closed_) {
      release(std::move(batch));
    } else {
      std::move(batch.begin(), batch.end(), std::back_inserter(ready_));
      pump(later);
    }
  }
  for (auto& a : later) a();
}

void partitioned_queue::fetcher::pump(actions& later) {
  auto answer = [&](waiter& w, error_code ec, std::vector<delivery> batch) {
    later.push_back([done = std::make_shared<fetch_done>(std::move(w.done)), ec, b = std::move(batch)]() mutable {
      (*done)(ec, std::move(b));
    });
  };
  while (!ready_.empty() && !waiters_.empty()) {
    answer(waiters_.front(), error_code{}, take_ready(waiters_.front().max));
    waiters_.pop_front();
  }
  const auto now = steady::now();
  for (auto w = waiters_.begin(); w != waiters_.end();) {
    // An error ends the wait at once: asking again would fail as fast.
    if (w->error || (w->deadline <= now && w->outstanding == 0)) {
      answer(*w, w->error, {});
      w = waiters_.erase(w);
    } else {
      ++w;
    }
  }
  if (closed_) return;
  for (std::size_t p = 0; p < parts_.size(); ++p) {
    if (busy_[p]) continue;
    auto w = std::find_if(waiters_.begin(), waiters_.end(), [&](const waiter& x) { return x.deadline > now; });
    if (w == waiters_.end()) return;
    ++w->outstanding;
    const auto left = std::chrono::ceil<duration>(w->deadline - now);
    launch(p, 1, left, [self = shared_from_this(), p, id = w->id](error_code ec, std::vector<delivery> batch) {
      self->woken(p, id, ec, std::move(batch));
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

std::vector<delivery> partitioned_queue::fetcher::take_ready(std::size_t max) {
  std::vector<delivery> out;
  while (!ready_.empty() && out.size() < max) {
    out.push_back(std::move(ready_.front()));
    ready_.pop_front();
  }
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
    for (auto& w : waiters_)
      later.push_back([done = std::make_shared<fetch_done>(std::move(w.done))]() mutable {
        (*done)(std::make_error_code(std::errc::operation_canceled), {});
      });
    waiters_.clear();
    std::vector<delivery> held(std::make_move_iterator(ready_.begin()), std::make_move_iterator(ready_.end()));
    ready_.clear();
    release(std::move(held));
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
