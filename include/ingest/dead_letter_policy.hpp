#pragma once
/// @file
/// What happens when an item is given up on: it is parked with its history, and
/// someone is told.

#include <functional>
#include <string_view>

#include "ingest/durable_queue.hpp"

namespace ingest {

/// Reasons written into a dead letter by the batching consumer.
namespace dead_letter_reason {
inline constexpr std::string_view max_attempts = "max_attempts";            ///< transient failures, retries used up
inline constexpr std::string_view permanent_failure = "permanent_failure";  ///< the classifier said permanent
inline constexpr std::string_view malformed_envelope = "malformed_envelope";  ///< the message breaks the wire format (`delivery::malformed`)
}  // namespace dead_letter_reason

/// Dead-letter handling of a batching consumer.
///
/// The consumer moves an item to the queue's dead-letter store (reason, attempts,
/// last error, first and last attempt times) and, once the store has it, calls
/// `alert` exactly once for it. `alert` runs on a consumer thread: keep it short and
/// do not throw (an exception is caught and ignored). Listing, inspecting, replaying
/// and purging dead letters are queue operations: `durable_queue::async_dead_letters`,
/// `async_replay`, `async_purge`.
///
/// @code
/// ingest::dead_letter_policy dlq{.alert = [](const ingest::dead_letter& d) { page_on_call(d); }};
/// @endcode
struct dead_letter_policy {
  std::function<void(const dead_letter&)> alert{};  ///< called once per dead-lettered item, after it is in the dead-letter store (on a consumer thread)
};

}  // namespace ingest
