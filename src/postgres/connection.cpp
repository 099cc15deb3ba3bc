#include "ingest/postgres/connection.hpp"

#include <libpq-fe.h>

#include <charconv>
#include <vector>

#include "ingest/error.hpp"

namespace ingest::postgres {
namespace {

// libpq's messages end with a newline; errors read better without it.
std::string trimmed(const char* message) {
  std::string text = message ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

void ignore_notice(void*, const char*) {}

// The parameters as libpq takes them: values, lengths (of binary ones) and formats.
struct wire_params {
  explicit wire_params(std::span<const param> params) {
    values.reserve(params.size());
    for (const auto& p : params) {
      if (p.holds_nul())
        throw error(make_error_code("22021"),
                    "postgres: a text parameter holds a NUL byte, which PostgreSQL text cannot carry");
      values.push_back(p.c_str());
      lengths.push_back(p.length());
      formats.push_back(p.is_binary() ? 1 : 0);
      any_binary = any_binary || p.is_binary();
    }
  }
  int size() const noexcept { return static_cast<int>(values.size()); }
  const int* length_data() const noexcept { return any_binary ? lengths.data() : nullptr; }
  const int* format_data() const noexcept { return any_binary ? formats.data() : nullptr; }

  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  bool any_binary = false;
};

void put_int32(std::string& out, std::uint32_t v) {
  const char bytes[] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                        static_cast<char>(v)};
  out.append(bytes, 4);
}

void set_int32(std::string& out, std::size_t at, std::uint32_t v) {
  std::string bytes;
  put_int32(bytes, v);
  out.replace(at, 4, bytes);
}

constexpr std::uint32_t text_oid = 25;
// The header of a binary array: dimensions, has-NULL flag, element type, then per
// dimension its length and lower bound.
constexpr std::size_t has_null_at = 4;
constexpr std::size_t length_at = 12;

}  // namespace

// ---- array_literal ------------------------------------------------------------------

void array_literal::separate() {
  if (closed_) {
    text_.pop_back();
    closed_ = false;
  }
  if (count_++ > 0) text_ += ',';
}

void array_literal::push_back(std::string_view element) {
  separate();
  text_ += '"';
  for (char c : element) {
    if (c == '"' || c == '\\') text_ += '\\';
    text_ += c;
  }
  text_ += '"';
}

void array_literal::push_null() {
  separate();
  text_ += "NULL";
}

const std::string& array_literal::str() {
  if (!closed_) {
    text_ += '}';
    closed_ = true;
  }
  return text_;
}

void param::throw_too_long() {
  throw error(make_error_code("54000"), "postgres: a binary parameter exceeds 1 GB");
}

// ---- text_array ---------------------------------------------------------------------

text_array::text_array() {
  put_int32(bytes_, 1);          // one dimension
  put_int32(bytes_, 0);          // has NULLs (set when one is pushed)
  put_int32(bytes_, text_oid);   // element type
  put_int32(bytes_, 0);          // length (set in bytes())
  put_int32(bytes_, 1);          // lower bound
}

void text_array::push_back(std::string_view element) {
  if (element.find('\0') != std::string_view::npos)
    throw error(make_error_code("22021"), "postgres: an array element holds a NUL byte, which PostgreSQL text cannot carry");
  if (element.size() > 0x3fffffff) throw error(make_error_code("54000"), "postgres: an array element exceeds 1 GB");
  put_int32(bytes_, static_cast<std::uint32_t>(element.size()));
  bytes_.append(element);
  ++count_;
}

void text_array::push_null() {
  put_int32(bytes_, 0xffffffff);  // length -1
  has_null_ = true;
  ++count_;
}

const std::string& text_array::bytes() {
  set_int32(bytes_, has_null_at, has_null_ ? 1 : 0);
  set_int32(bytes_, length_at, static_cast<std::uint32_t>(count_));
  return bytes_;
}

// ---- result -------------------------------------------------------------------------

void result::clearer::operator()(pg_result* r) const noexcept {
  PQclear(r);
}

result::result(pg_result* res) noexcept : res_(res) {}
result::~result() = default;

int result::rows() const noexcept {
  return res_ ? PQntuples(res_.get()) : 0;
}

int result::columns() const noexcept {
  return res_ ? PQnfields(res_.get()) : 0;
}

std::string_view result::text(int row, int column) const {
  if (row < 0 || row >= rows() || column < 0 || column >= columns())
    throw error(errc::not_found, "postgres: no such row or column in the result");
  return {PQgetvalue(res_.get(), row, column), static_cast<std::size_t>(PQgetlength(res_.get(), row, column))};
}

bool result::is_null(int row, int column) const {
  if (row < 0 || row >= rows() || column < 0 || column >= columns())
    throw error(errc::not_found, "postgres: no such row or column in the result");
  return PQgetisnull(res_.get(), row, column) == 1;
}

std::int64_t result::integer(int row, int column) const {
  const auto t = text(row, column);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  if (ec != std::errc() || end != t.data() + t.size() || t.empty())
    throw error(errc::invalid_config, "postgres: value is not an integer: '" + std::string(t) + "'");
  return value;
}

std::int64_t result::affected_rows() const {
  if (!res_) return 0;
  const char* n = PQcmdTuples(res_.get());
  return n && *n ? std::stoll(n) : 0;
}

std::string_view result::command() const {
  return res_ ? std::string_view(PQcmdStatus(res_.get())) : std::string_view();
}

// ---- connection ---------------------------------------------------------------------

void connection::finisher::operator()(pg_conn* c) const noexcept {
  PQfinish(c);
}

connection::connection(std::string conninfo, connection_options options)
    : conninfo_(std::move(conninfo)), options_(std::move(options)) {
  open();
}

connection::connection(connection&&) noexcept = default;
connection& connection::operator=(connection&&) noexcept = default;
connection::~connection() = default;

void connection::open() {
  const auto timeout = std::to_string(std::max<std::int64_t>(1, options_.connect_timeout.count()));
  const auto server_options = "-c statement_timeout=" + std::to_string(options_.statement_timeout.count());
  // Our settings first: whatever the connection string says overrides them.
  std::vector<const char*> keys{"connect_timeout", "application_name", "options"};
  std::vector<const char*> values{timeout.c_str(), options_.application_name.c_str(), server_options.c_str()};
  if (options_.statement_timeout.count() == 0) {
    keys.pop_back();
    values.pop_back();
  }
  if (!conninfo_.empty()) {
    keys.push_back("dbname");
    values.push_back(conninfo_.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  conn_.reset(PQconnectdbParams(keys.data(), values.data(), 1));
  if (!conn_) throw error(make_error_code("08006"), "postgres: cannot connect: out of memory");
  if (PQstatus(conn_.get()) != CONNECTION_OK) {
    const auto message = trimmed(PQerrorMessage(conn_.get()));
    conn_.reset();
    throw error(make_error_code("08006"), "postgres: cannot connect: " + message);
  }
  PQsetNoticeProcessor(conn_.get(), ignore_notice, nullptr);
  prepared_.clear();
}

result connection::check(pg_result* raw, std::string_view what) {
  result res(raw);
  const auto status = raw ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY) return res;
  const char* state = raw ? PQresultErrorField(raw, PG_DIAG_SQLSTATE) : nullptr;
  std::string message = trimmed(raw ? PQresultErrorMessage(raw) : nullptr);
  if (message.empty()) message = trimmed(PQerrorMessage(conn_.get()));
  std::error_code code;
  if (state)
    code = make_error_code(state);
  else
    code = make_error_code(PQstatus(conn_.get()) == CONNECTION_BAD ? "08006" : "XX000");
  throw error(code, "postgres: " + message + " (in: " + std::string(what.substr(0, 120)) + ")");
}

result connection::exec(std::string_view sql) {
  if (!conn_) throw error(make_error_code("08003"), "postgres: connection is closed");
  const std::string text(sql);
  return check(PQexec(conn_.get(), text.c_str()), sql);
}

result connection::exec(std::string_view sql, std::span<const param> params) {
  if (!conn_) throw error(make_error_code("08003"), "postgres: connection is closed");
  const std::string text(sql);
  const wire_params wire(params);
  return check(PQexecParams(conn_.get(), text.c_str(), wire.size(), nullptr, wire.values.data(), wire.length_data(),
                            wire.format_data(), 0),
               sql);
}

void connection::prepare(const std::string& name, std::string sql) {
  auto [it, added] = statements_.try_emplace(name, std::move(sql));
  if (!added && it->second != sql)
    throw error(errc::invalid_config, "postgres: statement '" + name + "' is already prepared with other text");
}

result connection::exec_prepared(const std::string& name, std::span<const param> params) {
  if (!conn_) throw error(make_error_code("08003"), "postgres: connection is closed");
  const auto it = statements_.find(name);
  if (it == statements_.end()) throw error(errc::not_found, "postgres: no prepared statement '" + name + "'");
  if (!prepared_.contains(name)) {
    check(PQprepare(conn_.get(), name.c_str(), it->second.c_str(), 0, nullptr), it->second);
    prepared_.insert(name);
  }
  const wire_params wire(params);
  return check(PQexecPrepared(conn_.get(), name.c_str(), wire.size(), wire.values.data(), wire.length_data(),
                              wire.format_data(), 0),
               it->second);
}

bool connection::is_open() const noexcept {
  return conn_ && PQstatus(conn_.get()) == CONNECTION_OK;
}

void connection::reconnect() {
  conn_.reset();
  open();
}

void connection::close() noexcept {
  conn_.reset();
  prepared_.clear();
}

void connection::ensure_open() {
  if (!is_open()) reconnect();
}

bool connection::in_transaction() const noexcept {
  if (!conn_) return false;
  const auto s = PQtransactionStatus(conn_.get());
  return s == PQTRANS_INTRANS || s == PQTRANS_INERROR || s == PQTRANS_ACTIVE;
}

int connection::backend_pid() const noexcept {
  return conn_ ? PQbackendPID(conn_.get()) : 0;
}

// ---- transaction and savepoint ------------------------------------------------------

transaction::transaction(connection& db, isolation level) : db_(db) {
  switch (level) {
    case isolation::read_committed:
      db_.exec("BEGIN");
      break;
    case isolation::repeatable_read:
      db_.exec("BEGIN ISOLATION LEVEL REPEATABLE READ");
      break;
    case isolation::serializable:
      db_.exec("BEGIN ISOLATION LEVEL SERIALIZABLE");
      break;
  }
}

transaction::~transaction() {
  if (open_) rollback();
}

void transaction::commit() {
  open_ = false;  // whatever COMMIT answers, the transaction is over
  const auto done = db_.exec("COMMIT");
  if (done.command() != "COMMIT")
    throw error(make_error_code("25P02"), "postgres: the transaction was rolled back, not committed: one of its "
                                          "statements had failed");
}

void transaction::rollback() {
  open_ = false;
  if (!db_.is_open()) return;  // the server rolled it back when the connection broke
  try {
    db_.exec("ROLLBACK");
  } catch (const error&) {
    // Lost on the way: the server rolls back an unfinished transaction by itself.
  }
}

savepoint::savepoint(connection& db, std::string name) : db_(db), name_(std::move(name)) {
  if (name_.empty() ||
      name_.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != std::string::npos)
    throw error(errc::invalid_config, "postgres: savepoint name must be letters, digits and '_'");
  db_.exec("SAVEPOINT \"" + name_ + "\"");
}

savepoint::~savepoint() {
  if (!open_) return;
  try {
    rollback();
  } catch (const error&) {
    // The transaction is lost with its connection; nothing left to undo here.
  }
}

void savepoint::release() {
  db_.exec("RELEASE SAVEPOINT \"" + name_ + "\"");
  open_ = false;
}

void savepoint::rollback() {
  open_ = false;
  db_.exec("ROLLBACK TO SAVEPOINT \"" + name_ + "\"; RELEASE SAVEPOINT \"" + name_ + "\"");
}

}  // namespace ingest::postgres
