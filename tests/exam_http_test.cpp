// The HTTP edges of the contract (examples/README.md) that both exam servers share: 401 challenges, the Bearer
// scheme, 405 with Allow, HEAD, answers checked against the exam's questions, numbers
// written plainly, repeats answered with the current status, and 500 for the unexpected.

#include <doctest/doctest.h>

#include <sqlite3.h>

#include <mutex>

#include "support/exam_fixture.hpp"

using namespace ingest;
using namespace ingest::test;
using namespace std::chrono_literals;

namespace {

struct kept_log final : logger {
  std::mutex mutex;
  std::vector<std::string> lines;
  bool enabled(log_level) const noexcept override { return true; }
  void write(const log_event& e) noexcept override {
    std::lock_guard lock(mutex);
    lines.push_back(std::string(e.event) + ": " + std::string(e.detail));
  }
};

// A backend whose store throws what no handler expects, or a database that is busy.
struct throwing_backend final : exam::submit_backend {
  bool busy = false;
  void submit(const exam::exam_info&, exam::submission, boost::asio::any_io_executor, exam::submit_done) override {
    if (busy) throw ingest::error(std::error_code(SQLITE_BUSY, sqlite::sqlite_category()), "exam.db is locked");
    throw std::logic_error("internal detail: pool slot 7 corrupt");
  }
  bool ready() const override { return true; }
  std::string metrics() const override { return {}; }
};

void edges(kind k) {
  exam_fixture f(k);
  auto c = f.client();
  const auto s1 = token("s1");
  const auto t1 = token("t1", exam::role::teacher);

  SUBCASE("401 names the Bearer scheme; a refused token is invalid_token; the scheme's case does not matter") {
    auto none = c.call(verb::get, "/v1/exams/open/submissions");
    check_error(none, 401, "unauthorized");
    CHECK(none.headers["WWW-Authenticate"] == "Bearer");
    auto bad = c.call(verb::get, "/v1/exams/open/submissions", {{"Authorization", "Bearer " + t1 + "x"}});
    check_error(bad, 401, "unauthorized");
    CHECK(bad.headers["WWW-Authenticate"] == "Bearer error=\"invalid_token\"");
    check_error(c.call(verb::get, "/v1/exams/open/submissions", {{"Authorization", "Basic dTpw"}}), 401,
                "unauthorized");
    for (const char* scheme : {"bearer ", "BEARER ", "Bearer  "})
      CHECK(c.call(verb::get, "/v1/exams/open/submissions", {{"Authorization", scheme + t1}}).status == 200);
  }

  SUBCASE("405 names the methods the route takes") {
    struct probe {
      verb method;
      const char* target;
      const char* allow;
    };
    for (const auto& p : {probe{verb::post, "/healthz", "GET, HEAD"}, probe{verb::delete_, "/readyz", "GET, HEAD"},
                          probe{verb::put, "/v1/exams/open/submissions", "GET, HEAD, POST"},
                          probe{verb::post, "/v1/submissions/01a00000-0000-7000-8000-000000000000", "GET, HEAD"}}) {
      CAPTURE(p.target);
      auto r = c.call(p.method, p.target, {{"Authorization", "Bearer " + s1}}, "{}");
      check_error(r, 405, "method_not_allowed");
      CHECK(r.headers["Allow"] == p.allow);
    }
  }

  SUBCASE("HEAD answers wherever GET does, with GET's headers and no content") {
    auto mine = f.submit(c, "open", s1, "k-head");
    REQUIRE(mine.status == f.new_status());
    REQUIRE(f.written(1));  // graded: its answer no longer changes between the two requests
    const auto id = mine.field("receipt_id");
    for (const auto& target : {std::string("/healthz"), std::string("/metrics"), "/v1/submissions/" + id}) {
      CAPTURE(target);
      const auto got = c.call(verb::get, target, {{"Authorization", "Bearer " + s1}});
      const auto head = c.head(target, {{"Authorization", "Bearer " + s1}});
      CHECK(head.status == got.status);
      CHECK(head.body.empty());
      CHECK(c.leftover() == 0);  // no content followed the headers
      CHECK(head.headers["Content-Type"] == got.headers["Content-Type"]);
      if (target != "/metrics")  // the metrics move between the two requests
        CHECK(head.headers["Content-Length"] == std::to_string(got.body.size()));
    }
    CHECK(c.call(verb::get, "/healthz").status == 200);  // the connection still works
  }

  SUBCASE("answers are checked against the exam's questions; a key given twice is named; blank is fine") {
    auto unknown = f.submit(c, "open", s1, "k-q", R"({"answers":{"q1":"B","q9":"A"}})");
    check_error(unknown, 400, "invalid_body");
    CHECK(unknown.field("message").find("q9") != std::string::npos);
    auto twice = f.submit(c, "open", s1, "k-q", R"({"answers":{"q1":"B","q1":"C"}})");
    check_error(twice, 400, "invalid_body");
    CHECK(twice.field("message").find("\"q1\" appears twice") != std::string::npos);
    CHECK(f.submit(c, "open", s1, "k-blank", R"({"answers":{}})").status == f.new_status());
    REQUIRE(f.written(1));
    CHECK(f.rows() == 1);
  }

  SUBCASE("a score is written as a person reads it; a repeat of a graded submission says graded") {
    auto first = f.submit(c, "thirds", s1, "k-score", R"({"answers":{"q1":"A","q2":"x","q3":"y"}})");
    REQUIRE(first.status == f.new_status());
    REQUIRE(f.written(1));
    const auto id = first.field("receipt_id");
    auto graded = c.call(verb::get, "/v1/submissions/" + id, {{"Authorization", "Bearer " + s1}});
    CHECK(graded.body.find("\"score\":33.33") != std::string::npos);
    auto full = f.submit(c, "open", s1, "k-full", R"({"answers":{"q1":"B","q2":"D"}})");
    REQUIRE(f.written(2));
    auto hundred =
        c.call(verb::get, "/v1/submissions/" + full.field("receipt_id"), {{"Authorization", "Bearer " + s1}});
    CHECK(hundred.body.find("\"score\":100") != std::string::npos);
    CHECK(hundred.body.find("\"score\":1E2") == std::string::npos);
    CHECK(hundred.body.find("\"score\":1e2") == std::string::npos);
    auto list = c.call(verb::get, "/v1/exams/thirds/submissions", {{"Authorization", "Bearer " + t1}});
    CHECK(list.body.find("\"score\":33.33") != std::string::npos);
    auto again = f.submit(c, "thirds", s1, "k-score", R"({"answers":{"q1":"A","q2":"x","q3":"y"}})");
    CHECK(again.status == 200);
    CHECK(again.field("receipt_id") == id);
    CHECK(again.field("status") == "graded");
  }

  SUBCASE("a refusal decided by the storing backend is counted like one decided by the HTTP layer") {
    REQUIRE(f.submit(c, "open", s1, "k-count").status == f.new_status());
    check_error(f.submit(c, "open", s1, "k-count", R"({"answers":{"q1":"C"}})"), 422, "idempotency_key_reused");
    check_error(f.submit(c, "open", s1, "k-count", R"({"answers":{"q2":"C"}})"), 422, "idempotency_key_reused");
    check_error(f.submit(c, "no-such-exam", s1, "k-x"), 404, "exam_not_found");
    const auto text = c.call(verb::get, "/metrics").body;
    CHECK(text.find("exam_http_rejected_total{reason=\"idempotency_key_reused\"} 2\n") != std::string::npos);
    CHECK(text.find("exam_http_rejected_total{reason=\"exam_not_found\"} 1\n") != std::string::npos);
  }
}

}  // namespace

