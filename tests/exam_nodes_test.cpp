// The exam system across servers: two exam servers on one NATS stream (or one SQS
// queue), graders in PostgreSQL, in this process. Every server answers for every receipt the system
// issued (received, processing, graded, dead_lettered for teachers), and the same key
// gets the same receipt on either server.

#include <doctest/doctest.h>

#include <atomic>
#include <sstream>
#include <thread>

#include "dlq.hpp"
#include "support/exam_fixture.hpp"
#include "support/fauxqs.hpp"
#include "support/nats_server.hpp"
#include "support/postgres_server.hpp"

using namespace ingest;
using namespace ingest::test;
using namespace std::chrono_literals;

namespace {


// One exam server as a process of the deployment would run it: its own connection to
// the stream, its own producer, the shared database, receipts signed with the key every
// server derives from the shared JWT secret.
struct node {
  node(io_thread& io, const std::string& queue_url, const std::string& sink, const exam::catalog& exams)
      : queue(exam::open_queue(queue_url, io.executor())),
        reader(exam::open_reader(sink)),
        producer(*queue, producer_options{.max_in_flight = 64, .default_subject = "exam"}),
        backend(*queue, producer, *reader, nullptr) {
    // As exam_server sets it on a broker: no graded answers kept in memory.
    exam::app_options options{
        .jwt_secret = secret, .receipts = exam::make_receipt_signer({}, secret), .graded_cache = 0};
    queue->sign_receipts(options.receipts);
    backend.start();
    api = std::make_unique<exam::app>(exams, *reader, backend, options);
    server = std::make_unique<http::server>(
        io.context(), http::server_options{.read_timeout = 30s},
        [this](auto req, const auto& info, auto respond) { api->handle(std::move(req), info, std::move(respond)); });
    server->start();
  }
  void stop() {
    server->stop();
    eventually([&] { return server->stats().connections_open == 0; }, 5s);
    backend.stop();
    queue->close();
  }
  http_client client() { return http_client(server->port()); }

  std::unique_ptr<durable_queue> queue;
  std::unique_ptr<exam::submission_reader> reader;
  ingest::producer producer;
  exam::queue_backend backend;
  std::unique_ptr<exam::app> api;
  std::unique_ptr<http::server> server;
};

// A grader process: its own connection to the stream, the PostgreSQL sink.
struct grader {
  grader(io_thread& io, const std::string& queue_url, const std::string& sink, const exam::catalog& exams)
      : queue(exam::open_queue(queue_url, io.executor())),
        consumer(*queue, sink, exams, exam::consumer_settings{.max_batch = 50, .linger = 2ms},
                 std::make_shared<pipeline_metrics>()) {
    consumer.start();
  }
  ~grader() {
    consumer.drain();
    queue->close();
  }
  std::unique_ptr<durable_queue> queue;
  exam::grading_consumer consumer;
};

struct deployment {
  // On NATS unless `queue` names another broker.
  explicit deployment(const std::string& queue = {})
      : nats(dir.path() / "nats"),
        queue_url(queue.empty() ? nats.url() + "?ack_wait=2s" : queue),
        sink(shared_postgres::get().fresh_database()),
        exams(exam::catalog::from_json(exams_json(1h))),
        a(std::make_unique<node>(*io, queue_url, sink, exams)),
        b(std::make_unique<node>(*io, queue_url, sink, exams)) {}
  ~deployment() {
    grading.reset();
    a->stop();
    b->stop();
    io->join();
  }
  void start_grader(const exam::catalog& with) { grading = std::make_unique<grader>(*io, queue_url, sink, with); }

  std::unique_ptr<io_thread> io = std::make_unique<io_thread>(2);
  temp_dir dir;
  nats_server nats;
  std::string queue_url;
  std::string sink;
  exam::catalog exams;
  std::unique_ptr<node> a, b;
  std::unique_ptr<grader> grading;
};

http_result submit(http_client& c, const std::string& tok, const std::string& key,
                   const std::string& body = R"({"answers":{"q1":"B","q2":"A"}})") {
  return c.call(verb::post, "/v1/exams/open/submissions", submit_headers(tok, key), body);
}

std::string status_of(http_client& c, const std::string& tok, const std::string& id) {
  return c.call(verb::get, "/v1/submissions/" + id, bearer(tok)).field("status");
}

}  // namespace

