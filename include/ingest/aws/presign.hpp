#pragma once
/// @file
/// AWS Signature Version 4 query-string signing ("presigned URLs"): a URL that carries
/// its own authorization, valid for a limited time, for one method on one object. The
/// signature comes from the same `sign_v4` the header-signed calls use.

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ingest/aws/credentials.hpp"
#include "ingest/aws/sigv4.hpp"

namespace ingest::aws {

/// One request to presign.
struct presign_input {
  std::string method = "GET";  ///< `GET`, `PUT`, `HEAD`, ...
  std::string origin{};  ///< `https://bucket.s3.amazonaws.com` or `http://127.0.0.1:4566`
  std::string path = "/";  ///< already percent-encoded (`uri_encode(key, false)` per key)
  /// Further query parameters (raw; encoded here), e.g. `response-content-disposition`.
  std::vector<std::pair<std::string, std::string>> query{};
  /// Headers the request must then carry with exactly these values (raw names in any
  /// case; e.g. `content-type`, `content-length`, `x-amz-checksum-sha256`). `host` is
  /// always signed and must not be given.
  std::vector<std::pair<std::string, std::string>> headers{};
  std::chrono::seconds expires{3600};  ///< 1 s to 7 days (604,800 s)
  /// What the body's hash is signed as; S3 takes `UNSIGNED-PAYLOAD` in presigned URLs.
  std::string payload_sha256 = "UNSIGNED-PAYLOAD";
};

/// A presigned request: the URL to hand out, and the headers its user must send.
struct presigned_request {
  std::string url;  ///< `origin` + `path` + `?` + the signed query
  std::string method;  ///< the method the URL is signed for
  std::vector<std::pair<std::string, std::string>> headers;  ///< signed ones, lower-case names, `host` left out
  signature_v4 signature;  ///< the canonical request and string to sign, for checking
};

/// Presigns `input` for `region`/`service` at `amz_date` (`YYYYMMDDTHHMMSSZ`). A session
/// token is carried as `X-Amz-Security-Token`. Throws `ingest::error(errc::invalid_config)`
/// for an expiry outside 1 s to 7 days, an origin that is not `http://` or `https://`, or
/// a `host` header. Pure function; thread-safe.
presigned_request presign_v4(const presign_input& input, const credentials& creds, std::string_view region,
                             std::string_view service, std::string_view amz_date);

/// RFC 3986 percent-encoding as SigV4 wants it: letters, digits and `-._~` kept, every
/// other byte `%XX` in upper case; `/` kept unless `encode_slash`.
std::string uri_encode(std::string_view text, bool encode_slash);

}  // namespace ingest::aws
