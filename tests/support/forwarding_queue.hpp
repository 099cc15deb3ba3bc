#pragma once
// A durable_queue that hands every call to another queue: a test derives from it to
// change one behaviour (a fetch that fails, a publish without its deadline).

#include <string>
#include <utility>
#include <vector>

#include "ingest/durable_queue.hpp"

namespace ingest::test {

class forwarding_queue : public durable_queue {
 public:
  explicit forwarding_queue(durable_queue& inner) : inner_(inner) {}
  executor_type get_executor() const override { return inner_.get_executor(); }
  queue_features features() const override { return inner_.features(); }
  void close() override { inner_.close(); }

 protected:
  void do_publish(envelope m, callback<error_code, receipt> done) override {
    inner_.async_publish(std::move(m), std::move(done));
  }
  void do_fetch(std::size_t max, duration wait, callback<error_code, std::vector<delivery>> done) override {
    inner_.async_fetch(max, wait, std::move(done));
  }
  void do_settle(std::vector<settlement> d, callback<error_code> done) override {
    inner_.async_settle(std::move(d), std::move(done));
  }
  void do_extend(std::vector<std::string> t, duration by, callback<error_code> done) override {
    inner_.async_extend(std::move(t), by, std::move(done));
  }
  void do_stats(callback<error_code, queue_stats> done) override { inner_.async_stats(std::move(done)); }
  void do_dead_letters(std::string after, std::size_t n, callback<error_code, std::vector<dead_letter>> done) override {
    inner_.async_dead_letters(std::move(after), n, std::move(done));
  }
  void do_replay(std::vector<std::string> ids, callback<error_code, std::size_t> done) override {
    inner_.async_replay(std::move(ids), std::move(done));
  }
  void do_purge(std::vector<std::string> ids, callback<error_code, std::size_t> done) override {
    inner_.async_purge(std::move(ids), std::move(done));
  }

  durable_queue& inner_;
};

}  // namespace ingest::test