TEST_CASE(
    "a receipt from one server is answered by the other before it is graded; the same key gets the same receipt") {
  deployment d;
  auto on_a = d.a->client();
  auto on_b = d.b->client();
  const auto s1 = token("s1");
  const auto teacher = token("t1", exam::role::teacher);

  const auto first = submit(on_a, s1, "k-1");
  REQUIRE(first.status == 202);
  const auto id = first.field("receipt_id");

  // No grader yet: the message is only in the stream, which cannot be searched by id.
  const auto seen = on_b.call(verb::get, "/v1/submissions/" + id, bearer(s1));
  CHECK(seen.status == 200);
  CHECK(seen.field("status") == "received");
  CHECK(seen.field("accepted_at") == first.field("accepted_at"));
  CHECK(seen.field("exam_id") == "open");
  CHECK(seen.field("student_id") == "s1");
  CHECK(status_of(on_b, teacher, id) == "received");
  // Someone else's receipt, and receipts the system never issued, are unknown.
  CHECK(on_b.call(verb::get, "/v1/submissions/" + id, bearer(token("s2"))).status == 404);
  auto forged = id;
  forged[forged.size() - 3] = forged[forged.size() - 3] == 'A' ? 'B' : 'A';
  CHECK(on_b.call(verb::get, "/v1/submissions/" + forged, bearer(s1)).status == 404);
  const auto other_key = ingest::receipt_signer({"not-the-servers-key"}).sign(clock::now(), R"(["open","s1"])");
  CHECK(on_b.call(verb::get, "/v1/submissions/" + *other_key, bearer(s1)).status == 404);

  // The student's retry lands on the other server: the same receipt and accept time.
  const auto retry = submit(on_b, s1, "k-1");
  CHECK((retry.status == 200 || retry.status == 202));
  CHECK(retry.field("receipt_id") == id);
  CHECK(retry.field("accepted_at") == first.field("accepted_at"));
  check_error(submit(on_b, s1, "k-1", R"({"answers":{"q1":"C"}})"), 422, "idempotency_key_reused");

  d.start_grader(d.exams);
  REQUIRE(eventually([&] { return status_of(on_b, s1, id) == "graded"; }));
  const auto graded = on_a.call(verb::get, "/v1/submissions/" + id, bearer(s1));
  CHECK(graded.field("status") == "graded");
  CHECK(graded.field("accepted_at") == first.field("accepted_at"));
  postgres::connection db(d.sink);
  CHECK(db.exec("SELECT count(*) FROM submissions").integer(0, 0) == 1);
}

TEST_CASE("processing while a grader holds it, on every server") {
  deployment d;
  auto on_a = d.a->client();
  auto on_b = d.b->client();
  const auto s1 = token("s1");
  const auto r = submit(on_a, s1, "k-held");
  REQUIRE(r.status == 202);
  const auto id = r.field("receipt_id");
  // The grader's transaction waits behind this lock, with the batch in hand.
  postgres::connection blocker(d.sink);
  postgres::transaction hold(blocker);
  blocker.exec("LOCK TABLE submissions IN EXCLUSIVE MODE");
  d.start_grader(d.exams);
  CHECK(eventually([&] { return status_of(on_b, s1, id) == "processing"; }));
  CHECK(status_of(on_a, s1, id) == "processing");
  hold.commit();
  CHECK(eventually([&] { return status_of(on_b, s1, id) == "graded"; }));
}

