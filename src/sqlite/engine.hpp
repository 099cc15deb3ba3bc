#pragma once
// The engine behind `ingest::sqlite::queue`: one connection, one writer thread. Its
// member functions are defined in the files of this folder named for what they do.

#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "ingest/sqlite/database.hpp"
#include "ingest/sqlite/queue.hpp"

namespace ingest::sqlite {
namespace detail {

inline std::int64_t to_us(time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}
inline std::int64_t now_us() {
  return to_us(clock::now());
}

// A delivery's token, "seq:lease" (made by `make_token` in fetch.cpp).
inline bool parse_token(const std::string& token, std::int64_t& seq, std::int64_t& lease) {
  const auto colon = token.find(':');
  if (colon == std::string::npos) return false;
  const char* b = token.data();
  return std::from_chars(b, b + colon, seq).ec == std::errc{} &&
         std::from_chars(b + colon + 1, b + token.size(), lease).ec == std::errc{};
}

}  // namespace detail

// ---- the engine: one connection, one writer thread --------------------------------

struct queue::engine {
  using steady = std::chrono::steady_clock;
  using micros = std::chrono::microseconds;

  // Message states. Rows in state ready or leased are "pending"; a leased row whose
  // lease ran out (visible_at <= now) is deliverable again.
  enum : std::int64_t { st_ready = 0, st_leased = 1, st_done = 2, st_dead = 3, st_purged = 4 };

  // ---- operations waiting for the writer thread -------------------------------------

  struct publish_op {
    envelope message;
    callback<error_code, receipt> done;
    std::shared_ptr<const receipt_signer> signer{};  // receipt ids signed at the postmark
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

  // Counter changes made by the current transaction.
  struct deltas {
    std::int64_t accepted = 0, processed = 0, dead = 0, purged = 0;
    std::int64_t compacted_processed = 0, compacted_purged = 0;  // rows compaction removed
  };

  // setup.cpp: the file, the connection and the threads.
  engine(durable_queue::executor_type ex, queue_options o);
  ~engine();
  void checkpoint_loop();

  // statements.cpp
  void prepare_statements();
  void prepare_message_statements();
  void prepare_bookkeeping_statements();

  // writer.cpp: enqueue (any thread), the writer loop and the completions.
  bool enqueue(operation&& op, bool refused_when_closed);
  void run();
  steady::time_point next_wake() const;
  static bool feeds_waiters(const operation& op);
  void step(std::vector<operation>& batch);
  bool decide_serve(const std::vector<operation>& batch, steady::time_point now);
  void apply_operations(std::vector<operation>& batch, std::int64_t t, deltas& d);
  void serve_waiters(std::int64_t t, std::vector<fetch_op>& served);
  void read_results(std::vector<operation>& batch, std::int64_t t);
  void after_transaction(error_code failure, std::vector<fetch_op>& served);
  void complete(std::vector<operation>& batch, std::vector<fetch_op>& served, error_code failure);
  static void finish(operation& op, error_code failure);
  void expire_waiters(steady::time_point now);

  // ---- operations inside the transaction ----

  // publish.cpp: the key map and publishing.
  std::int64_t pending_count();
  void catch_up();
  void erase_key(std::int64_t hash, std::int64_t seq);
  void apply_publish(publish_op& o, std::int64_t t, deltas& d, std::int64_t& pending_now);

  // fetch.cpp: leases.
  void lease(fetch_op& o, std::int64_t t);
  bool on_lease(statement& s, const std::string& token, std::int64_t t);
  void apply_extend(extend_op& o, std::int64_t t);
  bool any_due();

  // settle.cpp
  void apply_settle(settle_op& o, std::int64_t t, deltas& d);

  // admin.cpp: dead letters and lookups.
  void apply_replay(replay_op& o, std::int64_t t, deltas& d);
  void read_message(find_op& o, std::int64_t now);
  void read_dead_letters(list_op& o);

  // stats.cpp: the counters.
  void flush(const deltas& d);
  void read_stats(stats_op& o, std::int64_t t);

  // compaction.cpp
  std::int64_t last_seq_before(std::int64_t cutoff);
  void compact_rows(std::int64_t t, deltas& d);

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
        add_counter, pending_counts, finished_counts, dead_count, list, dead_seq, replay, purge, drop_dead, all_dead,
        compact, new_keys, min_seq, seq_bounds, accepted_at_or_after, find;
  } sql;
};

}  // namespace ingest::sqlite
