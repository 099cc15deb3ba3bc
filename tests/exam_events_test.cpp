// GET /v1/submissions/{id}/events: the status as server-sent events. The first event
// at once, a change pushed when a grader writes the row, the stream ended once graded;
// refusals answered as the GET would be; the limits on open streams; a token that
// expires ends the stream with an error event.

#include <doctest/doctest.h>

#include "support/exam_fixture.hpp"

using namespace ingest;
using namespace ingest::test;
using namespace std::chrono_literals;

namespace {

exam::app_options fast_streams(std::size_t per_principal = 8, std::size_t total = 100) {
  return {.streams = {.interval = 50ms, .heartbeat = 15s, .max_streams = total, .max_per_principal = per_principal}};
}

void open_events(http_client& c, const std::string& id, const std::string& tok) {
  c.send_raw("GET /v1/submissions/" + id + "/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\n\r\n");
}

std::string metric(exam_fixture& f, const std::string& name) {
  auto c = f.client();
  const auto text = c.call(verb::get, "/metrics").body;
  const auto at = text.find("\n" + name + " ");
  if (at == std::string::npos) return "absent";
  const auto start = at + name.size() + 2;
  return text.substr(start, text.find('\n', start) - start);
}

void start_grader(exam_fixture& f) {
  f.grader = std::make_unique<exam::grading_consumer>(
      *f.queue, f.sink, f.exams, exam::consumer_settings{.max_batch = 50, .linger = 2ms}, f.metrics);
  f.grader->start();
}

}  // namespace

TEST_CASE("events: received at once, graded pushed when the grader writes it, then the stream ends") {
  exam_fixture f(kind::queue_sqlite, fast_streams(), 1h, /*with_grader=*/false);
  auto c = f.client();
  const auto s1 = token("s1");
  auto r = f.submit(c, "open", s1, "k-ev");
  REQUIRE(r.status == 202);
  const auto id = r.field("receipt_id");
  http_client ev(f.server->port());
  open_events(ev, id, s1);
  const auto first = ev.read_until("\"status\":\"received\"}\n\n", 5s);
  CHECK(first.find("HTTP/1.1 200 OK\r\n") == 0);
  CHECK(first.find("Content-Type: text/event-stream\r\n") != std::string::npos);
  CHECK(first.find("Cache-Control: no-cache") != std::string::npos);
  CHECK(first.find("retry: 3000\nevent: status\ndata: {\"receipt_id\":\"" + id + "\"") != std::string::npos);
  CHECK(first.find("\"status\":\"received\"}\n\n") != std::string::npos);
  CHECK(metric(f, "exam_status_streams") == "1");
  // Nothing changes while no grader runs: no event (the reads go on).
  CHECK(ev.read_until("event:", 400ms) == "");
  start_grader(f);
  auto rest = ev.read_until("\"status\":\"graded\"", 10s);
  CHECK(rest.find("event: status\ndata: {") != std::string::npos);
  CHECK(rest.find("\"score\":50") != std::string::npos);
  CHECK(rest.find("\"status\":\"received\"") == std::string::npos);  // no repeat of what was sent
  CHECK(ev.closed_by_server());
  CHECK(eventually([&] { return metric(f, "exam_status_streams") == "0"; }));
  // The grader may be caught holding the batch: then "processing" comes first.
  std::size_t pushed = 0;
  for (auto at = rest.find("event: status\n"); at != std::string::npos; at = rest.find("event: status\n", at + 1))
    ++pushed;
  const auto processing = rest.find("\"status\":\"processing\"");
  CHECK(pushed == (processing == std::string::npos ? 1U : 2U));
  if (processing != std::string::npos) CHECK(processing < rest.find("\"status\":\"graded\""));
  CHECK(metric(f, "exam_status_events_total") == std::to_string(pushed));
}

