#pragma once
// Live progress for long work, on a terminal only: one line on standard error,
// rewritten once a second (accepted/s, written/s, backlog, errors, when the drain
// should be done). In a pipe, a file or a CI log it writes nothing.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace exam {

// Counts so far; what a program does not know stays empty and is not shown.
struct progress_sample {
  std::optional<std::uint64_t> accepted;  // receipts handed out
  std::optional<std::uint64_t> written;   // rows in exam.db
  std::optional<std::uint64_t> backlog;   // accepted, not yet written
  std::uint64_t errors = 0;               // failed requests, or dead letters
};

// One line from two samples `seconds` apart: "accepted 12,345 (4,100/s) | written ...".
std::string progress_line(const progress_sample& now, const progress_sample& before, double seconds);

// 1,234,567: digits grouped by thousands, as people read counts.
std::string grouped(std::uint64_t n);

class progress_meter {
 public:
  // Standard error is a terminal, and INGEST_PROGRESS is not 0.
  static bool wanted();

  // Samples `read` every `period` on a thread of its own, when `wanted()`.
  progress_meter(std::string label, std::function<progress_sample()> read,
                 std::chrono::milliseconds period = std::chrono::seconds(1));
  // Stops and clears the line.
  ~progress_meter();
  progress_meter(const progress_meter&) = delete;
  progress_meter& operator=(const progress_meter&) = delete;

 private:
  void run();
  progress_sample read();

  std::string label_;
  std::function<progress_sample()> read_;
  std::chrono::milliseconds period_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace exam
