#include "ingest/sqlite/queue.hpp"

#include <sqlite3.h>

#include <boost/asio/post.hpp>
#include <charconv>
#include <condition_variable>
#include <list>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <variant>

#include "header_codec.hpp"
#include "ingest/detail/url_params.hpp"
#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"
#include "ingest/sqlite/database.hpp"

namespace ingest::sqlite {
namespace {

using steady = std::chrono::steady_clock;
using micros = std::chrono::microseconds;

// Message states. Rows in state ready or leased are "pending"; a leased row whose
// lease ran out (visible_at <= now) is deliverable again.
enum : std::int64_t { st_ready = 0, st_leased = 1, st_done = 2, st_dead = 3, st_purged = 4 };

constexpr std::int64_t application_id = 0x696E7131;  // "inq1"
constexpr std::int64_t schema_version = 2;

std::int64_t to_us(time_point t) {
  return std::chrono::duration_cast<micros>(t.time_since_epoch()).count();
}
std::int64_t now_us() {
  return to_us(clock::now());
}

// Dedup looks keys up by a 64-bit hash kept in memory (see `engine::keys`), not by an
// index in the file: client keys are random (UUIDv4, mostly), and an index of them is
// written all over on every commit, which halved the publish rate. The hash is stored
// in each row so that the map can be rebuilt, and the key text in the row settles
// collisions. FNV-1a: stable across processes and versions, which the file needs.
std::int64_t key_hash(std::string_view key) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<std::int64_t>(h);
}

std::string make_token(std::int64_t seq, std::int64_t lease) {
  return std::to_string(seq) + ':' + std::to_string(lease);
}

bool parse_token(const std::string& token, std::int64_t& seq, std::int64_t& lease) {
  const auto colon = token.find(':');
  if (colon == std::string::npos) return false;
  const char* b = token.data();
  return std::from_chars(b, b + colon, seq).ec == std::errc{} &&
         std::from_chars(b + colon + 1, b + token.size(), lease).ec == std::errc{};
}

// An SQLite failure inside a transaction: busy (another process holds the lock) is
// "unavailable, retry later"; anything else is a storage failure.
error_code classify(const ingest::error& e) {
  if (is_busy(e.code())) return errc::backend_unavailable;
  return e.code().category() == sqlite_category() ? errc::storage_error : e.code();
}

const char* const schema_sql = R"sql(
CREATE TABLE IF NOT EXISTS ingest_messages(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  key_hash INTEGER NOT NULL,
  idempotency_key TEXT NOT NULL,
  receipt_id TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  subject TEXT NOT NULL,
  payload BLOB NOT NULL,
  headers BLOB NOT NULL,
  accepted_at INTEGER NOT NULL,
  state INTEGER NOT NULL,
  visible_at INTEGER NOT NULL,
  lease INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  first_attempt_at INTEGER,
  last_attempt_at INTEGER,
  last_error TEXT,
  done_at INTEGER);
CREATE INDEX IF NOT EXISTS ingest_messages_due ON ingest_messages(visible_at, seq) WHERE state < 2;
CREATE TABLE IF NOT EXISTS ingest_dead_letters(
  receipt_id TEXT PRIMARY KEY,
  seq INTEGER NOT NULL UNIQUE,
  reason TEXT NOT NULL,
  last_error TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  first_attempt_at INTEGER,
  last_attempt_at INTEGER,
  dead_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ingest_counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO ingest_counters VALUES ('accepted', 0), ('processed', 0), ('dead_lettered', 0), ('purged', 0),
  ('compacted_processed', 0), ('compacted_purged', 0);
CREATE INDEX IF NOT EXISTS ingest_messages_finished ON ingest_messages(state) WHERE state >= 2;
)sql";

// Version 1 kept no count of the rows compaction removed; stats derived `pending`
// from the counters. What compaction removed is what the counters say was finished
// less the finished rows still in the file.
const char* const upgrade_from_1_sql = R"sql(
INSERT OR IGNORE INTO ingest_counters VALUES
  ('compacted_processed', (SELECT value FROM ingest_counters WHERE name = 'processed') -
                          (SELECT count(*) FROM ingest_messages WHERE state = 2)),
  ('compacted_purged', (SELECT value FROM ingest_counters WHERE name = 'purged') -
                       (SELECT count(*) FROM ingest_messages WHERE state = 4));
CREATE INDEX IF NOT EXISTS ingest_messages_finished ON ingest_messages(state) WHERE state >= 2;
)sql";

std::int64_t pragma_int(database& db, const char* sql) {
  statement s(db, sql);
  return s.step() ? s.column_int(0) : 0;
}

// Creates the schema in a new file, or checks that an existing file is ours.
void prepare_file(database& db) {
  transaction tx(db);
  const auto app = pragma_int(db, "PRAGMA application_id");
  const auto tables = pragma_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table'");
  if (app == 0 && tables == 0) {
    db.exec(schema_sql);
    db.exec("PRAGMA application_id = " + std::to_string(application_id));
    db.exec("PRAGMA user_version = " + std::to_string(schema_version));
  } else if (app != application_id) {
    throw error(errc::invalid_config, db.path() + " is not an ingest queue file (it holds other data)");
  } else if (const auto version = pragma_int(db, "PRAGMA user_version"); version == 1) {
    db.exec(upgrade_from_1_sql);
    db.exec("PRAGMA user_version = " + std::to_string(schema_version));
  } else if (version != schema_version) {
    throw error(errc::invalid_config, db.path() + " has queue schema version " + std::to_string(version) +
                                          ", this library reads version " + std::to_string(schema_version));
  }
  tx.commit();
}

