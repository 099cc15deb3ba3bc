// The teachers' routes: GET /v1/overview (the counts of each state, each read from its
// own record, and accepted against written per period), GET /v1/exams/{id}/dead-letters
// (an exam's own, paged) and the replay, which the log records with the teacher's id.

#include <doctest/doctest.h>

#include <boost/json.hpp>

#include "support/exam_fixture.hpp"

using namespace ingest;
using namespace ingest::test;
using namespace std::chrono_literals;

namespace {


exam::app_options quick_overview() {
  return {.overview = {.period = 50ms, .keep = 400}};
}

boost::json::object overview_of(exam_fixture& f) {
  auto c = f.client();
  const auto r = c.call(verb::get, "/v1/overview", bearer(token("t1", exam::role::teacher)));
  REQUIRE(r.status == 200);
  return r.json().as_object();
}

// A count of the overview: -1 for null.
std::int64_t count(const boost::json::object& o, const char* name) {
  const auto& v = o.at("counts").as_object().at(name);
  return v.is_null() ? -1 : v.to_number<std::int64_t>();
}

// The sum of one line of the chart (nulls are periods not known).
std::int64_t series_sum(const boost::json::object& o, const char* line) {
  std::int64_t sum = 0;
  for (const auto& v : o.at("series").as_object().at(line).as_array())
    if (!v.is_null()) sum += v.to_number<std::int64_t>();
  return sum;
}

class capture_logger final : public logger {
 public:
  bool enabled(log_level) const noexcept override { return true; }
  void write(const log_event& e) noexcept override {
    std::lock_guard lock(mutex);
    lines.push_back(std::string(e.component) + "|" + std::string(e.event) + "|" + std::string(e.receipt_id) + "|" +
                    std::string(e.detail));
  }
  std::vector<std::string> with(const std::string& event) {
    std::lock_guard lock(mutex);
    std::vector<std::string> out;
    for (const auto& l : lines)
      if (l.find("|" + event + "|") != std::string::npos) out.push_back(l);
    return out;
  }
  std::mutex mutex;
  std::vector<std::string> lines;
};

// Graders that know none of the fixture's exams: every submission is dead-lettered.
const exam::catalog& no_exams() {
  static const auto c = exam::catalog::from_json(R"({"exams":[{"id":"elsewhere","answer_key":{"q1":"A"},
      "opens_at":"2020-01-01T00:00:00Z","deadline":"2099-01-01T00:00:00Z","students":"any"}]})");
  return c;
}

void start_grader(exam_fixture& f, const exam::catalog& exams) {
  f.grader = std::make_unique<exam::grading_consumer>(
      *f.queue, f.sink, exams, exam::consumer_settings{.max_batch = 50, .linger = 2ms}, f.metrics);
  f.grader->start();
}

}  // namespace

TEST_CASE("overview: teachers only; received, then graded, each counted from its own record; the chart's lines") {
  exam_fixture f(kind::queue_sqlite, quick_overview(), 1h, /*with_grader=*/false);
  auto c = f.client();
  check_error(c.call(verb::get, "/v1/overview"), 401, "unauthorized");
  check_error(c.call(verb::get, "/v1/overview", bearer(token("s1"))), 403, "forbidden");
  check_error(c.call(verb::post, "/v1/overview", bearer(token("t1", exam::role::teacher))), 405, "method_not_allowed");
  // Sampling has begun: what is accepted from now on shows in the series.
  REQUIRE(eventually([&] { return overview_of(f).at("queue").is_object(); }));
  const auto s1 = token("s1");
  for (int i = 0; i < 3; ++i) REQUIRE(f.submit(c, "open", s1, "k-ov-" + std::to_string(i)).status == 202);
  REQUIRE(f.submit(c, "open", s1, "k-ov-0").status == 200);  // a repeat is not accepted again
  REQUIRE(eventually([&] { return count(overview_of(f), "received") == 3; }));
  auto o = overview_of(f);
  CHECK(count(o, "processing") == 0);
  CHECK(count(o, "graded") == 0);
  CHECK(count(o, "dead_lettered") == 0);
  CHECK(o.at("backlog").to_number<int>() == 3);
  CHECK(o.at("accepted_counted_by").as_string() == "queue");
  CHECK(o.at("queue").as_object().at("accepted").to_number<int>() == 3);
  CHECK(o.at("series").as_object().at("period_ms").to_number<int>() == 50);
  REQUIRE(eventually([&] { return series_sum(overview_of(f), "accepted") == 3; }));
  CHECK(series_sum(overview_of(f), "written") == 0);

  start_grader(f, f.exams);
  REQUIRE(f.written(3));
  REQUIRE(eventually([&] {
    auto now = overview_of(f);
    return count(now, "graded") == 3 && count(now, "received") == 0 && series_sum(now, "written") == 3;
  }));
  o = overview_of(f);
  CHECK(o.at("backlog").to_number<int>() == 0);
  CHECK(series_sum(o, "accepted") == 3);
  CHECK(o.at("queue").as_object().at("processed").to_number<int>() == 3);
  CHECK(o.at("queue").as_object().at("balanced").as_bool());
}

