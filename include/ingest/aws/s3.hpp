#pragma once
/// @file
/// One S3-compatible bucket: presigned `PUT` and `GET` URLs to hand to browsers, and the
/// few calls a worker needs to check what was uploaded (`HEAD`, `GET`), plus `PUT` and
/// bucket creation for tools and tests. Header-signed with the same SigV4 as SQS.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "ingest/aws/credentials.hpp"
#include "ingest/aws/presign.hpp"

namespace ingest::aws {

/// Where the bucket is and how to reach it.
struct s3_options {
  std::string endpoint{};  ///< `http://127.0.0.1:4566`, `https://s3.eu-west-1.amazonaws.com`
  std::string bucket{};  ///< the bucket's name
  /// Empty: `default_region()`.
  std::string region{};
  /// Empty: `resolve_credentials` (the environment, the shared file; `test`/`test` over
  /// plain HTTP for emulators).
  credentials creds{};
  /// `true`: `endpoint/bucket/key` (emulators, and S3 itself); `false`: virtual-hosted,
  /// `bucket.host/key`.
  bool path_style = true;
  std::chrono::milliseconds timeout{std::chrono::seconds(10)};  ///< per call, connecting included
  std::size_t max_connections = 16;  ///< keep-alive connections at most
  bool tls_verify = true;            ///< verify the server's certificate and name (HTTPS)
  std::string tls_ca_file{};         ///< PEM CA file to verify with (empty: the system's)
  /// Create the bucket when the client starts (`create_bucket()`, idempotent): for
  /// emulators and tests; a production bucket is made with its policy beforehand.
  bool create = false;

  /// `s3+http://host:port/bucket` or `s3+https://host/bucket`, with optional parameters
  /// `region`, `path_style` (`true`|`false`), `timeout` (`10s`), `max_connections`,
  /// `tls_verify`, `tls_ca`, `create` (`true`|`false`). Throws `ingest::error(errc::invalid_config)` on anything else.
  static s3_options from_url(std::string_view url);
};

/// What `HEAD` tells about an object.
struct object_info {
  std::uint64_t size = 0;  ///< bytes (`Content-Length`)
  std::string etag{};  ///< as the store sends it, quotes included
  std::string content_type{};  ///< as stored with the object
  /// Base64 SHA-256 when the store keeps one (S3 with `x-amz-checksum-sha256` given at
  /// upload, asked with checksum mode); empty when it does not say.
  std::string checksum_sha256{};
};

/// A bucket client. Calls block the caller (each runs on the client's own I/O thread,
/// with keep-alive connections); safe from several threads at once.
///
/// Errors: `ingest::error` with `errc::backend_unavailable` for a connection failure, a
/// timeout, a throttle (429, 503) or a 5xx answer: worth retrying; `errc::storage_error`
/// for any other refusal (403: the credentials or the signature; 400), its text holding
/// the status and the store's error code.
class s3_bucket {
 public:
  /// Starts the client's I/O thread (and creates the bucket with `options.create`).
  /// Throws `ingest::error(errc::invalid_config)` for options it cannot use, and what
  /// `create_bucket` throws.
  explicit s3_bucket(s3_options options);
  ~s3_bucket();
  s3_bucket(const s3_bucket&) = delete;
  s3_bucket& operator=(const s3_bucket&) = delete;

  /// The object's size and tags, or nullopt when there is no such object (404).
  std::optional<object_info> head(std::string_view key);
  /// The object's bytes, or nullopt when there is no such object. Throws
  /// `errc::payload_too_large` when it is larger than `max_bytes`.
  std::optional<std::string> get(std::string_view key, std::uint64_t max_bytes);
  /// Stores `body` under `key`.
  void put(std::string_view key, std::string body, std::string_view content_type);
  /// Creates the bucket (naming the region outside us-east-1); an existing bucket of
  /// the same owner is fine.
  void create_bucket();
  /// Whether the bucket is there (a `HEAD` of an object answers 404 for a missing
  /// bucket too: check this once before reading a 404 as a missing object).
  bool bucket_exists();

  /// A URL a browser can `PUT` exactly `size` bytes of `content_type` to, for `expires`.
  /// With `sha256_hex` (64 hex digits) the upload must also carry it as
  /// `x-amz-checksum-sha256` (base64), and S3 refuses a body that does not match.
  presigned_request presign_put(std::string_view key, std::string_view content_type, std::uint64_t size,
                                std::string_view sha256_hex, std::chrono::seconds expires) const;
  /// A URL to `GET` the object for `expires`; with `filename`, the download is offered
  /// under that name (`response-content-disposition`).
  presigned_request presign_get(std::string_view key, std::chrono::seconds expires,
                                std::string_view filename = {}) const;

  /// The options in use (region and credentials resolved).
  const s3_options& options() const;
  /// `scheme://host[:port]` that presigned URLs point at (for a page's `connect-src`).
  std::string origin() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Base64 (standard alphabet, padded) of the raw bytes that `hex` (64 hex digits) spells;
/// the form `x-amz-checksum-sha256` takes. Throws `errc::invalid_config` for anything
/// else.
std::string sha256_hex_to_base64(std::string_view hex);

}  // namespace ingest::aws
