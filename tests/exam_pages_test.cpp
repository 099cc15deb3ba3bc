// The pages both exam servers serve (examples/exam/web, compiled in) and the exam
// description they read: headers that keep the pages safe, revalidation by ETag, the
// routes' methods, and who may read an exam.

#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "support/exam_fixture.hpp"
#include "web_assets.hpp"

using namespace ingest;
using namespace ingest::test;
using namespace std::chrono_literals;

namespace {

void pages(kind k) {
  exam_fixture f(k);
  auto c = f.client();

  SUBCASE("the student page, its script, the client and the style: with a strict CSP, revalidated by ETag") {
    for (const char* target : {"/", "/student.js", "/ingest-submit.js", "/style.css", "/icon.svg"}) {
      CAPTURE(target);
      auto r = c.call(verb::get, target);
      REQUIRE(r.status == 200);
      const auto* asset = exam::web::find(target);
      REQUIRE(asset != nullptr);
      CHECK(r.body == asset->bytes);
      CHECK(r.headers["Content-Type"] == asset->type);
      const std::string csp(r.headers["Content-Security-Policy"]);
      CHECK(csp.find("default-src 'none'") != std::string::npos);
      CHECK(csp.find("script-src 'self';") != std::string::npos);
      CHECK(csp.find("unsafe-inline") == std::string::npos);
      CHECK(csp.find("frame-ancestors 'none'") != std::string::npos);
      CHECK(r.headers["X-Content-Type-Options"] == "nosniff");
      CHECK(r.headers["Referrer-Policy"] == "no-referrer");
      CHECK(r.headers["Cache-Control"] == "no-cache");
      const std::string etag(r.headers["ETag"]);
      REQUIRE(etag.size() > 2);
      auto same = c.call(verb::get, target, {{"If-None-Match", "\"other\", W/" + etag}});
      CHECK(same.status == 304);
      CHECK(same.body.empty());
      CHECK(same.headers["ETag"] == etag);
      CHECK(c.call(verb::get, target, {{"If-None-Match", "\"other\""}}).status == 200);
    }
    CHECK(c.call(verb::get, "/").body.find("<script type=\"module\" src=\"/student.js\">") != std::string::npos);
    CHECK(c.call(verb::get, "/index.html").status == 200);
    check_error(c.call(verb::get, "/nothing.js"), 404, "not_found");
    check_error(c.call(verb::get, "/web/student.js"), 404, "not_found");
    auto post = c.call(verb::post, "/", {}, "x");
    check_error(post, 405, "method_not_allowed");
    CHECK(post.headers["Allow"] == "GET, HEAD");
    auto head = c.head("/student.js");
    CHECK(head.status == 200);
    CHECK(head.body.empty());
    CHECK(c.leftover() == 0);
  }

  SUBCASE("an exam as a page shows it: questions in order, choices, times, never the answer key") {
    auto r = c.call(verb::get, "/v1/exams/thirds", {{"Authorization", "Bearer " + token("s9")}});
    REQUIRE(r.status == 200);
    const auto o = boost::json::parse(r.body).as_object();
    CHECK(o.at("exam_id") == "thirds");
    CHECK(boost::json::serialize(o.at("questions")) == R"(["q1","q2","q3"])");
    CHECK(o.at("choices").as_array().empty());
    CHECK(o.contains("deadline"));
    CHECK(o.contains("opens_at"));
    CHECK(r.body.find("answer_key") == std::string::npos);
    CHECK(r.body.find("\"A\"") == std::string::npos);  // no answer of the key appears
    CHECK(c.call(verb::get, "/v1/exams/two", {{"Authorization", "Bearer " + token("s1")}}).status == 200);
    check_error(c.call(verb::get, "/v1/exams/two", {{"Authorization", "Bearer " + token("s9")}}), 403, "forbidden");
    CHECK(c.call(verb::get, "/v1/exams/two", {{"Authorization", "Bearer " + token("t", exam::role::teacher)}})
              .status == 200);
    check_error(c.call(verb::get, "/v1/exams/none", {{"Authorization", "Bearer " + token("s1")}}), 404,
                "exam_not_found");
    check_error(c.call(verb::get, "/v1/exams/open"), 401, "unauthorized");
    auto post = c.call(verb::post, "/v1/exams/open", {{"Authorization", "Bearer " + token("s1")}}, "{}");
    check_error(post, 405, "method_not_allowed");
    CHECK(post.headers["Allow"] == "GET, HEAD");
  }
}

}  // namespace

TEST_CASE("pages: queue-based server") {
  pages(kind::queue_memory);
}
TEST_CASE("pages: direct-insert server") {
  pages(kind::direct);
}

TEST_CASE("questions are listed as people number them, with the exam's choices") {
  auto cat = exam::catalog::from_json(R"({"exams":[{"id":"e","answer_key":{"q10":"A","q2":"B","q1":"C","b":"D",
    "a3":"A","a20":"B"},"choices":["A","B","C","D"],"opens_at":"2026-01-01T00:00:00Z",
    "deadline":"2030-01-01T00:00:00Z"}]})");
  const auto o = boost::json::parse(exam::app::exam_json(*cat.find("e"))).as_object();
  CHECK(boost::json::serialize(o.at("questions")) == R"(["a3","a20","b","q1","q2","q10"])");
  CHECK(boost::json::serialize(o.at("choices")) == R"(["A","B","C","D"])");
  CHECK_THROWS_WITH(exam::catalog::from_json(R"({"exams":[{"id":"e","answer_key":{},"choices":"A",
    "opens_at":"2026-01-01T00:00:00Z","deadline":"2030-01-01T00:00:00Z"}]})"),
                    doctest::Contains("\"choices\" must be a list"));
  CHECK(exam::catalog::demo(std::chrono::system_clock::now()).find("demo")->choices.size() == 4);
}
