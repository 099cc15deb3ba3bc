#pragma once
/// @file
/// The embedded durable queue: one SQLite file, no server. The default backend.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "ingest/durable_queue.hpp"

namespace ingest::sqlite {

/// Where the embedded queue keeps its file and how it commits, leases and compacts.
struct queue_options {
  /// The queue file; created when missing (with its directory's permission).
  std::string path = "queue.db";
  /// How long fetched messages stay invisible to other fetches (the lease).
  std::chrono::milliseconds visibility_timeout{std::chrono::seconds(30)};
  /// Extra wait before a commit so that more publishes share its fsync. Zero: commit
  /// at once (publishes that arrive while a commit is under way still share the next
  /// one, so group commit happens without it).
  std::chrono::microseconds commit_linger{0};
  /// Most operations (publishes, settlements, ...) in one transaction.
  std::size_t max_ops_per_commit = 4096;
  /// Capacity in messages not yet processed; 0 = unbounded. Past it, publishes
  /// complete with `errc::queue_full`; nothing is evicted.
  std::size_t max_messages = 0;
  /// How long after its acceptance a key is remembered at least, so that a late
  /// client retry still gets the original receipt (the keys of messages not yet
  /// processed, and of dead letters, are always remembered). Processed and purged
  /// messages accepted longer ago than this are compacted away.
  std::chrono::milliseconds dedup_window{std::chrono::hours(24)};
  /// How often finished rows are compacted, and how many at most each time.
  std::chrono::milliseconds compaction_interval{std::chrono::seconds(1)};
  std::size_t compaction_batch = 5000;  ///< rows deleted per compaction transaction (keeps each one short)
  /// Index receipt ids, so that `async_find` can tell where a message is
  /// (`features().lookup`). The index costs about a tenth of the drain rate; without
  /// it `async_find` completes with `errc::not_supported`.
  bool receipt_index = true;
  /// How often a background thread checkpoints the WAL into the file (on its own
  /// connection, so that commits never wait for a checkpoint). Zero: the writer
  /// checkpoints inside its commits, as SQLite does by default.
  std::chrono::milliseconds checkpoint_interval{std::chrono::milliseconds(100)};
  /// How often a waiting fetch looks for messages written by another process.
  std::chrono::milliseconds poll_interval{std::chrono::milliseconds(10)};
  /// How long to wait for another process's write lock before failing an operation.
  std::chrono::milliseconds busy_timeout{std::chrono::seconds(5)};
  /// SQLite `max_page_count` (0: SQLite's default). Caps the file size; a publish
  /// that would exceed it fails with `errc::storage_error` and nothing is lost.
  std::int64_t max_page_count = 0;

  /// Throws `ingest::error(errc::invalid_config)` when a value is out of range.
  void validate() const;

  /// `sqlite:///abs/path/queue.db` or `sqlite://relative/queue.db`, with optional
  /// query parameters `visibility_timeout`, `commit_linger`, `max_messages`,
  /// `dedup_window`, `poll_interval`, `busy_timeout`, `max_page_count`, `checkpoint_interval`,
  /// `compaction_interval`, `receipt_index` (`true`/`false`)
  /// (durations as `250ms`, `30s`, `5m`, `24h`, `500us`); the path and values are
  /// percent-decoded. Throws `ingest::error(errc::invalid_config)` on anything else,
  /// naming it (an unknown or repeated parameter included).
  static queue_options from_url(std::string_view url);
};

/// Durable queue in one SQLite file (WAL, `synchronous=FULL`).
///
/// **Durability.** A publish completes only after the transaction holding it has
/// committed and been fsynced. Concurrent publishes, settlements and fetches share
/// transactions (group commit): one writer thread takes whatever operations are
/// waiting, runs them in one transaction and completes them after the commit, so
/// throughput grows with concurrency instead of being bounded by the disk's fsync rate.
///
/// **Accept time.** `accepted_at` is stamped when the transaction that stores the
/// message begins, and stored with it; the receipt follows the commit's fsync, a few
/// milliseconds later.
///
/// **Semantics.** Those of `durable_queue`: dedup on the idempotency key within
/// `dedup_window`; leases with the visibility timeout (a crashed consumer's messages
/// come back when their leases expire, also after a restart); delayed retry; lease
/// extension; a dead-letter table with reason, attempts, last error and times;
/// replay and purge; exact stats (counters kept in the same transactions).
///
/// **Several processes** may open the same file (a server publishing, a worker
/// consuming): SQLite's locks order their transactions, and a waiting fetch notices
/// another process's publishes within `poll_interval`.
///
/// **Errors.** A storage failure (disk full, I/O error) fails the operations of that
/// transaction with `errc::storage_error` and rolls it back: no receipt is issued for
/// anything not stored, and nothing stored is lost. Another process holding the write
/// lock past `busy_timeout` gives `errc::backend_unavailable`. `last_error()` has
/// SQLite's text. A file that is not an ingest queue, or is corrupt, throws
/// `ingest::error` from the constructor.
///
/// **Ownership.** Owns its connections, its writer thread and its checkpointer; the
/// messages live in the file. Not copyable.
///
/// **Threading.** Thread-safe; completions run on their associated executor (default:
/// the one given here). The writer thread hands each commit's completions to the
/// executor given here in one post, so that executor must be run even when the
/// handlers carry executors of their own. The destructor closes the queue and completes
/// every pending operation. Completion and cancellation: as `durable_queue` says.
///
/// @code
/// ingest::sqlite::queue queue(io.get_executor(), {.path = "data/queue.db"});
/// auto r = co_await queue.async_publish(std::move(env), asio::use_awaitable);
/// @endcode
class queue final : public durable_queue {
 public:
  /// Opens (or creates) the queue file; completions run on `ex`. Throws `ingest::error`.
  queue(executor_type ex, queue_options options);
  ~queue() override;
  queue(const queue&) = delete;
  queue& operator=(const queue&) = delete;

  executor_type get_executor() const override;
  queue_features features() const override;
  void close() override;

  /// SQLite's text for the last storage error, empty if none.
  std::string last_error() const;

 private:
  void do_publish(envelope message, callback<error_code, receipt> done) override;
  void do_fetch(std::size_t max, duration wait, callback<error_code, std::vector<delivery>> done) override;
  void do_settle(std::vector<settlement> decisions, callback<error_code> done) override;
  void do_extend(std::vector<std::string> tokens, duration by, callback<error_code> done) override;
  void do_stats(callback<error_code, queue_stats> done) override;
  void do_dead_letters(std::string after, std::size_t limit,
                       callback<error_code, std::vector<dead_letter>> done) override;
  void do_replay(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) override;
  void do_purge(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) override;
  void do_find(std::string receipt_id, callback<error_code, message_status> done) override;

  struct engine;
  std::unique_ptr<engine> engine_;
  executor_type executor_;
};

}  // namespace ingest::sqlite