TEST_CASE("events: a graded submission gets one event and the end, on both servers") {
  for (auto k : {kind::queue_sqlite, kind::direct}) {
    CAPTURE(static_cast<int>(k));
    exam_fixture f(k, fast_streams());
    auto c = f.client();
    const auto s1 = token("s1");
    auto r = f.submit(c, "open", s1, "k-done");
    REQUIRE(r.status == f.new_status());
    REQUIRE(f.written(1));
    http_client ev(f.server->port());
    open_events(ev, r.field("receipt_id"), s1);
    const auto all = ev.read_until("never", 3s);
    CHECK(all.find("\"status\":\"graded\"") != std::string::npos);
    CHECK(all.find("event: status") == all.rfind("event: status"));  // one event
    CHECK(eventually([&] { return metric(f, "exam_status_streams") == "0"; }));
  }
}

TEST_CASE("events: refused as the GET is (401, 404 for another's or an unknown receipt, 405), nothing opened") {
  exam_fixture f(kind::queue_sqlite, fast_streams());
  auto c = f.client();
  auto r = f.submit(c, "open", token("s1"), "k-mine");
  REQUIRE(r.status == 202);
  const auto path = "/v1/submissions/" + r.field("receipt_id") + "/events";
  check_error(c.call(verb::get, path), 401, "unauthorized");
  check_error(c.call(verb::get, path, {{"Authorization", "Bearer " + token("s2")}}), 404, "not_found");
  check_error(c.call(verb::get, "/v1/submissions/nope/events", {{"Authorization", "Bearer " + token("s1")}}), 404,
              "not_found");
  auto post = c.call(verb::post, path, {{"Authorization", "Bearer " + token("s1")}}, "{}");
  check_error(post, 405, "method_not_allowed");
  CHECK(post.headers["Allow"] == "GET, HEAD");
  CHECK(metric(f, "exam_status_streams") == "0");
}

TEST_CASE("events: at most N streams per account (429) and in all (503); a closed stream frees its place") {
  exam_fixture f(kind::queue_sqlite, fast_streams(2, 3), 1h, /*with_grader=*/false);
  auto c = f.client();
  const auto s1 = token("s1");
  const auto s2 = token("s2");
  const auto id1 = f.submit(c, "open", s1, "k-1").field("receipt_id");
  const auto id2 = f.submit(c, "open", s2, "k-2").field("receipt_id");
  std::vector<std::unique_ptr<http_client>> open;
  auto follow = [&](const std::string& id, const std::string& tok) {
    open.push_back(std::make_unique<http_client>(f.server->port()));
    open_events(*open.back(), id, tok);
    return open.back()->read_until("\"}\n\n", 5s);
  };
  CHECK(follow(id1, s1).find("200 OK") != std::string::npos);
  CHECK(follow(id1, s1).find("200 OK") != std::string::npos);
  auto third = c.call(verb::get, "/v1/submissions/" + id1 + "/events", {{"Authorization", "Bearer " + s1}});
  check_error(third, 429, "too_many_streams");
  CHECK(third.headers["Retry-After"] == "5");
  CHECK(follow(id2, s2).find("200 OK") != std::string::npos);
  auto full = c.call(verb::get, "/v1/submissions/" + id2 + "/events", {{"Authorization", "Bearer " + s2}});
  check_error(full, 503, "too_many_streams");
  open.front().reset();  // the client goes away
  CHECK(eventually([&] { return metric(f, "exam_status_streams") == "2"; }));
  CHECK(follow(id1, s1).find("200 OK") != std::string::npos);
}

TEST_CASE("events: a token that expires while following ends the stream with an error event") {
  exam_fixture f(kind::queue_sqlite, fast_streams(), 1h, /*with_grader=*/false);
  auto c = f.client();
  const auto brief = token("s1", exam::role::student, 2s);
  const auto id = f.submit(c, "open", brief, "k-brief").field("receipt_id");
  http_client ev(f.server->port());
  open_events(ev, id, brief);
  const auto all = ev.read_until("never", 6s);
  CHECK(all.find("\"status\":\"received\"") != std::string::npos);
  CHECK(all.find("event: error\ndata: {\"error\":\"unauthorized\"") != std::string::npos);
  CHECK(eventually([&] { return metric(f, "exam_status_streams") == "0"; }));
}
