#include "ingest/sqlite/database.hpp"

#include <sqlite3.h>

#include <chrono>
#include <thread>

#include "ingest/error.hpp"

namespace ingest::sqlite {
namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "sqlite"; }
  std::string message(int value) const override { return sqlite3_errstr(value); }
};

[[noreturn]] void fail(sqlite3* db, int rc, std::string_view context) {
  const int code = db ? sqlite3_extended_errcode(db) : rc;
  std::string text = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  throw error(std::error_code(code ? code : rc, sqlite_category()), text + " (" + std::string(context) + ")");
}

}  // namespace

const std::error_category& sqlite_category() noexcept {
  static const category instance;
  return instance;
}

bool is_busy(const std::error_code& ec) noexcept {
  if (ec.category() != sqlite_category()) return false;
  const int primary = ec.value() & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

bool disable_memory_statistics() noexcept {
  return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK;
}

void database::closer::operator()(sqlite3* db) const noexcept {
  sqlite3_close_v2(db);
}

database::database(const std::string& path, database_options options) : path_(path) {
  int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
  flags |= options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (options.create && !options.read_only) flags |= SQLITE_OPEN_CREATE;
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  db_.reset(raw);  // a failed open still returns a handle that must be closed
  if (rc != SQLITE_OK) fail(raw, rc, "open " + path);
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, static_cast<int>(options.busy_timeout.count()));
  // Reading the schema up front turns a foreign or corrupt file into an error here,
  // not at the first write.
  exec("SELECT count(*) FROM sqlite_schema");
  if (!options.read_only) {
    if (options.wal) switch_to_wal(options.busy_timeout);
    exec(options.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  }
  if (options.temp_store_memory) exec("PRAGMA temp_store=MEMORY");
}

database::~database() = default;

// Two processes opening a new file at once both switch it to WAL. That needs the
// exclusive lock, and SQLite answers SQLITE_BUSY at once, without the busy handler, to
// the one that would otherwise deadlock. Such a refusal is retried until the busy
// timeout has passed.
void database::switch_to_wal(std::chrono::milliseconds patience) {
  const auto give_up = std::chrono::steady_clock::now() + patience;
  for (;;) {
    try {
      statement mode(*this, "PRAGMA journal_mode=WAL");
      if (!mode.step() || mode.column_text(0) != "wal")
        throw error(errc::storage_error, "could not switch " + path_ + " to WAL mode");
      return;
    } catch (const error& e) {
      if (!is_busy(e.code()) || std::chrono::steady_clock::now() >= give_up) throw;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void database::exec(std::string_view sql) {
  const std::string text(sql);
  char* message = nullptr;
  const int rc = sqlite3_exec(db_.get(), text.c_str(), nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    std::string why = message ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
    throw error(std::error_code(sqlite3_extended_errcode(db_.get()), sqlite_category()), why + " (" + text + ")");
  }
}

std::int64_t database::changes() const noexcept {
  return sqlite3_changes64(db_.get());
}

std::int64_t database::last_insert_rowid() const noexcept {
  return sqlite3_last_insert_rowid(db_.get());
}

void statement::finalizer::operator()(sqlite3_stmt* stmt) const noexcept {
  sqlite3_finalize(stmt);
}

statement::statement(database& db, std::string_view sql) : db_(db.native_handle()) {
  sqlite3_stmt* raw = nullptr;
  const int rc =
      sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  stmt_.reset(raw);
  if (rc != SQLITE_OK) fail(db_, rc, sql);
}

statement::~statement() = default;

statement& statement::bind(int index, std::int64_t value) {
  if (int rc = sqlite3_bind_int64(stmt_.get(), index, value); rc != SQLITE_OK) fail(db_, rc, "bind");
  return *this;
}

statement& statement::bind(int index, double value) {
  if (int rc = sqlite3_bind_double(stmt_.get(), index, value); rc != SQLITE_OK) fail(db_, rc, "bind");
  return *this;
}

statement& statement::bind(int index, std::string_view text) {
  // An empty view may have a null data(), which SQLite would bind as NULL.
  const char* data = text.data() ? text.data() : "";
  if (int rc = sqlite3_bind_text64(stmt_.get(), index, data, text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      rc != SQLITE_OK)
    fail(db_, rc, "bind");
  return *this;
}

statement& statement::bind_blob(int index, std::string_view bytes) {
  const char* data = bytes.data() ? bytes.data() : "";
  if (int rc = sqlite3_bind_blob64(stmt_.get(), index, data, bytes.size(), SQLITE_TRANSIENT); rc != SQLITE_OK)
    fail(db_, rc, "bind");
  return *this;
}

statement& statement::bind_null(int index) {
  if (int rc = sqlite3_bind_null(stmt_.get(), index); rc != SQLITE_OK) fail(db_, rc, "bind");
  return *this;
}

bool statement::step() {
  const int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  const std::string sql = sqlite3_sql(stmt_.get());
  sqlite3_reset(stmt_.get());
  fail(db_, rc, sql);
}

void statement::run() {
  try {
    while (step()) {
    }
  } catch (...) {
    reset();
    throw;
  }
  reset();
}

void statement::reset() noexcept {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
}

std::int64_t statement::column_int(int index) const {
  return sqlite3_column_int64(stmt_.get(), index);
}
double statement::column_double(int index) const {
  return sqlite3_column_double(stmt_.get(), index);
}

std::string statement::column_text(int index) const {
  const auto* p = sqlite3_column_blob(stmt_.get(), index);
  const int n = sqlite3_column_bytes(stmt_.get(), index);
  return p ? std::string(static_cast<const char*>(p), static_cast<std::size_t>(n)) : std::string();
}

bool statement::column_is_null(int index) const {
  return sqlite3_column_type(stmt_.get(), index) == SQLITE_NULL;
}

transaction::transaction(database& db) : db_(db) {
  db_.exec("BEGIN IMMEDIATE");
}

transaction::~transaction() {
  if (open_) {
    try {
      db_.exec("ROLLBACK");
    } catch (...) {
      // Already rolled back by SQLite (e.g. after SQLITE_FULL); nothing left to undo.
    }
  }
}

void transaction::commit() {
  db_.exec("COMMIT");
  open_ = false;
}

void transaction::rollback() {
  open_ = false;
  db_.exec("ROLLBACK");
}

}  // namespace ingest::sqlite
