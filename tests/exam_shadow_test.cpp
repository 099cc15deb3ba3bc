// Dual write (direct_server --shadow-queue): the direct path stays authoritative, a
// copy of each write goes to the queue and graders keep it in queue_copies, and
// `exam_worker reconcile` compares the two, on exam.db and on PostgreSQL.

#include <doctest/doctest.h>

#include <future>
#include <mutex>
#include <set>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "direct.hpp"
#include "direct_pg.hpp"
#include "grading.hpp"
#include "ingest/memory_queue.hpp"
#include "ingest/shadow_producer.hpp"
#include "ledger.hpp"
#include "queue_url.hpp"
#include "reconcile_cmd.hpp"
#include "reconcile_sources.hpp"
#include "shadow_backend.hpp"
#include "support/exam_fixture.hpp"
#include "support/exam_sink.hpp"
#include "support/nats_server.hpp"
#include "support/postgres_server.hpp"

namespace ingest::test {

namespace {

using namespace std::chrono_literals;

std::unique_ptr<exam::submit_backend> direct_on(const std::string& sink) {
  if (exam::is_postgres_url(sink))
    return std::make_unique<exam::pg_direct_backend>(sink, exam::direct_settings{.pool_size = 4});
  return std::make_unique<exam::direct_backend>(sink, exam::direct_settings{.pool_size = 2});
}

// The direct server with a shadow queue, as direct_server --shadow-queue builds it.
struct dual_write {
  dual_write(io_thread& io, const std::string& sink, const std::string& queue_url, durable_queue* given = nullptr)
      : owned(given ? nullptr : exam::open_queue(queue_url, io.executor())),
        queue(given ? *given : *owned),
        direct(direct_on(sink)),
        producer(queue, producer_options{.publish_timeout = 1s}),
        shadow(producer, shadow_options{.on_gap = [this](const shadow_gap& g) { note(g); }}),
        backend(*direct, shadow) {}
  ~dual_write() {
    shadow.async_drain(boost::asio::use_future).wait();
    producer.async_drain(boost::asio::use_future).wait();
    if (owned) owned->close();
  }

  // Submits `n` submissions at once (students prefix-0..n-1); returns how many were
  // stored (`repeats`: answered with the receipt of an earlier one).
  int submit(const exam::exam_info& exam, const std::string& prefix, int n, bool repeats = false) {
    std::vector<std::future<exam::submit_outcome>> answers;
    for (int i = 0; i < n; ++i) {
      auto done = std::make_shared<std::promise<exam::submit_outcome>>();
      answers.push_back(done->get_future());
      exam::submission s{exam.id, prefix + std::to_string(i), "k-" + prefix + std::to_string(i),
                         {{"q1", i % 2 ? "B" : "A"}, {"q2", "D"}}};
      backend.submit(exam, std::move(s), {}, [done](exam::submit_outcome o) { done->set_value(std::move(o)); });
    }
    int stored = 0;
    const auto expected = repeats ? exam::submit_outcome::kind::repeat : exam::submit_outcome::kind::stored;
    for (auto& a : answers) stored += a.get().what == expected;
    return stored;
  }

  void note(const shadow_gap& g) {
    std::lock_guard lock(mutex);
    (g.error == errc::publish_timeout ? timed_out : gaps).insert(g.idempotency_key);
  }