TEST_CASE("http edges: queue-based server on the memory queue") {
  edges(kind::queue_memory);
}
TEST_CASE("http edges: queue-based server on the embedded SQLite queue") {
  edges(kind::queue_sqlite);
}
TEST_CASE("http edges: direct-insert server") {
  edges(kind::direct);
}

TEST_CASE("500 for an unexpected failure, 503 for a busy database: generic messages, the text only in the log") {
  temp_dir dir;
  auto exams = exam::catalog::from_json(exams_json(1h));
  exam::store_pool store(dir.file("exam.db"));
  throwing_backend backend;
  auto log = std::make_shared<kept_log>();
  exam::app api(exams, store, backend, {.jwt_secret = secret, .log = log});
  auto submit = [&] {
    http::request req{verb::post, "/v1/exams/open/submissions", 11};
    for (const auto& [k, v] : submit_headers(token("s1"), "k-500")) req.set(k, v);
    req.body() = R"({"answers":{"q1":"B"}})";
    req.prepare_payload();
    std::optional<http::response> answer;
    api.handle(std::move(req), {}, http::responder([&](http::response r) { answer = std::move(r); }));
    REQUIRE(answer);
    return *answer;
  };
  auto failed = submit();
  CHECK(failed.result_int() == 500);
  CHECK(failed.body().find("\"error\":\"internal\"") != std::string::npos);
  CHECK(failed.body().find("an unexpected error") != std::string::npos);  // handle()'s answer, not a dropped one
  CHECK(failed.body().find("corrupt") == std::string::npos);
  REQUIRE(log->lines.size() == 1);
  CHECK(log->lines[0] == "handler_failed: internal detail: pool slot 7 corrupt");
  backend.busy = true;
  auto busy = submit();
  CHECK(busy.result_int() == 503);
  CHECK(busy.body().find("\"error\":\"unavailable\"") != std::string::npos);
  CHECK(busy.body().find("locked") == std::string::npos);
  CHECK(busy[boost::beast::http::field::retry_after] == "2");
}
