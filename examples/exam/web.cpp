#include <boost/beast/http/field.hpp>

#include "web_assets.hpp"

namespace exam::web {

namespace bhttp = boost::beast::http;

const asset* find(std::string_view path) {
  if (path == "/" || path == "/index.html") path = "/student.html";
  if (path == "/teacher") path = "/teacher.html";
  for (const auto& a : assets())
    if (a.path == path) return &a;
  return nullptr;
}

namespace {

bool names_etag(std::string_view header, std::string_view etag) {
  if (header == "*") return true;
  while (!header.empty()) {
    const auto comma = header.find(',');
    auto one = header.substr(0, comma);
    while (!one.empty() && one.front() == ' ') one.remove_prefix(1);
    while (!one.empty() && one.back() == ' ') one.remove_suffix(1);
    if (one.substr(0, 2) == "W/") one.remove_prefix(2);  // If-None-Match compares weakly
    if (one == etag) return true;
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

ingest::http::response answer(const ingest::http::request& req, const asset& a, std::string_view connect_also) {
  const bool fresh = names_etag(req[bhttp::field::if_none_match], a.etag);
  ingest::http::response r{fresh ? bhttp::status::not_modified : bhttp::status::ok, req.version()};
  r.keep_alive(req.keep_alive());
  r.set(bhttp::field::content_type, a.type);
  r.set(bhttp::field::etag, a.etag);
  r.set(bhttp::field::cache_control, "no-cache");
  // connect-src names the storage the page uploads files to, when there is one.
  std::string connect = "'self'";
  if (!connect_also.empty()) connect.append(" ").append(connect_also);
  r.set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src " + connect +
                                       "; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'");
  r.set("X-Content-Type-Options", "nosniff");
  r.set("Referrer-Policy", "no-referrer");
  r.set("X-Frame-Options", "DENY");
  if (!fresh) r.body().assign(a.bytes);
  r.prepare_payload();
  if (fresh) r.content_length(boost::none);
  return r;
}

}  // namespace exam::web
