// The PostgreSQL component against a real PostgreSQL server: the connection, its
// errors and their classes, the pool, and the idempotency store through the suite
// every store passes.

#include <doctest/doctest.h>

#include <cstdlib>
#include <optional>
#include <thread>
#include <tuple>

#include "ingest/error.hpp"
#include "ingest/postgres/idempotency_store.hpp"
#include "ingest/postgres/pool.hpp"
#include "ingest/testing/idempotency_conformance.hpp"
#include "support/postgres_server.hpp"
#include "support/test_support.hpp"

namespace ingest::test {

template <bool PlainInsertFirst>
struct postgres_store_with {
  static constexpr const char* name = PlainInsertFirst ? "postgres" : "postgres, ON CONFLICT only";
  std::string url = shared_postgres::get().fresh_database();
  postgres_store_with() {
    postgres::connection db(url);
    db.exec("CREATE TABLE rows(key text NOT NULL)");
  }
  struct session {
    explicit session(const std::string& url) : db(url), store(db, {.plain_insert_first = PlainInsertFirst}) {}
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
    void write_row(const std::string& key) { db.exec("INSERT INTO rows(key) VALUES ($1)", {key}); }
    std::int64_t rows() { return db.exec("SELECT count(*) FROM rows").integer(0, 0); }
    postgres::connection db;
    postgres::idempotency_store store;
    std::optional<postgres::transaction> tx;
  };
  std::unique_ptr<session> open() { return std::make_unique<session>(url); }
};

using postgres_store = postgres_store_with<true>;
INGEST_IDEMPOTENCY_CONFORMANCE(std::tuple<postgres_store, postgres_store_with<false>>);

std::string sqlstate_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ingest::error& e) {
    return postgres::sqlstate(e.code());
  }
  return "none";
}

