#include <optional>
#include <random>
#include <string>
#include <thread>

#include "engine.hpp"
#include "core/url_params.hpp"
#include "ingest/error.hpp"

namespace ingest::sqlite {
namespace {

constexpr std::int64_t application_id = 0x696E7131;  // "inq1"
constexpr std::int64_t schema_version = 2;

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

}  // namespace

void queue_options::validate() const {
  auto bad = [](const std::string& what) { throw error(errc::invalid_config, "sqlite queue: " + what); };
  if (path.empty()) bad("path must not be empty");
  if (visibility_timeout <= std::chrono::milliseconds::zero()) bad("visibility_timeout must be positive");
  if (commit_linger < std::chrono::microseconds::zero() || commit_linger > std::chrono::seconds(1))
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
  ingest::detail::url_query params("sqlite queue URL",
                                   q == std::string_view::npos ? std::string_view{} : rest.substr(q + 1));
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

queue::engine::engine(durable_queue::executor_type ex, queue_options o)
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
  if (options.receipt_index)
    db.exec("CREATE INDEX IF NOT EXISTS ingest_messages_receipt ON ingest_messages(receipt_id)");
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

queue::engine::~engine() {
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
void queue::engine::checkpoint_loop() {
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

}  // namespace ingest::sqlite