TEST_CASE("a dead letter: teachers on every server see why, its student sees received; replayed from another server") {
  deployment d;
  auto on_a = d.a->client();
  auto on_b = d.b->client();
  const auto s1 = token("s1");
  const auto teacher = token("t1", exam::role::teacher);
  const auto r = submit(on_a, s1, "k-dead");
  REQUIRE(r.status == 202);
  const auto id = r.field("receipt_id");
  const auto other_id = submit(on_b, s1, "k-dead-2").field("receipt_id");
  // A grader that does not know the exam dead-letters the submissions at once.
  {
    auto other = exam::catalog::from_json(R"({"exams":[{"id":"elsewhere","answer_key":{"q1":"A"},
      "opens_at":"2020-01-01T00:00:00Z","deadline":"2099-01-01T00:00:00Z","students":"any"}]})");
    d.start_grader(other);
    REQUIRE(eventually([&] { return status_of(on_b, teacher, id) == "dead_lettered"; }));
    REQUIRE(eventually([&] { return status_of(on_b, teacher, other_id) == "dead_lettered"; }));
    d.grading.reset();
  }
  const auto seen = on_b.call(verb::get, "/v1/submissions/" + id, bearer(teacher));
  CHECK(seen.field("reason") == "permanent_failure");
  CHECK(seen.field("accepted_at") == r.field("accepted_at"));
  CHECK(status_of(on_a, teacher, id) == "dead_lettered");
  CHECK(status_of(on_a, s1, id) == "received");  // never "failed" to a student

  const auto replay_path = "/v1/exams/open/dead-letters/" + id + "/replay";
  check_error(on_b.call(verb::post, replay_path, bearer(s1)), 403, "forbidden");
  check_error(on_b.call(verb::post, "/v1/exams/two/dead-letters/" + id + "/replay", bearer(teacher)), 404, "not_found");
  check_error(on_b.call(verb::get, replay_path, bearer(teacher)), 405, "method_not_allowed");
  const auto replayed = on_b.call(verb::post, replay_path, bearer(teacher));
  CHECK(replayed.status == 202);
  CHECK(status_of(on_a, teacher, id) == "received");
  check_error(on_b.call(verb::post, replay_path, bearer(teacher)), 404, "not_found");  // no longer a dead letter
  // The other one with `exam_worker dlq replay`, given the PostgreSQL sink: its note goes too.
  {
    std::ostringstream out, err;
    exam::dlq_request replay{.action = "replay", .receipts = {other_id}};
    CHECK(exam::run_dlq(*d.a->queue, replay, out, err, d.a->reader.get()) == 0);
    CHECK(out.str().find("replayed 1") != std::string::npos);
  }
  CHECK(status_of(on_b, teacher, other_id) == "received");
  d.start_grader(d.exams);
  CHECK(eventually([&] { return status_of(on_a, s1, id) == "graded"; }));
  CHECK(eventually([&] { return status_of(on_a, s1, other_id) == "graded"; }));
}

TEST_CASE("SQS: the same key on two servers gets two receipts; the copy accepted first is kept, both read its status") {
  fauxqs sqs;
  deployment d("sqs+" + sqs.endpoint() + "/000000000000/exam-nodes");
  auto on_a = d.a->client();
  auto on_b = d.b->client();
  const auto s1 = token("s1");
  const auto first = submit(on_a, s1, "k-twice");
  REQUIRE(first.status == 202);
  const auto id1 = first.field("receipt_id");
  // The first copy is held (leased by another consumer), so that the later copy is
  // graded first: the harder order for keeping the earliest.
  auto holder = exam::open_queue(d.queue_url, d.io->executor());
  auto [fec, held] = fetch(*holder, 1, 5s);
  REQUIRE(held.size() == 1);
  CHECK(held[0].message.receipt_id == id1);
  // SQS cannot say which message a key belongs to: the other server issues its own receipt.
  const auto second = submit(on_b, s1, "k-twice");
  REQUIRE(second.status == 202);
  const auto id2 = second.field("receipt_id");
  CHECK(id2 != id1);
  CHECK(second.field("accepted_at") >= first.field("accepted_at"));
  d.start_grader(d.exams);
  REQUIRE(eventually([&] { return status_of(on_a, s1, id2) == "graded"; }));
  // The held copy comes back and is recognised as the earlier one.
  REQUIRE_FALSE(settle(*holder, {{held[0].token, settle_action::retry, 0ms, {}, "released by the test"}}));
  postgres::connection db(d.sink);
  REQUIRE(
      eventually([&] { return db.exec("SELECT receipt_id FROM submissions").text(0, 0) == std::string_view(id1); }));
  CHECK(db.exec("SELECT count(*) FROM submissions").integer(0, 0) == 1);
  for (auto* c : {&on_a, &on_b}) {
    for (const auto& id : {id1, id2}) {
      const auto seen = c->call(verb::get, "/v1/submissions/" + id, bearer(s1));
      CHECK(seen.status == 200);
      CHECK(seen.field("status") == "graded");
      CHECK(seen.field("receipt_id") == id1);  // the kept submission
      CHECK(seen.field("accepted_at") == first.field("accepted_at"));
    }
  }
  // A retry of the key now gets the kept receipt from either server.
  CHECK(submit(on_b, s1, "k-twice").field("receipt_id") == id1);
  holder->close();
}

