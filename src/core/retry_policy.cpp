#include "ingest/retry_policy.hpp"

#include <cmath>

#include "ingest/error.hpp"

namespace ingest {

failure_kind default_classifier(std::exception_ptr error) noexcept {
  if (!error) return failure_kind::transient;
  try {
    std::rethrow_exception(error);
  } catch (const permanent_error&) {
    return failure_kind::permanent;
  } catch (...) {
    return failure_kind::transient;
  }
}

std::string failure_reason(std::exception_ptr error) {
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const permanent_error& e) {
      return e.reason();
    } catch (...) {
    }
  }
  return "permanent_failure";
}

std::string failure_message(std::exception_ptr error) {
  if (!error) return "no error";
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}

std::chrono::milliseconds retry_policy::ceiling(std::uint32_t attempts) const noexcept {
  const double exponent = attempts == 0 ? 0.0 : static_cast<double>(attempts - 1);
  const double ms = static_cast<double>(initial_backoff.count()) * std::pow(multiplier, exponent);
  const double cap = static_cast<double>(max_backoff.count());
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::min(ms, cap)));
}

std::chrono::milliseconds retry_policy::backoff(std::uint32_t attempts, std::mt19937_64& rng) const {
  const auto top = ceiling(attempts).count();
  if (top <= 0) return std::chrono::milliseconds::zero();
  std::uniform_int_distribution<std::int64_t> pick(0, top);
  return std::chrono::milliseconds(pick(rng));
}

void retry_policy::validate() const {
  if (max_attempts == 0) throw error(errc::invalid_config, "retry_policy: max_attempts must be at least 1");
  if (initial_backoff.count() < 0 || max_backoff.count() < 0)
    throw error(errc::invalid_config, "retry_policy: backoff must not be negative");
  if (max_backoff < initial_backoff)
    throw error(errc::invalid_config, "retry_policy: max_backoff must be >= initial_backoff");
  if (!(multiplier >= 1.0)) throw error(errc::invalid_config, "retry_policy: multiplier must be >= 1");
  if (!classify) throw error(errc::invalid_config, "retry_policy: classify must be set");
}

}  // namespace ingest
