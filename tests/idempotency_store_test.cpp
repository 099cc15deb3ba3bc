#include "ingest/sqlite/idempotency_store.hpp"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <fstream>

#include "ingest/error.hpp"
#include "support/test_support.hpp"

namespace ingest::test {

TEST_CASE("sqlite idempotency store: fresh, completed, conflict, in progress") {
  temp_dir dir;
  sqlite::database db(dir.file("sink.db"));
  sqlite::idempotency_store keys(db);

  sqlite::transaction tx(db);
  CHECK(keys.record("k1", "fp1", "receipt-1").status == key_status::fresh);
  auto again = keys.record("k1", "fp1", "ignored");
  CHECK(again.status == key_status::completed);
  CHECK(again.result == "receipt-1");
  CHECK(keys.record("k1", "fp2", "x").status == key_status::conflict);

  CHECK(keys.claim("k2", "fp").status == key_status::fresh);
  CHECK(keys.claim("k2", "fp").status == key_status::in_progress);
  CHECK(keys.claim("k2", "other").status == key_status::conflict);
  keys.complete("k2", "done");
  auto k2 = keys.claim("k2", "fp");
  CHECK(k2.status == key_status::completed);
  CHECK(k2.result == "done");
  CHECK_THROWS_AS(keys.complete("never-claimed", "x"), ingest::error);
  tx.commit();

  auto rec = keys.find("k1");
  REQUIRE(rec);
  CHECK(rec->completed);
  CHECK(rec->fingerprint == "fp1");
  CHECK(rec->result == "receipt-1");
  CHECK(rec->created_at <= clock::now());
  CHECK_FALSE(keys.find("nope"));
}

TEST_CASE("guarantee 3: the key record commits and rolls back with the business write") {
  temp_dir dir;
  sqlite::database db(dir.file("sink.db"));
  sqlite::idempotency_store keys(db);
  db.exec("CREATE TABLE rows(key TEXT, value TEXT)");
  auto count_rows = [&] {
    sqlite::statement s(db, "SELECT count(*) FROM rows");
    s.step();
    return s.column_int(0);
  };

  {
    sqlite::transaction tx(db);
    REQUIRE(keys.record("k", "fp", "r").status == key_status::fresh);
    db.exec("INSERT INTO rows VALUES ('k', 'v')");
    // No commit: the transaction is rolled back, the key with it.
  }
  CHECK(count_rows() == 0);
  CHECK_FALSE(keys.find("k"));

  {
    sqlite::transaction tx(db);
    REQUIRE(keys.record("k", "fp", "r").status == key_status::fresh);
    db.exec("INSERT INTO rows VALUES ('k', 'v')");
    tx.commit();
  }
  {
    sqlite::transaction tx(db);  // the redelivery
    if (keys.record("k", "fp", "r").status == key_status::fresh) db.exec("INSERT INTO rows VALUES ('k', 'v')");
    tx.commit();
  }
  CHECK(count_rows() == 1);

  // Survives a reopen (it is in the file, not in memory).
  sqlite::database reopened(dir.file("sink.db"));
  sqlite::idempotency_store keys2(reopened);
  CHECK(keys2.record("k", "fp", "r").status == key_status::completed);
}

TEST_CASE("record_many answers per key, including repeats within the call") {
  temp_dir dir;
  sqlite::database db(dir.file("sink.db"));
  sqlite::idempotency_store keys(db);
  sqlite::transaction tx(db);
  auto out = keys.record_many({"a", "b", "a", "a"}, {"1", "2", "1", "9"}, {"ra", "rb", "x", "y"});
  REQUIRE(out.size() == 4);
  CHECK(out[0].status == key_status::fresh);
  CHECK(out[1].status == key_status::fresh);
  CHECK(out[2].status == key_status::completed);
  CHECK(out[2].result == "ra");
  CHECK(out[3].status == key_status::conflict);
  CHECK_THROWS_AS(keys.record_many({"a"}, {}, {}), ingest::error);
  tx.commit();
}

TEST_CASE("prune removes completed records older than the cutoff, never in-progress ones") {
  temp_dir dir;
  sqlite::database db(dir.file("sink.db"));
  sqlite::idempotency_store keys(db);
  {
    sqlite::transaction tx(db);
    keys.record("old", "fp", "r");
    keys.claim("claimed", "fp");
    tx.commit();
  }
  std::this_thread::sleep_for(5ms);
  const auto cutoff = clock::now();
  std::this_thread::sleep_for(5ms);
  {
    sqlite::transaction tx(db);
    keys.record("new", "fp", "r");
    CHECK(keys.prune(cutoff) == 1);
    tx.commit();
  }
  CHECK_FALSE(keys.find("old"));
  CHECK(keys.find("claimed"));
  CHECK(keys.find("new"));
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
