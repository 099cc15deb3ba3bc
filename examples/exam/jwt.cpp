#include "jwt.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <memory>
#include <stdexcept>

#include "ingest/detail/hmac.hpp"

namespace exam {
namespace {

using ingest::detail::base64url_decode;
using ingest::detail::base64url_encode;

std::array<unsigned char, 32> hmac_sha256(std::string_view secret, std::string_view data) {
  // Servers verify with one secret; keep the prepared key of the last one per thread.
  thread_local std::string cached_secret;
  thread_local std::unique_ptr<ingest::detail::hmac_sha256> cached;
  if (!cached || cached_secret != secret) {
    cached = std::make_unique<ingest::detail::hmac_sha256>(secret);
    cached_secret.assign(secret);
  }
  return cached->mac(data);
}

std::string_view mac_view(const std::array<unsigned char, 32>& mac) {
  return {reinterpret_cast<const char*>(mac.data()), mac.size()};
}

// A NumericDate claim (exp, nbf) as a time point, clamped to about the year 2096: a
// larger value (1e300, 2^64-1) would overflow the conversion to nanoseconds.
std::chrono::system_clock::time_point time_claim(const boost::json::value& v) {
  constexpr double max_seconds = 4e9;
  double seconds = 0;
  if (v.is_int64())
    seconds = static_cast<double>(v.as_int64());
  else if (v.is_uint64())
    seconds = static_cast<double>(v.as_uint64());
  else
    seconds = v.as_double();
  if (!(seconds > -max_seconds)) seconds = -max_seconds;  // also NaN (not produced by Boost.JSON)
  if (seconds > max_seconds) seconds = max_seconds;
  return std::chrono::system_clock::time_point(std::chrono::seconds(static_cast<std::int64_t>(seconds)));
}

// RFC 7519: `aud` is one string or an array of strings.
bool names_audience(const boost::json::value* aud, std::string_view audience) {
  if (!aud) return false;
  if (aud->is_string()) return aud->as_string() == audience;
  if (!aud->is_array()) return false;
  for (const auto& a : aud->as_array())
    if (a.is_string() && a.as_string() == audience) return true;
  return false;
}

}  // namespace

std::string_view to_string(token_error e) noexcept {
  switch (e) {
    case token_error::none:
      return "none";
    case token_error::malformed:
      return "malformed";
    case token_error::bad_algorithm:
      return "bad_algorithm";
    case token_error::bad_signature:
      return "bad_signature";
    case token_error::expired:
      return "expired";
    case token_error::not_yet_valid:
      return "not_yet_valid";
    case token_error::bad_claims:
      return "bad_claims";
    case token_error::bad_issuer:
      return "bad_issuer";
    case token_error::bad_audience:
      return "bad_audience";
  }
  return "unknown";
}

std::string mint_token(const principal& p, std::string_view secret, const token_checks& checks) {
  boost::json::object claims;
  if (!checks.issuer.empty()) claims["iss"] = checks.issuer;
  if (!checks.audience.empty()) claims["aud"] = checks.audience;
  claims["sub"] = p.sub;
  claims["role"] = p.role == role::teacher ? "teacher" : "student";
  claims["exp"] = std::chrono::duration_cast<std::chrono::seconds>(p.expires.time_since_epoch()).count();
  return sign_claims(boost::json::serialize(claims), secret);
}

std::string sign_claims(std::string_view claims_json, std::string_view secret) {
  const std::string signing_input =
      base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + '.' + base64url_encode(claims_json);
  return signing_input + '.' + base64url_encode(mac_view(hmac_sha256(secret, signing_input)));
}

verified verify_token(std::string_view token, std::string_view secret, const token_checks& checks,
                      std::chrono::system_clock::time_point now) {
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return {token_error::malformed};
  const auto header = base64url_decode(token.substr(0, dot1));
  const auto payload = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  const auto signature = base64url_decode(token.substr(dot2 + 1));
  if (!header || !payload || !signature) return {token_error::malformed};

  boost::system::error_code ec;
  const auto h = boost::json::parse(*header, ec);
  if (ec || !h.is_object()) return {token_error::malformed};
  const auto* alg = h.as_object().if_contains("alg");
  if (!alg || !alg->is_string() || alg->as_string() != "HS256") return {token_error::bad_algorithm};

  const auto expected = hmac_sha256(secret, token.substr(0, dot2));
  if (signature->size() != expected.size() || CRYPTO_memcmp(signature->data(), expected.data(), expected.size()) != 0)
    return {token_error::bad_signature};

  const auto c = boost::json::parse(*payload, ec);
  if (ec || !c.is_object()) return {token_error::malformed};
  const auto& claims = c.as_object();
  const auto* sub = claims.if_contains("sub");
  const auto* r = claims.if_contains("role");
  const auto* exp = claims.if_contains("exp");
  if (!sub || !sub->is_string() || sub->as_string().empty() || !r || !r->is_string() || !exp || !exp->is_number())
    return {token_error::bad_claims};
  verified out;
  out.who.sub = std::string(sub->as_string());
  if (r->as_string() == "student")
    out.who.role = role::student;
  else if (r->as_string() == "teacher")
    out.who.role = role::teacher;
  else
    return {token_error::bad_claims};
  out.who.expires = time_claim(*exp);
  if (out.who.expires <= now) return {token_error::expired};
  if (const auto* nbf = claims.if_contains("nbf")) {
    if (!nbf->is_number()) return {token_error::bad_claims};
    if (time_claim(*nbf) > now) return {token_error::not_yet_valid};
  }
  if (!checks.issuer.empty()) {
    const auto* iss = claims.if_contains("iss");
    if (!iss || !iss->is_string() || iss->as_string() != checks.issuer) return {token_error::bad_issuer};
  }
  if (!checks.audience.empty() && !names_audience(claims.if_contains("aud"), checks.audience))
    return {token_error::bad_audience};
  return out;
}

std::string random_secret() {
  std::array<unsigned char, 32> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) throw std::runtime_error("RAND_bytes failed");
  return base64url_encode({reinterpret_cast<const char*>(bytes.data()), bytes.size()});
}

std::optional<std::chrono::seconds> parse_ttl(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc{} || n <= 0) return std::nullopt;
  const std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
  std::int64_t scale = 0;
  if (unit == "s" || unit.empty())
    scale = 1;
  else if (unit == "m")
    scale = 60;
  else if (unit == "h")
    scale = 3600;
  else if (unit == "d")
    scale = 86400;
  else
    return std::nullopt;
  if (n > INT64_MAX / scale / 2) return std::nullopt;
  return std::chrono::seconds(n * scale);
}

}  // namespace exam
