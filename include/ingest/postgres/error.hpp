#pragma once
/// @file
/// PostgreSQL errors: the SQLSTATE kept in an `ingest::error`, and which of them a
/// retry can fix.

#include <exception>
#include <string>
#include <system_error>

#include "ingest/retry_policy.hpp"

namespace ingest::postgres {

/// Error category of PostgreSQL errors (name "postgres"). A value is the five-character
/// SQLSTATE packed as a base-36 number; `sqlstate()` gives the text back. A connection
/// that broke without a server answer is reported as `08006` (connection_failure).
const std::error_category& postgres_category() noexcept;

/// The `std::error_code` of a SQLSTATE such as "23505". Anything that is not five
/// digits or upper-case letters becomes `XX000` (internal_error).
std::error_code make_error_code(std::string_view sqlstate) noexcept;

/// The SQLSTATE of `ec` ("23505"), or "" when `ec` is not in `postgres_category()`.
std::string sqlstate(const std::error_code& ec);

/// True for failures that may pass if the same transaction is tried again:
/// serialization failures and deadlocks (class 40), lost or refused connections
/// (class 08), administrator or crash shutdown and a server still starting (57P01-57P03),
/// a cancelled statement (57014, e.g. a statement timeout), a lock not available
/// (55P03), insufficient resources such as too many connections (class 53).
bool is_transient(const std::error_code& ec) noexcept;

/// True when the connection itself is gone (class 08, or the server shutting down):
/// nothing more can be done on it until it reconnects.
bool is_connection_lost(const std::error_code& ec) noexcept;

/// The dead-letter reason of a permanent PostgreSQL error: `constraint_violation`
/// (class 23: unique, foreign key, check, not null), `invalid_data` (class 22: a value
/// PostgreSQL refuses, such as invalid UTF-8 or a number out of range); for anything
/// else, `ingest::failure_reason`.
std::string failure_reason(std::exception_ptr error);

/// The classifier for handlers that write to PostgreSQL: a `permanent_error`, or a
/// PostgreSQL error of class 22 or 23, is permanent (dead-letter now: no retry can
/// make a duplicate unique or a bad value good); everything else is transient
/// (retried with backoff, dead-lettered after `max_attempts`).
failure_kind classify(std::exception_ptr error) noexcept;

}  // namespace ingest::postgres
