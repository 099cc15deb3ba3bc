#pragma once
/// @file
/// When a failed item is tried again, and when it is given up on.

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>

namespace ingest {

/// Whether an error may go away by itself (retry) or never will (dead-letter now).
enum class failure_kind { transient, permanent };

/// Throw this (or a type derived from it) from a batch handler for an error that no
/// retry can fix (invalid data, a violated business rule): the default classifier
/// dead-letters at once instead of retrying.
class permanent_error : public std::runtime_error {
 public:
  /// A permanent failure; its dead letter's reason is `permanent_failure`.
  explicit permanent_error(const std::string& what) : std::runtime_error(what) {}
  /// A permanent failure whose dead letter carries `reason`, a word a person acts on
  /// (e.g. `deadline_passed`), instead of `permanent_failure`.
  permanent_error(const std::string& what, std::string reason)
      : std::runtime_error(what), reason_(std::move(reason)) {}
  /// The dead letter's reason.
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string reason_ = "permanent_failure";
};

/// Decides transient vs permanent for an exception thrown by a handler.
using failure_classifier = std::function<failure_kind(std::exception_ptr)>;

/// `permanent_error` → permanent; anything else → transient.
failure_kind default_classifier(std::exception_ptr error) noexcept;

/// The text recorded as an item's last error: `what()` of a `std::exception`, else
/// "unknown exception".
std::string failure_message(std::exception_ptr error);

/// The dead-letter reason of an exception: a `permanent_error`'s `reason()`, else
/// `permanent_failure`.
std::string failure_reason(std::exception_ptr error);

/// Exponential backoff with full jitter and a cap, and a maximum number of attempts.
///
/// The delay before attempt n+1 (after n failed attempts) is uniform in
/// [0, min(max_backoff, initial_backoff * multiplier^(n-1))]. Plain value type.
///
/// @code
/// ingest::retry_policy retry{.max_attempts = 8, .initial_backoff = 100ms, .max_backoff = 30s};
/// @endcode
struct retry_policy {
  std::uint32_t max_attempts = 5;  ///< deliveries in all, the first included; then dead-letter
  std::chrono::milliseconds initial_backoff{200};  ///< ceiling of the first retry delay
  std::chrono::milliseconds max_backoff{std::chrono::seconds(60)};  ///< no delay longer than this
  double multiplier = 2.0;  ///< growth of the ceiling per attempt
  failure_classifier classify = default_classifier;  ///< transient (retry) or permanent (dead-letter now) for a handler error

  /// Upper bound of the jittered delay after `attempts` failed attempts (>= 1).
  std::chrono::milliseconds ceiling(std::uint32_t attempts) const noexcept;
  /// A full-jitter delay after `attempts` failed attempts.
  std::chrono::milliseconds backoff(std::uint32_t attempts, std::mt19937_64& rng) const;
  /// True when an item that has been delivered `attempts` times may be tried again.
  bool may_retry(std::uint32_t attempts) const noexcept { return attempts < max_attempts; }

  /// Throws `ingest::error(errc::invalid_config)` when a value is out of range.
  void validate() const;
};

}  // namespace ingest