// ---- operations waiting for the writer thread -------------------------------------

template <class... Args>
using callback = ingest::detail::callback<void(Args...)>;

struct publish_op {
  envelope message;
  callback<error_code, receipt> done;
  error_code ec{};
  receipt result{};
};
struct fetch_op {
  std::size_t max;
  steady::time_point deadline;
  callback<error_code, std::vector<delivery>> done;
  std::vector<delivery> result{};
};
struct settle_op {
  std::vector<settlement> decisions;
  callback<error_code> done;
  error_code ec{};
};
struct extend_op {
  std::vector<std::string> tokens;
  std::chrono::milliseconds by;
  callback<error_code> done;
  error_code ec{};
};
struct stats_op {
  callback<error_code, queue_stats> done;
  queue_stats result{};
};
struct list_op {
  std::string after;
  std::size_t limit;
  callback<error_code, std::vector<dead_letter>> done;
  std::vector<dead_letter> result{};
};
struct find_op {
  std::string receipt_id;
  callback<error_code, message_status> done;
  error_code ec{};
  message_status result{};
};
struct replay_op {
  std::vector<std::string> ids;
  bool purge;  // purge instead of replay
  callback<error_code, std::size_t> done;
  std::size_t result = 0;
};

using operation = std::variant<publish_op, fetch_op, settle_op, extend_op, stats_op, list_op, replay_op, find_op>;

}  // namespace

void queue_options::validate() const {
  auto bad = [](const std::string& what) { throw error(errc::invalid_config, "sqlite queue: " + what); };
  if (path.empty()) bad("path must not be empty");
  if (visibility_timeout <= std::chrono::milliseconds::zero()) bad("visibility_timeout must be positive");
  if (commit_linger < micros::zero() || commit_linger > std::chrono::seconds(1))
    bad("commit_linger must be between 0 and 1s");
  if (max_ops_per_commit == 0) bad("max_ops_per_commit must be at least 1");
  if (dedup_window < std::chrono::milliseconds::zero()) bad("dedup_window must not be negative");
  if (compaction_interval <= std::chrono::milliseconds::zero()) bad("compaction_interval must be positive");
  if (checkpoint_interval < std::chrono::milliseconds::zero()) bad("checkpoint_interval must not be negative");
  if (compaction_batch == 0) bad("compaction_batch must be at least 1");
  if (poll_interval <= std::chrono::milliseconds::zero()) bad("poll_interval must be positive");
  if (busy_timeout < std::chrono::milliseconds::zero()) bad("busy_timeout must not be negative");
  if (max_page_count < 0) bad("max_page_count must not be negative");
}

queue_options queue_options::from_url(std::string_view url) {
  constexpr std::string_view scheme = "sqlite://";
  if (url.substr(0, scheme.size()) != scheme)
    throw error(errc::invalid_config, "not an sqlite:// URL: " + std::string(url));
  auto rest = url.substr(scheme.size());
  const auto q = rest.find('?');
  queue_options o;
  o.path = ingest::detail::percent_decode("sqlite queue URL", rest.substr(0, q));
  if (o.path.empty()) throw error(errc::invalid_config, "sqlite queue URL without a file path: " + std::string(url));
  ingest::detail::url_query params("sqlite queue URL", q == std::string_view::npos ? std::string_view{} : rest.substr(q + 1));
  params.set("visibility_timeout", o.visibility_timeout);
  params.set("commit_linger", o.commit_linger);
  params.set("dedup_window", o.dedup_window);
  params.set("compaction_interval", o.compaction_interval);
  params.set("checkpoint_interval", o.checkpoint_interval);
  params.set("poll_interval", o.poll_interval);
  params.set("busy_timeout", o.busy_timeout);
  params.set("max_messages", o.max_messages);
  params.set("receipt_index", o.receipt_index);
  params.set("max_page_count", o.max_page_count);
  params.finish();
  o.validate();
  return o;
}

// ---- the engine: one connection, one writer thread --------------------------------

struct queue::engine {
  engine(durable_queue::executor_type ex, queue_options o)
      : executor(std::move(ex)),
        options(std::move(o)),
        db(options.path, database_options{.busy_timeout = options.busy_timeout}),
        rng(std::random_device{}()) {
    if (options.max_page_count > 0) db.exec("PRAGMA max_page_count = " + std::to_string(options.max_page_count));
    // The key index takes random client keys, so it is read and written all over:
    // keep it in memory, and read the file through a mapping instead of copies.
    db.exec("PRAGMA cache_size = -65536");
    db.exec("PRAGMA mmap_size = 268435456");
    // Cut the WAL file back after a checkpoint so that it does not stay at its peak.
    db.exec("PRAGMA journal_size_limit = 67108864");
    // Checkpoints (copying the WAL back into the file, then an fsync of the file) take
    // as long as the copy: run inside a commit, every publish waiting on that commit
    // waits for them too. So a thread of its own checkpoints on its own connection, and
    // the writer checkpoints only as a backstop if that thread falls far behind.
    // Without it, checkpoint less often (pages rewritten by many commits are copied once).
    db.exec(options.checkpoint_interval > std::chrono::milliseconds::zero() ? "PRAGMA wal_autocheckpoint = 65536"
                                                                             : "PRAGMA wal_autocheckpoint = 8192");
    prepare_file(db);
    if (options.receipt_index) db.exec("CREATE INDEX IF NOT EXISTS ingest_messages_receipt ON ingest_messages(receipt_id)");
    prepare_statements();
    {
      transaction tx(db);
      catch_up();
      tx.commit();
    }
    next_compaction = steady::now() + options.compaction_interval;
    writer = std::thread([this] { run(); });
    if (options.checkpoint_interval > std::chrono::milliseconds::zero())
      checkpointer = std::thread([this] { checkpoint_loop(); });
  }

