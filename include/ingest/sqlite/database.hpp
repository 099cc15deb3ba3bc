#pragma once
/// @file
/// A small owning wrapper over one SQLite connection: open with the durability
/// settings the library relies on, prepared statements, RAII transactions.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

struct sqlite3;
struct sqlite3_stmt;

namespace ingest::sqlite {

/// How a `database` opens its file.
struct database_options {
  bool create = true;  ///< create the file if missing
  bool read_only = false;  ///< open read-only (no writes, no WAL set-up)
  bool wal = true;               ///< journal_mode=WAL
  bool synchronous_full = true;  ///< synchronous=FULL: a commit is on disk when it returns
  std::chrono::milliseconds busy_timeout{std::chrono::seconds(5)};  ///< how long a statement waits for another connection's lock before `SQLITE_BUSY`
  /// temp_store=MEMORY: savepoint and statement journals (a savepoint per item in
  /// `transactional_handler`) and temporary b-trees stay in memory instead of spilling
  /// to a temporary file, which cost a write system call per page.
  bool temp_store_memory = true;
};

/// Error category of SQLite result codes (name "sqlite"); values are extended result codes.
const std::error_category& sqlite_category() noexcept;

/// True when `ec` is SQLite's "another connection holds the lock" (`SQLITE_BUSY` or
/// `SQLITE_LOCKED`, with any extended code): a failure that may pass if tried again.
bool is_busy(const std::error_code& ec) noexcept;

/// Turns off SQLite's process-wide memory statistics (`SQLITE_CONFIG_MEMSTATUS`). With
/// them on, every allocation of every connection takes one global mutex; a queue
/// writer, consumers and a checkpointer on threads of their own contend for it at
/// every statement. It is process-wide, so the library never changes it by itself:
/// call it first thing in `main`, before anything opens an SQLite database. Returns
/// false, changing nothing, once SQLite is initialised. Without the statistics,
/// `sqlite3_memory_used()` reads 0 and the soft heap limit does not apply.
bool disable_memory_statistics() noexcept;

/// One connection. Move-only; not thread-safe (one thread at a time).
///
/// Errors throw `ingest::error` whose code is in `sqlite_category()` and whose text
/// carries SQLite's message and the statement.
///
/// @code
/// ingest::sqlite::database db("sink.db");
/// ingest::sqlite::transaction tx(db);
/// db.exec("INSERT INTO t VALUES (1)");
/// tx.commit();
/// @endcode
class database {
 public:
  /// Opens (and with `create`, creates) `path` and applies the options. Throws `ingest::error`.
  explicit database(const std::string& path, database_options options = {});
  /// Moves the connection; the source is left empty.
  database(database&&) noexcept = default;
  /// Moves the connection; the source is left empty.
  database& operator=(database&&) noexcept = default;
  ~database();

  /// Runs one or more statements without results.
  void exec(std::string_view sql);
  /// Rows changed by the last statement.
  std::int64_t changes() const noexcept;
  /// Rowid of the last row inserted on this connection.
  std::int64_t last_insert_rowid() const noexcept;
  /// The raw handle, for direct use of the SQLite C API. Still owned by this object.
  sqlite3* native_handle() const noexcept { return db_.get(); }
  /// The file name given at construction.
  const std::string& path() const noexcept { return path_; }

 private:
  void switch_to_wal(std::chrono::milliseconds patience);
  struct closer {
    void operator()(sqlite3* db) const noexcept;
  };
  std::unique_ptr<sqlite3, closer> db_;
  std::string path_;
};

/// A prepared statement. Move-only. Bind indexes start at 1; column indexes at 0.
class statement {
 public:
  /// Prepares `sql` on `db` (which must outlive the statement). Throws `ingest::error`.
  statement(database& db, std::string_view sql);
  /// Moves the statement; the source is left empty.
  statement(statement&&) noexcept = default;
  /// Moves the statement; the source is left empty.
  statement& operator=(statement&&) noexcept = default;
  ~statement();

  /// Binds an integer to parameter `index` (from 1).
  statement& bind(int index, std::int64_t value);
  /// Binds a real to parameter `index`.
  statement& bind(int index, double value);
  /// Binds text (copied) to parameter `index`.
  statement& bind(int index, std::string_view text);
  /// Binds bytes (copied) as a BLOB to parameter `index`.
  statement& bind_blob(int index, std::string_view bytes);
  /// Binds NULL to parameter `index`.
  statement& bind_null(int index);

  /// Advances; true while a row is available.
  bool step();
  /// step() for statements without results; resets afterwards.
  void run();
  /// Resets for re-execution and clears bindings.
  void reset() noexcept;

  /// The integer value of column `index` (from 0) of the current row.
  std::int64_t column_int(int index) const;
  /// The real value of column `index` of the current row.
  double column_double(int index) const;
  /// The text of column `index` of the current row (a copy; empty for NULL).
  std::string column_text(int index) const;
  /// True when column `index` of the current row is NULL.
  bool column_is_null(int index) const;

 private:
  struct finalizer {
    void operator()(sqlite3_stmt* stmt) const noexcept;
  };
  sqlite3* db_ = nullptr;
  std::unique_ptr<sqlite3_stmt, finalizer> stmt_;
};

/// `BEGIN IMMEDIATE` on construction; rolls back in the destructor unless committed.
class transaction {
 public:
  /// Begins the transaction (`BEGIN IMMEDIATE`: takes the write lock now). Throws `ingest::error`.
  explicit transaction(database& db);
  ~transaction();
  transaction(const transaction&) = delete;
  transaction& operator=(const transaction&) = delete;

  /// Commits; afterwards the destructor does nothing. Throws `ingest::error` (still open then).
  void commit();
  /// Rolls back now; afterwards the destructor does nothing.
  void rollback();

 private:
  database& db_;
  bool open_ = true;
};

}  // namespace ingest::sqlite
