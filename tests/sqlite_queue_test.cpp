#include "ingest/sqlite/queue.hpp"

#include <doctest/doctest.h>

#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

#include "ingest/testing/queue_conformance.hpp"
#include "support/test_support.hpp"
#include "ingest/batching_consumer.hpp"
#include "ingest/error.hpp"
#include "ingest/sqlite/database.hpp"
#include "support/child_process.hpp"
#include "support/sqlite_sink.hpp"

namespace ingest::test {

struct sqlite_backend {
  static constexpr const char* name = "sqlite";
  explicit sqlite_backend(boost::asio::any_io_executor ex) : ex_(ex) {}
  std::unique_ptr<durable_queue> open(std::chrono::milliseconds visibility) {
    return std::make_unique<sqlite::queue>(
        ex_, sqlite::queue_options{.path = dir_.file("queue.db"), .visibility_timeout = visibility});
  }
  queue_features expected_features() const {
    return {.durable = true,
            .native_dedup = true,
            .fifo = true,
            .delayed_retry = true,
            .lease_extension = true,
            .exact_stats = true,
            .lookup = true,
            .deadline_before_store = true,
            .dedup_window = std::chrono::hours(24)};
  }
  boost::asio::any_io_executor ex_;
  temp_dir dir_;
};

INGEST_QUEUE_CONFORMANCE(std::tuple<sqlite_backend>);

TEST_CASE("sqlite queue: concurrent publishes all complete durably and share commits") {
  io_thread io;
  temp_dir dir;
  const auto path = dir.file("queue.db");
  std::set<std::string> ids;
  {
    sqlite::queue q(io.executor(), {.path = path});
    constexpr int n = 2000;
    std::vector<capture<receipt>> results(n);
    for (int i = 0; i < n; ++i)
      q.async_publish(message("k" + std::to_string(i)), results[static_cast<std::size_t>(i)].handler());
    for (auto& r : results) {
      auto [ec, rec] = r.get();
      REQUIRE_FALSE(ec);
      ids.insert(rec.id);
    }
    CHECK(ids.size() == n);
  }
  // Everything is in the file after the queue is gone.
  CHECK(count_rows(path, "SELECT count(*) FROM ingest_messages") == 2000);
}

TEST_CASE("sqlite queue: a full commit does not wait out the commit linger") {
  io_thread io;
  temp_dir dir;
  // The linger is the longest allowed; the batch fills at once, so the commit starts
  // as soon as the last operation is queued.
  sqlite::queue q(io.executor(), {.path = dir.file("queue.db"), .commit_linger = std::chrono::seconds(1),
                                  .max_ops_per_commit = 8});
  constexpr int n = 8;
  std::vector<capture<receipt>> results(n);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i)
    q.async_publish(message("full" + std::to_string(i)), results[static_cast<std::size_t>(i)].handler());
  for (auto& r : results) REQUIRE_FALSE(r.get().first);
  // The first publish wakes the idle writer, which lingers until the eighth arrives.
  // Waiting out the linger takes the whole second; not waiting costs one commit of
  // eight rows (one fsync, tens of milliseconds even on a busy disk): 900 ms tells the
  // two apart on a loaded machine.
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(900));
}

TEST_CASE("sqlite database: processes opening a new file at the same moment all get it in WAL mode") {
  // A server and its worker started together: both switch the fresh file to WAL, and
  // SQLite can answer one of them SQLITE_BUSY at once (it calls no busy handler for a
  // lock that could deadlock). The switch is retried within the busy timeout.
  temp_dir dir;
  int failures = 0;
  for (int round = 0; round < 40; ++round) {
    const auto path = dir.file("race-" + std::to_string(round) + ".db");
    const auto start = std::chrono::steady_clock::now() + 30ms;
    std::vector<pid_t> openers;
    for (int i = 0; i < 4; ++i) {
      const pid_t pid = fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        while (std::chrono::steady_clock::now() < start) {
        }
        int code = 0;
        try {
          ingest::sqlite::database db(path);
          db.exec("CREATE TABLE IF NOT EXISTS t(x INTEGER)");
          db.exec("INSERT INTO t VALUES (1)");
        } catch (const std::exception& e) {
          std::fprintf(stderr, "opener: %s\n", e.what());
          code = 1;
        }
        _exit(code);
      }
      openers.push_back(pid);
    }
    for (const pid_t pid : openers) {
      int status = 0;
      waitpid(pid, &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failures;
    }
  }
  CHECK(failures == 0);
}

