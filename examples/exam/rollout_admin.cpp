#include "rollout_admin.hpp"

#include <openssl/crypto.h>

#include <boost/json/parse.hpp>
#include <fmt/format.h>
#include <variant>

#include "ingest/http/response.hpp"

namespace exam {

namespace {

namespace http = ingest::http;

bool authorised(const http::request& req, const std::string& token) {
  const auto header = req[boost::beast::http::field::authorization];
  const std::string_view prefix = "Bearer ";
  if (!header.starts_with(prefix)) return false;
  const auto given = header.substr(prefix.size());
  return given.size() == token.size() && CRYPTO_memcmp(given.data(), token.data(), token.size()) == 0;
}

std::string state_json(const ingest::rollout& r) {
  const auto st = r.stats();
  return fmt::format(R"({{"queue_percent":{:.2f},"routed_direct":{},"routed_queue":{},"pinned_answers":{},"pins":{}}})",
                     r.queue_percent(), st.routed_direct, st.routed_queue, st.pinned_answers, st.pins);
}

// The percentage a PUT body names, or the reason it is refused.
std::variant<double, std::string> parse_percent(std::string_view body) {
  boost::system::error_code ec;
  const auto v = boost::json::parse(body, ec);
  const auto* o = !ec && v.is_object() ? &v.as_object() : nullptr;
  const auto* p = o ? o->if_contains("queue_percent") : nullptr;
  if (!p || !p->is_number()) return std::string(R"(the body must be {"queue_percent": 0-100})");
  const double percent = p->to_number<double>();
  if (!(percent >= 0 && percent <= 100)) return std::string("queue_percent must be between 0 and 100");
  return percent;
}

}  // namespace

bool handle_rollout_admin(const http::request& req, ingest::rollout& rollout, const std::string& admin_token,
                          http::responder& respond) {
  if (admin_token.empty() || req.target() != "/v1/admin/rollout") return false;
  if (!authorised(req, admin_token)) {
    respond(http::error_response(req, http::status::unauthorized, "unauthorized",
                                 "an Authorization: Bearer <admin token> header is required"));
    return true;
  }
  if (req.method() == boost::beast::http::verb::put) {
    const auto parsed = parse_percent(req.body());
    if (const auto* why = std::get_if<std::string>(&parsed)) {
      respond(http::error_response(req, http::status::bad_request, "invalid_body", *why));
      return true;
    }
    rollout.set_queue_percent(std::get<double>(parsed));
  } else if (req.method() != boost::beast::http::verb::get) {
    auto r = http::error_response(req, http::status::method_not_allowed, "method_not_allowed", "GET or PUT");
    r.set(boost::beast::http::field::allow, "GET, PUT");
    respond(std::move(r));
    return true;
  }
  respond(http::json_response(req, http::status::ok, state_json(rollout)));
  return true;
}

}  // namespace exam
