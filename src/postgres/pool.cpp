#include "ingest/postgres/pool.hpp"

#include "ingest/error.hpp"

namespace ingest::postgres {

connection_pool::connection_pool(std::string conninfo, pool_options options)
    : conninfo_(std::move(conninfo)), options_(std::move(options)) {
  if (options_.size == 0) throw error(errc::invalid_config, "connection_pool: size must be at least 1");
  slots_.resize(options_.size);
  for (std::size_t i = options_.size; i > 0; --i) free_.push_back(i - 1);
}

connection_pool::~connection_pool() = default;

connection_pool::lease connection_pool::acquire() {
  std::size_t slot = 0;
  {
    std::unique_lock lock(mutex_);
    if (!available_.wait_for(lock, options_.acquire_timeout, [&] { return !free_.empty(); }))
      throw error(errc::backpressure, "connection_pool: no free connection within the acquire timeout");
    slot = free_.back();
    free_.pop_back();
  }
  lease held(this, slot);  // given back if opening fails
  auto& c = slots_[slot];
  if (!c)
    c = std::make_unique<connection>(conninfo_, options_.connection);
  else
    c->ensure_open();
  return held;
}

std::size_t connection_pool::in_use() const {
  std::lock_guard lock(mutex_);
  return slots_.size() - free_.size();
}

void connection_pool::give_back(std::size_t slot) noexcept {
  auto& c = slots_[slot];
  if (c && c->is_open() && c->in_transaction()) {
    try {
      c->exec("ROLLBACK");
    } catch (...) {
      c->close();  // in an unknown state: open a fresh one next time
    }
  }
  {
    std::lock_guard lock(mutex_);
    free_.push_back(slot);
  }
  available_.notify_one();
}

connection_pool::lease::~lease() {
  if (pool_) pool_->give_back(slot_);
}

}  // namespace ingest::postgres