TEST_CASE("postgres connection: parameters, NULL, results, prepared statements") {
  postgres::connection db(shared_postgres::get().fresh_database());
  const auto r = db.exec("SELECT $1::text, $2::bigint, $3::text IS NULL, length($4)",
                         {"a'b\"c", std::int64_t{-42}, std::nullopt, std::string_view("xyz\\", 4)});
  REQUIRE(r.rows() == 1);
  CHECK(r.text(0, 0) == "a'b\"c");
  CHECK(r.integer(0, 1) == -42);
  CHECK(r.text(0, 2) == "t");
  CHECK(r.integer(0, 3) == 4);
  CHECK_THROWS_AS(r.integer(0, 0), ingest::error);
  // Text with a NUL byte is refused, never sent cut short.
  CHECK(sqlstate_of([&] { db.exec("SELECT $1::text", {std::string("ab\0cd", 5)}); }) == "22021");
  CHECK(sqlstate_of([&] { db.exec("SELECT $1::text", {std::string_view("ab\0cd", 5)}); }) == "22021");
  CHECK_THROWS_AS(r.text(1, 0), ingest::error);

  db.exec("CREATE TABLE t(id int PRIMARY KEY, v text)");
  db.prepare("ins", "INSERT INTO t VALUES ($1, $2)");
  CHECK(db.exec_prepared("ins", {1, "one"}).affected_rows() == 1);
  CHECK_THROWS_AS(db.prepare("ins", "SELECT 1"), ingest::error);
  CHECK_THROWS_AS(db.exec_prepared("unknown", {}), ingest::error);

  // A prepared statement survives a reconnect (prepared again on the new session).
  const auto pid = db.backend_pid();
  db.reconnect();
  CHECK(db.backend_pid() != pid);
  CHECK(db.exec_prepared("ins", {2, "two"}).affected_rows() == 1);

  SUBCASE("array literals carry any text, and NULL") {
    postgres::array_literal a;
    for (const auto& k : testing::awkward_keys()) a.push_back(k);
    a.push_null();
    const auto back = db.exec("SELECT x, x IS NULL FROM unnest($1::text[]) AS x", {a.str()});
    const auto keys = testing::awkward_keys();
    REQUIRE(back.rows() == static_cast<int>(keys.size() + 1));
    for (std::size_t i = 0; i < keys.size(); ++i) CHECK(back.text(static_cast<int>(i), 0) == keys[i]);
    CHECK(back.text(static_cast<int>(keys.size()), 1) == "t");
    postgres::array_literal empty;
    CHECK(db.exec("SELECT cardinality($1::text[])", {empty.str()}).integer(0, 0) == 0);
  }
  SUBCASE("binary text arrays carry any text, and NULL; a NUL byte is refused") {
    postgres::text_array a;
    for (const auto& k : testing::awkward_keys()) a.push_back(k);
    a.push_null();
    a.push_back("");
    const auto back = db.exec("SELECT x, x IS NULL FROM unnest($1::text[]) WITH ORDINALITY AS u(x, n) ORDER BY n",
                              {postgres::param::binary(a.bytes())});
    const auto keys = testing::awkward_keys();
    REQUIRE(back.rows() == static_cast<int>(keys.size() + 2));
    for (std::size_t i = 0; i < keys.size(); ++i) CHECK(back.text(static_cast<int>(i), 0) == keys[i]);
    CHECK(back.text(static_cast<int>(keys.size()), 1) == "t");
    CHECK(back.text(static_cast<int>(keys.size() + 1), 0).empty());
    CHECK(back.text(static_cast<int>(keys.size() + 1), 1) == "f");
    // Beside text parameters, and through a prepared statement.
    postgres::text_array empty;
    db.prepare("card", "SELECT cardinality($1::text[]), $2::text");
    const auto c = db.exec_prepared("card", {postgres::param::binary(empty.bytes()), "beside"});
    CHECK(c.integer(0, 0) == 0);
    CHECK(c.text(0, 1) == "beside");
    const auto n = db.exec("SELECT cardinality($1::text[]), $2::text IS NULL",
                           {postgres::param::binary(a.bytes()), std::nullopt});
    CHECK(n.integer(0, 0) == static_cast<std::int64_t>(keys.size() + 2));
    CHECK(n.text(0, 1) == "t");
    CHECK(sqlstate_of([] { postgres::text_array bad; bad.push_back(std::string("a\0b", 3)); }) == "22021");
  }
  SUBCASE("transactions and savepoints") {
    {
      postgres::transaction tx(db);
      db.exec("INSERT INTO t VALUES (10, 'kept')");
      {
        postgres::savepoint sp(db, "inner");
        db.exec("INSERT INTO t VALUES (11, 'undone')");
      }  // rolled back to the savepoint
      CHECK_THROWS_AS(db.exec("INSERT INTO t VALUES (10, 'dup')"), ingest::error);
    }  // the failed transaction rolls back
    CHECK(db.exec("SELECT count(*) FROM t WHERE id >= 10").integer(0, 0) == 0);
    {
      postgres::transaction tx(db);
      db.exec("INSERT INTO t VALUES (10, 'kept')");
      postgres::savepoint sp(db);
      CHECK_THROWS_AS(db.exec("INSERT INTO t VALUES (10, 'dup')"), ingest::error);
      sp.rollback();  // the transaction goes on after the error
      db.exec("INSERT INTO t VALUES (12, 'after')");
      tx.commit();
    }
    CHECK(db.exec("SELECT count(*) FROM t WHERE id >= 10").integer(0, 0) == 2);
    CHECK_FALSE(db.in_transaction());
    {
      // An error swallowed inside the transaction: COMMIT cannot be taken for a commit.
      postgres::transaction tx(db);
      db.exec("INSERT INTO t VALUES (20, 'lost')");
      CHECK_THROWS_AS(db.exec("INSERT INTO t VALUES (10, 'dup')"), ingest::error);
      CHECK(sqlstate_of([&] { tx.commit(); }) == "25P02");
    }
    CHECK(db.exec("SELECT count(*) FROM t WHERE id = 20").integer(0, 0) == 0);
    CHECK_FALSE(db.in_transaction());
    CHECK_THROWS_AS(postgres::savepoint(db, "bad name;"), ingest::error);
  }
}

