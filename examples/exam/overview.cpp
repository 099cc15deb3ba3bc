#include "overview.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "ingest/envelope.hpp"
#include "json_text.hpp"

namespace exam {

overview::overview(overview_sources sources, overview_options options)
    : sources_(std::move(sources)), options_(options), thread_([this](std::stop_token stop) { run(stop); }) {}

overview::~overview() {
  thread_.request_stop();
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void overview::run(std::stop_token stop) {
  // On a fixed schedule: a slow sample does not stretch the periods after it.
  auto next = std::chrono::steady_clock::now();
  std::unique_lock lock(mutex_);
  while (!stop.stop_requested()) {
    lock.unlock();
    sample();
    lock.lock();
    next += options_.period;
    if (const auto now = std::chrono::steady_clock::now(); next < now) next = now + options_.period;
    wake_.wait_until(lock, stop, next, [] { return false; });
  }
}

void overview::sample() {
  // The rows first, then the queue: a row is accepted before it is written, so the
  // accepted count read second is never behind the written one.
  std::optional<std::uint64_t> written;
  try {
    written = sources_.written();
  } catch (const std::exception&) {
    // Not readable just now: this period shows no rows written, not zero.
  }
  auto queue = sources_.queue ? sources_.queue() : std::nullopt;
  const auto at = ingest::format_time(ingest::clock::now());
  std::lock_guard lock(mutex_);
  // The queue's own count covers every server on it; where it keeps none exactly (a
  // broker), this server's receipts are what it can tell. While the queue cannot be
  // read, accepted stays with its source and this period is not known.
  const bool by_queue = queue ? queue->exact.accepted : accepted_by_queue_;
  std::optional<std::uint64_t> accepted;
  if (!by_queue)
    accepted = sources_.accepted_here();
  else if (queue)
    accepted = queue->accepted;
  auto delta = [](std::optional<std::uint64_t> now, std::optional<std::uint64_t> before) -> std::optional<std::uint64_t> {
    if (!now || !before) return std::nullopt;
    return *now >= *before ? *now - *before : 0;
  };
  point p;
  if (by_queue == accepted_by_queue_) p.accepted = delta(accepted, accepted_);
  p.written = delta(written, written_);
  series_.push_back(p);
  while (series_.size() > options_.keep) series_.pop_front();
  accepted_ = accepted;
  accepted_by_queue_ = by_queue;
  written_ = written;
  queue_ = queue;
  sampled_at_ = at;
}

namespace {

boost::json::value count_or_null(std::optional<std::uint64_t> n) {
  if (n) return boost::json::value(*n);
  return nullptr;
}

boost::json::object queue_json(const ingest::queue_stats& q) {
  boost::json::object o;
  o["accepted"] = q.accepted;
  o["pending"] = q.pending;
  o["leased"] = q.leased;
  o["retrying"] = q.retrying;
  o["processed"] = q.processed;
  o["dead_lettered"] = q.dead_lettered;
  o["purged"] = q.purged;
  o["exact"] = q.balance_known();
  o["balanced"] = q.balanced();
  return o;
}

}  // namespace

std::string overview::json() const {
  std::lock_guard lock(mutex_);
  const bool has_queue = sources_.queue != nullptr;
  boost::json::object counts;
  std::optional<std::uint64_t> received, processing, dead, backlog;
  if (queue_) {
    received = queue_->pending - std::min(queue_->leased, queue_->pending);
    processing = queue_->leased;
    dead = queue_->dead_lettered;
    backlog = queue_->pending;
  } else if (!has_queue) {
    received = processing = dead = backlog = 0;  // written as they are accepted: nothing waits
  }
  counts["received"] = count_or_null(received);
  counts["processing"] = count_or_null(processing);
  counts["graded"] = count_or_null(written_);
  counts["dead_lettered"] = count_or_null(dead);
  boost::json::array accepted, written;
  for (const auto& p : series_) {
    accepted.push_back(count_or_null(p.accepted));
    written.push_back(count_or_null(p.written));
  }
  boost::json::object series;
  series["period_ms"] = options_.period.count();
  series["accepted"] = std::move(accepted);
  series["written"] = std::move(written);
  boost::json::object o;
  o["sampled_at"] = sampled_at_;
  o["counts"] = std::move(counts);
  o["backlog"] = count_or_null(backlog);
  o["accepted_counted_by"] = accepted_by_queue_ ? "queue" : "this server";
  o["queue"] = queue_ ? boost::json::value(queue_json(*queue_)) : boost::json::value(nullptr);
  o["series"] = std::move(series);
  return to_plain_json(o);
}

}  // namespace exam
