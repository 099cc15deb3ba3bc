// exam_worker reconcile's reading: the submissions rows against their queue_copies,
// 100,000 of each, through exam::open_rows and ingest::reconcile, on exam.db (a real
// file) and on PostgreSQL 15 (started for the run), at 500 and 5,000 rows a page.
// Reports rows compared per second (each side's rows read once, each looked up in the
// other once).
//
//   build/benchmarks/reconcile_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>

#include "ingest/fingerprint.hpp"
#include "ingest/sqlite/database.hpp"
#include "ledger.hpp"
#include "pg_store.hpp"
#include "postgres_bench_server.hpp"
#include "reconcile_sources.hpp"
#include "store.hpp"

namespace {

using server = ingest::bench::postgres_bench_server;
constexpr int rows = 100'000;

// One submission's row and its copy, as the direct path and the graders write them.
std::pair<exam::stored_submission, exam::queue_copy> pair_of(int i, ingest::time_point at) {
  exam::stored_submission r;
  r.receipt_id = "r" + std::to_string(1'000'000 + i);
  r.idempotency_key = "k" + std::to_string(i);
  r.exam_id = "algebra-midterm";
  r.student_id = "s" + std::to_string(1'000'000 + i);
  r.accepted_at = ingest::format_time(at);
  r.answers_json = R"({"q1":"B"})";
  r.fingerprint = ingest::fingerprint(r.idempotency_key);
  r.status = "graded";
  r.score = 20;
  r.graded_at = r.accepted_at;
  exam::queue_copy c{r.exam_id, r.student_id, r.idempotency_key, "shadow", "q" + r.receipt_id, r.receipt_id,
                     r.accepted_at, r.accepted_at, r.fingerprint, r.score, r.accepted_at};
  return {r, c};
}

const std::string& sqlite_file() {
  static ingest::bench::scratch_dir dir;
  static const std::string path = [] {
    const auto p = dir.file("exam.db");
    ingest::sqlite::database db(p);
    exam::create_schema(db);
    exam::create_copies_table(db);
    exam::store_writer writer(db);
    exam::copy_writer copies(db);
    ingest::sqlite::transaction tx(db);
    const auto start = ingest::clock::now() - std::chrono::hours(2);
    for (int i = 0; i < rows; ++i) {
      const auto [r, c] = pair_of(i, start + std::chrono::milliseconds(50 * i));
      writer.insert(r);
      copies.insert(c);
    }
    tx.commit();
    return p;
  }();
  return path;
}

const std::string& postgres_database() {
  static const std::string url = [] {
    ingest::postgres::connection admin(server::get().server.url());
    const auto name = server::get().fresh_name("reconcile_");
    admin.exec("CREATE DATABASE " + name);
    const auto u = server::get().server.url(name);
    ingest::postgres::connection db(u);
    exam::migrate_schema(db);
    const auto start = ingest::clock::now() - std::chrono::hours(2);
    for (int from = 0; from < rows; from += 5'000) {
      std::vector<exam::stored_submission> batch;
      std::vector<exam::queue_copy> copies;
      for (int i = from; i < from + 5'000; ++i) {
        auto [r, c] = pair_of(i, start + std::chrono::milliseconds(50 * i));
        batch.push_back(std::move(r));
        copies.push_back(std::move(c));
      }
      ingest::postgres::transaction tx(db);
      exam::write_graded(db, batch);
      exam::write_copies(db, copies);
      tx.commit();
    }
    db.exec("ANALYZE");
    return u;
  }();
  return url;
}

void run(benchmark::State& state, const std::string& sink) {
  const auto page = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    auto truth = exam::open_rows(sink, exam::rows_table::submissions);
    auto copy = exam::open_rows(sink, exam::rows_table::copies);
    const auto r = ingest::reconcile(*truth, *copy,
                                     {.window = {ingest::clock::now() - std::chrono::hours(3), ingest::clock::now()},
                                      .page_size = page,
                                      .same = exam::same_submission});
    if (!r.clean() || r.checked != rows) state.SkipWithError("the sides do not match");
  }
  state.SetItemsProcessed(state.iterations() * rows);
}

void BM_reconcile_sqlite(benchmark::State& state) {
  run(state, sqlite_file());
}
BENCHMARK(BM_reconcile_sqlite)->Arg(500)->Arg(5000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_reconcile_postgres(benchmark::State& state) {
  if (!ingest::test::postgres_server::available()) return state.SkipWithError("PostgreSQL is not installed");
  run(state, postgres_database());
}
BENCHMARK(BM_reconcile_postgres)->Arg(500)->Arg(5000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