TEST_CASE("sqlite database: is_busy names lock conflicts, with any extended code, and nothing else") {
  using ingest::sqlite::is_busy;
  using ingest::sqlite::sqlite_category;
  CHECK(is_busy(std::error_code(SQLITE_BUSY, sqlite_category())));
  CHECK(is_busy(std::error_code(SQLITE_BUSY_SNAPSHOT, sqlite_category())));
  CHECK(is_busy(std::error_code(SQLITE_LOCKED_SHAREDCACHE, sqlite_category())));
  CHECK_FALSE(is_busy(std::error_code(SQLITE_FULL, sqlite_category())));
  CHECK_FALSE(is_busy(std::error_code(SQLITE_IOERR_FSYNC, sqlite_category())));
  CHECK_FALSE(is_busy(std::error_code(SQLITE_BUSY, std::generic_category())));
}

TEST_CASE("sqlite queue: two connections to one file (a server and a worker) share the work") {
  io_thread io;
  temp_dir dir;
  const auto path = dir.file("queue.db");
  sqlite::queue server(io.executor(), {.path = path});
  sqlite::queue worker(io.executor(), {.path = path, .poll_interval = 5ms});

  // The worker waits; the server's publish reaches it through the file.
  capture<std::vector<delivery>> waiting;
  worker.async_fetch(10, 5s, waiting.handler());
  std::this_thread::sleep_for(50ms);
  auto [ec, r] = publish(server, message("cross", "from the server"));
  REQUIRE_FALSE(ec);
  auto [fec, got] = waiting.get();
  REQUIRE(got.size() == 1);
  CHECK(got[0].message.receipt_id == r.id);
  CHECK(got[0].message.payload == "from the server");

  // Dedup holds across connections, and so do the books.
  auto [dec, dup] = publish(worker, message("cross", "from the server"));
  CHECK(dup.duplicate);
  CHECK(dup.id == r.id);
  REQUIRE_FALSE(ack(worker, got));
  auto st = stats(server);
  CHECK(st.accepted == 1);
  CHECK(st.processed == 1);
  CHECK(st.balanced());
}

TEST_CASE("sqlite queue: every state is counted on its own; a row lost behind the queue's back shows") {
  io_thread io;
  temp_dir dir;
  const auto path = dir.file("queue.db");
  sqlite::queue q(io.executor(), {.path = path});
  for (int i = 0; i < 10; ++i) REQUIRE_FALSE(publish(q, message("b" + std::to_string(i))).first);
  auto [ec, got] = fetch(q, 4, 1s);
  REQUIRE(got.size() == 4);
  REQUIRE_FALSE(settle(q, {{got[0].token, settle_action::ack, {}, {}, {}},
                           {got[1].token, settle_action::ack, {}, {}, {}},
                           {got[2].token, settle_action::ack, {}, {}, {}},
                           {got[3].token, settle_action::dead_letter, {}, "permanent_failure", "bad"}}));
  auto st = stats(q);
  CHECK(st.accepted == 10);
  CHECK(st.pending == 6);
  CHECK(st.processed == 3);
  CHECK(st.dead_lettered == 1);
  CHECK(st.balance_known());
  CHECK(st.balanced());

  auto remove = [&](const char* sql) {
    sqlite::database other(path, {.create = false});
    other.exec(sql);
  };
  // A pending row deleted by another program: pending is counted from the rows, so
  // the books no longer add up (a derived pending would have hidden it).
  remove("DELETE FROM ingest_messages WHERE idempotency_key = 'b9'");
  st = stats(q);
  CHECK(st.pending == 5);
  CHECK(st.accepted == 10);
  CHECK_FALSE(st.balanced());
  // The same for a processed row and a dead letter.
  for (const char* sql : {"DELETE FROM ingest_messages WHERE state = 2 AND seq = (SELECT min(seq) FROM"
                          " ingest_messages WHERE state = 2)",
                          "DELETE FROM ingest_messages WHERE state = 3",
                          "DELETE FROM ingest_dead_letters"}) {
    temp_dir fresh;
    sqlite::queue p(io.executor(), {.path = fresh.file("queue.db")});
    for (int i = 0; i < 3; ++i) REQUIRE_FALSE(publish(p, message("x" + std::to_string(i))).first);
    auto [fec, two] = fetch(p, 2, 1s);
    REQUIRE(two.size() == 2);
    REQUIRE_FALSE(settle(p, {{two[0].token, settle_action::ack, {}, {}, {}},
                             {two[1].token, settle_action::dead_letter, {}, "permanent_failure", "bad"}}));
    CHECK(stats(p).balanced());
    sqlite::database other(fresh.file("queue.db"), {.create = false});
    other.exec(sql);
    CAPTURE(sql);
    CHECK_FALSE(stats(p).balanced());
  }
}

