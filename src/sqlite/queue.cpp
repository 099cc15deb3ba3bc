#include "ingest/sqlite/queue.hpp"

#include <memory>
#include <mutex>
#include <variant>

#include "engine.hpp"
#include "ingest/error.hpp"

namespace ingest::sqlite {

queue::queue(executor_type ex, queue_options options) : executor_(ex) {
  options.validate();
  engine_ = std::make_unique<engine>(ex, std::move(options));
}

queue::~queue() = default;

durable_queue::executor_type queue::get_executor() const {
  return executor_;
}

queue_features queue::features() const {
  return {.durable = true,
          .native_dedup = true,
          .fifo = true,
          .delayed_retry = true,
          .lease_extension = true,
          .exact_stats = true,
          .lookup = engine_->options.receipt_index,
          .deadline_before_store = true,
          .dedup_window = engine_->options.dedup_window};
}

void queue::close() {
  {
    std::lock_guard lock(engine_->mutex);
    engine_->closed = true;
  }
  engine_->wake.notify_all();
}

std::string queue::last_error() const {
  std::lock_guard lock(engine_->mutex);
  return engine_->last_error;
}

void queue::do_publish(envelope message, callback<error_code, receipt> done) {
  message.attempts = 0;
  engine::publish_op op{std::move(message), std::move(done), receipt_signing()};
  engine::operation wrapped(std::move(op));
  if (!engine_->enqueue(std::move(wrapped), true))
    std::get<engine::publish_op>(wrapped).done(errc::shutting_down, receipt{});
}

void queue::do_fetch(std::size_t max, duration wait, callback<error_code, std::vector<delivery>> done) {
  engine::operation op(engine::fetch_op{max, engine::steady::now() + wait, std::move(done)});
  if (!engine_->enqueue(std::move(op), true))
    std::get<engine::fetch_op>(op).done(errc::shutting_down, std::vector<delivery>{});
}

void queue::do_settle(std::vector<settlement> decisions, callback<error_code> done) {
  engine::operation op(engine::settle_op{std::move(decisions), std::move(done)});
  if (!engine_->enqueue(std::move(op), false)) std::get<engine::settle_op>(op).done(errc::shutting_down);
}

void queue::do_extend(std::vector<std::string> tokens, duration by, callback<error_code> done) {
  engine::operation op(engine::extend_op{std::move(tokens), by, std::move(done)});
  if (!engine_->enqueue(std::move(op), false)) std::get<engine::extend_op>(op).done(errc::shutting_down);
}

void queue::do_stats(callback<error_code, queue_stats> done) {
  engine::operation op(engine::stats_op{std::move(done)});
  if (!engine_->enqueue(std::move(op), false)) std::get<engine::stats_op>(op).done(errc::shutting_down, queue_stats{});
}

void queue::do_dead_letters(std::string after, std::size_t limit, callback<error_code, std::vector<dead_letter>> done) {
  engine::operation op(engine::list_op{std::move(after), limit, std::move(done)});
  if (!engine_->enqueue(std::move(op), false))
    std::get<engine::list_op>(op).done(errc::shutting_down, std::vector<dead_letter>{});
}

void queue::do_find(std::string receipt_id, callback<error_code, message_status> done) {
  if (!engine_->options.receipt_index) return done(errc::not_supported, message_status{});
  engine::operation op(engine::find_op{std::move(receipt_id), std::move(done)});
  if (!engine_->enqueue(std::move(op), false))
    std::get<engine::find_op>(op).done(errc::shutting_down, message_status{});
}

void queue::do_replay(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) {
  engine::operation op(engine::replay_op{std::move(receipt_ids), false, std::move(done)});
  if (!engine_->enqueue(std::move(op), false)) std::get<engine::replay_op>(op).done(errc::shutting_down, 0);
}

void queue::do_purge(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) {
  engine::operation op(engine::replay_op{std::move(receipt_ids), true, std::move(done)});
  if (!engine_->enqueue(std::move(op), false)) std::get<engine::replay_op>(op).done(errc::shutting_down, 0);
}

}  // namespace ingest::sqlite
