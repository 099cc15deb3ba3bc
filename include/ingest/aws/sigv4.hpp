#pragma once
/// @file
/// AWS Signature Version 4 request signing (HMAC-SHA256 via OpenSSL), as the SQS
/// backend uses it; exposed for callers that talk to other AWS-compatible endpoints.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ingest/aws/credentials.hpp"

namespace ingest::aws {

/// One HTTP request to sign.
struct signing_input {
  std::string method = "POST";  ///< HTTP method
  std::string path = "/";  ///< as sent: already percent-encoded where needed
  std::string query{};     ///< as sent, without `?`: `b=2&a=1`; sorted for signing
  /// Headers to sign (names in any case; `host` and `x-amz-date` must be among them,
  /// and `x-amz-security-token` when a session token is used).
  std::vector<std::pair<std::string, std::string>> headers{};
  std::string payload_sha256{};  ///< lower-case hex SHA-256 of the body
};

/// The intermediate products and the result, as the AWS test suite names them.
struct signature_v4 {
  std::string canonical_request;  ///< what is signed, step 1
  std::string string_to_sign;  ///< what is signed, step 2
  std::string signed_headers;  ///< `host;x-amz-date`
  std::string signature;       ///< lower-case hex
  std::string authorization;   ///< the `Authorization` header value
};

/// Signs `input` for `region`/`service` at `amz_date` (`YYYYMMDDTHHMMSSZ`).
/// Pure function; thread-safe.
///
/// @code
/// const auto date = ingest::aws::amz_date_now();
/// ingest::aws::signing_input in{.method = "POST", .path = "/", .query = {},
///     .headers = {{"host", "sqs.eu-west-1.amazonaws.com"}, {"x-amz-date", date}},
///     .payload_sha256 = ingest::aws::sha256_hex(body)};
/// request.set("authorization", ingest::aws::sign_v4(in, creds, "eu-west-1", "sqs", date).authorization);
/// @endcode
signature_v4 sign_v4(const signing_input& input, const credentials& creds, std::string_view region,
                     std::string_view service, std::string_view amz_date);

/// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

/// The current UTC time as `YYYYMMDDTHHMMSSZ`.
std::string amz_date_now();

}  // namespace ingest::aws
