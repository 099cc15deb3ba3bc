// GET/PUT /v1/admin/rollout (rollout_admin.hpp): every answer it gives.

#include <doctest/doctest.h>

#include <optional>

#include "ingest/http/response.hpp"
#include "rollout_admin.hpp"

namespace ingest::test {

namespace {

namespace beast_http = boost::beast::http;

struct answer {
  bool handled = false;
  std::optional<http::response> response;
};

answer call(rollout& r, const std::string& token, beast_http::verb method, std::string target,
            std::string auth = "Bearer adm", std::string body = {}) {
  http::request req{method, target, 11};
  if (!auth.empty()) req.set(beast_http::field::authorization, auth);
  req.body() = std::move(body);
  req.prepare_payload();
  answer a;
  http::responder respond([&a](http::response res) { a.response = std::move(res); });
  a.handled = exam::handle_rollout_admin(req, r, token, respond);
  if (!a.handled) respond(http::response{});  // left to the application, which answers
  return a;
}

}  // namespace

TEST_CASE("rollout admin: reads and moves the share with the admin token, refuses everything else") {
  rollout r({.queue_percent = 10});
  using verb = beast_http::verb;

  auto got = call(r, "adm", verb::get, "/v1/admin/rollout");
  REQUIRE(got.handled);
  CHECK(got.response->result() == http::status::ok);
  CHECK(got.response->body().find(R"("queue_percent":10.00)") != std::string::npos);

  auto put = call(r, "adm", verb::put, "/v1/admin/rollout", "Bearer adm", R"({"queue_percent":62.5})");
  CHECK(put.response->result() == http::status::ok);
  CHECK(put.response->body().find(R"("queue_percent":62.50)") != std::string::npos);
  CHECK(r.queue_percent() == doctest::Approx(62.5));

  for (const char* body : {R"({"queue_percent":101})", R"({"queue_percent":-1})", R"({"queue_percent":"50"})",
                           R"({"share":50})", "not json", ""}) {
    CAPTURE(body);
    auto bad = call(r, "adm", verb::put, "/v1/admin/rollout", "Bearer adm", body);
    CHECK(bad.response->result() == http::status::bad_request);
    CHECK(bad.response->body().find(R"("error":"invalid_body")") != std::string::npos);
  }
  CHECK(r.queue_percent() == doctest::Approx(62.5));  // nothing moved

  for (const char* auth : {"", "Bearer wrong", "Bearer adm2", "Basic adm", "Bearer "}) {
    CAPTURE(auth);
    auto refused = call(r, "adm", verb::put, "/v1/admin/rollout", auth, R"({"queue_percent":0})");
    CHECK(refused.response->result() == http::status::unauthorized);
  }
  CHECK(r.queue_percent() == doctest::Approx(62.5));

  auto wrong_method = call(r, "adm", verb::delete_, "/v1/admin/rollout");
  CHECK(wrong_method.response->result() == http::status::method_not_allowed);
  CHECK((*wrong_method.response)[beast_http::field::allow] == "GET, PUT");

  // Other paths, and the route itself without an admin token, are the application's.
  CHECK_FALSE(call(r, "adm", verb::get, "/v1/admin/rollout/x").handled);
  CHECK_FALSE(call(r, "adm", verb::get, "/v1/submissions/abc").handled);
  CHECK_FALSE(call(r, "", verb::get, "/v1/admin/rollout").handled);
}

}  // namespace ingest::test