TEST_CASE("overview's sampling: a period per sample, unknown where a source failed, `keep` periods at most") {
  std::atomic<std::uint64_t> here{0}, written{0};
  std::atomic<bool> database_down{false};
  std::atomic<int> sampled{0};
  exam::overview o({.queue = {},
                    .written =
                        [&]() -> std::uint64_t {
                          ++sampled;
                          if (database_down) throw std::runtime_error("database down");
                          return written.load();
                        },
                    .accepted_here = [&] { return here.load(); }},
                   {.period = 1h, .keep = 4});
  auto doc = [&] { return boost::json::parse(o.json()).as_object(); };
  auto line = [&](const char* name) { return boost::json::serialize(doc().at("series").as_object().at(name)); };
  // The thread's first sample (nothing to count from yet), then an hour's wait.
  REQUIRE(eventually([&] { return line("accepted") == "[null]"; }));
  CHECK(sampled == 1);
  here = 5;
  o.sample();
  here = 7;
  written = 4;
  o.sample();
  CHECK(line("accepted") == "[null,5,2]");
  CHECK(line("written") == "[null,0,4]");
  CHECK(doc().at("accepted_counted_by").as_string() == "this server");
  CHECK(count(doc(), "graded") == 4);
  CHECK(count(doc(), "received") == 0);  // no queue: nothing waits
  database_down = true;
  here = 8;
  o.sample();
  CHECK(line("accepted") == "[null,5,2,1]");
  CHECK(line("written") == "[null,0,4,null]");
  CHECK(count(doc(), "graded") == -1);  // unknown, not zero
  database_down = false;
  written = 6;
  o.sample();  // the period after the gap: not known either (no reading before it)
  CHECK(line("written") == "[0,4,null,null]");
  o.sample();
  CHECK(line("written") == "[4,null,null,0]");
  CHECK(line("accepted") == "[2,1,0,0]");
}

TEST_CASE("overview on the direct server: nothing waits, the rows written, accepted counted by this server") {
  exam_fixture f(kind::direct, quick_overview());
  auto c = f.client();
  const auto s1 = token("s1");
  for (int i = 0; i < 4; ++i) REQUIRE(f.submit(c, "open", s1, "k-d-" + std::to_string(i)).status == 201);
  REQUIRE(eventually([&] {
    auto o = overview_of(f);
    return count(o, "graded") == 4 && series_sum(o, "accepted") == 4 && series_sum(o, "written") == 4;
  }));
  const auto o = overview_of(f);
  CHECK(count(o, "received") == 0);
  CHECK(count(o, "processing") == 0);
  CHECK(count(o, "dead_lettered") == 0);
  CHECK(o.at("backlog").to_number<int>() == 0);
  CHECK(o.at("accepted_counted_by").as_string() == "this server");
  CHECK(o.at("queue").is_null());
  CHECK(f.rows() == 4);
  // No queue, no dead letters.
  const auto list = c.call(verb::get, "/v1/exams/open/dead-letters", bearer(token("t1", exam::role::teacher)));
  CHECK(list.status == 200);
  CHECK(list.body == R"({"items":[],"next_after":null})");
}

