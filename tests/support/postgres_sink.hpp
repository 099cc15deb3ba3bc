#pragma once
// The test sink on PostgreSQL: table `rows` (no unique constraint of its own, so that a
// duplicate shows up as one instead of being refused), written by
// ingest::postgres::transactional_handler with one statement per batch, with a hook to
// inject failures; and the counts an audit reads.

#include <functional>
#include <string>

#include "ingest/postgres/transactional_handler.hpp"

namespace ingest::test {

inline void create_rows_table(postgres::connection& db) {
  db.exec("CREATE TABLE IF NOT EXISTS rows(receipt_id text NOT NULL, key text NOT NULL, payload text NOT NULL)");
}

/// Writes every item of a call with one INSERT ... SELECT FROM unnest(...).
inline void insert_rows(postgres::connection& db, std::span<const delivery* const> items) {
  postgres::array_literal ids, keys, payloads;
  for (const auto* d : items) {
    ids.push_back(d->message.receipt_id);
    keys.push_back(d->message.idempotency_key);
    payloads.push_back(d->message.payload);
  }
  db.exec("INSERT INTO rows(receipt_id, key, payload) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
          {ids.str(), keys.str(), payloads.str()});
}

/// An integer read with one query (for audits).
inline std::int64_t count(postgres::connection& db, const std::string& sql) {
  return db.exec(sql).integer(0, 0);
}

}  // namespace ingest::test
