#include "ingest/sqlite/idempotency_store.hpp"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <fstream>
#include <optional>
#include <tuple>

#include "ingest/error.hpp"
#include "ingest/testing/idempotency_conformance.hpp"
#include "support/test_support.hpp"

namespace ingest::test {

// The SQLite store through the conformance suite every store passes.
struct sqlite_store {
  static constexpr const char* name = "sqlite";
  temp_dir dir;
  sqlite_store() {
    sqlite::database db(dir.file("sink.db"));
    db.exec("CREATE TABLE rows(key TEXT NOT NULL)");
  }
  struct session {
    explicit session(const std::string& path) : db(path), store(db), insert(db, "INSERT INTO rows(key) VALUES (?1)") {}
    ingest::idempotency_store& keys() { return store; }
    void begin() { tx.emplace(db); }
    void commit() {
      tx->commit();
      tx.reset();
    }
    void rollback() {
      tx->rollback();
      tx.reset();
    }
    void write_row(const std::string& key) {
      insert.bind(1, key);
      insert.run();
    }
    std::int64_t rows() {
      sqlite::statement count(db, "SELECT count(*) FROM rows");
      count.step();
      return count.column_int(0);
    }
    sqlite::database db;
    sqlite::idempotency_store store;
    sqlite::statement insert;
    std::optional<sqlite::transaction> tx;
  };
  std::unique_ptr<session> open() { return std::make_unique<session>(dir.file("sink.db")); }
};

INGEST_IDEMPOTENCY_CONFORMANCE(std::tuple<sqlite_store>);

TEST_CASE("sqlite idempotency store: the records survive a reopen of the file") {
  temp_dir dir;
  {
    sqlite::database db(dir.file("sink.db"));
    sqlite::idempotency_store keys(db);
    sqlite::transaction tx(db);
    REQUIRE(keys.record("k", "fp", "r").status == key_status::fresh);
    tx.commit();
  }
  sqlite::database reopened(dir.file("sink.db"));
  sqlite::idempotency_store keys(reopened);
  CHECK(keys.record("k", "fp", "r").status == key_status::completed);
}

TEST_CASE("sqlite: memory statistics can be turned off only before SQLite starts") {
  temp_dir dir;
  {
    sqlite::database db(dir.file("stats.db"));  // SQLite is initialised from here on
    CHECK_FALSE(sqlite::disable_memory_statistics());
    CHECK(sqlite3_memory_used() > 0);
  }
  // With every connection closed, SQLite can be shut down and configured again.
  REQUIRE(sqlite3_shutdown() == SQLITE_OK);
  CHECK(sqlite::disable_memory_statistics());
  {
    sqlite::database db(dir.file("stats.db"));
    db.exec("CREATE TABLE t(x); INSERT INTO t VALUES (randomblob(10000))");
    CHECK(sqlite3_memory_used() == 0);  // no longer counted
  }
  REQUIRE(sqlite3_shutdown() == SQLITE_OK);
  REQUIRE(sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 1) == SQLITE_OK);  // as the other tests expect
}

TEST_CASE("sqlite database: clear errors for bad files and bad settings") {
  temp_dir dir;
  SUBCASE("a file that is not a database") {
    {
      std::ofstream out(dir.file("foreign.db"));
      out << "this is not an SQLite file, just some text that is long enough to have a header\n";
    }
    try {
      sqlite::database db(dir.file("foreign.db"));
      FAIL("opened a foreign file");
    } catch (const ingest::error& e) {
      CHECK(e.code().category() == sqlite::sqlite_category());
      CHECK(std::string(e.what()).find("not a database") != std::string::npos);
    }
  }
  SUBCASE("a missing directory") {
    CHECK_THROWS_AS(sqlite::database(dir.file("missing/dir/x.db")), ingest::error);
  }
  SUBCASE("a bad table name") {
    sqlite::database db(dir.file("ok.db"));
    CHECK_THROWS_AS(sqlite::idempotency_store(db, {.table = "x; DROP TABLE y"}), ingest::error);
  }
  SUBCASE("WAL, synchronous=FULL and temp_store=MEMORY are on") {
    sqlite::database db(dir.file("ok.db"));
    sqlite::statement mode(db, "PRAGMA journal_mode");
    REQUIRE(mode.step());
    CHECK(mode.column_text(0) == "wal");
    sqlite::statement sync(db, "PRAGMA synchronous");
    REQUIRE(sync.step());
    CHECK(sync.column_int(0) == 2);
    sqlite::statement temp(db, "PRAGMA temp_store");
    REQUIRE(temp.step());
    CHECK(temp.column_int(0) == 2);  // savepoint journals never go to a temporary file
    sqlite::database plain(dir.file("ok.db"), {.temp_store_memory = false});
    sqlite::statement default_temp(plain, "PRAGMA temp_store");
    REQUIRE(default_temp.step());
    CHECK(default_temp.column_int(0) == 0);
  }
}

}  // namespace ingest::test
