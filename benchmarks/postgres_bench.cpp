// PostgreSQL sink: rows per second written through ingest::postgres::transactional_handler
// (idempotency keys and rows in one transaction per batch of 1,000, the exam graders'
// keys: `<exam>/<student>/<browser UUIDv4>`), against a raw batched insert of the same
// rows and against the same work done one statement per item. The benchmark starts its
// own PostgreSQL 15 (initdb in a scratch directory, default settings: fsync on,
// synchronous_commit on) on a free loopback port, on the same cores.
//
//   build/benchmarks/postgres_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>

#include <memory>
#include <random>

#include "bench_support.hpp"
#include "ingest/batching_consumer.hpp"
#include "ingest/fingerprint.hpp"
#include "ingest/postgres/transactional_handler.hpp"
#include "support/postgres_server.hpp"

namespace {

using ingest::bench::uuid_v4;
namespace pg = ingest::postgres;

struct database {
  ingest::bench::scratch_dir dir;
  ingest::test::postgres_server server{dir.path / "pg"};
  int tables = 0;
  // A fresh submissions table (and idempotency table) per benchmark run.
  std::string fresh_table(pg::connection& db) {
    const auto name = "submissions_" + std::to_string(++tables);
    db.exec("CREATE TABLE " + name +
            "(receipt_id text PRIMARY KEY, idempotency_key text NOT NULL, exam_id text NOT NULL,"
            " student_id text NOT NULL, answers jsonb NOT NULL, accepted_at bigint NOT NULL)");
    return name;
  }
};

database& db_server() {
  static database instance;
  return instance;
}

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

std::string insert_sql(const std::string& table) {
  return "INSERT INTO " + table +
         "(receipt_id, idempotency_key, exam_id, student_id, answers, accepted_at)"
         " SELECT r, k, 'algebra-midterm', s, a::jsonb, t"
         " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) AS u(r, k, s, a, t)";
}

void write_rows(pg::connection& db, const std::string& sql, std::span<const ingest::delivery* const> items) {
  pg::array_literal ids, keys, students, answers, times;
  for (const auto* d : items) {
    ids.push_back(d->message.receipt_id);
    keys.push_back(d->message.idempotency_key);
    students.push_back(d->message.subject);
    answers.push_back(d->message.payload);
    times.push_back(std::to_string(d->message.accepted_at.time_since_epoch().count()));
  }
  db.exec(sql, {ids.str(), keys.str(), students.str(), answers.str(), times.str()});
}

// The same rows, one plain batched INSERT per transaction: the database's own rate.
void BM_pg_raw_batched_rows(benchmark::State& state) {
  const auto per_tx = static_cast<std::size_t>(state.range(0));
  pg::connection db(db_server().server.url());
  const auto sql = insert_sql(db_server().fresh_table(db));
  std::mt19937_64 rng(7);
  for (auto _ : state) {
    state.PauseTiming();
    const auto batch = make_batch(per_tx, rng);
    std::vector<const ingest::delivery*> items;
    for (const auto& d : batch) items.push_back(&d);
    state.ResumeTiming();
    pg::transaction tx(db);
    write_rows(db, sql, items);
    tx.commit();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * per_tx));
}

// The library: keys + rows in one transaction, keys in one statement, rows in one.
void BM_pg_handler(benchmark::State& state) {
  const auto per_tx = static_cast<std::size_t>(state.range(0));
  pg::connection setup(db_server().server.url());
  const auto table = db_server().fresh_table(setup);
  const auto sql = insert_sql(table);
  pg::connection_pool pool(db_server().server.url(), {.size = 1});
  auto handler = pg::transactional_handler(
      pool, [&](pg::connection& db, auto items) { write_rows(db, sql, items); }, {.keys = {.table = table + "_keys"}});
  std::mt19937_64 rng(7);
  for (auto _ : state) {
    state.PauseTiming();
    ingest::batch b(make_batch(per_tx, rng));
    state.ResumeTiming();
    handler(b);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * per_tx));
}

// The same work without batching the statements: per item, a key record and a row
// insert, each its own round trip (what a handler written item by item does).
void BM_pg_per_item_statements(benchmark::State& state) {
  const auto per_tx = static_cast<std::size_t>(state.range(0));
  pg::connection db(db_server().server.url());
  const auto table = db_server().fresh_table(db);
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
        write_rows(db, sql, one);
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
  pg::connection db(db_server().server.url());
  const auto table = db_server().fresh_table(db);
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

BENCHMARK(BM_pg_raw_batched_rows)->Arg(1000)->Unit(benchmark::kMillisecond)->MinTime(3)->UseRealTime();
BENCHMARK(BM_pg_handler)->Arg(1000)->Unit(benchmark::kMillisecond)->MinTime(3)->UseRealTime();
BENCHMARK(BM_pg_per_item_statements)->Arg(1000)->Unit(benchmark::kMillisecond)->MinTime(3)->UseRealTime();
BENCHMARK(BM_pg_keys_only)->Arg(1000)->Unit(benchmark::kMillisecond)->MinTime(3)->UseRealTime();

BENCHMARK_MAIN();
