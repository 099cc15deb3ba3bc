#pragma once
/// @file
/// A small owning wrapper over one libpq connection: parameters as text or binary, prepared
/// statements that survive a reconnect, RAII transactions and savepoints, array
/// literals for one-statement batch writes.

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "ingest/postgres/error.hpp"

struct pg_conn;
struct pg_result;

namespace ingest::postgres {

/// One statement parameter, sent as text (PostgreSQL converts it to the column's or
/// the cast's type), as bytes in PostgreSQL's binary format (`param::binary`), or SQL
/// NULL. Refers to the caller's string when it is NUL-terminated (`std::string`,
/// `const char*`); copies a `string_view` and numbers. Text holding a NUL byte cannot
/// be sent (PostgreSQL text has none): running a statement with one throws SQLSTATE
/// 22021 instead of sending the text cut short.
class param {
 public:
  /// SQL NULL.
  param(std::nullopt_t) noexcept {}  // NOLINT(google-explicit-constructor)
  /// Text of a `std::string` (referred to, not copied: it must outlive the call).
  param(const std::string& text) noexcept : ptr_(text.c_str()), nul_(has_nul(text)) {}  // NOLINT
  /// A NUL-terminated string (referred to).
  param(const char* text) noexcept : ptr_(text) {}  // NOLINT
  /// Any text (copied).
  param(std::string_view text) : owned_(text), ptr_(owned_->c_str()), nul_(has_nul(text)) {}  // NOLINT
  /// An integer, as decimal text.
  param(std::int64_t value) : owned_(std::to_string(value)), ptr_(owned_->c_str()) {}  // NOLINT
  /// An integer, as decimal text.
  param(int value) : param(static_cast<std::int64_t>(value)) {}  // NOLINT
  /// A copy (which owns a copy of the text when the original did).
  param(const param& other)
      : owned_(other.owned_),
        ptr_(owned_ ? owned_->c_str() : other.ptr_),
        nul_(other.nul_),
        length_(other.length_),
        binary_(other.binary_) {}
  param& operator=(const param&) = delete;
  /// Bytes in PostgreSQL's binary format for the parameter's type, such as
  /// `text_array::bytes()` for a `$n::text[]` (referred to: they must outlive the call,
  /// unchanged). Throws `ingest::error` (54000) above 1 GB.
  static param binary(const std::string& bytes) {
    if (bytes.size() > 0x3fffffff) throw_too_long();
    param p(std::nullopt);
    p.ptr_ = bytes.data();
    p.length_ = static_cast<int>(bytes.size());
    p.binary_ = true;
    return p;
  }
  static param binary(std::string&&) = delete;  // the bytes would be gone before the call

  /// The NUL-terminated text, nullptr for NULL, or the start of binary bytes.
  const char* c_str() const noexcept { return ptr_; }
  /// True when the text held a NUL byte (it cannot be sent).
  bool holds_nul() const noexcept { return nul_; }
  /// True for bytes in binary format; `length()` is then their size.
  bool is_binary() const noexcept { return binary_; }
  /// The size of binary bytes (0 for text and NULL).
  int length() const noexcept { return length_; }

 private:
  static bool has_nul(std::string_view text) noexcept { return text.find('\0') != std::string_view::npos; }
  [[noreturn]] static void throw_too_long();
  std::optional<std::string> owned_{};
  const char* ptr_ = nullptr;
  bool nul_ = false;
  int length_ = 0;
  bool binary_ = false;
};

/// A PostgreSQL array literal (`{"a","b",NULL}`) built element by element, to pass a
/// whole batch as one parameter (`$1::text[]`, then `unnest`). Every element is quoted
/// and `"` and `\` escaped, so any text round-trips.
class array_literal {
 public:
  array_literal() { text_ = "{"; }
  /// Appends a text element.
  void push_back(std::string_view element);
  /// Appends a NULL element.
  void push_null();
  /// Number of elements.
  std::size_t size() const noexcept { return count_; }
  /// The literal (closed with `}`).
  const std::string& str();

