// The HTTP contract of examples/README.md against the running servers (in-process, on a free
// port): every status of the table, the auth rules, retries, and the deadline judged
// on accept time. The queue-based server runs on the memory queue (fault injection
// for 409 and 503) and on the embedded SQLite queue; the direct-insert server on SQLite.

#include <doctest/doctest.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/http/verb.hpp>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "support/exam_fixture.hpp"
#ifdef EXAM_API_POSTGRES
#include "support/postgres_server.hpp"
#endif

using namespace ingest;
using namespace ingest::test;
using namespace std::chrono_literals;

namespace {
// What both servers answer the same way.
void contract(kind k) {
  exam_fixture f(k);
  auto c = f.client();
  const auto s1 = token("s1");

  SUBCASE("a new submission gets a receipt; a retry gets the same receipt") {
    auto first = f.submit(c, "open", s1, "k-1");
    CHECK(first.status == f.new_status());
    // The direct-insert server grades inside the request.
    CHECK(first.field("status") == (is_direct(k) ? "graded" : "received"));
    const auto accepted = parse_time(first.field("accepted_at"));
    if (is_direct(k)) {
      CHECK(first.field("receipt_id").size() == 36);
    } else {
      // Signed over the postmark, the exam and the student: any server can answer for it.
      const auto said = exam::make_receipt_signer({}, secret)->verify(first.field("receipt_id"));
      REQUIRE(said.has_value());
      CHECK(ingest::format_time(said->accepted_at) == first.field("accepted_at"));
      CHECK(said->claims == R"(["open","s1"])");
    }
    CHECK(accepted <= clock::now());
    auto again = f.submit(c, "open", s1, "k-1");
    CHECK((again.status == 200 || again.status == 202));
    CHECK(again.field("receipt_id") == first.field("receipt_id"));
    CHECK(again.field("accepted_at") == first.field("accepted_at"));
    // The same key from another student is another submission.
    auto other = f.submit(c, "open", token("s2"), "k-1");
    CHECK(other.status == f.new_status());
    CHECK(other.field("receipt_id") != first.field("receipt_id"));
    REQUIRE(f.written(2));
    CHECK(f.rows() == 2);
    // Still the same receipt once it is in exam.db.
    auto later = f.submit(c, "open", s1, "k-1");
    CHECK(later.status == 200);
    CHECK(later.field("receipt_id") == first.field("receipt_id"));
    CHECK(later.field("accepted_at") == first.field("accepted_at"));
    CHECK(f.rows() == 2);
  }

  SUBCASE("400: malformed JSON, bad idempotency key, answers not an object of strings") {
    auto h = submit_headers(s1, "k-400");
    check_error(c.call(verb::post, "/v1/exams/open/submissions", h, "{\"answers\":"), 400, "invalid_body");
    check_error(c.call(verb::post, "/v1/exams/open/submissions", h, R"({"answers":["B"]})"), 400, "invalid_body");
    check_error(c.call(verb::post, "/v1/exams/open/submissions", h, R"({"answers":{"q1":1}})"), 400, "invalid_body");
    check_error(c.call(verb::post, "/v1/exams/open/submissions", h, R"({"answers":{"q1":{"x":"B"}}})"), 400,
                "invalid_body");
    check_error(c.call(verb::post, "/v1/exams/open/submissions", h, R"({"other":{}})"), 400, "invalid_body");
    check_error(c.call(verb::post, "/v1/exams/open/submissions", h, "{\"answers\":{\"q1\":\"\xff\"}}"), 400,
                "invalid_body");
    std::string deep(200, '[');
    check_error(c.call(verb::post, "/v1/exams/open/submissions", h, deep), 400, "invalid_body");
    for (const std::string& key :
         {std::string(), std::string(256, 'k'), std::string("tab\tkey"), std::string("ключ")}) {
      auto bad = submit_headers(s1, key);
      if (key.empty()) bad.pop_back();
      check_error(c.call(verb::post, "/v1/exams/open/submissions", bad, R"({"answers":{"q1":"B"}})"), 400,
                  "invalid_idempotency_key");
    }
    CHECK(f.rows() == 0);
  }

  SUBCASE("401: missing, malformed, wrongly signed, alg none, expired tokens") {
    const std::string body = R"({"answers":{"q1":"B"}})";
    auto no_auth = submit_headers(s1, "k-401");
    no_auth.erase(no_auth.begin());
    check_error(c.call(verb::post, "/v1/exams/open/submissions", no_auth, body), 401, "unauthorized");
    const std::string none_token =
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJzMSIsInJvbGUiOiJzdHVkZW50Iiwi"
        "ZXhwIjo0MTAyNDQ0ODAwfQ.";
    for (const auto& bad : {std::string("garbage"), token("s1", exam::role::student, 1h, "another-secret"), none_token,
                            token("s1", exam::role::student, -10s), s1 + "x"}) {
      check_error(f.submit(c, "open", bad, "k-401"), 401, "unauthorized");
      check_error(c.call(verb::get, "/v1/exams/open/submissions", {{"Authorization", "Bearer " + bad}}), 401,
                  "unauthorized");
    }
    CHECK(f.rows() == 0);
  }

  SUBCASE("403: teachers do not submit; exam not open to this student, or not yet") {
    check_error(f.submit(c, "open", token("t1", exam::role::teacher), "k-403"), 403, "forbidden");
    check_error(f.submit(c, "two", token("s3"), "k-403"), 403, "forbidden");
    CHECK(f.submit(c, "two", token("s2"), "k-403").status == f.new_status());
    check_error(f.submit(c, "later", s1, "k-403"), 403, "exam_not_open");
  }

  SUBCASE("403 deadline_passed, and no row") {
    check_error(f.submit(c, "closed", s1, "k-late"), 403, "deadline_passed");
    check_error(f.submit(c, "closed", s1, "k-late"), 403, "deadline_passed");
    std::this_thread::sleep_for(100ms);
    CHECK(f.rows() == 0);
  }

  SUBCASE("404: unknown exam, route, receipt, or someone else's receipt") {
    check_error(f.submit(c, "no-such-exam", s1, "k-404"), 404, "exam_not_found");
    check_error(c.call(verb::get, "/v2/nothing"), 404, "not_found");
    auto reads = [&] {  // exam_status_reads_total from /metrics
      const auto body = c.call(verb::get, "/metrics").body;
      const auto at = body.find("\nexam_status_reads_total ");
      return at == std::string::npos ? -1 : std::stoll(body.substr(at + 25));
    };
    const auto before = reads();
    check_error(
        c.call(verb::get, "/v1/submissions/01a00000-0000-7000-8000-000000000000", {{"Authorization", "Bearer " + s1}}),
        404, "not_found");
    const auto after_unknown = reads();  // one read, or two where the queue is asked in between
    CHECK(after_unknown > before);
    // An id no receipt can have is answered without a read.
    for (const auto& odd : {std::string(256, 'a'), std::string("a%27b"), std::string("a%20b")})
      check_error(c.call(verb::get, "/v1/submissions/" + odd, {{"Authorization", "Bearer " + s1}}), 404, "not_found");
    CHECK(reads() == after_unknown);
    auto mine = f.submit(c, "open", s1, "k-mine");
    REQUIRE(mine.status == f.new_status());
    const auto id = mine.field("receipt_id");
    check_error(c.call(verb::get, "/v1/submissions/" + id, {{"Authorization", "Bearer " + token("s2")}}), 404,
                "not_found");
    auto own = c.call(verb::get, "/v1/submissions/" + id, {{"Authorization", "Bearer " + s1}});
    CHECK(own.status == 200);
    CHECK(own.field("student_id") == "s1");
    auto teacher =
        c.call(verb::get, "/v1/submissions/" + id, {{"Authorization", "Bearer " + token("t1", exam::role::teacher)}});
    CHECK(teacher.status == 200);
    CHECK(teacher.field("receipt_id") == id);
  }

  SUBCASE("413 body over the limit, 415 not JSON") {
    auto big = f.submit(c, "open", s1, "k-413", R"({"answers":{"q1":")" + std::string(70 * 1024, 'B') + "\"}}");
    check_error(big, 413, "body_too_large");
    auto c2 = f.client();
    auto h = submit_headers(s1, "k-415");
    h[1].second = "text/plain";
    check_error(c2.call(verb::post, "/v1/exams/open/submissions", h, R"({"answers":{"q1":"B"}})"), 415,
                "unsupported_media_type");
    h[1].second = "application/json; charset=utf-8";
    CHECK(c2.call(verb::post, "/v1/exams/open/submissions", h, R"({"answers":{"q1":"B"}})").status == f.new_status());
  }

