#pragma once
// The synchronous baseline on PostgreSQL: each request takes a pooled connection,
// inserts its submission, bumps its exam's exam_stats row and commits before it is
// answered.

#include <boost/asio/thread_pool.hpp>
#include <atomic>

#include "direct.hpp"
#include "ingest/postgres/pool.hpp"

namespace exam {

class pg_direct_backend final : public submit_backend {
 public:
  // `settings.pool_size` connections, and as many database threads; a request waits
  // up to `settings.pool_timeout` for one, then is answered 503.
  pg_direct_backend(const std::string& url, direct_settings settings);
  ~pg_direct_backend() override;
  void stop();

  void submit(const exam_info& exam, submission s, boost::asio::any_io_executor answer_on, submit_done done) override;
  bool ready() const override { return true; }
  bool takes_attachments() const override { return false; }
  std::string metrics() const override;

 private:
  submit_outcome store(ingest::postgres::connection& db, const exam_info& exam, const submission& s);

  direct_settings settings_;
  ingest::postgres::connection_pool pool_;
  boost::asio::thread_pool threads_;
  direct_counters counters_;
};

}  // namespace exam
