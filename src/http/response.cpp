#include "ingest/http/response.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace ingest::http {

namespace bhttp = boost::beast::http;

response json_response(reply_to to, status s, std::string body) {
  response r{s, to.version};
  r.set(bhttp::field::content_type, "application/json");
  r.keep_alive(to.keep_alive);
  r.body() = std::move(body);
  r.prepare_payload();
  return r;
}

response error_response(reply_to to, status s, std::string_view code, std::string_view message,
                        std::chrono::seconds retry_after) {
  boost::json::object body;
  body["error"] = code;
  body["message"] = message;
  auto r = json_response(to, s, boost::json::serialize(body));
  if (retry_after.count() > 0) r.set(bhttp::field::retry_after, std::to_string(retry_after.count()));
  return r;
}

error_mapping map_error(const error_code& ec) noexcept {
  using std::chrono::seconds;
  if (ec == errc::backpressure || ec == errc::queue_full)
    return {status::service_unavailable, "overloaded", seconds(1)};
  if (ec == errc::shutting_down) return {status::service_unavailable, "shutting_down", seconds(5)};
  if (is_retry_later(ec)) return {status::service_unavailable, "unavailable", seconds(2)};
  if (ec == errc::conflict) return {status::unprocessable_entity, "idempotency_key_reused", {}};
  if (ec == errc::in_flight) return {status::conflict, "in_flight", {}};
  if (ec == errc::invalid_key) return {status::bad_request, "invalid_idempotency_key", {}};
  if (ec == errc::payload_too_large) return {status::payload_too_large, "body_too_large", {}};
  if (ec == errc::not_found) return {status::not_found, "not_found", {}};
  if (ec == errc::deadline_passed) return {status::forbidden, "deadline_passed", {}};
  return {status::internal_server_error, "internal", {}};
}

response error_response(reply_to to, const error_code& ec) {
  const auto m = map_error(ec);
  std::string message = ec.message();
  if (ec == errc::in_flight)
    message = "the first request with this key is still being stored; retry to get its receipt";
  return error_response(to, m.code, m.error, message, m.retry_after);
}

}  // namespace ingest::http