 private:
  void separate();
  std::string text_;
  std::size_t count_ = 0;
  bool closed_ = false;
};

/// A one-dimensional `text[]` in PostgreSQL's binary format, built element by element,
/// to pass a whole batch as one parameter (`$1::text[]`, then `unnest`): the server
/// reads lengths instead of parsing a literal, and nothing is escaped. Measured faster
/// than `array_literal` for short keys; not for wide rows with casts (see
/// benchmarks/README.md), so measure your own.
/// Elements are sent as they are (the connection's client encoding, UTF-8 by
/// default); one holding a NUL byte is refused with SQLSTATE 22021.
///
/// @code
/// ingest::postgres::text_array ids;
/// for (const auto& id : batch) ids.push_back(id);
/// db.exec("INSERT INTO t(id) SELECT * FROM unnest($1::text[])", {ingest::postgres::param::binary(ids.bytes())});
/// @endcode
class text_array {
 public:
  text_array();
  /// Appends a text element. Throws `ingest::error` (22021) for a NUL byte.
  void push_back(std::string_view element);
  /// Appends a NULL element.
  void push_null();
  /// Number of elements.
  std::size_t size() const noexcept { return count_; }
  /// The array in binary format, for `param::binary` (valid until the next push).
  const std::string& bytes();

 private:
  std::string bytes_;
  std::size_t count_ = 0;
  bool has_null_ = false;
};

/// The rows (or the command status) of one statement. Move-only.
class result {
 public:
  /// Takes ownership of a libpq result (may be null: an empty result).
  explicit result(pg_result* res = nullptr) noexcept;
  /// Moves the rows; the source is left empty.
  result(result&&) noexcept = default;
  /// Moves the rows; the source is left empty.
  result& operator=(result&&) noexcept = default;
  ~result();

  /// Number of rows returned.
  int rows() const noexcept;
  /// Number of columns.
  int columns() const noexcept;
  /// The text of a value (empty for NULL); valid while the result lives.
  std::string_view text(int row, int column) const;
  /// True when a value is NULL.
  bool is_null(int row, int column) const;
  /// A value read as a 64-bit integer. Throws `ingest::error` when it is not one.
  std::int64_t integer(int row, int column) const;
  /// Rows an INSERT, UPDATE or DELETE changed (0 for other statements).
  std::int64_t affected_rows() const;
  /// The command tag of the statement ("INSERT 0 1", "COMMIT", "ROLLBACK", ...).
  std::string_view command() const;
  /// The raw result, still owned by this object.
  pg_result* native_handle() const noexcept { return res_.get(); }

 private:
  struct clearer {
    void operator()(pg_result* r) const noexcept;
  };
  std::unique_ptr<pg_result, clearer> res_;
};

/// How a `connection` connects.
struct connection_options {
  std::chrono::seconds connect_timeout{10};  ///< per attempt to reach the server
  std::string application_name = "ingest";   ///< shown in `pg_stat_activity`
  /// The server-side `statement_timeout` of the session (zero: the server's setting).
  std::chrono::milliseconds statement_timeout{0};
};

/// One connection. Move-only; not thread-safe (one thread at a time; see
/// `connection_pool` for several).
///
/// `conninfo` is a `postgresql://` URI or `key=value` pairs; whatever it leaves out
/// comes from the usual `PG*` environment variables (`PGHOST`, `PGPORT`, `PGUSER`,
/// `PGPASSWORD`, `PGDATABASE`, ...) and libpq's defaults. Errors throw `ingest::error`
/// whose code is in `postgres_category()` (the SQLSTATE) and whose text carries the
/// server's message; a password is never part of it.
///
/// @code
/// ingest::postgres::connection db("postgresql://app@127.0.0.1:5432/lms");
/// ingest::postgres::transaction tx(db);
/// db.exec("INSERT INTO t(id, body) VALUES ($1, $2)", {id, body});
/// tx.commit();
/// @endcode
class connection {
 public:
  /// Connects. Throws `ingest::error` (SQLSTATE 08006 when the server cannot be reached).
  explicit connection(std::string conninfo = {}, connection_options options = {});
  /// Moves the connection; the source is left closed.
  connection(connection&&) noexcept;
  /// Moves the connection; the source is left closed.
  connection& operator=(connection&&) noexcept;
  ~connection();

