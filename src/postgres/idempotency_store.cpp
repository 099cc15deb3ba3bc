#include "ingest/postgres/idempotency_store.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>

#include "ingest/error.hpp"

namespace ingest::postgres {
namespace {

std::int64_t to_ms(time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

time_point from_ms(std::int64_t ms) {
  return time_point(std::chrono::milliseconds(ms));
}

constexpr int in_progress = 0;
constexpr int completed = 1;

void check_table_name(const std::string& t) {
  if (t.empty() || t.size() > 40 ||
      t.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos)
    throw error(errc::invalid_config,
                "idempotency_store: table name must be 1-40 lower-case letters, digits and '_'");
}

void check_text(std::string_view key) {
  if (key.find('\0') != std::string_view::npos)
    throw error(errc::invalid_key, "idempotency_store: a key, fingerprint or result holds a NUL byte");
}

// Statement names: one set per table, shared by every store on a connection.
std::string name(const std::string& table, const char* what) {
  return "ingest_" + table + "_" + what;
}

}  // namespace

std::string idempotency_store::schema(const std::string& t) {
  check_table_name(t);
  return fmt::format(
      "CREATE TABLE IF NOT EXISTS {0}("
      " key text PRIMARY KEY,"
      " fingerprint text NOT NULL,"
      " state smallint NOT NULL,"
      " result text NOT NULL DEFAULT '',"
      " created_at bigint NOT NULL,"
      " completed_at bigint);"
      "CREATE INDEX IF NOT EXISTS {0}_created ON {0} USING brin(created_at);",
      t);
}

void idempotency_store::create_table(connection& db, const std::string& table) {
  const auto sql = schema(table);
  const auto lock = "SELECT pg_advisory_xact_lock(hashtext($1))";
  const std::string lock_name = "ingest_idempotency_store:" + table;
  if (db.in_transaction()) {
    db.exec(lock, {lock_name});
    db.exec(sql);
    return;
  }
  transaction tx(db);
  db.exec(lock, {lock_name});
  db.exec(sql);
  tx.commit();
}

idempotency_store::idempotency_store(connection& db, idempotency_store_options options)
    : db_(db), table_(std::move(options.table)), plain_insert_first_(options.plain_insert_first) {
  check_table_name(table_);
  if (options.create_table) create_table(db_, table_);
  const auto& t = table_;
  db_.prepare(name(t, "insert"),
              fmt::format("INSERT INTO {}(key, fingerprint, state, result, created_at, completed_at) "
                          "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key) DO NOTHING",
                          t));
  db_.prepare(name(t, "lookup"),
              fmt::format("SELECT fingerprint, state, result, created_at, completed_at FROM {} WHERE key = $1", t));
  db_.prepare(name(t, "complete"),
              fmt::format("UPDATE {} SET state = 1, result = $2, completed_at = $3 WHERE key = $1", t));
  db_.prepare(name(t, "prune"), fmt::format("DELETE FROM {} WHERE created_at < $1 AND state = 1", t));
  // Sorted, so that two batches sharing keys take their row locks in the same order.
  const auto insert_new =
      fmt::format("INSERT INTO {}(key, fingerprint, state, result, created_at, completed_at) "
                  "SELECT k, f, 1, r, $4, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS u(k, f, r) "
                  "ORDER BY k COLLATE \"C\"",
                  t);
  db_.prepare(name(t, "insert_many"), insert_new + " ON CONFLICT (key) DO NOTHING RETURNING key");
  db_.prepare(name(t, "insert_new"), insert_new);
  db_.prepare(name(t, "lookup_many"),
              fmt::format("SELECT key, fingerprint, state, result FROM {} WHERE key = ANY($1::text[])", t));
}

key_check idempotency_store::compare(std::string_view fingerprint, int row, const result& found) const {
  if (found.text(row, 0) != fingerprint) return {key_status::conflict, {}};
  if (found.integer(row, 1) == completed) return {key_status::completed, std::string(found.text(row, 2))};
  return {key_status::in_progress, {}};
}

key_check idempotency_store::insert(std::string_view key, std::string_view fingerprint, std::string_view result,
                                    bool done) {
  check_text(key);
  check_text(fingerprint);
  check_text(result);
  const auto now = to_ms(clock::now());
  const auto inserted = db_.exec_prepared(
      name(table_, "insert"), {key, fingerprint, done ? completed : in_progress, result, now,
                               done ? param(now) : param(std::nullopt)});
  if (inserted.affected_rows() == 1) return {key_status::fresh, {}};
  const auto found = db_.exec_prepared(name(table_, "lookup"), {key});
  // Gone between the two statements (pruned meanwhile): let the caller try again.
  if (found.rows() == 0) return {key_status::in_progress, {}};
  return compare(fingerprint, 0, found);
}

key_check idempotency_store::claim(std::string_view key, std::string_view fingerprint) {
  return insert(key, fingerprint, {}, false);
}

key_check idempotency_store::record(std::string_view key, std::string_view fingerprint, std::string_view result) {
  return insert(key, fingerprint, result, true);
}

std::vector<key_check> idempotency_store::record_many(const std::vector<std::string>& keys,
                                                      const std::vector<std::string>& fingerprints,
                                                      const std::vector<std::string>& results) {
  if (keys.size() != fingerprints.size() || keys.size() != results.size())
    throw error(errc::invalid_config, "idempotency_store::record_many: keys, fingerprints and results differ in size");
  std::vector<key_check> out(keys.size());
  if (keys.empty()) return out;
  // The first occurrence of each key goes to the database; later ones are answered
  // against it, as if recorded one after the other.
  std::unordered_map<std::string_view, std::size_t> first;
  text_array k, f, r;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    check_text(keys[i]);
    check_text(fingerprints[i]);
    check_text(results[i]);
    if (!first.try_emplace(keys[i], i).second) continue;
    k.push_back(keys[i]);
    f.push_back(fingerprints[i]);
    r.push_back(results[i]);
  }

