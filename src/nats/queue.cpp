// ingest::nats::queue: the public class, which hands each call to its engine
// (engine.hpp), blocking NATS calls on the engine's thread pool.

#include "ingest/nats/queue.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "codec.hpp"
#include "ingest/partitioned_queue.hpp"
#include "engine.hpp"

namespace ingest::nats {

using namespace detail;

queue::queue(executor_type ex, queue_options options) : executor_(ex) {
  options.validate();
  if (options.partitions > 1 && options.partition < 0)
    throw error(errc::invalid_config, "nats queue: a queue over several partitions is opened with nats::open_queue");
  engine_ = std::make_shared<engine>(std::move(options));
  engine_->open();
}

queue::~queue() {
  close();
  engine_->stop();
  // A PubAck callback may still hold the engine (it found it before the engine left
  // the registry): let it finish, so that the connection is never destroyed from inside
  // one of its own callbacks.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (engine_.use_count() > 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

durable_queue::executor_type queue::get_executor() const {
  return executor_;
}

queue_features queue::features() const {
  return {.durable = engine_->options.file_storage,
          .native_dedup = true,
          .fifo = true,
          .delayed_retry = true,
          .lease_extension = true,
          .exact_stats = false,
          .lookup = false,
          .dedup_window = engine_->options.duplicate_window};
}

void queue::close() {
  engine_->shut();
}

void queue::do_publish(envelope message, callback<error_code, receipt> done) {
  // The postmark, in the microseconds the wire keeps: the receipt carries exactly what
  // every later reading of the message will.
  message.accepted_at = time_from_us(to_us(clock::now()));
  sign_receipt(receipt_signing().get(), message);
  engine_->publish(std::move(message), std::move(done));
}

void queue::do_fetch(std::size_t max, duration wait, callback<error_code, std::vector<delivery>> done) {
  {
    std::lock_guard lock(engine_->mutex);
    if (engine_->closed) return done(errc::shutting_down, std::vector<delivery>{});
  }
  boost::asio::post(*engine_->blocking, [e = engine_, max, wait, done = std::move(done)]() mutable {
    error_code ec;
    auto out = max == 0 ? std::vector<delivery>{} : e->fetch(max, wait, ec);
    done(ec, std::move(out));
  });
}

void queue::do_settle(std::vector<settlement> decisions, callback<error_code> done) {
  boost::asio::post(*engine_->blocking,
                    [e = engine_, d = std::move(decisions), done = std::move(done)]() mutable { done(e->settle(d)); });
}

void queue::do_extend(std::vector<std::string> tokens, duration, callback<error_code> done) {
  boost::asio::post(*engine_->blocking,
                    [e = engine_, t = std::move(tokens), done = std::move(done)]() mutable { done(e->extend(t)); });
}

void queue::do_stats(callback<error_code, queue_stats> done) {
  boost::asio::post(*engine_->blocking, [e = engine_, done = std::move(done)]() mutable {
    queue_stats st;
    auto ec = e->stats(st);
    done(ec, st);
  });
}

void queue::do_dead_letters(std::string after, std::size_t limit, callback<error_code, std::vector<dead_letter>> done) {
  boost::asio::post(*engine_->blocking,
                    [e = engine_, after = std::move(after), limit, done = std::move(done)]() mutable {
                      std::vector<dead_letter> out;
                      auto ec = e->list_dead_letters(after, limit, out);
                      done(ec, std::move(out));
                    });
}

void queue::do_replay(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) {
  boost::asio::post(*engine_->blocking, [e = engine_, ids = std::move(receipt_ids), done = std::move(done)]() mutable {
    std::size_t moved = 0;
    auto ec = e->move_dead_letters(std::move(ids), true, moved);
    done(ec, moved);
  });
}

void queue::do_purge(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) {
  boost::asio::post(*engine_->blocking, [e = engine_, ids = std::move(receipt_ids), done = std::move(done)]() mutable {
    std::size_t moved = 0;
    auto ec = e->move_dead_letters(std::move(ids), false, moved);
    done(ec, moved);
  });
}

std::unique_ptr<durable_queue> open_queue(durable_queue::executor_type ex, const queue_options& options) {
  options.validate();
  if (options.partitions == 1) return std::make_unique<queue>(ex, options);
  std::vector<std::unique_ptr<durable_queue>> parts;
  for (int i = 0; i < options.partitions; ++i) parts.push_back(std::make_unique<queue>(ex, options.for_partition(i)));
  // A delivery kept for the next fetch is released (which the server counts as an
  // attempt) only once half of its shortest lease is gone: held longer, it would reach
  // the handler with its lease nearly out.
  auto lease = options.ack_wait;
  for (auto step : options.redelivery_backoff) lease = std::min(lease, step);
  const auto hold = std::max<durable_queue::duration>(lease / 2, std::chrono::milliseconds(1));
  return std::make_unique<partitioned_queue>(ex, std::move(parts), hold);
}

}  // namespace ingest::nats
