#pragma once
// The exam database (exam.db or PostgreSQL) as the exam tests read it: SQL on a
// connection of its own, and graders run until the queue is empty.

#include <memory>
#include <string>

#include "grading.hpp"
#include "ingest/postgres/connection.hpp"
#include "ingest/sqlite/database.hpp"
#include "pg_store.hpp"
#include "support/postgres_server.hpp"
#include "support/test_support.hpp"

namespace ingest::test {

// The sinks an exam test runs on: exam.db in `dir`, and a fresh PostgreSQL database
// when PostgreSQL is installed.
inline std::vector<std::string> exam_sinks(const temp_dir& dir) {
  std::vector<std::string> out{(dir.path() / "exam.db").string()};
  if (postgres_server::available()) out.push_back(shared_postgres::get().fresh_database());
  return out;
}

// The single number `sql` selects from `sink`.
inline std::int64_t sink_count(const std::string& sink, const std::string& sql) {
  if (exam::is_postgres_url(sink)) return postgres::connection(sink).exec(sql).integer(0, 0);
  sqlite::database db(sink);
  sqlite::statement s(db, sql);
  if (!s.step()) throw std::runtime_error("no row: " + sql);
  return s.column_int(0);
}

// Runs `sql` on `sink`.
inline void sink_exec(const std::string& sink, const std::string& sql) {
  if (exam::is_postgres_url(sink))
    postgres::connection(sink).exec(sql);
  else
    sqlite::database(sink).exec(sql);
}

// Graders on `q` writing `sink` until nothing is pending (30 s at most), as exam_worker
// runs them; false when the queue did not empty in time.
inline bool grade_all(durable_queue& q, const std::string& sink, const exam::catalog& exams) {
  exam::grading_consumer graders(q, sink, exams, {.max_batch = 64, .linger = std::chrono::milliseconds(2)},
                                 std::make_shared<pipeline_metrics>());
  graders.start();
  const bool empty = eventually(
      [&] {
        capture<queue_stats> c;
        q.async_stats(c.handler());
        const auto [ec, st] = c.get();
        return !ec && st.pending == 0;
      },
      std::chrono::seconds(30));
  graders.drain();
  return empty;
}

}  // namespace ingest::test
