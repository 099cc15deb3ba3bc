// SigV4 query-string signing: the authorization moves from headers into the query, the
// signature is the same canonical-request signature as everywhere else.

#include "ingest/aws/presign.hpp"

#include <algorithm>
#include <cctype>

#include "ingest/error.hpp"

namespace ingest::aws {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// `https://host[:port][/...]` -> `host[:port]`, the Host header the request will carry.
std::string host_of(std::string_view origin) {
  std::string_view rest;
  if (origin.rfind("http://", 0) == 0) rest = origin.substr(7);
  else if (origin.rfind("https://", 0) == 0) rest = origin.substr(8);
  else throw error(errc::invalid_config, "presign: the origin must start with http:// or https://: " + std::string(origin));
  rest = rest.substr(0, rest.find('/'));
  if (rest.empty()) throw error(errc::invalid_config, "presign: no host in " + std::string(origin));
  // The default port is left out of Host, as clients send it.
  const bool tls = origin[4] == 's';
  if ((tls && rest.ends_with(":443")) || (!tls && rest.ends_with(":80"))) rest = rest.substr(0, rest.rfind(':'));
  return std::string(rest);
}

}  // namespace

std::string uri_encode(std::string_view text, bool encode_slash) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (c == '/' && !encode_slash)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 0xF]);
    }
  }
  return out;
}

presigned_request presign_v4(const presign_input& input, const credentials& creds, std::string_view region,
                             std::string_view service, std::string_view amz_date) {
  if (input.expires < std::chrono::seconds(1) || input.expires > std::chrono::seconds(604800))
    throw error(errc::invalid_config, "presign: the expiry must be 1 s to 7 days");
  const std::string host = host_of(input.origin);

  presigned_request out;
  out.method = input.method;
  signing_input in;
  in.method = input.method;
  in.path = input.path;
  in.payload_sha256 = input.payload_sha256;
  in.headers.emplace_back("host", host);
  std::vector<std::string> names{"host"};
  for (const auto& [name, value] : input.headers) {
    const std::string n = lower(name);
    if (n == "host") throw error(errc::invalid_config, "presign: host is always signed; do not pass it");
    in.headers.emplace_back(n, value);
    out.headers.emplace_back(n, value);
    names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::string signed_headers;
  for (const auto& n : names) signed_headers += (signed_headers.empty() ? "" : ";") + n;

  const std::string date(amz_date.substr(0, 8));
  const std::string scope = date + '/' + std::string(region) + '/' + std::string(service) + "/aws4_request";
  std::vector<std::pair<std::string, std::string>> params{
      {"X-Amz-Algorithm", "AWS4-HMAC-SHA256"},
      {"X-Amz-Credential", creds.access_key_id + '/' + scope},
      {"X-Amz-Date", std::string(amz_date)},
      {"X-Amz-Expires", std::to_string(input.expires.count())},
      {"X-Amz-SignedHeaders", signed_headers}};
  if (!creds.session_token.empty()) params.emplace_back("X-Amz-Security-Token", creds.session_token);
  params.insert(params.end(), input.query.begin(), input.query.end());
  for (const auto& [name, value] : params) {
    if (!in.query.empty()) in.query.push_back('&');
    in.query += uri_encode(name, true) + '=' + uri_encode(value, true);
  }

  out.signature = sign_v4(in, creds, region, service, amz_date);
  std::string origin = input.origin;
  if (const auto scheme_end = origin.find("://"); origin.find('/', scheme_end + 3) != std::string::npos)
    origin.erase(origin.find('/', scheme_end + 3));
  out.url = origin + input.path + '?' + in.query + "&X-Amz-Signature=" + out.signature.signature;
  return out;
}

}  // namespace ingest::aws
