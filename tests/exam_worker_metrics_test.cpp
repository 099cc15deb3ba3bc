// exam_worker --metrics: the graders' counters, dead letters counted by the path each
// submission took (the exam server's queue, a direct server's queue path, a direct
// write's copy), read over HTTP as Prometheus scrapes them.

#include <doctest/doctest.h>

#include <thread>
#include <tuple>
#include <vector>

#include "grading.hpp"
#include "ingest/memory_queue.hpp"
#include "ledger.hpp"
#include "submission.hpp"
#include "support/exam_fixture.hpp"
#include "support/exam_sink.hpp"
#include "support/http_client.hpp"
#include "worker_metrics.hpp"

namespace ingest::test {

namespace {

using namespace std::chrono_literals;

// A submission for `exam` as the queue carries it, on `path` ("": the exam server's).
envelope submission_message(const std::string& exam, const std::string& student, const std::string& path) {
  exam::submission s{exam, student, "k-" + student, {{"q1", "B"}}};
  auto m = message(s.queue_key(), s.to_json());
  if (!path.empty()) m.headers = {{exam::path_header, path}};
  return m;
}

}  // namespace

TEST_CASE("exam_worker --metrics: dead letters by path, graded and copied rows, over HTTP") {
  temp_dir dir;
  const auto sink = (dir.path() / "exam.db").string();
  io_thread io(2);
  memory_queue q(io.executor(), {.quiet = true});
  const auto exams = exam::catalog::from_json(exams_json(1h));
  // An unknown exam is a permanent failure on every path; "open" is graded or copied.
  for (const auto& [student, path, exam_id] :
       std::vector<std::tuple<std::string, std::string, std::string>>{{"a1", "", "gone"},
                                                                      {"a2", "", "gone"},
                                                                      {"b1", "queue", "gone"},
                                                                      {"c1", "shadow", "gone"},
                                                                      {"c2", "shadow", "gone"},
                                                                      {"c3", "shadow", "gone"},
                                                                      {"ok1", "", "open"},
                                                                      {"ok2", "queue", "open"},
                                                                      {"ok3", "shadow", "open"}})
    REQUIRE_FALSE(publish(q, submission_message(exam_id, student, path)).first);

  auto metrics = std::make_shared<pipeline_metrics>();
  exam::grading_consumer graders(q, sink, exams, {.max_batch = 4, .linger = 2ms}, metrics);
  graders.start();
  REQUIRE(eventually([&] { return stats(q).pending == 0; }, 30s));
  const auto& c = graders.counters();
  // The alert (which counts) runs once the dead letter is stored, so after the queue's count.
  REQUIRE(eventually([&] { return c.dead_plain + c.dead_queue_path + c.dead_copies == 6; }));
  CHECK(c.dead_plain == 2);
  CHECK(c.dead_queue_path == 1);
  CHECK(c.dead_copies == 3);
  CHECK(c.graded == 2);  // ok1, ok2
  CHECK(c.copied == 2);  // ok2's copy beside its row, ok3

  boost::asio::io_context http_io;
  auto server = exam::serve_worker_metrics(http_io, "127.0.0.1:0", metrics, c);
  std::thread runner([&] { http_io.run(); });
  http_result got, elsewhere;
  try {
    http_client client(server->port());
    got = client.call(boost::beast::http::verb::get, "/metrics");
    elsewhere = client.call(boost::beast::http::verb::get, "/v1/submissions");
  } catch (const std::exception& e) {
    FAIL_CHECK("the metrics server did not answer: " << e.what());
  }
  server->stop();
  http_io.stop();
  runner.join();
  CHECK(got.status == 200);
  CHECK(elsewhere.status == 404);
  for (const char* line :
       {"exam_worker_dead_letters_total{path=\"exam_server\"} 2\n",
        "exam_worker_dead_letters_total{path=\"queue\"} 1\n", "exam_worker_dead_letters_total{path=\"shadow\"} 3\n",
        "exam_worker_graded_total 2\n", "exam_worker_copied_total 2\n", "exam_worker_dead_lettered_total 6\n"}) {
    CAPTURE(line);
    CHECK(got.body.find(line) != std::string::npos);
  }
  graders.drain();
}

}  // namespace ingest::test
