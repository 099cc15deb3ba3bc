#include "ingest/sqlite/idempotency_store.hpp"

#include <fmt/format.h>

#include <unordered_map>

#include "ingest/error.hpp"

namespace ingest::sqlite {
namespace {

std::int64_t to_ms(time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

time_point from_ms(std::int64_t ms) {
  return time_point(std::chrono::milliseconds(ms));
}

constexpr std::int64_t in_progress = 0;
constexpr std::int64_t completed = 1;

}  // namespace

struct idempotency_store::statements {
  statements(database& db, const std::string& t)
      : insert(db, fmt::format("INSERT INTO {}(key, fingerprint, state, result, created_at, completed_at) "
                               "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(key) DO NOTHING",
                               t)),
        lookup(db,
               fmt::format("SELECT fingerprint, state, result, created_at, completed_at FROM {} WHERE key = ?1", t)),
        complete(db, fmt::format("UPDATE {} SET state = 1, result = ?2, completed_at = ?3 WHERE key = ?1", t)),
        prune(db, fmt::format("DELETE FROM {} WHERE created_at < ?1 AND state = 1", t)) {}
  statement insert, lookup, complete, prune;
};

idempotency_store::idempotency_store(database& db, idempotency_store_options options) : db_(db) {
  const auto& t = options.table;
  if (t.empty() ||
      t.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != std::string::npos)
    throw error(errc::invalid_config, "idempotency_store: table name must be letters, digits and '_'");
  db_.exec(
      fmt::format("CREATE TABLE IF NOT EXISTS {0}("
                  " key TEXT PRIMARY KEY NOT NULL,"
                  " fingerprint TEXT NOT NULL,"
                  " state INTEGER NOT NULL,"
                  " result TEXT NOT NULL DEFAULT '',"
                  " created_at INTEGER NOT NULL,"
                  " completed_at INTEGER) WITHOUT ROWID;"
                  "CREATE INDEX IF NOT EXISTS {0}_created ON {0}(created_at);",
                  t));
  stmts_ = std::make_unique<statements>(db_, t);
}

idempotency_store::~idempotency_store() = default;

key_check idempotency_store::insert(std::string_view key, std::string_view fingerprint, std::string_view result,
                                    bool done) {
  const auto now = to_ms(clock::now());
  auto& ins = stmts_->insert;
  ins.bind(1, key).bind(2, fingerprint).bind(3, done ? completed : in_progress).bind(4, result).bind(5, now);
  if (done)
    ins.bind(6, now);
  else
    ins.bind_null(6);
  ins.run();
  if (db_.changes() == 1) return {key_status::fresh, {}};

  auto& look = stmts_->lookup;
  look.bind(1, key);
  key_check found;
  if (look.step()) {
    if (look.column_text(0) != fingerprint)
      found.status = key_status::conflict;
    else if (look.column_int(1) == completed)
      found = {key_status::completed, look.column_text(2)};
    else
      found.status = key_status::in_progress;
  }
  look.reset();
  return found;
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
  std::vector<key_check> out;
  out.reserve(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) out.push_back(insert(keys[i], fingerprints[i], results[i], true));
  return out;
}

void idempotency_store::complete(std::string_view key, std::string_view result) {
  auto& upd = stmts_->complete;
  upd.bind(1, key).bind(2, result).bind(3, to_ms(clock::now()));
  upd.run();
  if (db_.changes() != 1) throw error(errc::not_found, "idempotency_store::complete: key was never claimed");
}

std::optional<idempotency_record> idempotency_store::find(std::string_view key) {
  auto& look = stmts_->lookup;
  look.bind(1, key);
  std::optional<idempotency_record> out;
  if (look.step()) {
    out = idempotency_record{std::string(key),
                             look.column_text(0),
                             look.column_int(1) == completed,
                             look.column_text(2),
                             from_ms(look.column_int(3)),
                             look.column_is_null(4) ? time_point{} : from_ms(look.column_int(4))};
  }
  look.reset();
  return out;
}

std::size_t idempotency_store::prune(time_point cutoff) {
  auto& del = stmts_->prune;
  del.bind(1, to_ms(cutoff));
  del.run();
  return static_cast<std::size_t>(db_.changes());
}

}  // namespace ingest::sqlite
