#include "record_batcher.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <condition_variable>
#include <mutex>

#if defined(__linux__)
#include <sys/resource.h>
#include <unistd.h>
#endif

namespace exam {

std::unique_ptr<boost::asio::thread_pool> make_read_pool(std::size_t threads, int nice) {
  if (threads == 0) return nullptr;
  auto pool = std::make_unique<boost::asio::thread_pool>(threads);
#if defined(__linux__)
  if (nice > 0) {
    // Each task holds its thread until all have started: one per thread. The tasks
    // share the count, so that it outlives the last of them to wake.
    struct start_line {
      std::mutex mutex;
      std::condition_variable all_started;
      std::size_t waiting;
    };
    auto line = std::make_shared<start_line>();
    line->waiting = threads;
    for (std::size_t i = 0; i < threads; ++i)
      boost::asio::post(*pool, [line, nice] {
        const auto self = static_cast<id_t>(gettid());
        errno = 0;
        const int now = getpriority(PRIO_PROCESS, self);
        if (errno == 0) setpriority(PRIO_PROCESS, self, std::min(now + nice, 19));
        std::unique_lock lock(line->mutex);
        if (--line->waiting == 0) line->all_started.notify_all();
        line->all_started.wait(lock, [&] { return line->waiting == 0; });
      });
    std::unique_lock lock(line->mutex);
    line->all_started.wait(lock, [&] { return line->waiting == 0; });
  }
#else
  (void)nice;
#endif
  return pool;
}

record_batcher::record_batcher(submission_reader& store, boost::asio::thread_pool* threads, options o)
    : store_(store), threads_(threads), options_(o) {
  if (options_.max_batch == 0) options_.max_batch = 1;
  if (options_.lanes == 0) options_.lanes = 1;
}

void record_batcher::look_up(std::string receipt_id, done_fn done) {
  if (!threads_) {
    std::vector<waiting> one;
    one.emplace_back(std::move(receipt_id), std::move(done));
    {
      std::lock_guard lock(mutex_);
      ++reads_;
    }
    return run(one);
  }
  {
    std::lock_guard lock(mutex_);
    ++reads_;
    waiting_.emplace_back(std::move(receipt_id), std::move(done));
    // A lane already running takes this read into its next batch.
    if (running_ >= options_.lanes) return;
    ++running_;
  }
  boost::asio::post(*threads_, [this] { drain(); });
}

void record_batcher::drain() {
  // One batch per task: a lane hands its thread back between batches, so that other
  // work on the read threads (teachers' lists) gets its turn while students poll.
  std::vector<waiting> batch;
  {
    std::lock_guard lock(mutex_);
    const auto n = std::min(waiting_.size(), options_.max_batch);
    batch.assign(std::make_move_iterator(waiting_.begin()), std::make_move_iterator(waiting_.begin() + n));
    waiting_.erase(waiting_.begin(), waiting_.begin() + n);
  }
  try {
    if (!batch.empty()) run(batch);
  } catch (...) {  // only allocation can throw here; the lane must go on regardless
  }
  {
    std::lock_guard lock(mutex_);
    if (waiting_.empty()) {
      --running_;
      return;
    }
  }
  boost::asio::post(*threads_, [this] { drain(); });
}

void record_batcher::run(std::vector<waiting>& batch) {
  std::vector<std::string> ids;
  ids.reserve(batch.size());
  for (const auto& w : batch) ids.push_back(w.first);
  std::vector<receipt_record> found;
  std::exception_ptr failed;
  try {
    found = store_.records(ids);
    if (found.size() != ids.size()) throw std::logic_error("records: one record per receipt expected");
  } catch (...) {
    failed = std::current_exception();
  }
  {
    std::lock_guard lock(mutex_);
    ++queries_;
  }
  // Each answer is the reader's own: one that throws must not keep the others waiting.
  for (std::size_t i = 0; i < batch.size(); ++i) {
    try {
      batch[i].second(failed, failed ? receipt_record{} : std::move(found[i]));
    } catch (...) {
    }
  }
}

std::uint64_t record_batcher::reads() const {
  std::lock_guard lock(mutex_);
  return reads_;
}

std::uint64_t record_batcher::queries() const {
  std::lock_guard lock(mutex_);
  return queries_;
}

}  // namespace exam