  SUBCASE("422: the same key with another body") {
    REQUIRE(f.submit(c, "open", s1, "k-422").status == f.new_status());
    check_error(f.submit(c, "open", s1, "k-422", R"({"answers":{"q1":"C"}})"), 422, "idempotency_key_reused");
    REQUIRE(f.written(1));
    check_error(f.submit(c, "open", s1, "k-422", R"({"answers":{"q1":"C"}})"), 422, "idempotency_key_reused");
    CHECK(f.rows() == 1);
    // Key order in the body does not make it another body.
    CHECK(f.submit(c, "open", s1, "k-order", R"({"answers":{"q1":"A","q2":"B"}})").status == f.new_status());
    CHECK(f.submit(c, "open", s1, "k-order", R"({"answers":{"q2":"B","q1":"A"}})").status == 200);
  }

  SUBCASE("the teacher lists an exam page by page; a student may not") {
    for (int i = 0; i < 5; ++i)
      REQUIRE(f.submit(c, "open", token("s" + std::to_string(i)), "k").status == f.new_status());
    REQUIRE(f.written(5));
    const auto t1 = token("t1", exam::role::teacher);
    std::vector<std::string> seen;
    std::string after;
    for (int page = 0; page < 5; ++page) {
      auto r =
          c.call(verb::get, "/v1/exams/open/submissions?limit=2&after=" + after, {{"Authorization", "Bearer " + t1}});
      REQUIRE(r.status == 200);
      const auto doc = r.json();
      for (const auto& item : doc.at("items").as_array()) seen.emplace_back(item.at("receipt_id").as_string());
      const auto& next = doc.at("next_after");
      if (next.is_null()) break;
      after = std::string(next.as_string());
    }
    CHECK(seen.size() == 5);
    CHECK(std::is_sorted(seen.begin(), seen.end()));
    check_error(c.call(verb::get, "/v1/exams/open/submissions", {{"Authorization", "Bearer " + s1}}), 403, "forbidden");
    check_error(c.call(verb::get, "/v1/exams/nope/submissions", {{"Authorization", "Bearer " + t1}}), 404,
                "exam_not_found");
    check_error(c.call(verb::get, "/v1/exams/open/submissions?limit=0", {{"Authorization", "Bearer " + t1}}), 400,
                "invalid_query");
  }

