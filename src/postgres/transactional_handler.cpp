#include "ingest/postgres/transactional_handler.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "ingest/error.hpp"

namespace ingest::postgres {
namespace {

struct handler_state {
  handler_state(connection_pool& p, rows_writer w, transactional_handler_options o)
      : pool(p), write(std::move(w)), options(std::move(o)), stores(p.size()) {}

  // The store bound to a leased connection; made once per connection (its slot is
  // held by the caller alone, so no lock is needed).
  idempotency_store& store_for(const connection_pool::lease& db) {
    auto& s = stores[db.slot()];
    if (!s) {
      auto keys = options.keys;
      keys.create_table = false;  // created once, when the handler was made
      s = std::make_unique<idempotency_store>(*db, keys);
    }
    return *s;
  }

  connection_pool& pool;
  rows_writer write;
  transactional_handler_options options;
  std::vector<std::unique_ptr<idempotency_store>> stores;
};

// What the handler decided for an item that is not written (applied once committed).
struct decision {
  std::size_t index;
  key_status status;
};

bool connection_lost(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const ingest::error& err) {
    return is_connection_lost(err.code());
  } catch (...) {
    return false;
  }
}

void apply(batch& b, const decision& d) {
  if (d.status == key_status::conflict)
    b.fail(d.index, "idempotency key already used with a different payload");
  else if (d.status == key_status::in_progress)
    b.retry(d.index, "idempotency key claimed by a transaction still in progress");
}

// The whole batch in one transaction. False (nothing committed) when an item's write
// failed for good; a transient failure is thrown.
bool write_together(handler_state& s, connection& db, idempotency_store& keys, batch& b,
                    const std::vector<std::size_t>& todo) {
  std::vector<std::string> ks, fps, results;
  ks.reserve(todo.size());
  fps.reserve(todo.size());
  results.reserve(todo.size());
  for (auto i : todo) {
    ks.push_back(b[i].message.idempotency_key);
    fps.push_back(b[i].message.fingerprint);
    results.push_back(s.options.result(b[i]));
  }
  transaction tx(db);
  std::vector<const delivery*> fresh;
  std::vector<decision> others;
  try {
    const auto checks = keys.record_many(ks, fps, results);
    std::vector<repeated_item> repeats;
    for (std::size_t j = 0; j < todo.size(); ++j) {
      if (checks[j].status == key_status::fresh)
        fresh.push_back(&b[todo[j]]);
      else
        others.push_back({todo[j], checks[j].status});
      if (checks[j].status == key_status::completed && s.options.repeats)
        repeats.push_back({&b[todo[j]], checks[j].result});
    }
    if (!fresh.empty()) s.write(db, fresh);
    if (!repeats.empty()) s.options.repeats(db, repeats);
    tx.commit();  // a deferred constraint fails here, and is isolated like the others
  } catch (...) {
    const auto failure = std::current_exception();
    if (connection_lost(failure) || s.options.classify(failure) == failure_kind::transient) throw;
    return false;  // rolled back (by tx's destructor, or by the server)
  }
  for (const auto& d : others) apply(b, d);
  return true;
}

// One item under a savepoint, inside the open transaction.
void write_alone(handler_state& s, connection& db, idempotency_store& keys, batch& b, std::size_t i) {
  const auto& d = b[i];
  savepoint sp(db, "ingest_item");
  try {
    const auto check = keys.record(d.message.idempotency_key, d.message.fingerprint, s.options.result(d));
    if (check.status == key_status::fresh) {
      const delivery* one[] = {&d};
      s.write(db, one);
    }
    if (check.status == key_status::completed && s.options.repeats) {
      const repeated_item one[] = {{&d, check.result}};
      s.options.repeats(db, one);
    }
    sp.release();
    apply(b, {i, check.status});
  } catch (...) {
    const auto failure = std::current_exception();
    if (connection_lost(failure)) throw;
    sp.rollback();
    if (s.options.classify(failure) == failure_kind::permanent)
      b.fail(i, failure_message(failure), s.options.reason(failure));
    else
      b.retry(i, failure_message(failure));
  }
}

// One attempt at the batch's items still marked ok.
void write_batch(handler_state& s, batch& b) {
  std::vector<std::size_t> todo;
  for (std::size_t i = 0; i < b.size(); ++i)
    if (b.outcome(i) == item_outcome::ok) todo.push_back(i);
  if (todo.empty()) return;
  auto db = s.pool.acquire();
  auto& keys = s.store_for(db);
  if (write_together(s, *db, keys, b, todo)) return;
  transaction tx(*db);
  db->exec("SET CONSTRAINTS ALL IMMEDIATE");  // a deferred violation shows at its item
  for (auto i : todo) write_alone(s, *db, keys, b, i);
  tx.commit();
}

}  // namespace

batch_handler transactional_handler(connection_pool& pool, rows_writer write, transactional_handler_options options) {
  if (!write) throw error(errc::invalid_config, "transactional_handler: write must be set");
  if (!options.result || !options.classify || !options.reason)
    throw error(errc::invalid_config, "transactional_handler: result, classify and reason must be set");
  if (options.reconnect_patience.count() < 0)
    throw error(errc::invalid_config, "transactional_handler: reconnect_patience must not be negative");
  if (options.keys.create_table) {
    auto db = pool.acquire();
    idempotency_store::create_table(*db, options.keys.table);
  }
  auto state = std::make_shared<handler_state>(pool, std::move(write), std::move(options));
  return [state](batch& b) {
    const auto give_up = std::chrono::steady_clock::now() + state->options.reconnect_patience;
    for (std::chrono::milliseconds pause{100};; pause = std::min(pause * 2, std::chrono::milliseconds(2000))) {
      try {
        return write_batch(*state, b);
      } catch (const ingest::error& e) {
        // The database is gone for now: wait for it here rather than spend an attempt
        // of every item. Items already marked (a bad item found before the loss) stay so.
        if (!is_connection_lost(e.code()) || std::chrono::steady_clock::now() + pause > give_up) throw;
      }
      std::this_thread::sleep_for(pause);
    }
  };
}

}  // namespace ingest::postgres
