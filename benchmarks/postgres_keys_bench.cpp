// Ways to record a batch's idempotency keys in PostgreSQL: 1,000 fresh exam keys per
// transaction into a table shaped like ingest::postgres::idempotency_store's, each way
// telling which keys were new (what the handler needs to know):
//
//   on_conflict  one `INSERT ... SELECT FROM unnest($1::text[], ...) ORDER BY k
//                ON CONFLICT DO NOTHING RETURNING key`
//   plain        the same without ON CONFLICT under a savepoint (all new, or a unique
//                violation that sends the caller to on_conflict)
//   copy         COPY into a temporary table, then `INSERT ... SELECT FROM` it, sorted,
//                `ON CONFLICT DO NOTHING RETURNING key`
//   pipeline     libpq's pipeline mode: one prepared `INSERT ... ON CONFLICT DO NOTHING
//                RETURNING key` per key, all sent before the first answer is read
//
// with the arrays as text literals or in binary format, and the library's
// `record_many` (plain, binary, falling back to on_conflict). The program starts its
// own PostgreSQL 15 like postgres_bench.
//
//   build/benchmarks/postgres_keys_bench --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>
#include <libpq-fe.h>

#include <random>
#include <stdexcept>

#include "postgres_bench_server.hpp"
#include "ingest/fingerprint.hpp"
#include "ingest/postgres/idempotency_store.hpp"

namespace {

namespace pg = ingest::postgres;

std::string server_url() {
  return ingest::bench::postgres_bench_server::get().server.url();
}

// A fresh key table per benchmark run.
std::string fresh_table(pg::connection& db) {
  const auto name = ingest::bench::postgres_bench_server::get().fresh_name("keys_");
  db.exec(pg::idempotency_store::schema(name));
  return name;
}

struct key_batch {
  std::vector<std::string> keys, fingerprints, results;
};

key_batch make_keys(std::size_t n, std::mt19937_64& rng) {
  key_batch b;
  for (std::size_t i = 0; i < n; ++i) {
    const auto student = "s" + std::to_string(100000 + rng() % 900000);
    b.keys.push_back("algebra-midterm/" + student + "/" + ingest::bench::uuid_v4(rng));
    b.fingerprints.push_back(ingest::fingerprint(b.keys.back()));
    b.results.push_back(ingest::make_receipt_id());
  }
  return b;
}

std::string now_ms() {
  return std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(ingest::clock::now().time_since_epoch()).count());
}

// Runs one way of recording per iteration, each in its own transaction, and checks
// that it reported every key as new.
template <class Record>
void run(benchmark::State& state, pg::connection& db, Record record) {
  const auto per_tx = static_cast<std::size_t>(state.range(0));
  std::mt19937_64 rng(11);
  for (auto _ : state) {
    state.PauseTiming();
    const auto batch = make_keys(per_tx, rng);
    state.ResumeTiming();
    pg::transaction tx(db);
    const auto fresh = record(batch);
    tx.commit();
    if (fresh != per_tx) state.SkipWithError("a fresh key was not reported as new");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * per_tx));
}

// The key statement, with ON CONFLICT DO NOTHING RETURNING key (it tells which keys
// were new whatever was there) or plain (it fails when one was there).
std::string unnest_sql(const std::string& table, bool on_conflict) {
  return "INSERT INTO " + table +
         "(key, fingerprint, state, result, created_at, completed_at)"
         " SELECT k, f, 1, r, $4, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS u(k, f, r)"
         " ORDER BY k COLLATE \"C\"" +
         (on_conflict ? " ON CONFLICT (key) DO NOTHING RETURNING key" : "");
}

// The three arrays as text literals (`binary` 0) or in binary format (1).
std::size_t exec_unnest(pg::connection& db, const std::string& sql, const key_batch& b, bool binary) {
  const auto now = now_ms();
  if (binary) {
    pg::text_array k, f, r;
    for (std::size_t i = 0; i < b.keys.size(); ++i) {
      k.push_back(b.keys[i]);
      f.push_back(b.fingerprints[i]);
      r.push_back(b.results[i]);
    }
    return static_cast<std::size_t>(
        db.exec(sql, {pg::param::binary(k.bytes()), pg::param::binary(f.bytes()), pg::param::binary(r.bytes()), now})
            .affected_rows());
  }
  pg::array_literal k, f, r;
  for (std::size_t i = 0; i < b.keys.size(); ++i) {
    k.push_back(b.keys[i]);
    f.push_back(b.fingerprints[i]);
    r.push_back(b.results[i]);
  }
  return static_cast<std::size_t>(db.exec(sql, {k.str(), f.str(), r.str(), now}).affected_rows());
}

// The library's record_many: a plain insert of binary arrays under a savepoint, and the
// ON CONFLICT statement only when a key was there.
void BM_keys_library_record_many(benchmark::State& state) {
  pg::connection db(server_url());
  pg::idempotency_store store(db, {.table = fresh_table(db)});
  run(state, db, [&](const key_batch& b) {
    std::size_t fresh = 0;
    for (const auto& c : store.record_many(b.keys, b.fingerprints, b.results))
      fresh += c.status == ingest::key_status::fresh;
    return fresh;
  });
}

// One `ON CONFLICT DO NOTHING RETURNING key` statement: a probe of the index for each
// key, then its insert.
void BM_keys_unnest_on_conflict(benchmark::State& state) {
  pg::connection db(server_url());
  const auto sql = unnest_sql(fresh_table(db), true);
  run(state, db, [&](const key_batch& b) { return exec_unnest(db, sql, b, state.range(1) != 0); });
}