  SUBCASE("health, readiness, metrics") {
    CHECK(c.call(verb::get, "/healthz").status == 200);
    CHECK(eventually([&] { return c.call(verb::get, "/readyz").status == 200; }, 5s));
    auto m = c.call(verb::get, "/metrics");
    CHECK(m.status == 200);
    if (!is_direct(k)) {
      CHECK(m.body.find("exam_accept_latency_seconds_bucket") != std::string::npos);
      CHECK(m.body.find("exam_backlog") != std::string::npos);
      CHECK(m.body.find("exam_commit_latency_seconds") != std::string::npos);
    }
    f.api->drain();
    CHECK(c.call(verb::get, "/readyz").status == 503);
    auto refused = f.submit(c, "open", s1, "k-drain");
    check_error(refused, 503, "shutting_down");
    CHECK(refused.headers["Retry-After"] == "5");
  }
}

}  // namespace

#ifdef EXAM_API_POSTGRES
// Built a second time as exam_api_postgres_test, on a real PostgreSQL: the same contract
// with the submissions written to and read from PostgreSQL.
TEST_SUITE("postgres") {
  TEST_CASE("api contract: queue-based server, graders and reads on PostgreSQL") {
    make_postgres_database = [] { return shared_postgres::get().fresh_database(); };
    contract(kind::queue_postgres);
  }
  TEST_CASE("api contract: direct-insert server on PostgreSQL") {
    make_postgres_database = [] { return shared_postgres::get().fresh_database(); };
    contract(kind::direct_postgres);
  }
  TEST_CASE("PostgreSQL connections lost under the readers: 503 with Retry-After, then the answer") {
    make_postgres_database = [] { return shared_postgres::get().fresh_database(); };
    for (const auto k : {kind::direct_postgres, kind::queue_postgres}) {
      exam_fixture f(k, {.graded_cache = 0});  // every read goes to the database
      auto c = f.client();
      const auto r = f.submit(c, "open", token("s1"), "k-lost");
      REQUIRE(r.status == f.new_status());
      const auto id = r.field("receipt_id");
      REQUIRE(f.written(1));
      const std::vector<std::pair<std::string, std::string>> auth{{"Authorization", "Bearer " + token("s1")}};
      REQUIRE(c.call(verb::get, "/v1/submissions/" + id, auth).status == 200);
      postgres::connection admin(f.sink);
      admin.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'exam_reader'");
      const auto lost = c.call(verb::get, "/v1/submissions/" + id, auth);
      check_error(lost, 503, "unavailable");
      CHECK(lost.headers["Retry-After"] == "2");
      const auto again = c.call(verb::get, "/v1/submissions/" + id, auth);  // reconnected
      CHECK(again.status == 200);
      CHECK(again.field("receipt_id") == id);
    }
  }
}
#endif