  ~engine() {
    {
      std::lock_guard lock(mutex);
      closed = true;
      stopping = true;
    }
    wake.notify_all();
    writer.join();
    if (checkpointer.joinable()) {
      {
        std::lock_guard lock(checkpoint_mutex);
        checkpoint_stop = true;
      }
      checkpoint_wake.notify_all();
      checkpointer.join();
    }
  }

  // PASSIVE checkpoints never block the writer; one that cannot finish (a reader still
  // needs old frames) finishes next time.
  void checkpoint_loop() {
    std::optional<database> cp;
    std::unique_lock lock(checkpoint_mutex);
    while (!checkpoint_stop) {
      checkpoint_wake.wait_for(lock, options.checkpoint_interval, [&] { return checkpoint_stop; });
      if (checkpoint_stop) break;
      lock.unlock();
      try {
        if (!cp) cp.emplace(options.path, database_options{.create = false, .busy_timeout = options.busy_timeout});
        cp->exec("PRAGMA wal_checkpoint(PASSIVE)");
      } catch (const ingest::error&) {
        cp.reset();  // e.g. the disk: the writer's backstop checkpoint still applies
      }
      lock.lock();
    }
  }

  durable_queue::executor_type executor;  // where completions run
  queue_options options;
  database db;
  std::mt19937_64 rng;  // writer thread only

  // Shared with the callers' threads.
  mutable std::mutex mutex;
  std::condition_variable wake;
  std::vector<operation> pending;  // in arrival order
  bool closed = false;
  bool stopping = false;
  bool idle = false;  // the writer waits for work (not lingering before a commit)
  std::string last_error;

  // Writer thread only.
  std::list<fetch_op> waiters;
  // Every key in the file, by hash: hash -> seq. Rows other processes insert are read
  // in at the start of each write transaction (which holds the file's write lock).
  std::unordered_multimap<std::int64_t, std::int64_t> keys;
  std::int64_t last_seen_seq = 0;
  std::vector<std::pair<std::int64_t, std::int64_t>> keys_added;    // by this transaction
  std::vector<std::pair<std::int64_t, std::int64_t>> keys_removed;  // by this transaction's compaction
  int compactions = 0;
  bool compacted_full = false;   // the last compaction pass hit compaction_batch
  std::int64_t sweep_below = 0;  // after commit: forget keys of rows below this seq
  steady::time_point next_compaction;
  steady::time_point next_poll{};
  std::thread writer;
  std::thread checkpointer;
  std::mutex checkpoint_mutex;
  std::condition_variable checkpoint_wake;
  bool checkpoint_stop = false;

  struct statements {
    std::optional<statement> insert, lookup_key, lease, ack, retry, dead, dead_row, extend, any_due, next_due, counters,
        add_counter, pending_counts, finished_counts, dead_count, list, dead_seq, replay, purge, drop_dead, all_dead, compact,
        new_keys, min_seq, seq_bounds, accepted_at_or_after, find;
  } sql;