  std::unique_ptr<durable_queue> owned;
  durable_queue& queue;
  std::unique_ptr<exam::submit_backend> direct;
  ingest::producer producer;
  shadow_producer shadow;
  exam::shadow_backend backend;
  std::mutex mutex;
  std::set<std::string> gaps, timed_out;  // queue keys (exam/student/key)
};

// The discrepancies of one kind, as exam/student/key.
std::set<std::string> keys_of(const reconcile_report& r, discrepancy_kind kind) {
  std::set<std::string> out;
  for (const auto& d : r.found)
    if (d.kind == kind) out.insert(exam::split_key(d.key).text());
  return out;
}

reconcile_report reconcile_sink(const std::string& sink) {
  auto rows = exam::open_rows(sink, exam::rows_table::submissions);
  auto copies = exam::open_rows(sink, exam::rows_table::copies);
  return reconcile(*rows, *copies,
                   {.window = {clock::now() - 1h, clock::now() + 1h}, .page_size = 37, .max_reported = 100000,
                    .same = exam::same_submission});
}

}  // namespace

TEST_CASE("dual write: a shadow queue down part of the time fails no request; reconcile finds the gaps, "
          "re-sends them, and ends clean") {
  temp_dir dir;
  for (const auto& sink : exam_sinks(dir)) {
    CAPTURE(sink);
    io_thread io(2);
    nats_server nats(dir.path() / ("nats-" + std::to_string(sink.size())));
    const auto url = nats.url() + "?ack_wait=2s";
    const auto exams = exam::catalog::from_json(exams_json(1h));
    const auto& open = *exams.find("open");
    dual_write dw(io, sink, url);

    CHECK(dw.submit(open, "before-", 100) == 100);
    REQUIRE(eventually([&] { return dw.shadow.stats().pending == 0; }));
    nats.kill();
    CHECK(dw.submit(open, "down-", 100) == 100);  // no student notices
    REQUIRE(eventually([&] { return dw.shadow.stats().pending == 0; }, 15s));
    nats.start();
    // Back once a copy gets through again.
    int probes = 0;
    REQUIRE(eventually(
        [&] {
          const auto sent = dw.shadow.stats().sent;
          dw.submit(open, "probe-" + std::to_string(++probes) + "-", 1);
          return eventually([&] { return dw.shadow.stats().pending == 0; }, 5s) && dw.shadow.stats().sent > sent;
        },
        20s));
    CHECK(dw.submit(open, "after-", 100) == 100);
    // Ten students of the outage retry: the direct path answers with their receipts,
    // and their copies are sent again on the way.
    CHECK(dw.submit(open, "down-", 10, true) == 10);
    std::set<std::string> healed;
    for (int i = 0; i < 10; ++i) healed.insert("open/down-" + std::to_string(i) + "/k-down-" + std::to_string(i));
    REQUIRE(eventually([&] { return dw.shadow.stats().pending == 0; }));
    const auto st = dw.shadow.stats();
    REQUIRE(st.failed + st.skipped >= 50);  // the outage made gaps, or this proves nothing
    CHECK(st.conflicts == 0);

    {
      auto q = exam::open_queue(url, io.executor());
      CHECK(grade_all(*q, sink, exams));
      q->close();
    }
    const auto rows = sink_count(sink, "SELECT count(*) FROM submissions");
    auto report = reconcile_sink(sink);
    CHECK(report.complete);
    CHECK(report.checked == static_cast<std::uint64_t>(rows));
    CHECK(report.extra == 0);
    CHECK(report.different == 0);
    // Every copy missing was reported as a gap when it happened, and every gap is
    // missing unless a retry filled it (or, for a gap by timeout, its copy was stored
    // and only the ack was lost).
    const auto missing = keys_of(report, discrepancy_kind::missing);
    CHECK(missing.size() == report.missing);  // all of them listed (max_reported is larger)
    for (const auto& k : missing) CHECK((dw.gaps.contains(k) || dw.timed_out.contains(k)));
    for (const auto& k : dw.gaps) CHECK(missing.contains(k) != healed.contains(k));
    // A retried student's copy was reported when it happened: a gap, or a timeout when
    // the publish went out just as the server died (its ack never came).
    for (const auto& k : healed) CHECK((dw.gaps.contains(k) || dw.timed_out.contains(k)));

    // Re-sent from the rows; the graders take them; nothing is missing any more.
    std::ostringstream out, err;
    {
      auto q = exam::open_queue(url, io.executor());
      exam::reconcile_request request{.since = "1h", .page = 50, .show = 5, .resend = true};
      CHECK(exam::run_reconcile(sink, q.get(), request, out, err) == 1);
      CHECK(out.str().find("re-sent " + std::to_string(missing.size()) + " ") != std::string::npos);
      CHECK(grade_all(*q, sink, exams));
      q->close();
    }
    INFO(out.str(), err.str());
    std::ostringstream again;
    CHECK(exam::run_reconcile(sink, nullptr, {.since = "1h"}, again, err) == 0);
    CHECK(again.str().find("clean") != std::string::npos);
    CHECK(sink_count(sink, "SELECT count(*) FROM queue_copies") == rows);
    CHECK(sink_count(sink, "SELECT count(*) FROM queue_copies WHERE path = 'shadow'") == rows);
    CHECK(rows == 300 + sink_count(sink, "SELECT count(*) FROM submissions WHERE student_id LIKE 'probe-%'"));
  }
}

TEST_CASE("reconcile finds each row removed, changed or added in queue_copies, and nothing else") {
  temp_dir dir;
  for (const auto& sink : exam_sinks(dir)) {
    CAPTURE(sink);
    io_thread io(2);
    memory_queue q(io.executor(), {.quiet = true});
    const auto exams = exam::catalog::from_json(exams_json(1h));
    {
      dual_write dw(io, sink, {}, &q);
      REQUIRE(dw.submit(*exams.find("open"), "s", 120) == 120);
      REQUIRE(eventually([&] { return dw.shadow.stats().sent == 120; }));
    }
    CHECK(grade_all(q, sink, exams));
    REQUIRE(reconcile_sink(sink).clean());
    CHECK(sink_count(sink, "SELECT count(*) FROM submissions") == 120);

    sink_exec(sink, "DELETE FROM queue_copies WHERE student_id IN ('s7', 's70')");
    sink_exec(sink, "UPDATE queue_copies SET score = score + 1 WHERE student_id = 's8'");
    sink_exec(sink, "UPDATE queue_copies SET fingerprint = 'f' || fingerprint WHERE student_id = 's9'");
    sink_exec(sink,
            "INSERT INTO queue_copies SELECT exam_id, 'ghost', idempotency_key, path, receipt_id, direct_receipt_id, "
            "accepted_at, queued_at, fingerprint, score, written_at FROM queue_copies WHERE student_id = 's10'");
    const auto r = reconcile_sink(sink);
    CHECK(keys_of(r, discrepancy_kind::missing) == std::set<std::string>{"open/s7/k-s7", "open/s70/k-s70"});
    CHECK(keys_of(r, discrepancy_kind::different) == std::set<std::string>{"open/s8/k-s8", "open/s9/k-s9"});
    CHECK(keys_of(r, discrepancy_kind::extra) == std::set<std::string>{"open/ghost/k-s10"});
    CHECK(r.matched == 116);

    // The command says the same, and a window without the rows is clean.
    std::ostringstream out, err;
    CHECK(exam::run_reconcile(sink, nullptr, {.since = "1h", .page = 7}, out, err) == 1);
    CHECK(out.str().find("matched 116, missing 2, extra 1, different 2") != std::string::npos);
    CHECK(out.str().find("missing open/s7/k-s7") != std::string::npos);
    std::ostringstream none;
    CHECK(exam::run_reconcile(sink, nullptr, {.since = "3h", .until = "2h"}, none, err) == 0);
    CHECK(none.str().find("submissions checked 0, copies checked 0") != std::string::npos);
    CHECK(exam::run_reconcile(sink, nullptr, {.since = "yesterday"}, none, err) == 2);
    CHECK(err.str().find("yesterday") != std::string::npos);

    // A run resumed from its progress file cannot re-send what it found before.
    const auto state = (dir.path() / "progress").string();
    {
      std::ofstream f(state);
      f << format_time(clock::now() - 1h) << '\n' << format_time(clock::now()) << "\n0:\n0 0 0 0 0 0\n";
    }
    std::ostringstream resumed, why;
    CHECK(exam::run_reconcile(sink, &q, {.since = "1h", .state = state, .resend = true}, resumed, why) == 2);
    CHECK(why.str().find("--resend cannot resume") != std::string::npos);
    CHECK(exam::run_reconcile(sink, nullptr, {.since = "1h", .state = state}, resumed, why) == 1);
    CHECK(resumed.str().find("resuming") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(state));  // a finished run removes it

    // A database no grader of this version has run on is refused, not changed.
    const auto direct_only = (dir.path() / "direct-only.db").string();
    sqlite::database(direct_only).exec("CREATE TABLE IF NOT EXISTS submissions(receipt_id TEXT)");
    std::ostringstream refused;
    CHECK(exam::run_reconcile(direct_only, nullptr, {.since = "1h"}, none, refused) == 2);
    CHECK(refused.str().find("no submissions or queue_copies table") != std::string::npos);
    sqlite::database after(direct_only);
    sqlite::statement tables(after, "SELECT group_concat(name) FROM sqlite_master");
    REQUIRE(tables.step());
    CHECK(tables.column_text(0) == "submissions");  // nothing was created
  }
}

}  // namespace ingest::test