  struct stored {
    std::string_view fingerprint;
    bool completed;
    std::string_view result;
  };
  std::unordered_map<std::string_view, stored> now;  // the record each key has after this call
  std::vector<bool> is_new(keys.size(), false);
  const auto inserted_by_us = [&](std::size_t i) {
    is_new[i] = true;
    now.emplace(keys[i], stored{fingerprints[i], true, results[i]});
  };
  const auto now_ms = to_ms(clock::now());
  result inserted, found;
  const auto ks = param::binary(k.bytes()), fs = param::binary(f.bytes()), rs = param::binary(r.bytes());
  if (insert_all_new(ks, fs, rs, now_ms, first.size())) {
    for (const auto& [key, i] : first) inserted_by_us(i);
  } else {
    inserted = db_.exec_prepared(name(table_, "insert_many"), {ks, fs, rs, now_ms});
    for (int row = 0; row < inserted.rows(); ++row) inserted_by_us(first.at(inserted.text(row, 0)));
  }
  if (now.size() < first.size()) {
    text_array missing;
    for (const auto& [key, i] : first)
      if (!now.contains(key)) missing.push_back(key);
    found = db_.exec_prepared(name(table_, "lookup_many"), {param::binary(missing.bytes())});
    for (int row = 0; row < found.rows(); ++row)
      now.emplace(keys[first.at(found.text(row, 0))],
                  stored{found.text(row, 1), found.integer(row, 2) == completed, found.text(row, 3)});
  }
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (is_new[i]) continue;  // inserted by this call: fresh
    const auto it = now.find(keys[i]);
    if (it == now.end())
      out[i] = {key_status::in_progress, {}};  // pruned meanwhile: let the caller try again
    else if (it->second.fingerprint != fingerprints[i])
      out[i] = {key_status::conflict, {}};
    else if (it->second.completed)
      out[i] = {key_status::completed, std::string(it->second.result)};
    else
      out[i] = {key_status::in_progress, {}};
  }
  return out;
}

bool idempotency_store::insert_all_new(const param& keys, const param& fingerprints, const param& results,
                                       std::int64_t now, std::size_t count) {
  // Only inside a transaction, where a savepoint can take back a short insert.
  if (!plain_insert_first_ || !db_.in_transaction()) return false;
  if (plain_insert_pause_ > 0) {
    --plain_insert_pause_;
    return false;
  }
  savepoint sp(db_, "ingest_keys");
  try {
    const auto inserted = db_.exec_prepared(name(table_, "insert_new"), {keys, fingerprints, results, now});
    // A trigger or rule of the caller's may skip rows: then let RETURNING say which.
    if (inserted.affected_rows() != static_cast<std::int64_t>(count)) {
      sp.rollback();
      return false;
    }
  } catch (const error& e) {
    if (sqlstate(e.code()) != "23505") throw;  // else: a key was there already
    sp.rollback();
    plain_insert_pause_ = 16;
    return false;
  }
  sp.release();
  return true;
}

void idempotency_store::complete(std::string_view key, std::string_view result) {
  check_text(key);
  check_text(result);
  const auto updated = db_.exec_prepared(name(table_, "complete"), {key, result, to_ms(clock::now())});
  if (updated.affected_rows() != 1) throw error(errc::not_found, "idempotency_store::complete: key was never claimed");
}

std::optional<idempotency_record> idempotency_store::find(std::string_view key) {
  check_text(key);
  const auto found = db_.exec_prepared(name(table_, "lookup"), {key});
  if (found.rows() == 0) return std::nullopt;
  return idempotency_record{std::string(key),
                            std::string(found.text(0, 0)),
                            found.integer(0, 1) == completed,
                            std::string(found.text(0, 2)),
                            from_ms(found.integer(0, 3)),
                            found.is_null(0, 4) ? time_point{} : from_ms(found.integer(0, 4))};
}

std::size_t idempotency_store::prune(time_point cutoff) {
  const auto deleted = db_.exec_prepared(name(table_, "prune"), {to_ms(cutoff)});
  return static_cast<std::size_t>(deleted.affected_rows());
}

}  // namespace ingest::postgres
