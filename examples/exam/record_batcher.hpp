#pragma once
// Status reads gathered into batches: the GETs that arrive while a query runs go to
// the database together in the next one, so that a flood of students polling costs a
// query per batch rather than one per read. Nothing waits to fill a batch: a read that
// finds the database idle is sent at once, alone.

#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "store.hpp"

namespace exam {

// `threads` threads for the reads (null for 0), each running `nice` lower than the
// thread that makes them (on Linux, where a thread has a nice value of its own):
// when the cores are short, the submissions go first and the status reads wait.
std::unique_ptr<boost::asio::thread_pool> make_read_pool(std::size_t threads, int nice);

class record_batcher {
 public:
  // `done` gets the records, or the exception the read threw (then no records).
  using done_fn = std::function<void(std::exception_ptr, receipt_record)>;

  struct options {
    std::size_t max_batch = 256;  // receipts per query
    std::size_t lanes = 2;        // queries at once
  };

  // Reads on `threads` (on the caller's thread when null, one receipt per query).
  record_batcher(submission_reader& store, boost::asio::thread_pool* threads, options o);
  record_batcher(submission_reader& store, boost::asio::thread_pool* threads)
      : record_batcher(store, threads, options{}) {}

  // Calls `done` once, on a read thread (or in here, when there are none).
  void look_up(std::string receipt_id, done_fn done);

  // Reads looked up and queries run so far.
  std::uint64_t reads() const;
  std::uint64_t queries() const;

 private:
  using waiting = std::pair<std::string, done_fn>;
  // Runs batches until none is waiting.
  void drain();
  void run(std::vector<waiting>& batch);

  submission_reader& store_;
  boost::asio::thread_pool* threads_;
  options options_;
  mutable std::mutex mutex_;
  std::vector<waiting> waiting_;
  std::size_t running_ = 0;
  std::uint64_t reads_ = 0;
  std::uint64_t queries_ = 0;
};

}  // namespace exam
