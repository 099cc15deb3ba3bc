// PostgreSQL sink: rows per second written through ingest::postgres::transactional_handler
// (idempotency keys and rows in one transaction per batch of 1,000, the exam graders'
// keys: `<exam>/<student>/<browser UUIDv4>`), against a raw batched insert of the same
// rows (the same writer: rows as text array literals or as binary arrays), the same
// pair on the exam system's own tables and writer, and the same work done one
// statement per item. The benchmark starts its
// own PostgreSQL 15 (initdb in a scratch directory, default settings: fsync on,
// synchronous_commit on) on a free loopback port, on the same cores.
//
//   build/benchmarks/postgres_bench --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <type_traits>

#include "postgres_bench_server.hpp"
#include "ingest/batching_consumer.hpp"
#include "ingest/fingerprint.hpp"
#include "ingest/postgres/transactional_handler.hpp"
#include "ingest/envelope.hpp"
#include "pg_store.hpp"

namespace {

using ingest::bench::uuid_v4;
namespace pg = ingest::postgres;

// One batch of deliveries as the exam graders get them.
std::vector<ingest::delivery> make_batch(std::size_t n, std::mt19937_64& rng) {
  std::vector<ingest::delivery> out(n);
  for (auto& d : out) {
    const auto student = "s" + std::to_string(100000 + rng() % 900000);
    d.message.idempotency_key = "algebra-midterm/" + student + "/" + uuid_v4(rng);
    d.message.receipt_id = ingest::make_receipt_id();
    d.message.subject = student;
    d.message.payload = R"({"answers":{"q1":"42","q2":"x = 3","q3":"7/12"},"student":")" + student + "\"}";
    d.message.fingerprint = ingest::fingerprint(d.message.payload);
    d.message.accepted_at = ingest::clock::now();
  }
  return out;
}

using server = ingest::bench::postgres_bench_server;

// A fresh submissions table (and idempotency table) per benchmark run.
std::string fresh_table(pg::connection& db) {
  const auto name = server::get().fresh_name("submissions_");
  db.exec("CREATE TABLE " + name +
          "(receipt_id text PRIMARY KEY, idempotency_key text NOT NULL, exam_id text NOT NULL,"
          " student_id text NOT NULL, answers jsonb NOT NULL, accepted_at bigint NOT NULL)");
  return name;
}

// Runs `write(items)` on one batch per iteration, each in its own transaction.
template <class Write>
void run_raw(benchmark::State& state, pg::connection& db, Write write) {
  const auto per_tx = static_cast<std::size_t>(state.range(0));
  std::mt19937_64 rng(7);
  for (auto _ : state) {
    state.PauseTiming();
    const auto batch = make_batch(per_tx, rng);
    std::vector<const ingest::delivery*> items;
    for (const auto& d : batch) items.push_back(&d);
    state.ResumeTiming();
    pg::transaction tx(db);
    write(items);
    tx.commit();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * per_tx));
}

// Runs the handler on one batch per iteration.
void run_handler(benchmark::State& state, const ingest::batch_handler& handler) {
  const auto per_tx = static_cast<std::size_t>(state.range(0));
  std::mt19937_64 rng(7);
  for (auto _ : state) {
    state.PauseTiming();
    ingest::batch b(make_batch(per_tx, rng));
    state.ResumeTiming();
    handler(b);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * per_tx));
}


// The rows travel as arrays, one parameter per column: as text literals
// (`array_literal`) or in binary format (`text_array`), per the benchmark's second
// argument.
enum arrays { literal = 0, binary = 1 };

std::string insert_sql(const std::string& table) {
  return "INSERT INTO " + table +
         "(receipt_id, idempotency_key, exam_id, student_id, answers, accepted_at)"
         " SELECT r, k, 'algebra-midterm', s, a::jsonb, t::bigint"
         " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(r, k, s, a, t)";
}

template <class Array>
void write_rows_as(pg::connection& db, const std::string& sql, std::span<const ingest::delivery* const> items) {
  Array ids, keys, students, answers, times;
  for (const auto* d : items) {
    ids.push_back(d->message.receipt_id);
    keys.push_back(d->message.idempotency_key);
    students.push_back(d->message.subject);
    answers.push_back(d->message.payload);
    times.push_back(std::to_string(d->message.accepted_at.time_since_epoch().count()));
  }
  if constexpr (std::is_same_v<Array, pg::text_array>)
    db.exec(sql, {pg::param::binary(ids.bytes()), pg::param::binary(keys.bytes()), pg::param::binary(students.bytes()),
                  pg::param::binary(answers.bytes()), pg::param::binary(times.bytes())});
  else
    db.exec(sql, {ids.str(), keys.str(), students.str(), answers.str(), times.str()});
}

void write_rows(arrays how, pg::connection& db, const std::string& sql, std::span<const ingest::delivery* const> items) {
  if (how == binary)
    write_rows_as<pg::text_array>(db, sql, items);
  else
    write_rows_as<pg::array_literal>(db, sql, items);
}

// The same rows, one plain batched INSERT per transaction: the database's own rate.
void BM_pg_raw_batched_rows(benchmark::State& state) {
  const auto how = static_cast<arrays>(state.range(1));
  pg::connection db(server::get().server.url());
  const auto sql = insert_sql(fresh_table(db));
  run_raw(state, db, [&](const auto& items) { write_rows(how, db, sql, items); });
}