TEST_CASE("sqlite queue: a version 1 file is upgraded and its books, compacted rows included, still add up") {
  io_thread io;
  temp_dir dir;
  const auto path = dir.file("queue.db");
  {
    sqlite::queue q(io.executor(), {.path = path});
    for (int i = 0; i < 6; ++i) REQUIRE_FALSE(publish(q, message("v" + std::to_string(i))).first);
    auto [ec, got] = fetch(q, 4, 1s);
    REQUIRE_FALSE(ack(q, got));
  }
  {
    // What version 1 left: compaction deleted finished rows and kept only the counters.
    sqlite::database db(path, {.create = false});
    db.exec("DELETE FROM ingest_messages WHERE state = 2 AND idempotency_key IN ('v0', 'v1', 'v2')");
    db.exec("DELETE FROM ingest_counters WHERE name LIKE 'compacted_%'");
    db.exec("DROP INDEX ingest_messages_finished");
    db.exec("PRAGMA user_version = 1");
  }
  sqlite::queue q(io.executor(), {.path = path});
  auto st = stats(q);
  CHECK(st.accepted == 6);
  CHECK(st.processed == 4);
  CHECK(st.pending == 2);
  CHECK(st.balanced());
  CHECK(count_rows(path, "PRAGMA user_version") == 2);
}

TEST_CASE("sqlite queue: a key compacted away by another connection is forgotten by this one") {
  io_thread io;
  temp_dir dir;
  const auto path = dir.file("queue.db");
  sqlite::queue keeper(io.executor(), {.path = path});  // knows the key, never compacts in time
  sqlite::queue compactor(io.executor(), {.path = path, .dedup_window = 50ms, .compaction_interval = 20ms});
  auto [ec, first] = publish(keeper, message("gone", "v1"));
  REQUIRE_FALSE(ec);
  auto [fec, got] = fetch(compactor, 1, 1s);
  REQUIRE_FALSE(ack(compactor, got));
  REQUIRE(eventually([&] { return count_rows(path, "SELECT count(*) FROM ingest_messages") == 0; }));
  // Past the window the key is new again, for both connections, with any payload.
  auto [ec2, second] = publish(keeper, message("gone", "v2"));
  CHECK_FALSE(ec2);
  CHECK_FALSE(second.duplicate);
  CHECK(second.id != first.id);
  auto [ec3, third] = publish(compactor, message("gone", "v2"));
  CHECK(third.duplicate);
  CHECK(third.id == second.id);
}

TEST_CASE("sqlite queue: compaction removes finished rows after the dedup window") {
  io_thread io;
  temp_dir dir;
  const auto path = dir.file("queue.db");
  sqlite::queue q(io.executor(), {.path = path, .dedup_window = 100ms, .compaction_interval = 20ms});
  for (int i = 0; i < 300; ++i) REQUIRE_FALSE(publish(q, message("c" + std::to_string(i))).first);
  while (true) {
    auto [ec, got] = fetch(q, 100, 100ms);
    if (got.empty()) break;
    REQUIRE_FALSE(ack(q, got));
  }
  CHECK(eventually([&] { return count_rows(path, "SELECT count(*) FROM ingest_messages") == 0; }));
  auto st = stats(q);
  CHECK(st.processed == 300);  // the books survive compaction
  CHECK(st.balanced());
  // Past the window a key is forgotten, as documented.
  auto [ec, again] = publish(q, message("c1"));
  CHECK_FALSE(ec);
  CHECK_FALSE(again.duplicate);
}

