#pragma once
/// @file
/// A ready-made batch handler: one SQLite transaction per batch, the idempotency
/// record of each item written in it, the user's rows written only for new keys.

#include <functional>

#include "ingest/batching_consumer.hpp"
#include "ingest/retry_policy.hpp"
#include "ingest/sqlite/database.hpp"
#include "ingest/sqlite/idempotency_store.hpp"

namespace ingest::sqlite {

/// Writes the business rows of one new item, on the handler's connection, inside its
/// transaction. Throwing undoes this item only (a savepoint); the exception is
/// classified (`permanent_error` → dead-letter, else retry).
using item_writer = std::function<void(database& db, const delivery& item)>;

/// What a `transactional_handler` records and how it classifies errors.
struct transactional_handler_options {
  /// What `idempotency_store::record` stores as the result of a new key.
  std::function<std::string(const delivery&)> result = [](const delivery& d) { return d.message.receipt_id; };
  failure_classifier classify = default_classifier;  ///< transient or permanent, for an exception thrown by the item writer
};

/// Returns a `batch_handler` that, per batch: `BEGIN IMMEDIATE`; for each item a
/// savepoint, `keys.record(key, fingerprint, result)`, and `write` when the key is
/// new (an already-completed key is a redelivery: nothing is written, the item is
/// acked); a key known with another fingerprint is failed as a conflict; `COMMIT`.
/// A failed commit throws, so the consumer acks nothing of the batch.
///
/// `db` and `keys` must outlive the handler and be used by one consumer worker
/// (`consumer_options::workers = 1`), since a connection is single-threaded; give
/// each worker its own connection to write in parallel.
///
/// @code
/// ingest::sqlite::database db("sink.db");
/// ingest::sqlite::idempotency_store keys(db);
/// ingest::sqlite::statement insert(db, "INSERT INTO rows(id, body) VALUES (?1, ?2)");
/// auto handler = ingest::sqlite::transactional_handler(db, keys, [&](auto&, const ingest::delivery& d) {
///   insert.bind(1, d.message.receipt_id).bind(2, d.message.payload);
///   insert.run();
/// });
/// @endcode
batch_handler transactional_handler(database& db, ingest::idempotency_store& keys, item_writer write,
                                    transactional_handler_options options = {});

}  // namespace ingest::sqlite
