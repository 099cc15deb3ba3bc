#include "ingest/aws/sigv4.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <map>

#include "core/url_params.hpp"

namespace ingest::aws {

namespace {

using bytes = std::string;

bytes hmac(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &len);
  return bytes(reinterpret_cast<const char*>(out), len);
}

std::string hex(std::string_view raw) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 0xF]);
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Leading and trailing blanks removed, inner runs of spaces folded into one.
std::string canonical_value(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

std::string canonical_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  ingest::detail::for_each_query_part(query, [&](std::string_view part) {
    const auto eq = part.find('=');  // a name without a value signs as "name="
    params.emplace_back(std::string(part.substr(0, eq)),
                        eq == std::string_view::npos ? std::string() : std::string(part.substr(eq + 1)));
  });
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out.push_back('&');
    out += k;
    out.push_back('=');
    out += v;
  }
  return out;
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr);
  return hex(std::string_view(reinterpret_cast<const char*>(out), len));
}

std::string amz_date_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

signature_v4 sign_v4(const signing_input& input, const credentials& creds, std::string_view region,
                     std::string_view service, std::string_view amz_date) {
  // Same-named headers are joined with commas in the order given; names sorted.
  std::map<std::string, std::string> headers;
  for (const auto& [name, value] : input.headers) {
    auto& slot = headers[lower(name)];
    if (!slot.empty()) slot.push_back(',');
    slot += canonical_value(value);
  }
  signature_v4 s;
  std::string canonical_headers;
  for (const auto& [name, value] : headers) {
    canonical_headers += name + ':' + value + '\n';
    if (!s.signed_headers.empty()) s.signed_headers.push_back(';');
    s.signed_headers += name;
  }
  s.canonical_request = input.method + '\n' + input.path + '\n' + canonical_query(input.query) + '\n' +
                        canonical_headers + '\n' + s.signed_headers + '\n' + input.payload_sha256;

  const std::string date(amz_date.substr(0, 8));
  const std::string scope = date + '/' + std::string(region) + '/' + std::string(service) + "/aws4_request";
  s.string_to_sign =
      "AWS4-HMAC-SHA256\n" + std::string(amz_date) + '\n' + scope + '\n' + sha256_hex(s.canonical_request);

  const bytes k_date = hmac("AWS4" + creds.secret_access_key, date);
  const bytes k_region = hmac(k_date, region);
  const bytes k_service = hmac(k_region, service);
  const bytes k_signing = hmac(k_service, "aws4_request");
  s.signature = hex(hmac(k_signing, s.string_to_sign));
  s.authorization = "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id + '/' + scope +
                    ", SignedHeaders=" + s.signed_headers + ", Signature=" + s.signature;
  return s;
}

}  // namespace ingest::aws
