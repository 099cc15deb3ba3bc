#pragma once
// The synchronous baseline: each request writes exam.db itself, inside its own
// transaction, on a connection from a bounded pool.

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <mutex>
#include <vector>

#include "store.hpp"
#include "submit_backend.hpp"

namespace exam {

struct direct_settings {
  std::size_t pool_size = 8;                     // connections (and DB threads)
  std::chrono::milliseconds pool_timeout{5000};  // waiting longer for a connection: 503
  std::chrono::milliseconds busy_timeout{5000};  // SQLite's wait for the write lock
};

// What both direct backends count, and its Prometheus text for /metrics.
struct direct_counters {
  std::atomic<std::uint64_t> committed{0}, duplicates{0}, pool_timeouts{0}, db_errors{0};
  std::atomic<std::int64_t> waiting{0};
  std::string text() const;
};

class direct_backend final : public submit_backend {
 public:
  direct_backend(const std::string& db_path, direct_settings settings);
  ~direct_backend() override;
  void stop();

  void submit(const exam_info& exam, submission s, boost::asio::any_io_executor answer_on, submit_done done) override;
  bool ready() const override { return true; }
  bool takes_attachments() const override { return false; }
  std::string metrics() const override;

 private:
  struct connection;
  // Stores `s` on `c` in one transaction (throws what the database throws).
  submit_outcome store(connection& c, const exam_info& exam, const submission& s);
  std::unique_ptr<connection> acquire();
  void release(std::unique_ptr<connection> c);

  direct_settings settings_;
  std::string path_;
  boost::asio::thread_pool pool_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<connection>> idle_;
  direct_counters counters_;
};

}  // namespace exam