// The library: keys + rows in one transaction, keys in one statement, rows in one.
void BM_pg_handler(benchmark::State& state) {
  const auto how = static_cast<arrays>(state.range(1));
  pg::connection setup(server::get().server.url());
  const auto table = fresh_table(setup);
  const auto sql = insert_sql(table);
  pg::connection_pool pool(server::get().server.url(), {.size = 1});
  run_handler(state, pg::transactional_handler(
                         pool, [&](pg::connection& db, auto items) { write_rows(how, db, sql, items); },
                         {.keys = {.table = table + "_keys"}}));
}

// The exam system's own rows: its `submissions` table (three unique or secondary
// indexes, one on the client keys) and its `exam_stats` hot row, written by the graders'
// writer, on a fresh database per run.
struct exam_database {
  exam_database() {
    pg::connection admin(server::get().server.url());
    const auto name = server::get().fresh_name("exam_");
    admin.exec("CREATE DATABASE " + name);
    url = server::get().server.url(name);
    pg::connection db(url);
    exam::migrate_schema(db);
  }
  std::string url;
};

std::vector<exam::stored_submission> exam_rows(std::span<const ingest::delivery* const> items) {
  std::vector<exam::stored_submission> rows;
  const auto now = ingest::format_time(ingest::clock::now());
  for (const auto* d : items)
    rows.push_back({d->message.receipt_id, d->message.idempotency_key, "algebra-midterm", d->message.subject,
                    ingest::format_time(d->message.accepted_at), d->message.payload, d->message.fingerprint, "graded",
                    2.0, now});
  return rows;
}

void BM_pg_exam_raw(benchmark::State& state) {
  exam_database where;
  pg::connection db(where.url);
  run_raw(state, db, [&](const auto& items) { exam::write_graded(db, exam_rows(items)); });
}

void BM_pg_exam_handler(benchmark::State& state) {
  exam_database where;
  pg::connection_pool pool(where.url, {.size = 1});
  run_handler(state, pg::transactional_handler(pool, [](pg::connection& db, auto items) {
                exam::write_graded(db, exam_rows(items));
              }));
}

// The same work without batching the statements: per item, a key record and a row
// insert, each its own round trip (what a handler written item by item does).
void BM_pg_per_item_statements(benchmark::State& state) {
  const auto per_tx = static_cast<std::size_t>(state.range(0));
  pg::connection db(server::get().server.url());
  const auto table = fresh_table(db);
  const auto sql = insert_sql(table);
  pg::idempotency_store keys(db, {.table = table + "_keys"});
  std::mt19937_64 rng(7);
  for (auto _ : state) {
    state.PauseTiming();
    const auto batch = make_batch(per_tx, rng);
    state.ResumeTiming();
    pg::transaction tx(db);
    for (const auto& d : batch) {
      if (keys.record(d.message.idempotency_key, d.message.fingerprint, d.message.receipt_id).status ==
          ingest::key_status::fresh) {
        const ingest::delivery* one[] = {&d};
        write_rows(binary, db, sql, one);
      }
    }
    tx.commit();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * per_tx));
}

// The idempotency records alone, 1,000 per transaction (one statement): what the
// handler adds to the raw rows.
void BM_pg_keys_only(benchmark::State& state) {
  const auto per_tx = static_cast<std::size_t>(state.range(0));
  pg::connection db(server::get().server.url());
  const auto table = fresh_table(db);
  pg::idempotency_store keys(db, {.table = table + "_keys"});
  std::mt19937_64 rng(7);
  std::vector<std::string> ks(per_tx), fps(per_tx), results(per_tx);
  for (auto _ : state) {
    state.PauseTiming();
    const auto batch = make_batch(per_tx, rng);
    for (std::size_t i = 0; i < per_tx; ++i) {
      ks[i] = batch[i].message.idempotency_key;
      fps[i] = batch[i].message.fingerprint;
      results[i] = batch[i].message.receipt_id;
    }
    state.ResumeTiming();
    pg::transaction tx(db);
    benchmark::DoNotOptimize(keys.record_many(ks, fps, results));
    tx.commit();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * per_tx));
}

}  // namespace

BENCHMARK(BM_pg_raw_batched_rows)->ArgNames({"rows", "binary"})->Args({1000, literal})->Args({1000, binary})->Unit(benchmark::kMillisecond)->MinTime(3)->UseRealTime();
BENCHMARK(BM_pg_handler)->ArgNames({"rows", "binary"})->Args({1000, literal})->Args({1000, binary})->Unit(benchmark::kMillisecond)->MinTime(3)->UseRealTime();
BENCHMARK(BM_pg_exam_raw)->Arg(1000)->Unit(benchmark::kMillisecond)->MinTime(3)->UseRealTime();
BENCHMARK(BM_pg_exam_handler)->Arg(1000)->Unit(benchmark::kMillisecond)->MinTime(3)->UseRealTime();
BENCHMARK(BM_pg_per_item_statements)->Arg(1000)->Unit(benchmark::kMillisecond)->MinTime(3)->UseRealTime();
BENCHMARK(BM_pg_keys_only)->Arg(1000)->Unit(benchmark::kMillisecond)->MinTime(3)->UseRealTime();

BENCHMARK_MAIN();
