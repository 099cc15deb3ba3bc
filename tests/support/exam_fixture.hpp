#pragma once
// The exam servers in the test process on a free port (the queue-based server on the
// memory queue or the embedded SQLite queue, the direct-insert server), with tokens,
// a client and row counts, for the HTTP contract tests.

#include <doctest/doctest.h>

#include <boost/beast/http/verb.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "app.hpp"
#include "cli.hpp"
#include "direct.hpp"
#include "direct_pg.hpp"
#include "grading.hpp"
#include "ingest/memory_queue.hpp"
#include "ingest/producer.hpp"
#include "jwt.hpp"
#include "pg_store.hpp"
#include "queue_backend.hpp"
#include "queue_url.hpp"
#include "support/http_client.hpp"
#include "support/test_support.hpp"

namespace ingest::test {

using verb = boost::beast::http::verb;

inline const std::string secret = "exam-test-secret";

inline std::string exams_json(std::chrono::seconds soon_deadline) {
  const auto now = clock::now();
  auto t = [](time_point x) { return format_time(x); };
  return R"({"exams":[
    {"id":"open","answer_key":{"q1":"B","q2":"D"},"opens_at":")" +
         t(now - 1h) + R"(","deadline":")" + t(now + 1h) +
         R"(","grace_seconds":0,"students":"any"},
    {"id":"two","answer_key":{"q1":"A","q2":"C"},"opens_at":")" +
         t(now - 1h) + R"(","deadline":")" + t(now + 1h) +
         R"(","students":["s1","s2"]},
    {"id":"closed","answer_key":{"q1":"A","q2":"C"},"opens_at":")" +
         t(now - 2h) + R"(","deadline":")" + t(now - 1h) +
         R"(","grace_seconds":60,"students":"any"},
    {"id":"later","answer_key":{"q1":"A","q2":"C"},"opens_at":")" +
         t(now + 1h) + R"(","deadline":")" + t(now + 2h) +
         R"(","students":"any"},
    {"id":"thirds","answer_key":{"q1":"A","q2":"B","q3":"C"},"opens_at":")" +
         t(now - 1h) + R"(","deadline":")" + t(now + 1h) + R"(","students":"any"},
    {"id":"soon","answer_key":{"q1":"A","q2":"C"},"opens_at":")" +
         t(now - 1h) + R"(","deadline":")" + t(now + soon_deadline) + R"(","grace_seconds":0,"students":"any"}]})";
}

inline std::string token(const std::string& sub, exam::role r = exam::role::student, std::chrono::seconds ttl = 1h,
                         const std::string& key = secret) {
  return exam::mint_token({sub, r, std::chrono::system_clock::now() + ttl}, key);
}

inline std::vector<std::pair<std::string, std::string>> bearer(const std::string& tok) {
  return {{"Authorization", "Bearer " + tok}};
}

inline std::vector<std::pair<std::string, std::string>> submit_headers(const std::string& tok, const std::string& key) {
  return {{"Authorization", "Bearer " + tok}, {"Content-Type", "application/json"}, {"Idempotency-Key", key}};
}