TEST_CASE("the exam schema migrates from version 1 keeping its rows, once when programs start together") {
  const auto url = shared_postgres::get().fresh_database();
  {
    std::vector<std::thread> starting;
    std::atomic<int> from_zero{0};
    for (int i = 0; i < 4; ++i)
      starting.emplace_back([&] {
        postgres::connection db(url);
        if (exam::migrate_schema(db) == 0) ++from_zero;
      });
    for (auto& t : starting) t.join();
    CHECK(from_zero.load() == 1);
  }
  postgres::connection db(url);
  // As a version-1 program left it: without the later tables, one row in.
  db.exec("DROP TABLE exam_in_hand, exam_dead_letters, exam_receipt_aliases, queue_copies");
  db.exec("ALTER TABLE submissions DROP COLUMN attachments_json");
  db.exec("UPDATE exam_schema_version SET version = 1");
  db.exec(
      "INSERT INTO submissions VALUES ('r1', 'k', 'open', 's1', '2026-01-01T00:00:00.000Z', '{}', 'f', "
      "'graded', 1, '2026-01-01T00:00:01.000Z')");
  CHECK(exam::migrate_schema(db) == 1);
  CHECK(db.exec("SELECT version FROM exam_schema_version").integer(0, 0) == exam::schema_version);
  CHECK(db.exec("SELECT count(*) FROM submissions").integer(0, 0) == 1);
  CHECK(db.exec("SELECT count(*) FROM exam_in_hand").integer(0, 0) == 0);
  CHECK(db.exec("SELECT count(*) FROM exam_receipt_aliases").integer(0, 0) == 0);
  CHECK(db.exec("SELECT count(*) FROM queue_copies").integer(0, 0) == 0);
  CHECK(exam::pg_reader(url, 1).by_receipt("r1").has_value());
  CHECK(db.exec("SELECT count(*) FROM submissions WHERE attachments_json IS NULL").integer(0, 0) == 1);
  // A database from a newer program is refused, not written.
  db.exec("UPDATE exam_schema_version SET version = " + std::to_string(exam::schema_version + 1));
  CHECK_THROWS(exam::migrate_schema(db));
}