  void prepare_statements() {
    sql.insert.emplace(
        db,
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
    sql.accepted_at_or_after.emplace(
        db, "SELECT seq, accepted_at FROM ingest_messages WHERE seq >= ?1 ORDER BY seq LIMIT 1");
  }

  // ---- enqueue (any thread) ----

  // Returns false (and leaves `op` alone) when the queue is closed.
  bool enqueue(operation&& op, bool refused_when_closed) {
    bool notify = false;
    {
      std::lock_guard lock(mutex);
      if (closed && refused_when_closed) return false;
      if (stopping) return false;
      pending.push_back(std::move(op));
      // The writer is woken when it sleeps for want of work, or when its commit linger
      // can end early. Waking it for every operation during the linger cost a context
      // switch per publish and changed nothing.
      notify = idle || pending.size() >= options.max_ops_per_commit;
    }
    if (notify) wake.notify_one();
    return true;
  }

  // ---- the writer loop ----

  void run() {
    std::vector<operation> batch;
    std::unique_lock lock(mutex);
    while (true) {
      if (closed && !waiters.empty()) {
        auto cancelled = std::move(waiters);
        waiters.clear();
        lock.unlock();
        for (auto& w : cancelled) w.done(std::make_error_code(std::errc::operation_canceled), std::vector<delivery>{});
        lock.lock();
      }
      if (stopping && pending.empty()) break;
      if (pending.empty()) {
        idle = true;
        wake.wait_until(lock, next_wake(),
                        [&] { return stopping || !pending.empty() || (closed && !waiters.empty()); });
        idle = false;
        if (closed && !waiters.empty()) continue;
      }
      if (!pending.empty() && options.commit_linger > micros::zero() && pending.size() < options.max_ops_per_commit) {
        wake.wait_for(lock, options.commit_linger,
                      [&] { return stopping || pending.size() >= options.max_ops_per_commit; });
      }
      // The two vectors trade buffers: no allocation per operation on either side.
      batch.clear();
      if (pending.size() <= options.max_ops_per_commit) {
        batch.swap(pending);
      } else {
        const auto end = pending.begin() + static_cast<std::ptrdiff_t>(options.max_ops_per_commit);
        batch.assign(std::make_move_iterator(pending.begin()), std::make_move_iterator(end));
        pending.erase(pending.begin(), end);
      }
      lock.unlock();
      step(batch);
      lock.lock();
    }
  }

  steady::time_point next_wake() const {
    auto wake_at = next_compaction;
    for (const auto& w : waiters) wake_at = std::min(wake_at, w.deadline);
    if (!waiters.empty()) wake_at = std::min(wake_at, next_poll);
    return wake_at;
  }

  // Counter changes made by the current transaction.
  struct deltas {
    std::int64_t accepted = 0, processed = 0, dead = 0, purged = 0;
    std::int64_t compacted_processed = 0, compacted_purged = 0;  // rows compaction removed
  };

  // Whether an operation can make messages deliverable to a waiting fetch.
  static bool feeds_waiters(const operation& op) {
    return std::holds_alternative<publish_op>(op) || std::holds_alternative<settle_op>(op) ||
           std::holds_alternative<replay_op>(op);
  }

  void step(std::vector<operation>& batch) {
    const auto now = steady::now();
    // Waiting fetches are served in the same transaction as the operations that may
    // feed them (a publish here), and, every poll_interval, when another process may
    // have published or a delay or lease ran out.
    bool serve = false;
    if (!waiters.empty()) {
      const bool poll_due = now >= next_poll;
      if (poll_due) next_poll = now + options.poll_interval;
      if (std::any_of(batch.begin(), batch.end(), feeds_waiters))
        serve = true;
      else if (poll_due)
        serve = any_due();
    }
    const bool compact = now >= next_compaction;
    if (batch.empty() && !serve && !compact) {
      expire_waiters(now);
      return;
    }

    std::vector<fetch_op> served;
    error_code failure;
    keys_added.clear();
    keys_removed.clear();
    try {
      transaction tx(db);
      catch_up();
      deltas d;
      std::int64_t pending_now = -1;
      const auto t = now_us();
      for (auto& op : batch) {
        std::visit(
            [&](auto& o) {
              using T = std::decay_t<decltype(o)>;
              if constexpr (std::is_same_v<T, publish_op>) {
                if (options.max_messages != 0 && pending_now < 0) pending_now = pending_count();
                apply_publish(o, t, d, pending_now);
              } else if constexpr (std::is_same_v<T, settle_op>) {
                apply_settle(o, t, d);
              } else if constexpr (std::is_same_v<T, extend_op>) {
                apply_extend(o, t);
              } else if constexpr (std::is_same_v<T, replay_op>) {
                apply_replay(o, t, d);
              } else if constexpr (std::is_same_v<T, fetch_op>) {
                lease(o, t);
              }
            },
            op);
      }
      if (serve) {
        for (auto it = waiters.begin(); it != waiters.end();) {
          lease(*it, t);
          if (it->result.empty()) {
            ++it;
          } else {
            served.push_back(std::move(*it));
            it = waiters.erase(it);
          }
        }
      }
      if (compact) compact_rows(t, d);
      flush(d);
      for (auto& op : batch) {
        if (auto* s = std::get_if<stats_op>(&op)) read_stats(*s, t);
        if (auto* l = std::get_if<list_op>(&op)) read_dead_letters(*l);
        if (auto* f = std::get_if<find_op>(&op)) read_message(*f, t);
      }
      tx.commit();
    } catch (const ingest::error& e) {
      failure = classify(e);
      std::lock_guard lock(mutex);
      last_error = e.what();
    }
    // A pass that removed a full batch has more to do: the next step runs another
    // (between other work, so publishers are never held up by more than one pass).
    if (compact)
      next_compaction = !failure && compacted_full ? steady::now() : steady::now() + options.compaction_interval;
    compacted_full = false;

    if (failure) {
      // Rolled back: nothing of this transaction happened, its keys included.
      for (const auto& [hash, seq] : keys_added) erase_key(hash, seq);
      if (!keys_added.empty()) last_seen_seq = keys_added.front().second - 1;
      // Waiters keep waiting.
      for (auto& w : served) {
        w.result.clear();
        waiters.push_back(std::move(w));
      }
      served.clear();
    } else {
      for (const auto& [hash, seq] : keys_removed) erase_key(hash, seq);
      if (sweep_below > 0)
        for (auto it = keys.begin(); it != keys.end();) it = it->second < sweep_below ? keys.erase(it) : std::next(it);
    }
    sweep_below = 0;
    complete(batch, served, failure);
    expire_waiters(steady::now());
  }

  // Hands the step's results to the queue's executor in one post. Completing each
  // operation here, on the writer thread, posted one handler per publish from this
  // thread and freed every message on it, away from the threads that allocated them:
  // at a few thousand publishes per commit the allocator's locks were contended on
  // every request.
  void complete(std::vector<operation>& batch, std::vector<fetch_op>& served, error_code failure) {
    std::vector<operation> done;
    done.reserve(batch.size() + served.size());
    const auto now = steady::now();
    for (auto& op : batch) {
      if (auto* f = std::get_if<fetch_op>(&op); f && !failure && f->result.empty() && f->deadline > now)
        waiters.push_back(std::move(*f));  // nothing yet: wait (still owned by us)
      else
        done.push_back(std::move(op));
    }
    for (auto& w : served) done.emplace_back(std::move(w));
    if (done.empty()) return;
    boost::asio::post(executor, [ops = std::move(done), failure]() mutable {
      for (auto& op : ops) finish(op, failure);
    });
  }

  static void finish(operation& op, error_code failure) {
    std::visit(
        [&](auto& o) {
          using T = std::decay_t<decltype(o)>;
          if constexpr (std::is_same_v<T, publish_op>) {
            if (failure) return o.done(failure, receipt{});
            o.done(o.ec, o.ec ? receipt{} : std::move(o.result));
          } else if constexpr (std::is_same_v<T, fetch_op>) {
            if (failure) return o.done(failure, std::vector<delivery>{});
            o.done(error_code{}, std::move(o.result));
          } else if constexpr (std::is_same_v<T, settle_op> || std::is_same_v<T, extend_op>) {
            o.done(failure ? failure : o.ec);
          } else if constexpr (std::is_same_v<T, stats_op>) {
            o.done(failure, failure ? queue_stats{} : o.result);
          } else if constexpr (std::is_same_v<T, list_op>) {
            o.done(failure, failure ? std::vector<dead_letter>{} : std::move(o.result));
          } else if constexpr (std::is_same_v<T, replay_op>) {
            o.done(failure, failure ? 0 : o.result);
          } else if constexpr (std::is_same_v<T, find_op>) {
            o.done(failure ? failure : o.ec, failure ? message_status{} : std::move(o.result));
          }
        },
        op);
  }

  void expire_waiters(steady::time_point now) {
    for (auto it = waiters.begin(); it != waiters.end();) {
      if (it->deadline <= now) {
        it->done(error_code{}, std::vector<delivery>{});
        it = waiters.erase(it);
      } else {
        ++it;
      }
    }
  }

  // ---- operations inside the transaction ----

  // The capacity check's figure: taken from the counters, which every commit keeps,
  // because counting the rows on each commit would cost as much as the backlog is long.
  std::int64_t pending_count() {
    auto& s = *sql.counters;
    std::int64_t accepted = 0, done = 0;
    while (s.step()) {
      const auto name = s.column_text(0);
      if (name == "accepted")
        accepted = s.column_int(1);
      else if (name == "processed" || name == "dead_lettered" || name == "purged")
        done += s.column_int(1);
    }
    s.reset();
    return accepted - done;
  }

  void catch_up() {
    auto& s = *sql.new_keys;
    s.bind(1, last_seen_seq);
    try {
      while (s.step()) {
        last_seen_seq = s.column_int(0);
        keys.emplace(s.column_int(1), last_seen_seq);
      }
    } catch (...) {
      s.reset();
      throw;
    }
    s.reset();
  }

  void erase_key(std::int64_t hash, std::int64_t seq) {
    auto [first, last] = keys.equal_range(hash);
    for (auto it = first; it != last; ++it)
      if (it->second == seq) {
        keys.erase(it);
        return;
      }
  }

  void apply_publish(publish_op& o, std::int64_t t, deltas& d, std::int64_t& pending_now) {
    auto& m = o.message;
    const auto hash = key_hash(m.idempotency_key);
    auto [first, last] = keys.equal_range(hash);
    for (auto it = first; it != last;) {
      auto& look = *sql.lookup_key;
      look.bind(1, it->second);
      const bool exists = look.step();
      const bool same = exists && look.column_text(3) == m.idempotency_key;
      if (same) {
        if (look.column_text(1) != m.fingerprint)
          o.ec = errc::conflict;
        else
          o.result = receipt{look.column_text(0), m.idempotency_key, time_from_us(look.column_int(2)), true};
      }
      look.reset();
      if (same) return;
      // A row compacted away by another process: forget it.
      it = exists ? std::next(it) : keys.erase(it);
    }
    // The postmark is t: a new message that would carry one after its deadline is
    // refused here, before anything is written.
    if (time_from_us(t) > m.not_after) {
      o.ec = errc::deadline_passed;
      return;
    }
    if (options.max_messages != 0 && pending_now >= static_cast<std::int64_t>(options.max_messages)) {
      o.ec = errc::queue_full;
      return;
    }
    auto& ins = *sql.insert;
    ins.bind(1, m.idempotency_key)
        .bind(2, m.receipt_id)
        .bind(3, m.fingerprint)
        .bind(4, m.subject)
        .bind_blob(5, m.payload)
        .bind_blob(6, detail::encode_headers(m.headers))
        .bind(7, t)
        .bind(8, hash);
    ins.run();
    const auto seq = db.last_insert_rowid();
    keys.emplace(hash, seq);
    keys_added.emplace_back(hash, seq);
    last_seen_seq = seq;
    // The message is done with: its strings move into the receipt (allocated by the
    // publishing thread, they are freed there too).
    o.result = receipt{std::move(m.receipt_id), std::move(m.idempotency_key), time_from_us(t), false};
    ++d.accepted;
    if (pending_now >= 0) ++pending_now;
  }

  void lease(fetch_op& o, std::int64_t t) {
    if (o.max == 0) return;
    const auto lease_id = static_cast<std::int64_t>(rng() >> 1);
    auto& s = *sql.lease;
    s.bind(1, t)
        .bind(2, static_cast<std::int64_t>(o.max))
        .bind(3, lease_id)
        .bind(4, t + std::chrono::duration_cast<micros>(options.visibility_timeout).count());
    std::vector<std::pair<std::int64_t, delivery>> rows;
    try {
      while (s.step()) {
        delivery d;
        const auto seq = s.column_int(0);
        d.message.receipt_id = s.column_text(1);
        d.message.idempotency_key = s.column_text(2);
        d.message.fingerprint = s.column_text(3);
        d.message.subject = s.column_text(4);
        d.message.payload = s.column_text(5);
        d.message.headers = detail::decode_headers(s.column_text(6));
        d.message.accepted_at = time_from_us(s.column_int(7));
        d.message.attempts = static_cast<std::uint32_t>(s.column_int(8));
        d.first_attempt_at = time_from_us(s.column_int(9));
        d.token = make_token(seq, lease_id);
        rows.emplace_back(seq, std::move(d));
      }
    } catch (...) {
      s.reset();
      throw;
    }
    s.reset();
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [seq, d] : rows) o.result.push_back(std::move(d));
  }