// Writes a submission without waiting for the answer (read it with `read()`).
inline void send_submission(http_client& c, const std::string& tok, const std::string& key) {
  const std::string body = R"({"answers":{"q1":"B"}})";
  c.send_raw("POST /v1/exams/open/submissions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok +
             "\r\nContent-Type: application/json\r\nIdempotency-Key: " + key +
             "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
}

enum class kind { queue_memory, queue_sqlite, direct, queue_postgres, direct_postgres };

inline bool is_direct(kind k) {
  return k == kind::direct || k == kind::direct_postgres;
}

// Makes an empty PostgreSQL database and returns its URL; set by the tests that run the
// PostgreSQL kinds (they link the PostgreSQL test server).
inline std::function<std::string()> make_postgres_database;

struct exam_fixture {
  explicit exam_fixture(kind k, exam::app_options overrides = {}, std::chrono::seconds soon = 1h,
                        bool with_grader = true, std::chrono::milliseconds in_flight_wait = 1000ms,
                        const std::string& queue_params = "",
                        http::server_options server_options = {.read_timeout = 2s},
                        std::chrono::milliseconds publish_timeout = 5s)
      : io(std::make_unique<io_thread>(2)),
        which(k),
        exams(exam::catalog::from_json(exams_json(soon))),
        sink(k == kind::queue_postgres || k == kind::direct_postgres ? make_postgres_database() : dir.file("exam.db")),
        reader(exam::open_reader(sink)),
        store(*reader) {
    if (k == kind::direct) {
      backend = std::make_unique<exam::direct_backend>(sink, exam::direct_settings{.pool_size = 2});
    } else if (k == kind::direct_postgres) {
      backend = std::make_unique<exam::pg_direct_backend>(sink, exam::direct_settings{.pool_size = 4});
    } else {
      if (k == kind::queue_memory) {
        auto q = std::make_unique<memory_queue>(io->executor(), memory_queue_options{.quiet = true});
        memory = q.get();
        queue = std::move(q);
      } else {  // the embedded queue (also for the PostgreSQL sink)
        queue = exam::open_queue("sqlite://" + dir.file("queue.db") + queue_params, io->executor());
      }
      // Signed receipts, as exam_server makes them.
      if (!overrides.receipts) overrides.receipts = exam::make_receipt_signer({}, secret);
      queue->sign_receipts(overrides.receipts);
      metrics = std::make_shared<pipeline_metrics>();
      producer = std::make_unique<ingest::producer>(
          *queue, producer_options{.max_in_flight = 64, .publish_timeout = publish_timeout, .metrics = metrics});
      auto qb = std::make_unique<exam::queue_backend>(*queue, *producer, store, metrics,
                                                      exam::queue_backend_options{.in_flight_wait = in_flight_wait});
      qb->start();
      backend = std::move(qb);
      if (with_grader) {
        grader = std::make_unique<exam::grading_consumer>(
            *queue, sink, exams, exam::consumer_settings{.max_batch = 50, .linger = 2ms}, metrics);
        grader->start();
      }
    }
    overrides.jwt_secret = secret;
    api = std::make_unique<exam::app>(exams, store, *backend, overrides);
    server = std::make_unique<http::server>(
        io->context(), std::move(server_options),
        [this](auto req, const auto& info, auto respond) { api->handle(std::move(req), info, std::move(respond)); });
    server->start();
  }

  ~exam_fixture() {
    server->stop();
    eventually([&] { return server->stats().connections_open == 0; }, 5s);
    if (auto* qb = dynamic_cast<exam::queue_backend*>(backend.get())) qb->stop();
    if (auto* db = dynamic_cast<exam::direct_backend*>(backend.get())) db->stop();
    if (auto* db = dynamic_cast<exam::pg_direct_backend*>(backend.get())) db->stop();
    if (grader) grader->drain();
    if (queue) queue->close();
    io->join();  // no handler runs after this; the io_context itself goes last
  }

  http_client client() { return http_client(server->port()); }
  int new_status() const { return is_direct(which) ? 201 : 202; }

  http_result submit(http_client& c, const std::string& exam_id, const std::string& tok, const std::string& key,
                     const std::string& body = R"({"answers":{"q1":"B","q2":"A"}})") {
    return c.call(verb::post, "/v1/exams/" + exam_id + "/submissions", submit_headers(tok, key), body);
  }

  // Rows in exam.db (or PostgreSQL).
  std::int64_t rows(const std::string& where = "1") {
    if (exam::is_postgres_url(sink)) {
      postgres::connection db(sink);
      return db.exec("SELECT count(*) FROM submissions WHERE " + (where == "1" ? std::string("true") : where))
          .integer(0, 0);
    }
    return dynamic_cast<exam::store_pool&>(store).with([&](exam::store_reader& r) {
      ingest::sqlite::statement s(r.db(), "SELECT count(*) FROM submissions WHERE " + where);
      s.step();
      return s.column_int(0);
    });
  }

  // Waits until the graders wrote `n` rows (the queue-based server answers before that).
  bool written(std::int64_t n) {
    return eventually([&] { return rows() >= n; }, 10s);
  }

  std::unique_ptr<io_thread> io;  // destroyed last
  kind which;
  temp_dir dir;
  exam::catalog exams;
  std::string sink;  // exam.db, or a PostgreSQL URL
  std::unique_ptr<exam::submission_reader> reader;
  exam::submission_reader& store;
  std::unique_ptr<durable_queue> queue;
  memory_queue* memory = nullptr;
  std::shared_ptr<pipeline_metrics> metrics;
  std::unique_ptr<ingest::producer> producer;
  std::unique_ptr<exam::submit_backend> backend;
  std::unique_ptr<exam::grading_consumer> grader;
  std::unique_ptr<exam::app> api;
  std::unique_ptr<http::server> server;
};

inline void check_error(const http_result& r, int status, const std::string& code) {
  CHECK(r.status == status);
  CHECK(r.field("error") == code);
  CHECK_FALSE(r.field("message").empty());
}

}  // namespace ingest::test
