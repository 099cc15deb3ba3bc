// The S3 bucket client: SigV4 header-signed calls over the shared Beast client, run on
// a private I/O thread and waited for by the caller; presigned URLs built without I/O.

#include "ingest/aws/s3.hpp"

#include <openssl/evp.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <algorithm>
#include <future>
#include <thread>

#include "aws/http_client.hpp"
#include "core/url_params.hpp"
#include "ingest/aws/sigv4.hpp"
#include "ingest/error.hpp"

namespace ingest::aws {

namespace asio = boost::asio;
using detail::http_result;

s3_options s3_options::from_url(std::string_view url) {
  s3_options o;
  const auto u = detail::split_service_url(url, "s3");
  if (u.path.empty() || u.path.find('/') != std::string_view::npos)
    throw error(errc::invalid_config, "s3: the storage URL must be s3+http(s)://host[:port]/bucket");
  o.endpoint = u.endpoint;
  o.bucket = ingest::detail::percent_decode("s3 URL", u.path);
  ingest::detail::url_query params("s3 URL", u.query);
  params.set("region", o.region);
  params.set("path_style", o.path_style);
  params.set("timeout", o.timeout);
  params.set("max_connections", o.max_connections);
  params.set("tls_verify", o.tls_verify);
  params.set("tls_ca", o.tls_ca_file);
  params.set("create", o.create);
  params.finish();
  if (!u.tls && (!o.tls_ca_file.empty() || params.has("tls_verify")))
    throw error(errc::invalid_config, "s3 URL: tls_ca and tls_verify need s3+https://");
  if (o.timeout <= std::chrono::milliseconds::zero()) throw error(errc::invalid_config, "s3 URL: timeout must be positive");
  if (o.max_connections == 0) throw error(errc::invalid_config, "s3 URL: max_connections must be at least 1");
  return o;
}

std::string sha256_hex_to_base64(std::string_view hex) {
  if (hex.size() != 64) throw error(errc::invalid_config, "sha256: 64 hex digits expected");
  unsigned char raw[32];
  for (std::size_t i = 0; i < 32; ++i) {
    auto nibble = [&](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      throw error(errc::invalid_config, "sha256: 64 hex digits expected");
    };
    raw[i] = static_cast<unsigned char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  }
  unsigned char out[64];
  const int n = EVP_EncodeBlock(out, raw, 32);
  return std::string(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
}

namespace {

// The store's own error code (`<Code>NoSuchKey</Code>`), for messages.
std::string error_code_of(const std::string& body) {
  const auto start = body.find("<Code>");
  const auto end = body.find("</Code>");
  if (start == std::string::npos || end == std::string::npos || end < start) return {};
  return body.substr(start + 6, end - start - 6);
}

// Virtual-hosted: the bucket's own host name is where the connection goes.
detail::endpoint endpoint_of(const s3_options& o) {
  auto ep = detail::endpoint::parse(o.endpoint);
  if (!o.path_style) ep.host = o.bucket + '.' + ep.host;
  return ep;
}

// `Content-Disposition: attachment` naming `name`: an ASCII `filename` (no quotes,
// backslashes, control or non-ASCII bytes) and the exact name as RFC 5987 `filename*`.
std::string disposition(std::string_view name) {
  std::string ascii;
  for (unsigned char c : name)
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') ascii.push_back(static_cast<char>(c));
    else if (c >= 0x80) ascii.push_back('_');
  if (ascii.empty()) ascii = "download";
  return "attachment; filename=\"" + ascii + "\"; filename*=UTF-8''" + uri_encode(name, true);
}

}  // namespace

struct s3_bucket::impl {
  explicit impl(s3_options o)
      : options(std::move(o)),
        ep(endpoint_of(options)),
        work(asio::make_work_guard(io)),
        http(io, ep, detail::client_options{options.max_connections, options.timeout, options.tls_verify,
                                            options.tls_ca_file}) {
    if (options.bucket.empty()) throw error(errc::invalid_config, "s3: no bucket");
    options.creds = resolve_credentials(std::move(options.creds), ep.tls, "s3");
    if (options.region.empty()) options.region = default_region();
    host = ep.host_header();
    origin = std::string(ep.tls ? "https://" : "http://") + host;
    thread = std::thread([this] { io.run(); });
  }
  ~impl() {
    asio::post(io, [this] { http.shutdown(); });
    work.reset();
    thread.join();
  }

  s3_options options;
  detail::endpoint ep;
  std::string host;    // the Host header (virtual-hosted: the bucket's own host)
  std::string origin;  // scheme + host, for presigned URLs
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  detail::http_client http;
  std::thread thread;

  std::string path_of(std::string_view key) const {
    const std::string bucket_part = options.path_style ? '/' + uri_encode(options.bucket, true) : std::string();
    return key.empty() ? bucket_part + '/' : bucket_part + '/' + uri_encode(key, false);
  }

  // One signed call, waited for. Throws as the class comment says; 404 is returned.
  http_result call(std::string method, std::string_view key, std::string body, detail::http_fields extra) {
    for (const auto& [name, value] : extra)
      if (std::any_of(value.begin(), value.end(), [](unsigned char c) { return c < 0x20 || c == 0x7F; }))
        throw error(errc::invalid_config, "s3: header " + name + " has a control character");
    const std::string date = amz_date_now();
    signing_input in;
    in.method = method;
    in.path = path_of(key);
    in.payload_sha256 = sha256_hex(body);
    in.headers = {{"host", host}, {"x-amz-content-sha256", in.payload_sha256}, {"x-amz-date", date}};
    if (!options.creds.session_token.empty()) in.headers.emplace_back("x-amz-security-token", options.creds.session_token);
    for (auto& h : extra) in.headers.push_back(h);
    const auto sig = sign_v4(in, options.creds, options.region, "s3", date);
    detail::http_fields fields(in.headers.begin() + 1, in.headers.end());  // Host is set by the client
    fields.emplace_back("authorization", sig.authorization);

    auto done = std::make_shared<std::promise<std::pair<boost::system::error_code, http_result>>>();
    auto result = done->get_future();
    asio::post(io, [this, method = std::move(method), target = in.path, fields = std::move(fields),
                    body = std::move(body), done]() mutable {
      try {
        http.send(method, std::move(target), std::move(fields), std::move(body), options.timeout,
                  [done](boost::system::error_code ec, http_result r) { done->set_value({ec, std::move(r)}); });
      } catch (...) {
        done->set_exception(std::current_exception());  // thrown to the caller, not out of io.run()
      }
    });
    auto [ec, r] = result.get();
    const std::string what = "s3 " + in.method + ' ' + options.bucket + '/' + std::string(key);
    if (ec) throw error(errc::backend_unavailable, what + ": " + ec.message());
    if (r.status == 404 || (r.status >= 200 && r.status < 300)) return std::move(r);
    const std::string detail = what + ": HTTP " + std::to_string(r.status) +
                               (error_code_of(r.body).empty() ? "" : " " + error_code_of(r.body));
    if (r.status == 429 || r.status >= 500) throw error(errc::backend_unavailable, detail);
    throw error(errc::storage_error, detail);
  }
};

s3_bucket::s3_bucket(s3_options options) : impl_(std::make_unique<impl>(std::move(options))) {
  if (impl_->options.create) create_bucket();
}
s3_bucket::~s3_bucket() = default;

const s3_options& s3_bucket::options() const { return impl_->options; }

std::string s3_bucket::origin() const { return impl_->origin; }

std::optional<object_info> s3_bucket::head(std::string_view key) {
  auto r = impl_->call("HEAD", key, {}, {{"x-amz-checksum-mode", "ENABLED"}});
  if (r.status == 404) return std::nullopt;
  object_info info;
  try {
    info.size = std::stoull(r.header("content-length"));
  } catch (const std::exception&) {
    throw error(errc::storage_error, "s3 HEAD " + std::string(key) + ": no Content-Length in the answer");
  }
  info.etag = r.header("etag");
  info.content_type = r.header("content-type");
  info.checksum_sha256 = r.header("x-amz-checksum-sha256");
  return info;
}

std::optional<std::string> s3_bucket::get(std::string_view key, std::uint64_t max_bytes) {
  auto r = impl_->call("GET", key, {}, {});
  if (r.status == 404) return std::nullopt;
  if (r.body.size() > max_bytes)
    throw error(errc::payload_too_large, "s3 GET " + std::string(key) + ": " + std::to_string(r.body.size()) +
                                         " bytes, more than the " + std::to_string(max_bytes) + " allowed");
  return std::move(r.body);
}

void s3_bucket::put(std::string_view key, std::string body, std::string_view content_type) {
  auto r = impl_->call("PUT", key, std::move(body), {{"content-type", std::string(content_type)}});
  if (r.status == 404) throw error(errc::storage_error, "s3 PUT " + std::string(key) + ": no such bucket");
}

void s3_bucket::create_bucket() {
  // Outside us-east-1 S3 wants the region named in the body.
  const auto& region = impl_->options.region;
  std::string body = region == "us-east-1" ? std::string()
                                           : "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                                             "<LocationConstraint>" + region + "</LocationConstraint></CreateBucketConfiguration>";
  try {
    auto r = impl_->call("PUT", {}, std::move(body), {});
    if (r.status == 404) throw error(errc::storage_error, "s3: creating bucket " + impl_->options.bucket + ": HTTP 404");
  } catch (const error& e) {
    // Ours already (S3 outside us-east-1 says so with a 409).
    if (std::string(e.what()).find("BucketAlreadyOwnedByYou") == std::string::npos) throw;
  }
}

bool s3_bucket::bucket_exists() {
  // HEAD of the bucket: 200 when it is there and ours to read, 404 when there is none.
  return impl_->call("HEAD", {}, {}, {}).status != 404;
}

presigned_request s3_bucket::presign_put(std::string_view key, std::string_view content_type, std::uint64_t size,
                                         std::string_view sha256_hex, std::chrono::seconds expires) const {
  presign_input in;
  in.method = "PUT";
  in.origin = impl_->origin;
  in.path = impl_->path_of(key);
  in.expires = expires;
  in.headers = {{"content-length", std::to_string(size)}, {"content-type", std::string(content_type)}};
  if (!sha256_hex.empty()) in.headers.emplace_back("x-amz-checksum-sha256", sha256_hex_to_base64(sha256_hex));
  return presign_v4(in, impl_->options.creds, impl_->options.region, "s3", amz_date_now());
}

presigned_request s3_bucket::presign_get(std::string_view key, std::chrono::seconds expires,
                                         std::string_view filename) const {
  presign_input in;
  in.method = "GET";
  in.origin = impl_->origin;
  in.path = impl_->path_of(key);
  in.expires = expires;
  if (!filename.empty())
    in.query.emplace_back("response-content-disposition", disposition(filename));
  return presign_v4(in, impl_->options.creds, impl_->options.region, "s3", amz_date_now());
}

}  // namespace ingest::aws