  /// Runs one or more statements without parameters (simple query protocol); returns
  /// the result of the last one.
  result exec(std::string_view sql);
  /// Runs one statement with `$1`, `$2`, ... bound to `params` (text, or binary where
  /// made by `param::binary`).
  result exec(std::string_view sql, std::span<const param> params);
  /// The same, with the parameters written in place.
  result exec(std::string_view sql, std::initializer_list<param> params) {
    return exec(sql, std::span<const param>(params.begin(), params.size()));
  }

  /// Registers a prepared statement under `name`; it is prepared on the server on first
  /// use, and again after a reconnect. Registering a name again with other text throws.
  void prepare(const std::string& name, std::string sql);
  /// Runs the prepared statement `name` with `params`.
  result exec_prepared(const std::string& name, std::span<const param> params);
  /// The same, with the parameters written in place.
  result exec_prepared(const std::string& name, std::initializer_list<param> params) {
    return exec_prepared(name, std::span<const param>(params.begin(), params.size()));
  }

  /// True while the connection is up (as far as libpq knows without asking).
  bool is_open() const noexcept;
  /// Connects again (a broken connection, or after a server restart). Throws.
  void reconnect();
  /// `reconnect()` when the connection is known to be broken, else nothing.
  void ensure_open();
  /// Closes the connection (the server rolls back an open transaction); `ensure_open`
  /// or `reconnect` opens it again.
  void close() noexcept;
  /// True inside a transaction block (also a failed one).
  bool in_transaction() const noexcept;
  /// The process id of the server backend serving this connection.
  int backend_pid() const noexcept;
  /// The raw handle, for direct use of libpq. Still owned by this object.
  pg_conn* native_handle() const noexcept { return conn_.get(); }

 private:
  void open();
  result check(pg_result* res, std::string_view what);
  struct finisher {
    void operator()(pg_conn* c) const noexcept;
  };
  std::string conninfo_;
  connection_options options_;
  std::unique_ptr<pg_conn, finisher> conn_;
  std::unordered_map<std::string, std::string> statements_;  // name -> SQL
  std::unordered_set<std::string> prepared_;                 // prepared on this session
};

/// Isolation level of a `transaction`.
enum class isolation { read_committed, repeatable_read, serializable };

/// `BEGIN` on construction; rolls back in the destructor unless committed.
class transaction {
 public:
  /// Begins a transaction at `level`. Throws `ingest::error`.
  explicit transaction(connection& db, isolation level = isolation::read_committed);
  ~transaction();
  transaction(const transaction&) = delete;
  transaction& operator=(const transaction&) = delete;

  /// Commits; afterwards the destructor does nothing. Throws `ingest::error` when the
  /// commit did not happen: SQLSTATE 25P02 when a statement of the transaction had
  /// failed (PostgreSQL then answers COMMIT with a rollback, which is never taken for
  /// a commit here), or a lost connection (its outcome unknown: retry idempotently).
  void commit();
  /// Rolls back now; afterwards the destructor does nothing.
  void rollback();

 private:
  connection& db_;
  bool open_ = true;
};

/// `SAVEPOINT name` on construction; rolls back to it (undoing what followed) in the
/// destructor unless released.
class savepoint {
 public:
  /// Sets the savepoint (`name`: letters, digits and '_'). Throws `ingest::error`.
  explicit savepoint(connection& db, std::string name = "ingest_savepoint");
  ~savepoint();
  savepoint(const savepoint&) = delete;
  savepoint& operator=(const savepoint&) = delete;

  /// Keeps what was done since the savepoint.
  void release();
  /// Undoes what was done since the savepoint (also after an error) and releases it.
  void rollback();

 private:
  connection& db_;
  std::string name_;
  bool open_ = true;
};

}  // namespace ingest::postgres