TEST_CASE("api contract: queue-based server on the memory queue") {
  contract(kind::queue_memory);
}
TEST_CASE("api contract: queue-based server on the embedded SQLite queue") {
  contract(kind::queue_sqlite);
}
TEST_CASE("api contract: direct-insert server") {
  contract(kind::direct);
}

TEST_CASE("a double click waits for the first request's receipt instead of a 409") {
  exam_fixture f(kind::queue_memory, {}, 1h, false);
  f.memory->hold_acks(true);
  http_client first = f.client(), second = f.client();
  const auto s1 = token("s1");
  send_submission(first, s1, "k-dbl");
  REQUIRE(eventually([&] { return f.producer->stats().in_flight == 1; }));
  send_submission(second, s1, "k-dbl");
  std::this_thread::sleep_for(100ms);
  f.memory->hold_acks(false);
  auto a = first.read();
  auto b = second.read();
  CHECK(a.status == 202);
  CHECK(b.status == 200);
  CHECK(a.field("receipt_id") == b.field("receipt_id"));
  CHECK(stats(*f.queue).accepted == 1);
}

TEST_CASE("409 while the first request with the key is still being stored; then its receipt") {
  // No graders (the row cannot answer first); no waiting for the first request.
  exam_fixture f(kind::queue_memory, {}, 1h, false, 0ms);
  f.memory->hold_acks(true);
  http_client first = f.client(), second = f.client();
  const auto s1 = token("s1");
  send_submission(first, s1, "k-409");
  REQUIRE(eventually([&] { return f.producer->stats().in_flight == 1; }));
  auto busy = f.submit(second, "open", s1, "k-409", R"({"answers":{"q1":"B"}})");
  check_error(busy, 409, "in_flight");
  CHECK(busy.body.find("retry") != std::string::npos);
  f.memory->hold_acks(false);
  auto original = first.read();
  CHECK(original.status == 202);
  auto retry = f.submit(second, "open", s1, "k-409", R"({"answers":{"q1":"B"}})");
  CHECK(retry.field("receipt_id") == original.field("receipt_id"));
}

TEST_CASE("503 with Retry-After when the queue refuses; the retry then succeeds") {
  exam_fixture f(kind::queue_memory);
  auto c = f.client();
  const auto s1 = token("s1");
  f.memory->fail_publishes(make_error_code(errc::backend_unavailable));
  auto down = f.submit(c, "open", s1, "k-503");
  check_error(down, 503, "unavailable");
  CHECK_FALSE(down.headers["Retry-After"].empty());
  CHECK(stats(*f.queue).accepted == 0);
  f.memory->fail_publishes({});
  auto up = f.submit(c, "open", s1, "k-503");
  CHECK(up.status == 202);
  REQUIRE(f.written(1));
}

