#include "ingest/rollout.hpp"

#include <openssl/sha.h>

#include <atomic>
#include <cmath>
#include <deque>
#include <fmt/format.h>
#include <mutex>
#include <unordered_map>

#include "ingest/error.hpp"

namespace ingest {

namespace {

using steady = std::chrono::steady_clock;

std::uint32_t basis_points(double percent) {
  if (!(percent >= 0 && percent <= 100))  // also refuses NaN
    throw error(errc::invalid_config, fmt::format("queue_percent {} is outside 0-100", percent));
  return static_cast<std::uint32_t>(std::floor(percent * 100 + 1e-9));
}

}  // namespace

std::string_view to_string(write_path p) noexcept {
  return p == write_path::queue ? "queue" : "direct";
}

void rollout_options::validate() const {
  basis_points(queue_percent);
  if (pin_for.count() < 0) throw error(errc::invalid_config, "pin_for must not be negative");
  if (pin_for.count() > 0 && max_pins == 0) throw error(errc::invalid_config, "max_pins must be positive");
}

struct rollout::state {
  explicit state(const rollout_options& o) : options(o), share(basis_points(o.queue_percent)) {}
  struct pin {
    write_path path;
    steady::time_point until;
  };
  rollout_options options;
  std::atomic<std::uint32_t> share;  // basis points: 10,000 = everyone on the queue
  std::atomic<std::uint64_t> routed_direct{0}, routed_queue{0}, pinned_answers{0};
  std::shared_ptr<pipeline_metrics> direct_metrics = std::make_shared<pipeline_metrics>();
  std::shared_ptr<pipeline_metrics> queue_metrics = std::make_shared<pipeline_metrics>();
  mutable std::mutex mutex;
  std::unordered_map<std::string, pin> pins;
  std::deque<std::pair<std::string, steady::time_point>> order;  // by expiry (pin_for is fixed)

  // Drops expired pins, and the oldest while more than max_pins are kept (mutex held).
  void expire(steady::time_point now) {
    while (!order.empty() && (order.front().second <= now || pins.size() > options.max_pins)) {
      auto it = pins.find(order.front().first);
      if (it != pins.end() && it->second.until == order.front().second) pins.erase(it);
      order.pop_front();
    }
  }
};

rollout::rollout(rollout_options options) {
  options.validate();
  state_ = std::make_unique<state>(options);
}

rollout::~rollout() = default;

std::uint32_t rollout::bucket(std::string_view principal) noexcept {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(principal.data()), principal.size(), digest);
  std::uint64_t head = 0;
  for (int i = 0; i < 8; ++i) head = (head << 8) | digest[i];
  return static_cast<std::uint32_t>(head % 10'000);
}

write_path rollout::path_of(std::string_view principal) const noexcept {
  return bucket(principal) < state_->share.load(std::memory_order_acquire) ? write_path::queue : write_path::direct;
}

write_path rollout::route(std::string_view principal, std::string_view key) {
  auto& s = *state_;
  const write_path now_says = path_of(principal);
  write_path answer = now_says;
  if (!key.empty() && s.options.pin_for.count() > 0) {
    const auto now = steady::now();
    std::lock_guard lock(s.mutex);
    s.expire(now);
    auto [it, fresh] = s.pins.try_emplace(std::string(key), state::pin{now_says, now + s.options.pin_for});
    if (fresh)
      s.order.emplace_back(it->first, it->second.until);
    else
      answer = it->second.path;
    s.expire(now);  // keeps at most max_pins
  }
  if (answer != now_says) s.pinned_answers.fetch_add(1, std::memory_order_relaxed);
  (answer == write_path::queue ? s.routed_queue : s.routed_direct).fetch_add(1, std::memory_order_relaxed);
  return answer;
}

void rollout::set_queue_percent(double percent) {
  state_->share.store(basis_points(percent), std::memory_order_release);
}

double rollout::queue_percent() const noexcept {
  return state_->share.load(std::memory_order_acquire) / 100.0;
}

void rollout::clear_pins() {
  std::lock_guard lock(state_->mutex);
  state_->pins.clear();
  state_->order.clear();
}

std::shared_ptr<pipeline_metrics> rollout::metrics(write_path p) const noexcept {
  return p == write_path::queue ? state_->queue_metrics : state_->direct_metrics;
}

rollout_stats rollout::stats() const {
  rollout_stats out;
  out.routed_direct = state_->routed_direct.load(std::memory_order_relaxed);
  out.routed_queue = state_->routed_queue.load(std::memory_order_relaxed);
  out.pinned_answers = state_->pinned_answers.load(std::memory_order_relaxed);
  std::lock_guard lock(state_->mutex);
  out.pins = state_->pins.size();
  return out;
}

std::string to_prometheus(const rollout& r, std::string_view prefix) {
  const auto st = r.stats();
  std::string out = fmt::format(
      "# HELP {0}queue_percent Share of principals whose submissions the queue path takes.\n"
      "# TYPE {0}queue_percent gauge\n{0}queue_percent {1}\n"
      "# HELP {0}routed_total Submissions routed, by path.\n# TYPE {0}routed_total counter\n"
      "{0}routed_total{{path=\"direct\"}} {2}\n{0}routed_total{{path=\"queue\"}} {3}\n"
      "# HELP {0}pinned_answers_total Routes taken from a pin against the percentage.\n"
      "# TYPE {0}pinned_answers_total counter\n{0}pinned_answers_total {4}\n"
      "# HELP {0}pins Keys pinned to a path now.\n# TYPE {0}pins gauge\n{0}pins {5}\n",
      prefix, fmt::format("{:.2f}", r.queue_percent()), st.routed_direct, st.routed_queue, st.pinned_answers,
      st.pins);
  for (const auto p : {write_path::direct, write_path::queue})
    out += to_prometheus(*r.metrics(p), fmt::format("{}path_{}_", prefix, to_string(p)));
  return out;
}

}  // namespace ingest