// A plain INSERT (one index descent per key) under a savepoint: when it succeeds every
// key was new; on a unique violation the caller rolls back to the savepoint and takes
// the ON CONFLICT statement.
void BM_keys_plain_insert_savepoint(benchmark::State& state) {
  pg::connection db(server_url());
  const auto sql = unnest_sql(fresh_table(db), false);
  run(state, db, [&](const key_batch& b) {
    pg::savepoint sp(db, "keys");
    const auto n = exec_unnest(db, sql, b, state.range(1) != 0);
    sp.release();
    return n;
  });
}

// COPY text format: tab-separated, backslash escapes.
void copy_field(std::string& out, std::string_view text) {
  for (char c : text) {
    if (c == '\\' || c == '\t' || c == '\n' || c == '\r') out += '\\';
    out += c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : c;
  }
}

void copy_in(pg::connection& db, const std::string& sql, const std::string& data) {
  auto* conn = db.native_handle();
  if (PQresultStatus(pg::result(PQexec(conn, sql.c_str())).native_handle()) != PGRES_COPY_IN ||
      PQputCopyData(conn, data.data(), static_cast<int>(data.size())) != 1 || PQputCopyEnd(conn, nullptr) != 1)
    throw std::runtime_error(PQerrorMessage(conn));
  for (pg::result r(PQgetResult(conn)); r.native_handle() != nullptr; r = pg::result(PQgetResult(conn)))
    if (PQresultStatus(r.native_handle()) != PGRES_COMMAND_OK) throw std::runtime_error(PQerrorMessage(conn));
}

void BM_keys_copy_stage(benchmark::State& state) {
  pg::connection db(server_url());
  const auto table = fresh_table(db);
  db.exec("CREATE TEMP TABLE stage(k text, f text, r text) ON COMMIT DELETE ROWS");
  const auto insert = "INSERT INTO " + table +
                      "(key, fingerprint, state, result, created_at, completed_at)"
                      " SELECT k, f, 1, r, $1, $1 FROM stage ORDER BY k COLLATE \"C\""
                      " ON CONFLICT (key) DO NOTHING RETURNING key";
  run(state, db, [&](const key_batch& b) {
    std::string data;
    for (std::size_t i = 0; i < b.keys.size(); ++i) {
      copy_field(data, b.keys[i]);
      data += '\t';
      copy_field(data, b.fingerprints[i]);
      data += '\t';
      copy_field(data, b.results[i]);
      data += '\n';
    }
    copy_in(db, "COPY stage FROM STDIN", data);
    return static_cast<std::size_t>(db.exec(insert, {now_ms()}).rows());
  });
}

void BM_keys_pipeline(benchmark::State& state) {
  pg::connection db(server_url());
  const auto table = fresh_table(db);
  auto* conn = db.native_handle();
  const auto insert = "INSERT INTO " + table +
                      "(key, fingerprint, state, result, created_at, completed_at)"
                      " VALUES ($1, $2, 1, $3, $4, $4) ON CONFLICT (key) DO NOTHING RETURNING key";
  if (PQresultStatus(pg::result(PQprepare(conn, "insert_one", insert.c_str(), 4, nullptr)).native_handle()) !=
      PGRES_COMMAND_OK)
    throw std::runtime_error(PQerrorMessage(conn));
  run(state, db, [&](const key_batch& b) {
    const auto now = now_ms();
    if (PQenterPipelineMode(conn) != 1) throw std::runtime_error(PQerrorMessage(conn));
    for (std::size_t i = 0; i < b.keys.size(); ++i) {
      const char* values[] = {b.keys[i].c_str(), b.fingerprints[i].c_str(), b.results[i].c_str(), now.c_str()};
      if (PQsendQueryPrepared(conn, "insert_one", 4, values, nullptr, nullptr, 0) != 1)
        throw std::runtime_error(PQerrorMessage(conn));
    }
    if (PQpipelineSync(conn) != 1) throw std::runtime_error(PQerrorMessage(conn));
    std::size_t fresh = 0;
    for (std::size_t i = 0; i < b.keys.size(); ++i) {
      for (pg::result r(PQgetResult(conn)); r.native_handle() != nullptr; r = pg::result(PQgetResult(conn))) {
        if (PQresultStatus(r.native_handle()) != PGRES_TUPLES_OK) throw std::runtime_error(PQerrorMessage(conn));
        fresh += static_cast<std::size_t>(r.rows());
      }
    }
    const pg::result sync(PQgetResult(conn));  // PGRES_PIPELINE_SYNC
    if (PQresultStatus(sync.native_handle()) != PGRES_PIPELINE_SYNC || PQexitPipelineMode(conn) != 1)
      throw std::runtime_error(PQerrorMessage(conn));
    return fresh;
  });
}

}  // namespace

BENCHMARK(BM_keys_library_record_many)->Arg(1000)->Unit(benchmark::kMillisecond)->MinTime(3)->UseRealTime();
BENCHMARK(BM_keys_unnest_on_conflict)
    ->ArgNames({"keys", "binary"})
    ->Args({1000, 0})
    ->Args({1000, 1})
    ->Unit(benchmark::kMillisecond)
    ->MinTime(3)
    ->UseRealTime();
BENCHMARK(BM_keys_plain_insert_savepoint)
    ->ArgNames({"keys", "binary"})
    ->Args({1000, 0})
    ->Args({1000, 1})
    ->Unit(benchmark::kMillisecond)
    ->MinTime(3)
    ->UseRealTime();
BENCHMARK(BM_keys_copy_stage)->Arg(1000)->Unit(benchmark::kMillisecond)->MinTime(3)->UseRealTime();
BENCHMARK(BM_keys_pipeline)->Arg(1000)->Unit(benchmark::kMillisecond)->MinTime(3)->UseRealTime();

BENCHMARK_MAIN();
