// exam_worker audit: every receipt the embedded queue accepted is processed, pending or
// dead-lettered, checked against exam.db and PostgreSQL; a row removed or changed is
// named by its receipt id.

#include <doctest/doctest.h>

#include <sstream>

#include "audit_cmd.hpp"
#include "ingest/auditor.hpp"
#include "ingest/sqlite/queue_records.hpp"
#include "queue_backend.hpp"
#include "queue_url.hpp"
#include "support/exam_fixture.hpp"
#include "support/exam_sink.hpp"

namespace ingest::test {

namespace {

// The receipts given for `n` submissions through the exam server's accept path.
std::vector<std::string> accept(exam::queue_backend& b, const exam::exam_info& exam, const std::string& prefix, int n) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) {
    auto done = std::make_shared<std::promise<exam::submit_outcome>>();
    auto answer = done->get_future();
    b.submit(exam, {exam.id, prefix + std::to_string(i), "k", {{"q1", "B"}}}, {},
             [done](exam::submit_outcome o) { done->set_value(std::move(o)); });
    const auto o = answer.get();
    REQUIRE(o.what == exam::submit_outcome::kind::queued);
    ids.push_back(o.receipt_id);
  }
  return ids;
}

}  // namespace

TEST_CASE("audit: every accepted receipt is accounted for until a row goes; then its receipt id is named") {
  temp_dir dir;
  for (const auto& sink : exam_sinks(dir)) {
    CAPTURE(sink);
    io_thread io(2);
    const auto url = "sqlite://" + (dir.path() / ("queue-" + std::to_string(sink.size()) + ".db")).string();
    const auto exams = exam::catalog::from_json(exams_json(std::chrono::hours(1)));
    auto queue = exam::open_queue(url, io.executor());
    auto store = exam::open_reader(sink);
    producer p(*queue);
    exam::queue_backend accepting(*queue, p, *store, nullptr);
    const auto graded = accept(accepting, *exams.find("open"), "s", 40);
    // Dead-lettered: a payload that is not a submission, as another program might publish.
    auto [ec, bad] = publish(*queue, message("other-program-1", "not json"));
    REQUIRE_FALSE(ec);
    REQUIRE(grade_all(*queue, sink, exams));
    REQUIRE(stats(*queue).dead_lettered == 1);
    // Still waiting: accepted after the graders stopped.
    accept(accepting, *exams.find("open"), "late", 1);
    REQUIRE(stats(*queue).pending == 1);

    std::ostringstream out, err;
    const exam::audit_request once{.settle = "0", .once = true};
    CHECK(exam::run_audit(url, sink, once, out, err) == 0);
    CHECK(out.str().find("42 receipts checked, 42 accounted for, 0 not") != std::string::npos);

    sink_exec(sink, "DELETE FROM submissions WHERE receipt_id = '" + graded[3] + "'");
    sink_exec(sink, "UPDATE submissions SET fingerprint = 'x' WHERE receipt_id = '" + graded[9] + "'");
    std::ostringstream out2, err2;
    CHECK(exam::run_audit(url, sink, once, out2, err2) == 1);
    CHECK(out2.str().find("42 receipts checked, 40 accounted for, 1 not, 1 with another body") != std::string::npos);
    CHECK(err2.str().find(R"("kind":"missing","receipt_id":")" + graded[3] + "\"") != std::string::npos);
    CHECK(err2.str().find(R"("kind":"different","receipt_id":")" + graded[9] + "\"") != std::string::npos);

    // A window that ends before the submissions: nothing to check.
    std::ostringstream out3, err3;
    CHECK(exam::run_audit(url, sink, {.lookback = "1h", .settle = "1h", .once = true}, out3, err3) == 0);
    CHECK(out3.str().find(" 0 receipts checked") != std::string::npos);
    CHECK(exam::run_audit("nats://127.0.0.1:4222", sink, once, out3, err3) == 2);
    CHECK(err3.str().find("embedded queue") != std::string::npos);
    accepting.stop();
    queue->close();
  }
}

}  // namespace ingest::test
