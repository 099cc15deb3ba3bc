#include <string>

#include "engine.hpp"

namespace ingest::sqlite {

void queue::engine::prepare_statements() {
  prepare_message_statements();
  prepare_bookkeeping_statements();
}

// The messages: storing, looking up, leasing and settling them.
void queue::engine::prepare_message_statements() {
  sql.insert.emplace(db,
                     "INSERT INTO ingest_messages(idempotency_key, receipt_id, fingerprint, subject, payload, headers,"
                     " accepted_at, state, visible_at, key_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?7, ?8)");
  sql.lookup_key.emplace(db,
                         "SELECT receipt_id, fingerprint, accepted_at, idempotency_key FROM ingest_messages"
                         " WHERE seq = ?1");
  sql.find.emplace(db,
                   "SELECT m.receipt_id, m.idempotency_key, m.fingerprint, m.subject, m.payload, m.headers,"
                   " m.accepted_at, m.state, m.visible_at, m.attempts, coalesce(m.last_error, ''),"
                   " coalesce(d.reason, '')"
                   " FROM ingest_messages m LEFT JOIN ingest_dead_letters d ON d.seq = m.seq"
                   " WHERE m.receipt_id = ?1");
  sql.new_keys.emplace(db, "SELECT seq, key_hash FROM ingest_messages WHERE seq > ?1 ORDER BY seq");
  sql.min_seq.emplace(db, "SELECT coalesce(min(seq), 0) FROM ingest_messages");
  sql.lease.emplace(
      db,
      "UPDATE ingest_messages SET state = 1, lease = ?3, visible_at = ?4, attempts = attempts + 1,"
      " first_attempt_at = coalesce(first_attempt_at, ?1), last_attempt_at = ?1"
      " WHERE seq IN (SELECT seq FROM ingest_messages WHERE state < 2 AND visible_at <= ?1"
      " ORDER BY visible_at, seq LIMIT ?2)"
      " RETURNING seq, receipt_id, idempotency_key, fingerprint, subject, payload, headers, accepted_at, attempts,"
      " first_attempt_at");
  const std::string held = " WHERE seq = ?1 AND lease = ?2 AND state = 1 AND visible_at > ?3";
  sql.ack.emplace(db,
                  "UPDATE ingest_messages SET state = 2, payload = x'', headers = x'', done_at = ?3"
                  " WHERE seq IN (SELECT value FROM json_each(?1)) AND lease = ?2 AND state = 1 AND visible_at > ?3");
  sql.retry.emplace(db, "UPDATE ingest_messages SET state = 0, visible_at = ?4, last_error = ?5" + held);
  sql.dead.emplace(db, "UPDATE ingest_messages SET state = 3, last_error = ?4" + held);
  sql.dead_row.emplace(db,
                       "INSERT OR REPLACE INTO ingest_dead_letters(receipt_id, seq, reason, last_error, attempts,"
                       " first_attempt_at, last_attempt_at, dead_at)"
                       " SELECT receipt_id, seq, ?2, ?3, attempts, first_attempt_at, last_attempt_at, ?4"
                       " FROM ingest_messages WHERE seq = ?1");
  sql.extend.emplace(db, "UPDATE ingest_messages SET visible_at = ?4" + held);
  sql.any_due.emplace(db, "SELECT 1 FROM ingest_messages WHERE state < 2 AND visible_at <= ?1 LIMIT 1");
  sql.next_due.emplace(db, "SELECT min(visible_at) FROM ingest_messages WHERE state < 2");
}

// The counters, the dead letters and compaction.
void queue::engine::prepare_bookkeeping_statements() {
  sql.counters.emplace(db, "SELECT name, value FROM ingest_counters");
  sql.add_counter.emplace(db, "UPDATE ingest_counters SET value = value + ?2 WHERE name = ?1");
  // Stats count each state from the rows themselves (guarantee 4): pending rows
  // through the partial index of due rows, finished ones through their own.
  sql.pending_counts.emplace(db,
                             "SELECT count(*), coalesce(sum(state = 1 AND visible_at > ?1), 0),"
                             " coalesce(sum(attempts > 0), 0) FROM ingest_messages INDEXED BY ingest_messages_due"
                             " WHERE state < 2");
  sql.finished_counts.emplace(db,
                              "SELECT state, count(*) FROM ingest_messages INDEXED BY ingest_messages_finished"
                              " WHERE state >= 2 GROUP BY state");
  // A dead letter is its row in the dead-letter table and its message, both: one
  // without the other could not be listed or replayed.
  sql.dead_count.emplace(db,
                         "SELECT count(*) FROM ingest_dead_letters d JOIN ingest_messages m"
                         " ON m.seq = d.seq AND m.state = 3");
  sql.list.emplace(db,
                   "SELECT d.receipt_id, d.reason, d.last_error, d.attempts, d.first_attempt_at, d.last_attempt_at,"
                   " d.dead_at, m.idempotency_key, m.fingerprint, m.subject, m.payload, m.headers, m.accepted_at"
                   " FROM ingest_dead_letters d JOIN ingest_messages m ON m.seq = d.seq"
                   " WHERE d.receipt_id > ?1 ORDER BY d.receipt_id LIMIT ?2");
  sql.dead_seq.emplace(db, "SELECT seq FROM ingest_dead_letters WHERE receipt_id = ?1");
  sql.replay.emplace(db,
                     "UPDATE ingest_messages SET state = 0, attempts = 0, lease = 0, visible_at = ?2,"
                     " first_attempt_at = NULL, last_attempt_at = NULL WHERE seq = ?1 AND state = 3");
  sql.purge.emplace(db,
                    "UPDATE ingest_messages SET state = 4, payload = x'', headers = x'', done_at = ?2"
                    " WHERE seq = ?1 AND state = 3");
  sql.drop_dead.emplace(db, "DELETE FROM ingest_dead_letters WHERE receipt_id = ?1");
  sql.all_dead.emplace(db, "SELECT receipt_id FROM ingest_dead_letters ORDER BY receipt_id");
  sql.compact.emplace(db,
                      "DELETE FROM ingest_messages WHERE seq IN (SELECT seq FROM ingest_messages"
                      " WHERE seq <= ?1 AND state IN (2, 4) ORDER BY seq LIMIT ?2) RETURNING seq, key_hash, state");
  sql.seq_bounds.emplace(db, "SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) FROM ingest_messages");
  sql.accepted_at_or_after.emplace(db,
                                   "SELECT seq, accepted_at FROM ingest_messages WHERE seq >= ?1 ORDER BY seq LIMIT 1");
}

}  // namespace ingest::sqlite
