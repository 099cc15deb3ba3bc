// A backend written outside the library, held to the library's conformance suite. The
// "broker" here wraps ingest::memory_queue and forwards every operation, as an adapter
// for another broker's client would.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <ingest/memory_queue.hpp>
#include <ingest/testing/queue_conformance.hpp>

using namespace ingest::testing;

namespace {

class my_queue final : public ingest::durable_queue {
 public:
  my_queue(executor_type ex, std::chrono::milliseconds visibility)
      : inner_(ex, ingest::memory_queue_options{.visibility_timeout = visibility, .quiet = true}) {}
  executor_type get_executor() const override { return inner_.get_executor(); }
  ingest::queue_features features() const override { return inner_.features(); }
  void close() override { inner_.close(); }
  // The wrapped queue stamps the postmark, so it signs the receipts.
  void sign_receipts(std::shared_ptr<const ingest::receipt_signer> signer) override {
    inner_.sign_receipts(signer);
    durable_queue::sign_receipts(std::move(signer));
  }

 protected:
  void do_publish(ingest::envelope m, callback<ingest::error_code, ingest::receipt> done) override {
    inner_.async_publish(std::move(m), std::move(done));
  }
  void do_fetch(std::size_t max, duration wait,
                callback<ingest::error_code, std::vector<ingest::delivery>> done) override {
    inner_.async_fetch(max, wait, std::move(done));
  }
  void do_settle(std::vector<ingest::settlement> d, callback<ingest::error_code> done) override {
    inner_.async_settle(std::move(d), std::move(done));
  }
  void do_extend(std::vector<std::string> tokens, duration by, callback<ingest::error_code> done) override {
    inner_.async_extend(std::move(tokens), by, std::move(done));
  }
  void do_stats(callback<ingest::error_code, ingest::queue_stats> done) override {
    inner_.async_stats(std::move(done));
  }
  void do_dead_letters(std::string after, std::size_t limit,
                       callback<ingest::error_code, std::vector<ingest::dead_letter>> done) override {
    inner_.async_dead_letters(std::move(after), limit, std::move(done));
  }
  void do_replay(std::vector<std::string> ids, callback<ingest::error_code, std::size_t> done) override {
    inner_.async_replay(std::move(ids), std::move(done));
  }
  void do_purge(std::vector<std::string> ids, callback<ingest::error_code, std::size_t> done) override {
    inner_.async_purge(std::move(ids), std::move(done));
  }
  void do_find(std::string id, callback<ingest::error_code, ingest::message_status> done) override {
    inner_.async_find(std::move(id), std::move(done));
  }

 private:
  ingest::memory_queue inner_;
};

struct my_backend {
  static constexpr const char* name = "mine";
  explicit my_backend(boost::asio::any_io_executor ex) : ex_(ex) {}
  std::unique_ptr<ingest::durable_queue> open(std::chrono::milliseconds visibility) {
    return std::make_unique<my_queue>(ex_, visibility);
  }
  ingest::queue_features expected_features() const {
    return {.durable = false,
            .native_dedup = true,
            .fifo = true,
            .delayed_retry = true,
            .lease_extension = true,
            .exact_stats = true,
            .lookup = true,
            .deadline_before_store = true,
            .dedup_window = std::chrono::milliseconds::max()};
  }
  boost::asio::any_io_executor ex_;
};

}  // namespace

INGEST_QUEUE_CONFORMANCE(std::tuple<my_backend>);
