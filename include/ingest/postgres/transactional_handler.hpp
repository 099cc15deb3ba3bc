#pragma once
/// @file
/// A ready-made batch handler: one PostgreSQL transaction per batch, the idempotency
/// records of the whole batch written together (`idempotency_store::record_many`: one
/// plain INSERT, or one ON CONFLICT statement after a unique violation), the user's
/// rows for the new keys written together, a bad item isolated without failing the
/// others.

#include <chrono>
#include <functional>
#include <span>
#include <string>

#include "ingest/batching_consumer.hpp"
#include "ingest/postgres/error.hpp"
#include "ingest/postgres/idempotency_store.hpp"
#include "ingest/postgres/pool.hpp"

namespace ingest::postgres {

/// Writes the business rows of `items` (every one a new key) on `db`, inside the
/// handler's transaction. Write them together (one statement with array parameters
/// and `unnest`, see `array_literal`): that is what makes a batch cheap. Throwing
/// undoes the call; the handler then calls it again with one item at a time to find
/// the items that fail.
using rows_writer = std::function<void(connection& db, std::span<const delivery* const> items)>;

/// An item whose key was completed before (a redelivery, or the same key accepted
/// twice: by two servers on a broker that cannot deduplicate across them, or after the
/// broker's dedup window), with the result its key recorded first.
struct repeated_item {
  const delivery* item = nullptr;  ///< the repeated item (in the handler's batch)
  /// `transactional_handler_options::result` of the copy whose key was recorded first
  /// (the first one committed, not necessarily the first one accepted).
  std::string original_result{};
};

/// Writes what repeats change on `db`, inside the handler's transaction (e.g. keep the
/// earliest accepted of two copies). Throwing is handled like a `rows_writer`'s throw.
using repeats_writer = std::function<void(connection& db, std::span<const repeated_item> repeats)>;

/// What a `transactional_handler` records and how it classifies errors.
struct transactional_handler_options {
  /// What the idempotency store keeps as the result of a new key.
  std::function<std::string(const delivery&)> result = [](const delivery& d) { return d.message.receipt_id; };
  /// Transient (retry the item) or permanent (dead-letter it) for an error an item's
  /// write threw; the default makes constraint and data errors permanent.
  failure_classifier classify = postgres::classify;
  /// The dead letter's reason for a permanent error (`constraint_violation`,
  /// `invalid_data`, or a `permanent_error`'s own).
  std::function<std::string(std::exception_ptr)> reason = postgres::failure_reason;
  /// The idempotency table (created when missing, unless `keys.create_table` is false).
  idempotency_store_options keys{};
  /// How long a batch waits for a lost database (refused connections, a server
  /// restarting, a backend terminated) before it fails back to the consumer: the
  /// handler reconnects with backoff meanwhile, so an outage shorter than this costs
  /// no delivery attempt (a failed batch costs each of its items one, and
  /// `retry_policy::max_attempts` of them dead-letter it). Zero: fail at once.
  std::chrono::milliseconds reconnect_patience{std::chrono::seconds(30)};
  /// Called in the batch's transaction with the items whose keys were completed
  /// before, after `write` (empty: they are acked and nothing is written).
  repeats_writer repeats{};
};

/// Returns a `batch_handler` that, per batch, on a connection leased from `pool`:
/// `BEGIN`; records every item's key together (`idempotency_store::record_many`);
/// calls `write` once with the items whose keys are new, then `options.repeats` (if
/// set) with those whose keys were completed before; `COMMIT`. A key already completed
/// is a redelivery (acked; nothing written unless `repeats` writes it); a key known
/// with another fingerprint is dead-lettered as a conflict; a key another transaction
/// holds is retried.
///
/// **A bad item.** When `write` (or the key statement) throws an error that `classify`
/// calls permanent, the transaction is rolled back and the batch done again one item at
/// a time, each under a savepoint: the bad item is dead-lettered with its reason and
/// SQLSTATE, the others commit together (constraints deferred to COMMIT are checked at
/// each item's statement then). A lost connection is waited out for up to
/// `reconnect_patience`, then the batch is done again (what committed before the loss
/// is recognised by its keys). Another transient error (a deadlock, a serialization
/// failure) fails the whole batch, which the consumer retries with backoff; nothing of
/// it is acked, since nothing committed.
///
/// **Workers.** Each call leases its own connection, so give the pool at least
/// `consumer_options::workers` connections. Workers of other processes and machines
/// may write the same tables: the key's primary key settles who writes a row.
///
/// `pool` must outlive the handler. Throws `ingest::error` when `write` is empty or the
/// idempotency table cannot be created (this connects once).
///
/// @code
/// ingest::postgres::connection_pool pool(url, {.size = 2});
/// auto handler = ingest::postgres::transactional_handler(pool, [](auto& db, auto items) {
///   ingest::postgres::array_literal ids, bodies;
///   for (const auto* d : items) { ids.push_back(d->message.receipt_id); bodies.push_back(d->message.payload); }
///   db.exec("INSERT INTO rows(id, body) SELECT * FROM unnest($1::text[], $2::text[])", {ids.str(), bodies.str()});
/// });
/// @endcode
batch_handler transactional_handler(connection_pool& pool, rows_writer write,
                                    transactional_handler_options options = {});

}  // namespace ingest::postgres