  // Runs `s` on the delivery named by `token` if its lease still holds; false if not.
  bool on_lease(statement& s, const std::string& token, std::int64_t t) {
    std::int64_t seq = 0, lease_id = 0;
    if (!parse_token(token, seq, lease_id)) return false;
    s.bind(1, seq).bind(2, lease_id).bind(3, t);
    return true;
  }

  void apply_settle(settle_op& o, std::int64_t t, deltas& d) {
    // Acks of one fetch share its lease id: one statement acks them all.
    std::map<std::int64_t, std::string> acks;  // lease id -> JSON array of seqs
    std::map<std::int64_t, std::int64_t> ack_counts;
    for (auto& decision : o.decisions) {
      std::int64_t seq = 0, lease_id = 0;
      if (!parse_token(decision.token, seq, lease_id)) {
        o.ec = errc::lease_expired;
        continue;
      }
      if (decision.action == settle_action::ack) {
        auto& list = acks[lease_id];
        list += list.empty() ? "[" : ",";
        list += std::to_string(seq);
        ++ack_counts[lease_id];
        continue;
      }
      statement& s = decision.action == settle_action::retry ? *sql.retry : *sql.dead;
      if (decision.action == settle_action::retry)
        s.bind(4, t + std::chrono::duration_cast<micros>(decision.delay).count()).bind(5, decision.last_error);
      else
        s.bind(4, decision.last_error);
      s.bind(1, seq).bind(2, lease_id).bind(3, t);
      s.run();
      if (db.changes() != 1) {
        o.ec = errc::lease_expired;
        continue;
      }
      if (decision.action == settle_action::dead_letter) {
        auto& row = *sql.dead_row;
        row.bind(1, seq).bind(2, decision.reason).bind(3, decision.last_error).bind(4, t);
        row.run();
        ++d.dead;
      }
    }
    for (auto& [lease_id, list] : acks) {
      list += "]";
      auto& s = *sql.ack;
      s.bind(1, list).bind(2, lease_id).bind(3, t);
      s.run();
      const auto acked = db.changes();
      d.processed += acked;
      if (acked != ack_counts[lease_id]) o.ec = errc::lease_expired;
    }
  }

