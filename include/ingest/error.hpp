#pragma once
/// @file
/// Error codes of the ingest library (`ingest::errc`) and the one exception type that
/// blocking helpers throw.

#include <boost/system/error_code.hpp>
#include <string>
#include <string_view>
#include <system_error>

namespace ingest {

/// The error type of every completion handler. Boost's `error_code` (so that Asio's
/// `use_future` and `use_awaitable` turn it into an exception); it holds, compares
/// with and converts to `std::error_code`, so `ec == ingest::errc::conflict` works.
using error_code = boost::system::error_code;

/// Conditions reported by the core and by every backend.
///
/// Async operations complete with a `std::error_code` holding one of these (or a
/// backend's own code); blocking helpers throw `ingest::error`.
enum class errc {
  invalid_key = 1,      ///< idempotency key empty, longer than 255 bytes, or not printable ASCII
  payload_too_large,    ///< payload over the producer's limit
  conflict,             ///< same idempotency key, different payload fingerprint
  in_flight,            ///< same key already being published; retry to get its receipt
  backpressure,         ///< producer in-flight bound reached: retry later
  queue_full,           ///< the backend refuses new work (capacity reached): retry later
  publish_timeout,      ///< no durable ack in time; outcome unknown, retry with the same key
  shutting_down,        ///< the object is draining or closed and takes no new work
  backend_unavailable,  ///< the backend cannot be reached or failed: retry later
  lease_expired,        ///< a settle came after the delivery's lease ran out (it will be redelivered)
  not_found,            ///< no such message, dead letter or record
  invalid_config,       ///< options failed validation
  storage_error,        ///< the backend's storage failed (disk full, corrupt file, I/O error)
  not_supported,        ///< the backend does not offer this operation
  invalid_header,       ///< a header name or value, or the subject, that not every backend can carry
  deadline_passed,      ///< the message's accept time is after its `not_after`: no receipt (not retry-later)
};

/// The category of `ingest::errc`; name "ingest".
const std::error_category& ingest_category() noexcept;

/// Lets `errc` values convert to `std::error_code` (found by argument-dependent lookup).
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), ingest_category()};
}

/// True for errors after which the same request, retried later with the same
/// idempotency key, may succeed and is safe (HTTP 503 + Retry-After). False for success.
///
/// @code
/// if (ec == ingest::errc::conflict) return answer(422);
/// if (ingest::is_retry_later(ec)) return answer(503, /*retry_after=*/1s);
/// @endcode
bool is_retry_later(const std::error_code& ec) noexcept;

/// The snake_case name of an `errc` value ("queue_full"), for labels and logs.
std::string_view errc_name(errc e) noexcept;

/// The single exception type thrown by blocking helpers.
class error : public std::system_error {
 public:
  using std::system_error::system_error;
};

/// Throws `ingest::error(ec, what)` when `ec` holds an error.
void throw_if(const std::error_code& ec, const std::string& what);

}  // namespace ingest

/// @cond INTERNAL
// `errc` values convert to std::error_code implicitly.
template <>
struct std::is_error_code_enum<ingest::errc> : std::true_type {};
/// @endcond