TEST_CASE("503 after a publish timed out: it may have been stored; the retry's answer is its receipt") {
  // The queue stores the submission but its acknowledgement is held past the
  // producer's publish_timeout: the student is told 503 while the message is durable.
  exam_fixture f(kind::queue_memory, {}, 1h, true, 0ms, "", {.read_timeout = 2s}, 300ms);
  auto c = f.client();
  const auto s1 = token("s1");
  f.memory->hold_acks(true);
  auto first = f.submit(c, "open", s1, "k-timeout");
  check_error(first, 503, "unavailable");
  CHECK_FALSE(first.headers["Retry-After"].empty());
  CHECK(stats(*f.queue).accepted == 1);  // stored all the same
  f.memory->hold_acks(false);
  REQUIRE(eventually([&] { return f.producer->stats().in_flight == 0; }));  // the late ack reached nobody
  // The retry with the same key is authoritative: the stored submission's receipt.
  auto retry = f.submit(c, "open", s1, "k-timeout");
  REQUIRE(retry.status == 200);
  REQUIRE(f.written(1));
  auto row = c.call(verb::get, "/v1/submissions/" + retry.field("receipt_id"), {{"Authorization", "Bearer " + s1}});
  CHECK(row.status == 200);
  CHECK(row.field("accepted_at") == retry.field("accepted_at"));
  CHECK(f.rows() == 1);
  CHECK(stats(*f.queue).accepted == 1);
}

TEST_CASE("GET of a receipt answers 503 with Retry-After, not 404, while the queue cannot be read") {
  exam_fixture f(kind::queue_memory, {}, 1h, false);  // no graders: the receipt stays in the queue
  auto c = f.client();
  const auto s1 = token("s1");
  const auto teacher = token("t1", exam::role::teacher);
  auto get = [&](const std::string& id, const std::string& tok) {
    return c.call(verb::get, "/v1/submissions/" + id, {{"Authorization", "Bearer " + tok}});
  };
  auto first = f.submit(c, "open", s1, "k-get-503");
  REQUIRE(first.status == 202);
  const auto id = first.field("receipt_id");
  const std::string unknown = "00000000-0000-0000-0000-000000000000";
  f.memory->fail_lookups(make_error_code(errc::backend_unavailable));
  for (const auto& [receipt, tok] : {std::pair{id, s1}, std::pair{id, teacher}, std::pair{unknown, teacher}}) {
    auto r = get(receipt, tok);
    check_error(r, 503, "unavailable");
    CHECK_FALSE(r.headers["Retry-After"].empty());
  }
  f.memory->fail_lookups({});
  check_error(get(unknown, teacher), 404, "not_found");
  auto mine = get(id, s1);
  CHECK(mine.status == 200);
  CHECK(mine.field("receipt_id") == id);
  CHECK(mine.field("status") == "received");
}

TEST_CASE("429 with Retry-After per student and per address; other students unaffected") {
  exam_fixture f(kind::queue_memory, {.student_rate = 1, .student_burst = 2, .ip_rate = 0});
  auto c = f.client();
  const auto s1 = token("s1");
  CHECK(f.submit(c, "open", s1, "a").status == 202);
  CHECK(f.submit(c, "open", s1, "b").status == 202);
  auto limited = f.submit(c, "open", s1, "c");
  check_error(limited, 429, "rate_limited");
  CHECK(std::stoi(std::string(limited.headers["Retry-After"])) >= 1);
  CHECK(f.submit(c, "open", token("s2"), "a").status == 202);

  exam_fixture g(kind::queue_memory, {.student_rate = 0, .ip_rate = 1, .ip_burst = 1});
  auto d = g.client();
  CHECK(g.submit(d, "open", token("s1"), "a").status == 202);
  check_error(g.submit(d, "open", token("s2"), "a"), 429, "rate_limited");
  // The address limit comes before the token: forged tokens are limited too.
  check_error(g.submit(d, "open", "forged.token.here", "a"), 429, "rate_limited");
  REQUIRE(g.written(1));
  CHECK(g.rows() == 1);
}

TEST_CASE("the deadline is judged on accept time, not on processing time; a late one is never stored") {
  // The graders are stopped: everything is processed after the deadline. The deadline
  // is 3 s after the fixture starts; the first submission (one request to an idle
  // server) only has to get in before it, and the test then waits for the deadline
  // itself rather than for a fixed time.
  exam_fixture f(kind::queue_sqlite, {}, 3s, false);
  const auto closes = f.exams.find("soon")->deadline + f.exams.find("soon")->grace;
  auto c = f.client();
  auto before = f.submit(c, "soon", token("s1"), "k");
  REQUIRE(before.status == 202);
  while (clock::now() <= closes + 20ms) std::this_thread::sleep_for(10ms);
  auto c2 = f.client();  // the idle one may have been closed by the read deadline (2 s here)
  for (int attempt = 0; attempt < 2; ++attempt)
    check_error(f.submit(c2, "soon", token("s2"), "k"), 403, "deadline_passed");
  // A retry after the deadline of what was accepted before it still gets its receipt.
  auto retry = f.submit(c2, "soon", token("s1"), "k");
  CHECK(retry.status == 200);
  CHECK(retry.field("receipt_id") == before.field("receipt_id"));
  // The embedded queue refused the late one inside its write: nothing was stored.
  CHECK(stats(*f.queue).accepted == 1);
  exam::grading_consumer grader(*f.queue, f.dir.file("exam.db"), f.exams, {.linger = 1ms}, f.metrics);
  grader.start();
  REQUIRE(eventually([&] { return stats(*f.queue).pending == 0; }));
  grader.drain();
  CHECK(f.rows() == 1);
  CHECK(f.rows("student_id = 's1'") == 1);
  CHECK(grader.counters().late == 0);
}

