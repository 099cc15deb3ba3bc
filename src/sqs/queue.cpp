#include "ingest/sqs/queue.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>

#include "engine.hpp"

namespace ingest::sqs {

queue::queue(executor_type ex, queue_options options) : executor_(std::move(ex)) {
  options.validate();
  engine_ = std::make_unique<engine>(std::move(options));
  engine_->open();
}

queue::~queue() {
  close();
}

queue::executor_type queue::get_executor() const {
  return executor_;
}

queue_features queue::features() const {
  queue_features f;
  f.durable = true;
  f.native_dedup = engine_->fifo;
  f.fifo = engine_->fifo && !engine_->o.group_per_key;
  f.delayed_retry = true;
  f.lease_extension = true;
  f.exact_stats = false;
  f.lookup = false;
  f.dedup_window = milliseconds::zero();
  return f;
}

void queue::close() {
  if (engine_->closed.exchange(true)) return;
  asio::post(engine_->io, [e = engine_.get()] { e->cancel_fetches(); });
}

std::string queue::queue_url() const {
  return engine_->main_url;
}
std::string queue::dead_letter_queue_url() const {
  return engine_->dlq_url;
}
std::string queue::last_error() const {
  std::lock_guard lock(engine_->error_mutex);
  return engine_->last_error;
}

void queue::do_publish(envelope message, callback<error_code, receipt> done) {
  if (engine_->closed) return done(code(errc::shutting_down), receipt{});
  if (engine_->publishes_pending.fetch_add(1) >= engine_->o.max_pending_publishes) {
    --engine_->publishes_pending;
    return done(code(errc::backpressure), receipt{});
  }
  asio::post(engine_->io, [e = engine_.get(), s = receipt_signing(), m = std::move(message),
                           done = std::move(done)]() mutable { e->publish(std::move(m), s.get(), std::move(done)); });
}

void queue::do_fetch(std::size_t max, duration wait, callback<error_code, std::vector<delivery>> done) {
  if (engine_->closed) return done(code(errc::shutting_down), {});
  auto op = std::make_shared<engine::fetch_op>();
  op->max = std::max<std::size_t>(1, max);
  op->deadline = steady::now() + wait;
  op->done = std::move(done);
  asio::post(engine_->io, [e = engine_.get(), op]() mutable {
    if (e->closed) return e->complete(op, code(errc::shutting_down));
    e->start_fetch(std::move(op));
  });
}

void queue::do_settle(std::vector<settlement> decisions, callback<error_code> done) {
  asio::post(engine_->io, [e = engine_.get(), d = std::move(decisions), done = std::move(done)]() mutable {
    e->settle(std::move(d), std::move(done));
  });
}

void queue::do_extend(std::vector<std::string> tokens, duration by, callback<error_code> done) {
  asio::post(engine_->io, [e = engine_.get(), t = std::move(tokens), by, done = std::move(done)]() mutable {
    e->extend(std::move(t), by, std::move(done));
  });
}

void queue::do_stats(callback<error_code, queue_stats> done) {
  asio::post(engine_->io, [e = engine_.get(), done = std::move(done)]() mutable { e->stats(std::move(done)); });
}

void queue::do_dead_letters(std::string after, std::size_t limit, callback<error_code, std::vector<dead_letter>> done) {
  asio::post(engine_->io, [e = engine_.get(), after = std::move(after), limit, done = std::move(done)]() mutable {
    e->list(std::move(after), limit, std::move(done));
  });
}

void queue::do_replay(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) {
  asio::post(engine_->io, [e = engine_.get(), ids = std::move(receipt_ids), done = std::move(done)]() mutable {
    e->move_letters(std::move(ids), true, std::move(done));
  });
}

void queue::do_purge(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) {
  asio::post(engine_->io, [e = engine_.get(), ids = std::move(receipt_ids), done = std::move(done)]() mutable {
    e->move_letters(std::move(ids), false, std::move(done));
  });
}

}  // namespace ingest::sqs