// record_many tries one plain INSERT first and, when a key was there (a unique
// violation), takes the ON CONFLICT statement: under a savepoint inside the caller's
// transaction, so that what the caller wrote before survives; on its own without one.
TEST_CASE("postgres idempotency store: a known key in a batch costs nothing the caller wrote") {
  const auto url = shared_postgres::get().fresh_database();
  postgres::connection db(url);
  postgres::idempotency_store keys(db);
  db.exec("CREATE TABLE t(id int)");
  CHECK(keys.record("known", "fk", "r-known").status == key_status::fresh);
  // Without a transaction.
  auto out = keys.record_many({"new1", "known"}, {"f1", "fk"}, {"r1", "r"});
  CHECK(out[0].status == key_status::fresh);
  CHECK(out[1].status == key_status::completed);
  CHECK(out[1].result == "r-known");
  CHECK(keys.find("new1"));
  {  // Inside one, after a write of the caller's.
    postgres::transaction tx(db);
    db.exec("INSERT INTO t VALUES (1)");
    out = keys.record_many({"new2", "known", "new3"}, {"f2", "other", "f3"}, {"r2", "r", "r3"});
    CHECK(out[0].status == key_status::fresh);
    CHECK(out[1].status == key_status::conflict);
    CHECK(out[2].status == key_status::fresh);
    db.exec("INSERT INTO t VALUES (2)");
    tx.commit();
  }
  CHECK(db.exec("SELECT count(*) FROM t").integer(0, 0) == 2);
  CHECK(keys.find("new2"));
  CHECK(keys.find("new3"));
  CHECK(keys.find("known")->fingerprint == "fk");

  // A fresh store: after the unique violation above, `keys` takes ON CONFLICT for a while.
  postgres::idempotency_store again(db, {.create_table = false});
  // Another error of the plain insert is the caller's, not taken for a known key.
  db.exec("ALTER TABLE ingest_idempotency ADD CHECK (key <> 'refused')");
  {
    postgres::transaction tx(db);
    CHECK(sqlstate_of([&] { again.record_many({"new4", "refused"}, {"f", "f"}, {"r", "r"}); }) == "23514");
  }
  CHECK_FALSE(keys.find("new4"));
  // A row the plain insert did not write (a trigger skipped it) is not reported new.
  db.exec("CREATE FUNCTION skip_some() RETURNS trigger LANGUAGE plpgsql AS "
          "$$BEGIN IF NEW.key LIKE 'skip%' THEN RETURN NULL; END IF; RETURN NEW; END$$");
  db.exec("CREATE TRIGGER skip_some BEFORE INSERT ON ingest_idempotency FOR EACH ROW EXECUTE FUNCTION skip_some()");
  {
    postgres::transaction tx(db);
    out = again.record_many({"new5", "skip1"}, {"f", "f"}, {"r", "r"});
    tx.commit();
  }
  CHECK(out[0].status == key_status::fresh);
  CHECK(out[1].status == key_status::in_progress);
  CHECK(keys.find("new5"));
  CHECK_FALSE(keys.find("skip1"));
}