TEST_CASE("dead letters: an exam's own, with reason, attempts and times, paged; a replay is audited") {
  auto log = std::make_shared<capture_logger>();
  auto options = quick_overview();
  options.log = log;
  exam_fixture f(kind::queue_sqlite, options, 1h, /*with_grader=*/false);
  auto c = f.client();
  const auto s1 = token("s1");
  const auto teacher = token("t1", exam::role::teacher);
  std::vector<std::string> open_ids;
  for (int i = 0; i < 3; ++i) open_ids.push_back(f.submit(c, "open", s1, "k-dl-" + std::to_string(i)).field("receipt_id"));
  const auto thirds_id = f.submit(c, "thirds", s1, "k-dl-t", R"({"answers":{"q1":"A"}})").field("receipt_id");
  start_grader(f, no_exams());
  REQUIRE(eventually([&] { return count(overview_of(f), "dead_lettered") == 4; }));
  CHECK(count(overview_of(f), "graded") == 0);

  check_error(c.call(verb::get, "/v1/exams/open/dead-letters"), 401, "unauthorized");
  check_error(c.call(verb::get, "/v1/exams/open/dead-letters", bearer(s1)), 403, "forbidden");
  check_error(c.call(verb::get, "/v1/exams/nope/dead-letters", bearer(teacher)), 404, "exam_not_found");
  check_error(c.call(verb::get, "/v1/exams/open/dead-letters?limit=0", bearer(teacher)), 400, "invalid_query");
  check_error(c.call(verb::post, "/v1/exams/open/dead-letters", bearer(teacher)), 405, "method_not_allowed");

  const auto all = c.call(verb::get, "/v1/exams/open/dead-letters", bearer(teacher)).json().as_object();
  const auto& items = all.at("items").as_array();
  REQUIRE(items.size() == 3);
  CHECK(all.at("next_after").is_null());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& d = items[i].as_object();
    CHECK(d.at("receipt_id").as_string() == open_ids[i]);  // in receipt order
    CHECK(d.at("student_id").as_string() == "s1");
    CHECK(d.at("reason").as_string() == "permanent_failure");
    CHECK(d.at("attempts").to_number<int>() == 1);
    CHECK(d.at("last_error").as_string().find("open") != boost::json::string::npos);
    const auto accepted = parse_time(d.at("accepted_at").as_string());
    const auto parked = parse_time(d.at("dead_lettered_at").as_string());
    CHECK(accepted <= parse_time(d.at("first_attempt_at").as_string()));
    CHECK(parse_time(d.at("last_attempt_at").as_string()) <= parked);
  }
  // Pages: two, then the one left.
  const auto first = c.call(verb::get, "/v1/exams/open/dead-letters?limit=2", bearer(teacher)).json().as_object();
  REQUIRE(first.at("items").as_array().size() == 2);
  REQUIRE(first.at("next_after").as_string() == open_ids[1]);
  const auto second =
      c.call(verb::get, "/v1/exams/open/dead-letters?limit=2&after=" + open_ids[1], bearer(teacher)).json().as_object();
  REQUIRE(second.at("items").as_array().size() == 1);
  CHECK(second.at("items").as_array()[0].as_object().at("receipt_id").as_string() == open_ids[2]);
  CHECK(second.at("next_after").is_null());
  const auto thirds = c.call(verb::get, "/v1/exams/thirds/dead-letters", bearer(teacher)).json().as_object();
  REQUIRE(thirds.at("items").as_array().size() == 1);
  CHECK(thirds.at("items").as_array()[0].as_object().at("receipt_id").as_string() == thirds_id);

  // A replay: back in the queue, out of the list, and in the log with who asked.
  f.grader->drain();
  f.grader.reset();
  const auto replayed =
      c.call(verb::post, "/v1/exams/open/dead-letters/" + open_ids[0] + "/replay", bearer(teacher));
  CHECK(replayed.status == 202);
  const auto audit = log->with("dead_letter_replayed");
  REQUIRE(audit.size() == 1);
  CHECK(audit[0] == "teacher|dead_letter_replayed|" + open_ids[0] + "|by teacher t1");
  CHECK(c.call(verb::get, "/v1/exams/open/dead-letters", bearer(teacher)).json().at("items").as_array().size() == 2);
  REQUIRE(eventually([&] {
    auto o = overview_of(f);
    return count(o, "dead_lettered") == 3 && count(o, "received") == 1;
  }));
  // Refused replays are not audited as done.
  check_error(c.call(verb::post, "/v1/exams/open/dead-letters/" + open_ids[0] + "/replay", bearer(teacher)), 404,
              "not_found");
  CHECK(log->with("dead_letter_replayed").size() == 1);
  start_grader(f, f.exams);
  REQUIRE(f.written(1));
  REQUIRE(eventually([&] { return count(overview_of(f), "graded") == 1; }));
}

TEST_CASE("dead letters: an exam's own found past a page of the queue's (the scan goes on to the next)") {
  auto options = quick_overview();
  options.student_rate = 0;
  exam_fixture f(kind::queue_sqlite, options, 1h, /*with_grader=*/false);
  auto c = f.client();
  const auto s1 = token("s1");
  const auto teacher = token("t1", exam::role::teacher);
  // 120 of "open" first: the queue's first page (100 at least) holds none of "thirds".
  for (int i = 0; i < 120; ++i) REQUIRE(f.submit(c, "open", s1, "k-many-" + std::to_string(i)).status == 202);
  const auto late = f.submit(c, "thirds", s1, "k-many-t", R"({"answers":{"q1":"A"}})").field("receipt_id");
  start_grader(f, no_exams());
  REQUIRE(eventually([&] { return count(overview_of(f), "dead_lettered") == 121; }, 20s));
  const auto thirds = c.call(verb::get, "/v1/exams/thirds/dead-letters", bearer(teacher)).json().as_object();
  REQUIRE(thirds.at("items").as_array().size() == 1);
  CHECK(thirds.at("items").as_array()[0].as_object().at("receipt_id").as_string() == late);
  CHECK(thirds.at("next_after").is_null());
  // And "open" a page at a time, 50 and 50 and 20.
  std::string after;
  std::size_t seen = 0;
  for (int page = 0; page < 3; ++page) {
    const auto p = c.call(verb::get, "/v1/exams/open/dead-letters?limit=50&after=" + after, bearer(teacher))
                       .json()
                       .as_object();
    seen += p.at("items").as_array().size();
    after = p.at("next_after").is_null() ? "" : std::string(p.at("next_after").as_string());
  }
  CHECK(seen == 120);
  CHECK(after.empty());
}
