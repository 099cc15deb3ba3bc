#pragma once
/// @file
/// JSON answers, and how `ingest` errors map to HTTP statuses on an accept path.

#include <boost/beast/http/status.hpp>
#include <chrono>
#include <string>
#include <string_view>

#include "ingest/error.hpp"
#include "ingest/http/server.hpp"

namespace ingest::http {

/// HTTP status codes (Beast's).
using status = boost::beast::http::status;

/// What an answer takes from its request: the HTTP version and whether to keep the
/// connection. Two bytes to keep for an answer given later, instead of the request.
struct reply_to {
  unsigned version = 11;  ///< HTTP/1.1 unless the request said otherwise
  bool keep_alive = true;  ///< as the request asked
  reply_to() = default;
  /// Taken from `req` (implicit, so a request can be passed wherever a `reply_to` is asked).
  reply_to(const request& req) noexcept : version(req.version()), keep_alive(req.keep_alive()) {}  // NOLINT
};

/// A response (same version, keep-alive as asked) with a JSON body.
response json_response(reply_to to, status s, std::string body);

/// `{"error": code, "message": message}`; `retry_after` > 0 adds `Retry-After` (seconds).
response error_response(reply_to to, status s, std::string_view code, std::string_view message,
                        std::chrono::seconds retry_after = std::chrono::seconds(0));

/// How an error from `producer::async_submit` is told to a client.
struct error_mapping {
  status code = status::internal_server_error;  ///< the HTTP status
  std::string_view error{};           ///< the machine-readable `error` field
  std::chrono::seconds retry_after{};  ///< non-zero: send `Retry-After`
};

/// Maps `ec` to the answer of an accept path: retry-later errors to 503 with
/// `Retry-After` (retry with the same key: after a `publish_timeout` the message may
/// have been stored, and the retry's answer is then its receipt), `conflict` to 422, `in_flight` to 409,
/// `invalid_key` to 400, `payload_too_large` to 413, `not_found` to 404,
/// `deadline_passed` to 403, anything else to 500.
///
/// @code
/// producer.async_submit(std::move(item), [req, respond = std::move(respond)](auto ec, auto r) mutable {
///   if (ec) return respond(ingest::http::error_response(req, ec));   // 503 + Retry-After, 422, ...
///   respond(ingest::http::json_response(req, ingest::http::status::accepted, receipt_json(r)));
/// });
/// @endcode
error_mapping map_error(const error_code& ec) noexcept;

/// `error_response` for `ec` as `map_error` classifies it, with `ec.message()`.
response error_response(reply_to to, const error_code& ec);

}  // namespace ingest::http
