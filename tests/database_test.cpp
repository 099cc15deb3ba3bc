// ingest/sqlite/database.hpp on its own: how a connection opens (WAL, synchronous=FULL,
// the busy timeout, read-only, no create), statements (binding, columns, NULL, reuse),
// RAII transactions, and errors that carry SQLite's code, message and statement.

#include "ingest/sqlite/database.hpp"

#include <doctest/doctest.h>

#include <sqlite3.h>

#include <chrono>
#include <string>

#include "support/test_support.hpp"

using namespace ingest;
using namespace ingest::sqlite;
using namespace ingest::test;

namespace {

std::string pragma_text(database& db, const char* name) {
  statement s(db, std::string("PRAGMA ") + name);
  REQUIRE(s.step());
  return s.column_text(0);
}

std::int64_t count_rows(database& db, const char* table) {
  statement s(db, std::string("SELECT count(*) FROM ") + table);
  REQUIRE(s.step());
  return s.column_int(0);
}

}  // namespace

TEST_CASE("a connection opens with the durability the library relies on, or with what it is told") {
  temp_dir dir;
  SUBCASE("defaults: WAL, synchronous=FULL (2), temp_store=MEMORY (2)") {
    database db(dir.file("a.db"));
    CHECK(pragma_text(db, "journal_mode") == "wal");
    CHECK(pragma_text(db, "synchronous") == "2");
    CHECK(pragma_text(db, "temp_store") == "2");
    CHECK(db.path() == dir.file("a.db"));
  }
  SUBCASE("options turn each off") {
    database db(dir.file("b.db"), {.wal = false, .synchronous_full = false, .temp_store_memory = false});
    CHECK(pragma_text(db, "journal_mode") == "delete");
    CHECK(pragma_text(db, "synchronous") == "1");
    CHECK(pragma_text(db, "temp_store") == "0");
  }
  SUBCASE("create = false refuses a missing file, with SQLite's code") {
    try {
      database db(dir.file("missing.db"), {.create = false});
      FAIL("opened a file that does not exist");
    } catch (const ingest::error& e) {
      CHECK(e.code().category() == sqlite_category());
      CHECK((e.code().value() & 0xff) == SQLITE_CANTOPEN);
    }
  }
  SUBCASE("read_only reads and refuses writes") {
    {
      database db(dir.file("c.db"));
      db.exec("CREATE TABLE t(x); INSERT INTO t VALUES (1)");
    }
    database ro(dir.file("c.db"), {.read_only = true});
    CHECK(count_rows(ro, "t") == 1);
    try {
      ro.exec("INSERT INTO t VALUES (2)");
      FAIL("a read-only connection wrote");
    } catch (const ingest::error& e) {
      CHECK((e.code().value() & 0xff) == SQLITE_READONLY);
    }
  }
}

TEST_CASE("statements bind, read and reset; errors name the statement") {
  temp_dir dir;
  database db(dir.file("s.db"));
  db.exec("CREATE TABLE t(i INTEGER, r REAL, s TEXT, b BLOB, n)");
  statement insert(db, "INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5)");
  const std::string bytes("a\0b", 3);
  insert.bind(1, std::int64_t{1} << 40).bind(2, 2.5).bind(3, std::string_view("text")).bind_blob(4, bytes).bind_null(5);
  insert.run();
  CHECK(db.changes() == 1);
  CHECK(db.last_insert_rowid() == 1);
  // run() reset the statement: it runs again with new values.
  insert.bind(1, std::int64_t{2}).bind(2, 0.0).bind(3, std::string_view("")).bind_null(4).bind(5, std::int64_t{5});
  insert.run();
  CHECK(db.last_insert_rowid() == 2);

  statement read(db, "SELECT i, r, s, b, n FROM t ORDER BY rowid");
  REQUIRE(read.step());
  CHECK(read.column_int(0) == std::int64_t{1} << 40);
  CHECK(read.column_double(1) == 2.5);
  CHECK(read.column_text(2) == "text");
  CHECK(read.column_text(3) == bytes);
  CHECK(read.column_is_null(4));
  CHECK(read.column_text(4).empty());
  REQUIRE(read.step());
  CHECK(read.column_is_null(3));
  CHECK(read.column_int(4) == 5);
  CHECK_FALSE(read.step());
  read.reset();
  CHECK(read.step());  // from the first row again

  try {
    statement bad(db, "SELECT nope FROM t");
    FAIL("prepared a statement naming a missing column");
  } catch (const ingest::error& e) {
    CHECK((e.code().value() & 0xff) == SQLITE_ERROR);
    CHECK(std::string(e.what()).find("SELECT nope FROM t") != std::string::npos);
  }
  db.exec("CREATE TABLE u(k PRIMARY KEY)");
  db.exec("INSERT INTO u VALUES (1)");
  try {
    db.exec("INSERT INTO u VALUES (1)");
    FAIL("a duplicate key went in");
  } catch (const ingest::error& e) {
    CHECK((e.code().value() & 0xff) == SQLITE_CONSTRAINT);
    CHECK_FALSE(is_busy(e.code()));
  }
}

TEST_CASE("a transaction commits, or rolls back when it is left or told to") {
  temp_dir dir;
  database db(dir.file("t.db"));
  db.exec("CREATE TABLE t(x)");
  {
    transaction tx(db);
    db.exec("INSERT INTO t VALUES (1)");
    tx.commit();
  }
  {
    transaction tx(db);
    db.exec("INSERT INTO t VALUES (2)");
  }  // left without commit
  {
    transaction tx(db);
    db.exec("INSERT INTO t VALUES (3)");
    tx.rollback();
  }
  try {
    transaction tx(db);
    db.exec("INSERT INTO t VALUES (4)");
    throw std::runtime_error("handler failed");
  } catch (const std::runtime_error&) {
  }
  CHECK(count_rows(db, "t") == 1);
  // After a rollback the connection takes new transactions.
  transaction again(db);
  db.exec("INSERT INTO t VALUES (5)");
  again.commit();
  CHECK(count_rows(db, "t") == 2);
}

TEST_CASE("BEGIN IMMEDIATE takes the write lock: a second writer waits its busy timeout, then gets SQLITE_BUSY") {
  temp_dir dir;
  database a(dir.file("l.db"));
  a.exec("CREATE TABLE t(x)");
  database b(dir.file("l.db"), {.busy_timeout = std::chrono::milliseconds(50)});
  transaction held(a);
  const auto start = std::chrono::steady_clock::now();
  try {
    transaction blocked(b);
    FAIL("two write transactions at once");
  } catch (const ingest::error& e) {
    CHECK(is_busy(e.code()));
    // It waited (at least most of) its timeout before giving up.
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(40));
  }
  held.commit();
  transaction now(b);  // the lock is free again
  now.commit();
}

TEST_CASE("is_busy knows SQLite's lock codes only") {
  CHECK(is_busy(std::error_code(SQLITE_BUSY, sqlite_category())));
  CHECK(is_busy(std::error_code(SQLITE_BUSY_SNAPSHOT, sqlite_category())));
  CHECK(is_busy(std::error_code(SQLITE_LOCKED, sqlite_category())));
  CHECK_FALSE(is_busy(std::error_code(SQLITE_FULL, sqlite_category())));
  CHECK_FALSE(is_busy(std::error_code(SQLITE_BUSY, std::generic_category())));
  CHECK(std::string(sqlite_category().name()) == "sqlite");
}