  void apply_extend(extend_op& o, std::int64_t t) {
    auto& s = *sql.extend;
    for (const auto& token : o.tokens) {
      s.bind(4, t + std::chrono::duration_cast<micros>(o.by).count());
      if (!on_lease(s, token, t)) {
        s.reset();
        o.ec = errc::lease_expired;
        continue;
      }
      s.run();
      if (db.changes() != 1) o.ec = errc::lease_expired;
    }
  }

  void apply_replay(replay_op& o, std::int64_t t, deltas& d) {
    if (o.ids.empty()) {
      auto& all = *sql.all_dead;
      while (all.step()) o.ids.push_back(all.column_text(0));
      all.reset();
    }
    for (const auto& id : o.ids) {
      auto& find = *sql.dead_seq;
      find.bind(1, id);
      const bool found = find.step();
      const auto seq = found ? find.column_int(0) : 0;
      find.reset();
      if (!found) continue;
      auto& move = o.purge ? *sql.purge : *sql.replay;
      move.bind(1, seq).bind(2, t);
      move.run();
      if (db.changes() != 1) continue;
      auto& drop = *sql.drop_dead;
      drop.bind(1, id);
      drop.run();
      --d.dead;
      if (o.purge) ++d.purged;
      ++o.result;
    }
  }

  void flush(const deltas& d) {
    auto add = [&](const char* name, std::int64_t v) {
      if (v == 0) return;
      sql.add_counter->bind(1, std::string_view(name)).bind(2, v);
      sql.add_counter->run();
    };
    add("accepted", d.accepted);
    add("processed", d.processed);
    add("dead_lettered", d.dead);
    add("purged", d.purged);
    add("compacted_processed", d.compacted_processed);
    add("compacted_purged", d.compacted_purged);
  }