TEST_CASE("a late submission that did get stored is a dead letter a teacher sees, with its reason") {
  // As a broker stores it before it can tell the key is new (NATS, SQS): published
  // straight into the queue, postmarked after the closed exam's deadline.
  exam_fixture f(kind::queue_memory);
  const exam::submission late{"closed", "s1", "k-late", {{"q1", "A"}}};
  envelope e;
  e.idempotency_key = late.queue_key();
  e.subject = "exam.closed";
  e.payload = late.to_json();
  auto [ec, r] = publish(*f.queue, e);
  REQUIRE_FALSE(ec);
  REQUIRE(eventually([&] { return stats(*f.queue).dead_lettered == 1; }));
  const auto letters = dead_letters(*f.queue);
  REQUIRE(letters.size() == 1);
  CHECK(letters[0].reason == "deadline_passed");
  CHECK(letters[0].last_error.find("after the deadline") != std::string::npos);
  CHECK(f.rows() == 0);
  auto c = f.client();
  auto seen =
      c.call(verb::get, "/v1/submissions/" + r.id, {{"Authorization", "Bearer " + token("t1", exam::role::teacher)}});
  CHECK(seen.status == 200);
  CHECK(seen.field("status") == "dead_lettered");
  CHECK(seen.field("reason") == "deadline_passed");
}

TEST_CASE("a retry after the queue forgot the key gets its receipt from exam.db") {
  exam_fixture f(kind::queue_sqlite, {}, 1h, true, 1000ms, "?dedup_window=0ms&compaction_interval=20ms");
  auto c = f.client();
  const auto s1 = token("s1");
  auto first = f.submit(c, "open", s1, "k-old");
  REQUIRE(first.status == 202);
  REQUIRE(f.written(1));
  const auto id = first.field("receipt_id");
  REQUIRE(eventually([&] {
    capture<message_status> found;
    f.queue->async_find(id, found.handler());
    return found.get().first == errc::not_found;  // compacted: the queue no longer knows the key
  }));
  auto again = f.submit(c, "open", s1, "k-old");
  CHECK(again.status == 200);
  CHECK(again.field("receipt_id") == id);
  CHECK(again.field("accepted_at") == first.field("accepted_at"));
  check_error(f.submit(c, "open", s1, "k-old", R"({"answers":{"q1":"D"}})"), 422, "idempotency_key_reused");
  std::this_thread::sleep_for(100ms);
  CHECK(f.rows() == 1);
}

TEST_CASE("a student sees a dead-lettered submission as received; a teacher sees why") {
  exam_fixture f(kind::queue_memory, {}, 1h, false);
  auto c = f.client();
  auto r = f.submit(c, "open", token("s1"), "k-dead");
  REQUIRE(r.status == 202);
  auto [ec, got] = fetch(*f.queue, 1, 1s);
  REQUIRE(got.size() == 1);
  REQUIRE_FALSE(settle(*f.queue, {{got[0].token, settle_action::dead_letter, {}, "permanent_failure", "bad"}}));
  const auto id = r.field("receipt_id");
  auto student = c.call(verb::get, "/v1/submissions/" + id, {{"Authorization", "Bearer " + token("s1")}});
  CHECK(student.status == 200);
  CHECK(student.field("status") == "received");
  auto teacher =
      c.call(verb::get, "/v1/submissions/" + id, {{"Authorization", "Bearer " + token("t", exam::role::teacher)}});
  CHECK(teacher.field("status") == "dead_lettered");
  CHECK(teacher.field("reason") == "permanent_failure");
}
