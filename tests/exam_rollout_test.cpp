// The percentage rollout (direct_server --queue-percent): during a flood the share of
// students on the queue path moves from 0 to 100 and back; every submission is kept
// once, every retry gets its first answer, on exam.db and on PostgreSQL.

#include <doctest/doctest.h>

#include <future>
#include <map>
#include <set>

#include "direct.hpp"
#include "direct_pg.hpp"
#include "grading.hpp"
#include "ingest/postgres/connection.hpp"
#include "ingest/rollout.hpp"
#include "ingest/shadow_producer.hpp"
#include "queue_url.hpp"
#include "reconcile_sources.hpp"
#include "rollout_backend.hpp"
#include "support/exam_fixture.hpp"
#include "support/exam_sink.hpp"
#include "support/nats_server.hpp"
#include "support/postgres_server.hpp"

namespace ingest::test {

namespace {

using namespace std::chrono_literals;

// The direct server's paths as migration.cpp assembles them.
struct rollout_paths {
  rollout_paths(io_thread& io, const std::string& sink, const std::string& queue_url, rollout_options options)
      : queue(exam::open_queue(queue_url, io.executor())),
        store(exam::open_reader(sink)),
        direct(exam::is_postgres_url(sink)
                   ? std::unique_ptr<exam::submit_backend>(
                         std::make_unique<exam::pg_direct_backend>(sink, exam::direct_settings{.pool_size = 4}))
                   : std::make_unique<exam::direct_backend>(sink, exam::direct_settings{.pool_size = 2})),
        copier(*queue, producer_options{.max_in_flight = 4096, .default_subject = "exam"}),
        producer(*queue, producer_options{.max_in_flight = 4096, .default_subject = "exam"}),
        shadow(copier),
        dual(*direct, shadow),
        rollout(options),
        queued(*queue, producer, *store, rollout.metrics(write_path::queue), {.beside_direct = true}),
        routed(rollout, dual, queued) {
    queued.start();
  }
  ~rollout_paths() {
    shadow.async_drain(boost::asio::use_future).wait();
    copier.async_drain(boost::asio::use_future).wait();
    producer.async_drain(boost::asio::use_future).wait();
    queued.stop();
    queue->close();
  }