  // The last seq accepted before `cutoff`, found by bisecting on seq (accepted_at
  // grows with seq), or 0 when there is none. About 20 point lookups, no scan.
  std::int64_t last_seq_before(std::int64_t cutoff) {
    auto& b = *sql.seq_bounds;
    b.step();
    std::int64_t lo = b.column_int(0), hi = b.column_int(1);
    b.reset();
    std::int64_t found = 0;
    auto& at = *sql.accepted_at_or_after;
    while (lo <= hi && lo > 0) {
      const auto mid = lo + (hi - lo) / 2;
      at.bind(1, mid);
      const bool row = at.step();
      const auto seq = row ? at.column_int(0) : 0;
      const auto accepted = row ? at.column_int(1) : 0;
      at.reset();
      if (!row || seq > hi) {
        hi = mid - 1;
      } else if (accepted < cutoff) {
        found = seq;
        lo = seq + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  // Deletes finished (processed or purged) rows accepted more than dedup_window ago,
  // oldest first. Unfinished rows (pending, dead letters) are never compacted.
  void compact_rows(std::int64_t t, deltas& d) {
    const auto bound = last_seq_before(t - std::chrono::duration_cast<micros>(options.dedup_window).count());
    if (bound == 0) return;
    auto& s = *sql.compact;
    s.bind(1, bound).bind(2, static_cast<std::int64_t>(options.compaction_batch));
    std::size_t removed = 0;
    try {
      while (s.step()) {
        keys_removed.emplace_back(s.column_int(1), s.column_int(0));
        ++(s.column_int(2) == st_done ? d.compacted_processed : d.compacted_purged);
        ++removed;
      }
    } catch (...) {
      s.reset();
      throw;
    }
    s.reset();
    compacted_full = removed == options.compaction_batch;
    // Now and then, drop the keys of rows that another process compacted away (once
    // this transaction has committed: its own deletes count only then).
    if (++compactions % 64 == 0) {
      auto& m = *sql.min_seq;
      m.step();
      sweep_below = m.column_int(0);
      m.reset();
    }
  }

  bool any_due() {
    auto& s = *sql.any_due;
    s.bind(1, now_us());
    bool due = false;
    try {
      due = s.step();
    } catch (const ingest::error&) {
      due = true;  // let the transaction report the failure
    }
    s.reset();
    return due;
  }

  // Every state is counted on its own: pending and dead letters from their rows,
  // processed and purged from their rows plus what compaction removed of them, and
  // accepted from its counter, moved only by the transaction that inserts a row. A
  // row that vanished behind the queue's back breaks the balance instead of hiding in
  // a derived figure.
  void read_stats(stats_op& o, std::int64_t t) {
    auto& c = *sql.counters;
    std::int64_t compacted_processed = 0, compacted_purged = 0;
    while (c.step()) {
      const auto name = c.column_text(0);
      const auto v = c.column_int(1);
      if (name == "accepted") o.result.accepted = static_cast<std::uint64_t>(v);
      if (name == "compacted_processed") compacted_processed = v;
      if (name == "compacted_purged") compacted_purged = v;
    }
    c.reset();
    auto& p = *sql.pending_counts;
    p.bind(1, t);
    p.step();
    o.result.pending = static_cast<std::uint64_t>(p.column_int(0));
    o.result.leased = static_cast<std::uint64_t>(p.column_int(1));
    o.result.retrying = static_cast<std::uint64_t>(p.column_int(2));
    p.reset();
    std::int64_t processed = compacted_processed, purged = compacted_purged;
    auto& f = *sql.finished_counts;
    while (f.step()) {
      const auto state = f.column_int(0);
      const auto n = f.column_int(1);
      if (state == st_done) processed += n;
      if (state == st_purged) purged += n;
    }
    f.reset();
    auto& dc = *sql.dead_count;
    dc.step();
    const auto dead = dc.column_int(0);
    dc.reset();
    o.result.processed = static_cast<std::uint64_t>(processed);
    o.result.dead_lettered = static_cast<std::uint64_t>(dead);
    o.result.purged = static_cast<std::uint64_t>(purged);
    o.result.exact = {.accepted = true, .pending = true, .processed = true, .dead_lettered = true, .purged = true};
  }

  void read_message(find_op& o, std::int64_t now) {
    auto& s = *sql.find;
    s.bind(1, o.receipt_id);
    try {
      if (!s.step()) {
        o.ec = errc::not_found;
      } else {
        auto& m = o.result.message;
        m.receipt_id = s.column_text(0);
        m.idempotency_key = s.column_text(1);
        m.fingerprint = s.column_text(2);
        m.subject = s.column_text(3);
        m.payload = s.column_text(4);
        m.headers = detail::decode_headers(s.column_text(5));
        m.accepted_at = time_from_us(s.column_int(6));
        m.attempts = static_cast<std::uint32_t>(s.column_int(9));
        o.result.last_error = s.column_text(10);
        o.result.reason = s.column_text(11);
        switch (s.column_int(7)) {
          case 0:
            o.result.state = message_state::pending;
            break;
          case 1:  // a lapsed lease is deliverable again
            o.result.state = s.column_int(8) > now ? message_state::leased : message_state::pending;
            break;
          case 2:
            o.result.state = message_state::processed;
            break;
          default:
            o.result.state = message_state::dead_lettered;
        }
      }
    } catch (...) {
      s.reset();
      throw;
    }
    s.reset();
  }

  void read_dead_letters(list_op& o) {
    auto& s = *sql.list;
    s.bind(1, o.after).bind(2, static_cast<std::int64_t>(o.limit));
    try {
      while (s.step()) {
        dead_letter l;
        l.message.receipt_id = s.column_text(0);
        l.reason = s.column_text(1);
        l.last_error = s.column_text(2);
        l.attempts = static_cast<std::uint32_t>(s.column_int(3));
        l.first_attempt_at = time_from_us(s.column_int(4));
        l.last_attempt_at = time_from_us(s.column_int(5));
        l.dead_lettered_at = time_from_us(s.column_int(6));
        l.message.idempotency_key = s.column_text(7);
        l.message.fingerprint = s.column_text(8);
        l.message.subject = s.column_text(9);
        l.message.payload = s.column_text(10);
        l.message.headers = detail::decode_headers(s.column_text(11));
        l.message.accepted_at = time_from_us(s.column_int(12));
        l.message.attempts = l.attempts;
        o.result.push_back(std::move(l));
      }
    } catch (...) {
      s.reset();
      throw;
    }
    s.reset();
  }
};

// ---- queue --------------------------------------------------------------------------

queue::queue(executor_type ex, queue_options options) : executor_(ex) {
  options.validate();
  engine_ = std::make_unique<engine>(ex, std::move(options));
}

queue::~queue() = default;

durable_queue::executor_type queue::get_executor() const {
  return executor_;
}

queue_features queue::features() const {
  return {.durable = true,
          .native_dedup = true,
          .fifo = true,
          .delayed_retry = true,
          .lease_extension = true,
          .exact_stats = true,
          .lookup = engine_->options.receipt_index,
          .deadline_before_store = true,
          .dedup_window = engine_->options.dedup_window};
}

void queue::close() {
  {
    std::lock_guard lock(engine_->mutex);
    engine_->closed = true;
  }
  engine_->wake.notify_all();
}

std::string queue::last_error() const {
  std::lock_guard lock(engine_->mutex);
  return engine_->last_error;
}

void queue::do_publish(envelope message, callback<error_code, receipt> done) {
  if (const auto invalid = validate_envelope(message)) return done(invalid, receipt{});
  if (message.fingerprint.empty()) message.fingerprint = fingerprint(message.payload);
  if (message.receipt_id.empty()) message.receipt_id = make_receipt_id();
  message.attempts = 0;
  publish_op op{std::move(message), std::move(done)};
  operation wrapped(std::move(op));
  if (!engine_->enqueue(std::move(wrapped), true)) std::get<publish_op>(wrapped).done(errc::shutting_down, receipt{});
}

void queue::do_fetch(std::size_t max, duration wait, callback<error_code, std::vector<delivery>> done) {
  operation op(fetch_op{max, steady::now() + wait, std::move(done)});
  if (!engine_->enqueue(std::move(op), true)) std::get<fetch_op>(op).done(errc::shutting_down, std::vector<delivery>{});
}

void queue::do_settle(std::vector<settlement> decisions, callback<error_code> done) {
  operation op(settle_op{std::move(decisions), std::move(done)});
  if (!engine_->enqueue(std::move(op), false)) std::get<settle_op>(op).done(errc::shutting_down);
}

void queue::do_extend(std::vector<std::string> tokens, duration by, callback<error_code> done) {
  operation op(extend_op{std::move(tokens), by, std::move(done)});
  if (!engine_->enqueue(std::move(op), false)) std::get<extend_op>(op).done(errc::shutting_down);
}

void queue::do_stats(callback<error_code, queue_stats> done) {
  operation op(stats_op{std::move(done)});
  if (!engine_->enqueue(std::move(op), false)) std::get<stats_op>(op).done(errc::shutting_down, queue_stats{});
}

void queue::do_dead_letters(std::string after, std::size_t limit, callback<error_code, std::vector<dead_letter>> done) {
  operation op(list_op{std::move(after), limit, std::move(done)});
  if (!engine_->enqueue(std::move(op), false))
    std::get<list_op>(op).done(errc::shutting_down, std::vector<dead_letter>{});
}

void queue::do_find(std::string receipt_id, callback<error_code, message_status> done) {
  if (!engine_->options.receipt_index) return done(errc::not_supported, message_status{});
  operation op(find_op{std::move(receipt_id), std::move(done)});
  if (!engine_->enqueue(std::move(op), false)) std::get<find_op>(op).done(errc::shutting_down, message_status{});
}

void queue::do_replay(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) {
  operation op(replay_op{std::move(receipt_ids), false, std::move(done)});
  if (!engine_->enqueue(std::move(op), false)) std::get<replay_op>(op).done(errc::shutting_down, 0);
}

void queue::do_purge(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) {
  operation op(replay_op{std::move(receipt_ids), true, std::move(done)});
  if (!engine_->enqueue(std::move(op), false)) std::get<replay_op>(op).done(errc::shutting_down, 0);
}

}  // namespace ingest::sqlite