TEST_CASE("sqlite queue: compaction never removes pending messages or dead letters") {
  io_thread io;
  temp_dir dir;
  const auto path = dir.file("queue.db");
  sqlite::queue q(io.executor(), {.path = path, .dedup_window = 10ms, .compaction_interval = 10ms});
  for (const char* key : {"done", "dead", "waiting"}) REQUIRE_FALSE(publish(q, message(key)).first);
  auto [ec, got] = fetch(q, 2, 1s);
  REQUIRE(got.size() == 2);
  REQUIRE_FALSE(settle(q, {{got[0].token, settle_action::ack, {}, {}, {}},
                           {got[1].token, settle_action::dead_letter, {}, "permanent_failure", "bad"}}));
  REQUIRE(eventually([&] { return count_rows(path, "SELECT count(*) FROM ingest_messages") == 2; }));
  std::this_thread::sleep_for(200ms);  // many more compaction passes
  CHECK(count_rows(path, "SELECT count(*) FROM ingest_messages") == 2);
  CHECK(dead_letters(q).size() == 1);
  auto [fec, rest] = fetch(q, 10, 1s);
  REQUIRE(rest.size() == 1);
  CHECK(rest[0].message.idempotency_key == "waiting");
  auto [dec, dup] = publish(q, message("dead"));  // the dead letter's key is still known
  CHECK(dup.duplicate);
}

TEST_CASE("sqlite queue: capacity refuses new work and keeps old work") {
  io_thread io;
  temp_dir dir;
  sqlite::queue q(io.executor(), {.path = dir.file("queue.db"), .max_messages = 5});
  for (int i = 0; i < 5; ++i) REQUIRE_FALSE(publish(q, message("m" + std::to_string(i))).first);
  CHECK(publish(q, message("m5")).first == errc::queue_full);
  auto [ec, dup] = publish(q, message("m0"));  // a repeat still gets its receipt
  CHECK_FALSE(ec);
  CHECK(dup.duplicate);
  auto [fec, got] = fetch(q, 1);
  REQUIRE_FALSE(ack(q, got));
  CHECK_FALSE(publish(q, message("m5")).first);
}

TEST_CASE("sqlite queue: bad files and places give clear errors") {
  io_thread io;
  temp_dir dir;

  SUBCASE("a file that is not a database") {
    std::ofstream(dir.file("junk.db")) << std::string(8192, 'x');
    try {
      sqlite::queue q(io.executor(), {.path = dir.file("junk.db")});
      FAIL("opened junk");
    } catch (const ingest::error& e) {
      CHECK(std::string(e.what()).find("not a database") != std::string::npos);
    }
  }

  SUBCASE("an SQLite file of another application") {
    {
      sqlite::database other(dir.file("other.db"));
      other.exec("CREATE TABLE grades(student TEXT, score INTEGER)");
    }
    try {
      sqlite::queue q(io.executor(), {.path = dir.file("other.db")});
      FAIL("opened a foreign database");
    } catch (const ingest::error& e) {
      CHECK(e.code() == errc::invalid_config);
      CHECK(std::string(e.what()).find("not an ingest queue file") != std::string::npos);
    }
  }

  SUBCASE("a read-only directory") {
    // Root ignores permission bits, so as root the directory is made immutable instead.
    const auto ro = dir.file("ro");
    std::filesystem::create_directory(ro);
    const bool root = geteuid() == 0;
    const bool locked =
        root ? std::system(("chattr +i " + ro + " 2>/dev/null").c_str()) == 0 : chmod(ro.c_str(), 0555) == 0;
    REQUIRE_MESSAGE(locked, "could not make a directory read-only here");
    try {
      sqlite::queue q(io.executor(), {.path = ro + "/queue.db"});
      FAIL("opened a queue in a read-only directory");
    } catch (const ingest::error& e) {
      CHECK(std::string(e.what()).find(ro) != std::string::npos);  // the message names the file
    }
    if (root)
      CHECK(std::system(("chattr -i " + ro).c_str()) == 0);
    else
      chmod(ro.c_str(), 0755);
  }

  SUBCASE("invalid options and URLs") {
    CHECK_THROWS_AS(sqlite::queue(io.executor(), {.path = ""}), ingest::error);
    CHECK_THROWS_AS(sqlite::queue(io.executor(), {.path = dir.file("q.db"), .visibility_timeout = 0ms}), ingest::error);
  }
}