  std::unique_ptr<durable_queue> queue;
  std::unique_ptr<exam::submission_reader> store;
  std::unique_ptr<exam::submit_backend> direct;
  ingest::producer copier;    // the copies'
  ingest::producer producer;  // the queue path's
  shadow_producer shadow;
  exam::shadow_backend dual;
  ingest::rollout rollout;
  exam::queue_backend queued;
  exam::rollout_backend routed;
};

struct attempt {
  std::string student;
  std::future<exam::submit_outcome> answer;
};

attempt send(exam::submit_backend& b, const exam::exam_info& exam, const std::string& student) {
  auto done = std::make_shared<std::promise<exam::submit_outcome>>();
  attempt a{student, done->get_future()};
  b.submit(exam, {exam.id, student, "k-" + student, {{"q1", "B"}, {"q2", "D"}}}, {},
           [done](exam::submit_outcome o) { done->set_value(std::move(o)); });
  return a;
}

// Each student's receipt in the database.
std::map<std::string, std::string> receipts_in(const std::string& sink) {
  std::map<std::string, std::string> out;
  const std::string sql = "SELECT student_id, receipt_id FROM submissions";
  if (exam::is_postgres_url(sink)) {
    const auto r = postgres::connection(sink).exec(sql);
    for (int i = 0; i < r.rows(); ++i) out.emplace(std::string(r.text(i, 0)), std::string(r.text(i, 1)));
  } else {
    sqlite::database db(sink);
    sqlite::statement s(db, sql);
    while (s.step()) out.emplace(std::string(s.column_text(0)), std::string(s.column_text(1)));
  }
  return out;
}

// The graders run on the queue at `url` until it is empty; true when nothing was
// dead-lettered.
bool graded_without_dead_letters(io_thread& io, const std::string& url, const std::string& sink,
                                 const exam::catalog& exams) {
  auto q = exam::open_queue(url, io.executor());
  const bool emptied = grade_all(*q, sink, exams);
  capture<queue_stats> c;
  q->async_stats(c.handler());
  const bool none = c.get().second.dead_lettered == 0;
  q->close();
  return emptied && none;
}

}  // namespace

TEST_CASE("rollout: 0 to 100 % and back during a flood; each submission kept once, each retry answered alike") {
  temp_dir dir;
  for (const auto& sink : exam_sinks(dir)) {
    CAPTURE(sink);
    io_thread io(2);
    nats_server nats(dir.path() / ("nats-" + std::to_string(sink.size())));
    const auto url = nats.url() + "?ack_wait=2s";
    const auto exams = exam::catalog::from_json(exams_json(1h));
    const auto& open = *exams.find("open");
    std::map<std::string, std::set<std::string>> answers;  // student -> receipt ids given
    std::uint64_t pinned = 0, on_queue = 0, on_direct = 0;
    {
      rollout_paths paths(io, sink, url, {});
      // Each round: new students submit, and the previous round's retry (same key)
      // after the share moved. No grader runs yet: the queue path's submissions wait.
      const std::vector<double> shares{0, 30, 70, 100, 50, 0};
      for (std::size_t round = 0; round <= shares.size(); ++round) {
        if (round < shares.size()) paths.rollout.set_queue_percent(shares[round]);
        std::vector<attempt> attempts;
        for (int i = 0; i < 100; ++i) {
          if (round < shares.size())
            attempts.push_back(send(paths.routed, open, "r" + std::to_string(round) + "-" + std::to_string(i)));
          if (round > 0)
            attempts.push_back(send(paths.routed, open, "r" + std::to_string(round - 1) + "-" + std::to_string(i)));
        }
        for (auto& a : attempts) {
          const auto o = a.answer.get();
          CHECK(o.what != exam::submit_outcome::kind::refused);
          CHECK(o.what != exam::submit_outcome::kind::key_reused);
          answers[a.student].insert(o.receipt_id);
        }
      }
      const auto st = paths.rollout.stats();
      pinned = st.pinned_answers;
      on_queue = st.routed_queue;
      on_direct = st.routed_direct;
    }
    CHECK(answers.size() == 600);
    CHECK(on_queue > 100);
    CHECK(on_direct > 100);
    CHECK(pinned > 0);  // retries crossed a change of the share, or this proves nothing
    for (const auto& [student, ids] : answers) {
      INFO(student);
      CHECK(ids.size() == 1);  // the retry got the first answer: same path, same receipt
    }

    // The graders take the queue path's submissions and the copies.
    CHECK(graded_without_dead_letters(io, url, sink, exams));

    // 0 lost, 0 duplicated, and every row carries the receipt its student was given.
    CHECK(sink_count(sink, "SELECT count(*) FROM submissions") == 600);
    const auto rows = receipts_in(sink);
    CHECK(rows.size() == 600);
    for (const auto& [student, ids] : answers) {
      INFO(student);
      REQUIRE(rows.contains(student));
      CHECK(ids.contains(rows.at(student)));
    }
    CHECK(sink_count(sink, "SELECT count(*) FROM queue_copies") == 600);
    auto truth = exam::open_rows(sink, exam::rows_table::submissions);
    auto copies = exam::open_rows(sink, exam::rows_table::copies);
    const auto report = reconcile(*truth, *copies,
                                  {.window = {clock::now() - 1h, clock::now() + 1h}, .same = exam::same_submission});
    CHECK(report.clean());
    CHECK(report.checked == 600);
  }
}

TEST_CASE("rollout on two servers: a retry on the other side of the share keeps one row, both receipts read it") {
  temp_dir dir;  // PostgreSQL only (exam.db has no alias table); this program's main requires it
  const auto sink = shared_postgres::get().fresh_database();
  io_thread io(2);
  nats_server nats(dir.path() / "nats");
  const auto url = nats.url() + "?ack_wait=2s";
  const auto exams = exam::catalog::from_json(exams_json(1h));
  const auto& open = *exams.find("open");
  std::string on_a, on_b;
  {
    // Server A already sends everyone to the queue, server B still to the direct path:
    // the first attempt is queued on A (no grader yet), its retry reaches B.
    rollout_paths a(io, sink, url, {.queue_percent = 100});
    rollout_paths b(io, sink, url, {.queue_percent = 0});
    auto first = send(a.routed, open, "crossing").answer.get();
    REQUIRE(first.what == exam::submit_outcome::kind::queued);
    auto retry = send(b.routed, open, "crossing").answer.get();
    REQUIRE(retry.what == exam::submit_outcome::kind::stored);
    on_a = first.receipt_id;
    on_b = retry.receipt_id;
    CHECK(on_a != on_b);  // what the pins cannot prevent across servers
  }
  CHECK(graded_without_dead_letters(io, url, sink, exams));
  CHECK(sink_count(sink, "SELECT count(*) FROM submissions") == 1);
  CHECK(sink_count(sink, "SELECT count(*) FROM queue_copies") == 1);
  // The direct row is kept; the queue's receipt reads it.
  auto reader = exam::open_reader(sink);
  const std::vector<std::string> ids{on_a, on_b};
  const auto records = reader->records(ids);
  REQUIRE(records.size() == 2);
  for (const auto& r : records) {
    REQUIRE(r.row);
    CHECK(r.row->receipt_id == on_b);
    CHECK(r.row->status == "graded");
  }
  auto truth = exam::open_rows(sink, exam::rows_table::submissions);
  auto copies = exam::open_rows(sink, exam::rows_table::copies);
  CHECK(reconcile(*truth, *copies, {.window = {clock::now() - 1h, clock::now() + 1h}, .same = exam::same_submission})
            .clean());
}

}  // namespace ingest::test