TEST_CASE("postgres errors keep the SQLSTATE and say what a retry can fix") {
  const auto url = shared_postgres::get().fresh_database();
  postgres::connection db(url);
  db.exec("CREATE TABLE t(id int PRIMARY KEY, n int CHECK (n > 0))");
  db.exec("INSERT INTO t VALUES (1, 1)");

  const auto unique = sqlstate_of([&] { db.exec("INSERT INTO t VALUES (1, 1)"); });
  CHECK(unique == "23505");
  CHECK(sqlstate_of([&] { db.exec("INSERT INTO t VALUES (2, -1)"); }) == "23514");
  CHECK(sqlstate_of([&] { db.exec("SELECT $1::int", {"x"}); }) == "22P02");
  CHECK(sqlstate_of([&] { db.exec("SELECT * FROM missing"); }) == "42P01");

  CHECK_FALSE(postgres::is_transient(postgres::make_error_code("23505")));
  CHECK(postgres::is_transient(postgres::make_error_code("40001")));
  CHECK(postgres::is_transient(postgres::make_error_code("40P01")));
  CHECK(postgres::is_transient(postgres::make_error_code("57P01")));
  CHECK(postgres::is_transient(postgres::make_error_code("53300")));
  CHECK(postgres::is_connection_lost(postgres::make_error_code("08006")));
  CHECK_FALSE(postgres::is_connection_lost(postgres::make_error_code("40001")));
  CHECK(postgres::sqlstate(postgres::make_error_code("bad")) == "XX000");
  CHECK(postgres::sqlstate(make_error_code(errc::conflict)).empty());
  CHECK(postgres::make_error_code("23505").message() == "SQLSTATE 23505");

  auto as_ptr = [](const char* state) {
    return std::make_exception_ptr(ingest::error(postgres::make_error_code(state), "x"));
  };
  CHECK(postgres::classify(as_ptr("23505")) == failure_kind::permanent);
  CHECK(postgres::classify(as_ptr("22021")) == failure_kind::permanent);
  CHECK(postgres::classify(as_ptr("40P01")) == failure_kind::transient);
  CHECK(postgres::classify(as_ptr("42P01")) == failure_kind::transient);
  CHECK(postgres::classify(std::make_exception_ptr(permanent_error("no"))) == failure_kind::permanent);
  CHECK(postgres::classify(std::make_exception_ptr(std::runtime_error("x"))) == failure_kind::transient);
  CHECK(postgres::failure_reason(as_ptr("23505")) == "constraint_violation");
  CHECK(postgres::failure_reason(as_ptr("22021")) == "invalid_data");
  CHECK(postgres::failure_reason(std::make_exception_ptr(permanent_error("x", "deadline_passed"))) ==
        "deadline_passed");

  SUBCASE("a deadlock is reported as 40P01") {
    db.exec("INSERT INTO t VALUES (2, 2)");
    postgres::connection other(url);
    postgres::transaction a(db), b(other);
    db.exec("UPDATE t SET n = 10 WHERE id = 1");
    other.exec("UPDATE t SET n = 20 WHERE id = 2");
    auto second = std::async(std::launch::async, [&] {
      return sqlstate_of([&] { other.exec("UPDATE t SET n = 21 WHERE id = 1"); });
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto first = sqlstate_of([&] { db.exec("UPDATE t SET n = 11 WHERE id = 2"); });
    const auto later = second.get();
    CHECK(((first == "40P01" && later == "none") || (first == "none" && later == "40P01")));
  }
  SUBCASE("a backend terminated by an administrator is a lost connection, and the connection comes back") {
    postgres::connection admin(url);
    admin.exec("SELECT pg_terminate_backend($1)", {db.backend_pid()});
    try {
      db.exec("SELECT 1");
      FAIL("the terminated connection still answered");
    } catch (const ingest::error& e) {
      CHECK(postgres::is_connection_lost(e.code()));
      CHECK(postgres::is_transient(e.code()));
    }
    CHECK_FALSE(db.is_open());
    db.ensure_open();
    CHECK(db.exec("SELECT 1").integer(0, 0) == 1);
  }
  SUBCASE("a server that cannot be reached: 08006, and no password in the message") {
    try {
      postgres::connection bad("postgresql://ingest:s3cret@127.0.0.1:" + std::to_string(free_port()) + "/postgres",
                               {.connect_timeout = std::chrono::seconds(2)});
      FAIL("connected to nothing");
    } catch (const ingest::error& e) {
      CHECK(postgres::sqlstate(e.code()) == "08006");
      CHECK(std::string(e.what()).find("s3cret") == std::string::npos);
    }
  }
  SUBCASE("PG* environment variables fill in what the URI leaves out") {
    const auto port = std::to_string(shared_postgres::get().server().port());
    ::setenv("PGHOST", "127.0.0.1", 1);
    ::setenv("PGPORT", port.c_str(), 1);
    ::setenv("PGUSER", "ingest", 1);
    ::setenv("PGDATABASE", "postgres", 1);
    postgres::connection from_env;
    CHECK(from_env.exec("SELECT current_user").text(0, 0) == "ingest");
    for (const char* v : {"PGHOST", "PGPORT", "PGUSER", "PGDATABASE"}) ::unsetenv(v);
  }
}

TEST_CASE("postgres pool: a connection per holder, waits, gives up, reopens broken ones") {
  const auto url = shared_postgres::get().fresh_database();
  postgres::connection_pool pool(url, {.size = 2, .acquire_timeout = std::chrono::milliseconds(200)});
  CHECK(pool.size() == 2);
  CHECK_THROWS_AS(postgres::connection_pool(url, {.size = 0}), ingest::error);
  int first_pid = 0;
  {
    auto a = pool.acquire();
    auto b = pool.acquire();
    CHECK(a.slot() != b.slot());
    CHECK(a->backend_pid() != b->backend_pid());
    CHECK(pool.in_use() == 2);
    try {
      pool.acquire();
      FAIL("a third connection from a pool of two");
    } catch (const ingest::error& e) {
      CHECK(e.code() == errc::backpressure);
    }
    first_pid = a->backend_pid();
    a->exec("BEGIN");  // left open: the pool rolls it back
    a->exec("CREATE TABLE t(x int)");
  }
  CHECK(pool.in_use() == 0);
  {
    auto c = pool.acquire();
    CHECK_FALSE(c->in_transaction());
    CHECK(c->exec("SELECT count(*) FROM pg_class WHERE relname = 't'").integer(0, 0) == 0);
    postgres::connection admin(url);
    admin.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ingest' AND pid <> "
               "pg_backend_pid()");
    CHECK_THROWS_AS(c->exec("SELECT 1"), ingest::error);
  }
  auto d = pool.acquire();  // reopened
  CHECK(d->exec("SELECT 1").integer(0, 0) == 1);
  CHECK(d->backend_pid() != first_pid);
}

}  // namespace ingest::test
