#include "ingest/sqlite/transactional_handler.hpp"

#include <memory>

#include "ingest/error.hpp"

namespace ingest::sqlite {
batch_handler transactional_handler(database& db, ingest::idempotency_store& keys, item_writer write,
                                    transactional_handler_options options) {
  if (!write) throw error(errc::invalid_config, "transactional_handler: write must be set");
  // Prepared once: parsing the savepoint statements for every item cost more than the
  // item's own writes.
  struct savepoints {
    explicit savepoints(database& db)
        : begin(db, "SAVEPOINT ingest_item"), release(db, "RELEASE ingest_item"), undo(db, "ROLLBACK TO ingest_item") {}
    statement begin, release, undo;
  };
  auto sp = std::make_shared<savepoints>(db);
  return [&db, &keys, sp, write = std::move(write), options = std::move(options)](batch& b) {
    transaction tx(db);
    for (std::size_t i = 0; i < b.size(); ++i) {
      if (b.outcome(i) != item_outcome::ok) continue;
      const auto& d = b[i];
      sp->begin.run();
      try {
        const auto check = keys.record(d.message.idempotency_key, d.message.fingerprint, options.result(d));
        switch (check.status) {
          case key_status::fresh:
            write(db, d);
            break;
          case key_status::completed:
            break;  // committed by an earlier delivery: ack without writing again
          case key_status::conflict:
            b.fail(i, "idempotency key already used with a different payload");
            break;
          case key_status::in_progress:
            b.retry(i, "idempotency key claimed by a request still in progress");
            break;
        }
        sp->release.run();
      } catch (...) {
        const auto failure = std::current_exception();
        sp->undo.run();
        sp->release.run();
        if (options.classify(failure) == failure_kind::permanent)
          b.fail(i, failure_message(failure), failure_reason(failure));
        else
          b.retry(i, failure_message(failure));
      }
    }
    tx.commit();
  };
}

}  // namespace ingest::sqlite