TEST_CASE("the records of many receipts in one query say what one query per receipt says") {
  const auto url = shared_postgres::get().fresh_database();
  exam::pg_reader reader(url, 1);
  postgres::connection db(url);
  auto row = [&](const std::string& id, const std::string& key) {
    db.exec(
        "INSERT INTO submissions VALUES ($1, $2, 'open', 's1', '2026-01-01T00:00:00.000Z', '{}', 'f', 'graded', "
        "0.5, '2026-01-01T00:00:01.000Z')",
        {id, key});
  };
  auto dead = [&](const std::string& id) {
    db.exec(
        "INSERT INTO exam_dead_letters VALUES ($1, 'open', 's2', $1, '2026-01-01T00:00:00.000Z', 'poison', "
        "'bad', 5, '2026-01-01T00:01:00.000Z')",
        {id});
  };
  row("graded", "k1");
  row("quote\"back\\slash,{}", "k2");
  db.exec("UPDATE submissions SET attachments_json = '[{\"key\":\"exams/open/s1/n-t\"}]' WHERE receipt_id = 'graded'");
  db.exec("INSERT INTO exam_receipt_aliases VALUES ('not-kept', 'graded')");
  dead("dead");
  dead("dead-and-held");
  dead("graded");  // notes left behind by a copy that was graded after all: the row wins
  db.exec(
      "INSERT INTO exam_in_hand VALUES ('held', now() + interval '1 minute'), ('dead-and-held', now() + interval "
      "'1 minute'), ('lease-over', now() - interval '1 second'), ('graded', now() + interval '1 minute')");
  const std::vector<std::string> ids = {"graded",  "not-kept",      "dead",
                                        "held",    "dead-and-held", "lease-over",
                                        "unknown", "graded",        "quote\"back\\slash,{}"};
  const auto batched = reader.records(ids);
  const auto one_by_one = reader.submission_reader::records(ids);
  REQUIRE(batched.size() == ids.size());
  REQUIRE(one_by_one.size() == ids.size());
  auto describe = [](const exam::receipt_record& r) {
    std::ostringstream out;
    if (r.row)
      out << "row " << r.row->receipt_id << " " << r.row->status << " " << r.row->score.value_or(-1) << " "
          << r.row->attachments_json;
    if (r.note)
      out << "note " << r.note->state << " " << r.note->exam_id << " " << r.note->student_id << " " << r.note->reason
          << " " << r.note->attempts << " " << r.note->dead_lettered_at;
    return out.str();
  };
  for (std::size_t i = 0; i < ids.size(); ++i) {
    CAPTURE(ids[i]);
    CHECK(describe(batched[i]) == describe(one_by_one[i]));
  }
  CHECK(describe(batched[0]) == R"(row graded graded 0.5 [{"key":"exams/open/s1/n-t"}])");
  CHECK(describe(batched[1]) == R"(row graded graded 0.5 [{"key":"exams/open/s1/n-t"}])");  // an alias reads the kept row
  CHECK(describe(batched[2]) == "note dead_lettered open s2 poison 5 2026-01-01T00:01:00.000Z");
  CHECK(describe(batched[3]) == "note processing    0 ");
  CHECK(describe(batched[4]) == describe(batched[2]));  // a dead letter wins over a grader's hold
  CHECK(describe(batched[5]).empty());                  // its lease ran out
  CHECK(describe(batched[6]).empty());
  CHECK(describe(batched[7]) == describe(batched[0]));
  CHECK(batched[8].row.has_value());
}

TEST_CASE("a graded row keeps the files its submission names, written and read back on PostgreSQL") {
  const auto url = shared_postgres::get().fresh_database();
  postgres::connection db(url);
  exam::migrate_schema(db);
  exam::exam_info info;
  info.id = "open";
  info.answer_key = {{"q1", "B"}};
  exam::submission with_files{"open", "s1", "k1", {{"q1", "B"}}};
  with_files.attachments = {{"exams/open/s1/n1-t1", std::string(64, 'a'), 12, "essay \"1\".pdf"},
                            {"exams/open/s1/n2-t2", std::string(64, 'b'), 3, ""}};
  const exam::submission without{"open", "s2", "k2", {{"q1", "A"}}};
  const auto now = ingest::clock::now();
  db.exec("BEGIN");
  exam::write_graded(db, {exam::graded_row(info, with_files, "r1", now, "f1", now),
                          exam::graded_row(info, without, "r2", now, "f2", now)});
  db.exec("COMMIT");
  exam::pg_reader reader(url, 1);
  const auto one = reader.by_receipt("r1");
  REQUIRE(one.has_value());
  CHECK(one->attachments_json == with_files.attachments_json());
  const auto back = exam::submission::from_json(R"({"exam_id":"open","student_id":"s1","idempotency_key":"k1",)"
                                                R"("answers":{"q1":"B"},"attachments":)" +
                                                one->attachments_json + "}");
  REQUIRE(back.has_value());
  CHECK(back->attachments == with_files.attachments);
  CHECK(reader.by_receipt("r2")->attachments_json.empty());
  CHECK(db.exec("SELECT count(*) FROM submissions WHERE attachments_json IS NULL").integer(0, 0) == 1);
  const auto listed = reader.list("open", "", 10);
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].attachments_json == one->attachments_json);
}