TEST_CASE("sqlite queue: a full disk fails publishes with an error, loses nothing, and recovers") {
  io_thread io;
  temp_dir dir;
  const auto path = dir.file("queue.db");
  std::set<std::string> accepted;
  {
    sqlite::queue q(io.executor(), {.path = path, .max_page_count = 40});
    const std::string big(2000, 'x');
    error_code first_failure;
    for (int i = 0; i < 500 && !first_failure; ++i) {
      auto [ec, r] = publish(q, message("f" + std::to_string(i), big + std::to_string(i)));
      if (ec) {
        first_failure = ec;
        CHECK(r.id.empty());  // never a receipt for what was not stored
      } else {
        accepted.insert(r.id);
      }
    }
    REQUIRE(first_failure);
    CHECK(first_failure == errc::storage_error);
    // The failed publish left nothing behind, not even its key: a retry fails again
    // instead of getting a receipt for a message that does not exist.
    auto [again_ec, again] = publish(q, message("f" + std::to_string(accepted.size()), big));
    CHECK(again_ec == errc::storage_error);
    CHECK_FALSE(again.duplicate);
    CHECK(is_retry_later(first_failure));
    CHECK(q.last_error().find("full") != std::string::npos);
    REQUIRE(accepted.size() > 5);
    auto st = stats(q);
    CHECK(st.accepted == accepted.size());
  }
  // Space comes back (a bigger limit): everything accepted is there, and new work goes in.
  sqlite::queue q(io.executor(), {.path = path});
  std::set<std::string> found;
  while (true) {
    auto [ec, got] = fetch(q, 100, 0ms);
    if (got.empty()) break;
    for (const auto& d : got) found.insert(d.message.receipt_id);
    REQUIRE_FALSE(ack(q, got));
  }
  CHECK(found == accepted);
  CHECK_FALSE(publish(q, message("after", "fits")).first);
  auto [retry_ec, retried] = publish(q, message("f" + std::to_string(accepted.size()), "now it fits"));
  CHECK_FALSE(retry_ec);
  CHECK_FALSE(retried.duplicate);
}

TEST_CASE("sqlite queue options from a URL") {
  auto o = sqlite::queue_options::from_url("sqlite:///var/lib/exam/queue.db?visibility_timeout=45s&max_messages=1000");
  CHECK(o.path == "/var/lib/exam/queue.db");
  CHECK(o.visibility_timeout == std::chrono::seconds(45));
  CHECK(o.max_messages == 1000);
  auto rel = sqlite::queue_options::from_url("sqlite://data/queue.db?commit_linger=500us&dedup_window=2h");
  CHECK(rel.path == "data/queue.db");
  CHECK(rel.commit_linger == std::chrono::microseconds(500));
  CHECK(rel.dedup_window == std::chrono::hours(2));
  CHECK_THROWS_AS(sqlite::queue_options::from_url("nats://localhost"), ingest::error);
  CHECK_THROWS_AS(sqlite::queue_options::from_url("sqlite://"), ingest::error);
  CHECK_THROWS_AS(sqlite::queue_options::from_url("sqlite://q.db?visibility_timeout=soon"), ingest::error);
  CHECK_THROWS_AS(sqlite::queue_options::from_url("sqlite://q.db?colour=blue"), ingest::error);
  CHECK_THROWS_AS(sqlite::queue_options::from_url("sqlite://q.db?dedup_window=1h&dedup_window=2h"), ingest::error);
  CHECK(sqlite::queue_options::from_url("sqlite:///tmp/my%20queue.db").path == "/tmp/my queue.db");
  auto more = sqlite::queue_options::from_url(
      "sqlite://q.db?receipt_index=false&checkpoint_interval=0ms&compaction_interval=250ms");
  CHECK_FALSE(more.receipt_index);
  CHECK(more.checkpoint_interval == std::chrono::milliseconds(0));
  CHECK(more.compaction_interval == std::chrono::milliseconds(250));
  CHECK_THROWS_AS(sqlite::queue_options::from_url("sqlite://q.db?receipt_index=maybe"), ingest::error);
}

TEST_CASE("sqlite queue: without the receipt index, find says so; without the checkpointer, all still works") {
  temp_dir dir;
  io_thread io;
  sqlite::queue q(io.executor(), {.path = dir.file("q.db"), .receipt_index = false, .checkpoint_interval = 0ms});
  CHECK_FALSE(q.features().lookup);
  auto [ec, r] = publish(q, message("k"));
  REQUIRE_FALSE(ec);
  capture<message_status> found;
  q.async_find(r.id, found.handler());
  CHECK(found.get().first == errc::not_supported);
  auto [fec, got] = fetch(q, 1, 1s);
  REQUIRE(got.size() == 1);
  CHECK_FALSE(ack(q, got));
  CHECK(stats(q).processed == 1);
}

}  // namespace ingest::test
