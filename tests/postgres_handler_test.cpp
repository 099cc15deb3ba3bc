// ingest::postgres::transactional_handler against a real PostgreSQL server, behind a
// batching consumer: one statement per batch for the rows, redeliveries absorbed, bad
// items dead-lettered alone with their reasons, workers of two "machines" on the same
// tables, a backend terminated mid-transaction, and the server stopped with
// `pg_ctl -m immediate` and started again during a drain. Every audit counts the rows
// in PostgreSQL and the states in the queue, each on its own.

#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "ingest/ingest.hpp"
#include "ingest/sqlite/queue.hpp"
#include "ingest/testing/queue_helpers.hpp"
#include "support/child_process.hpp"
#include "support/postgres_server.hpp"
#include "support/postgres_sink.hpp"
#include "support/test_support.hpp"

namespace ingest::test {
using namespace ingest::testing;

namespace {

consumer_options fast_consumer(std::size_t workers = 1, std::size_t max_batch = 1000) {
  consumer_options o{.workers = workers, .max_batch = max_batch, .linger = 5ms, .poll_wait = 20ms};
  o.retry.initial_backoff = 5ms;
  o.retry.max_backoff = 200ms;
  return o;
}

void publish_all(durable_queue& q, int n, const std::string& prefix = "k") {
  for (int i = 0; i < n; ++i) {
    const auto key = prefix + std::to_string(i);
    auto [ec, r] = publish(q, message(key, "payload of " + key));
    REQUIRE_FALSE(ec);
  }
}

}  // namespace

TEST_CASE("postgres handler: one rows statement per batch, redeliveries write nothing") {
  io_thread io(2);
  const auto url = shared_postgres::get().fresh_database();
  postgres::connection audit(url);
  create_rows_table(audit);
  postgres::connection_pool pool(url, {.size = 1});
  std::atomic<int> writes{0};
  std::atomic<std::size_t> largest{0};
  auto handler = postgres::transactional_handler(pool, [&](postgres::connection& db, auto items) {
    ++writes;
    largest = std::max(largest.load(), items.size());
    insert_rows(db, items);
  });

  memory_queue first(io.executor(), {.quiet = true});
  publish_all(first, 500);
  {
    batching_consumer consumer(first, handler, fast_consumer());
    consumer.start();
    REQUIRE(eventually([&] { return stats(first).processed == 500; }, 30s));
    consumer.drain();
    CHECK(writes.load() == static_cast<int>(consumer.stats().batches));  // one call per batch
  }
  CHECK(largest.load() > 100);  // and a call carries many items
  CHECK(count(audit, "SELECT count(*) FROM rows") == 500);

  // The same 500 messages delivered again (another queue: a redelivery after a crash
  // between commit and ack): acked, nothing written.
  memory_queue again(io.executor(), {.quiet = true});
  publish_all(again, 500);
  writes = 0;
  {
    batching_consumer consumer(again, handler, fast_consumer());
    consumer.start();
    REQUIRE(eventually([&] { return stats(again).processed == 500; }, 30s));
    consumer.drain();
  }
  CHECK(writes.load() == 0);
  CHECK(count(audit, "SELECT count(*) FROM rows") == 500);
  CHECK(count(audit, "SELECT count(DISTINCT key) FROM rows") == 500);
  CHECK(stats(again).dead_lettered == 0);
}

TEST_CASE("postgres handler: repeats reach the repeats writer in the batch's transaction, with the first result") {
  io_thread io(2);
  const auto url = shared_postgres::get().fresh_database();
  postgres::connection audit(url);
  create_rows_table(audit);
  audit.exec("CREATE TABLE repeats_seen(receipt text PRIMARY KEY, original text NOT NULL)");
  postgres::connection_pool pool(url, {.size = 1});
  std::atomic<int> fail_repeats{0};
  postgres::transactional_handler_options options;
  options.repeats = [&](postgres::connection& db, std::span<const postgres::repeated_item> repeats) {
    for (const auto& r : repeats)
      db.exec("INSERT INTO repeats_seen VALUES ($1, $2)", {r.item->message.receipt_id, r.original_result});
    // After the inserts: what they wrote must go with the batch.
    if (fail_repeats > 0) {
      --fail_repeats;
      throw ingest::error(ingest::errc::backend_unavailable, "repeats writer failed once");
    }
  };
  auto handler = postgres::transactional_handler(
      pool, [&](postgres::connection& db, auto items) { insert_rows(db, items); }, options);

  memory_queue first(io.executor(), {.quiet = true});
  std::map<std::string, std::string> first_receipts;
  for (int i = 0; i < 5; ++i) {
    auto [ec, r] = publish(first, message("k" + std::to_string(i), "p"));
    REQUIRE_FALSE(ec);
    first_receipts[r.idempotency_key] = r.id;
  }
  {
    batching_consumer consumer(first, handler, fast_consumer());
    consumer.start();
    REQUIRE(eventually([&] { return stats(first).processed == 5; }, 30s));
    consumer.drain();
  }
  CHECK(count(audit, "SELECT count(*) FROM repeats_seen") == 0);

  // The same keys accepted again elsewhere (other receipts), and one new key; the
  // repeats writer fails the first time: nothing of that batch may stay.
  memory_queue again(io.executor(), {.quiet = true});
  std::map<std::string, std::string> second_receipts;
  for (int i = 0; i < 6; ++i) {
    auto [ec, r] = publish(again, message("k" + std::to_string(i), "p"));
    REQUIRE_FALSE(ec);
    second_receipts[r.idempotency_key] = r.id;
  }
  fail_repeats = 1;
  {
    batching_consumer consumer(again, handler, fast_consumer());
    consumer.start();
    REQUIRE(eventually([&] { return stats(again).processed == 6; }, 30s));
    consumer.drain();
  }
  CHECK(fail_repeats.load() == 0);
  CHECK(count(audit, "SELECT count(*) FROM rows") == 6);
  CHECK(count(audit, "SELECT count(*) FROM repeats_seen") == 5);
  for (const auto& [key, id] : first_receipts) {
    CAPTURE(key);
    CHECK(count(audit, "SELECT count(*) FROM repeats_seen WHERE receipt = '" + second_receipts[key] +
                           "' AND original = '" + id + "'") == 1);
  }
}

TEST_CASE("postgres handler: a bad item is dead-lettered alone with its reason, the rest commit") {
  io_thread io(2);
  const auto url = shared_postgres::get().fresh_database();
  postgres::connection audit(url);
  // The application's own rule: one row per payload.
  audit.exec("CREATE TABLE rows(receipt_id text NOT NULL, key text NOT NULL, payload text NOT NULL UNIQUE)");
  postgres::connection_pool pool(url, {.size = 1});
  std::atomic<int> writes{0};
  auto handler = postgres::transactional_handler(pool, [&](postgres::connection& db, auto items) {
    ++writes;
    insert_rows(db, items);
  });

  memory_queue q(io.executor(), {.quiet = true});
  publish_all(q, 200);
  REQUIRE_FALSE(publish(q, message("same-payload", "payload of k7")).first);         // violates UNIQUE(payload)
  REQUIRE_FALSE(publish(q, message("bad-bytes", std::string("caf\xc3", 4))).first);  // not UTF-8
  publish_all(q, 100, "late");
  {
    batching_consumer consumer(q, handler, fast_consumer());
    consumer.start();
    REQUIRE(eventually([&] { return stats(q).pending == 0 && stats(q).leased == 0; }, 30s));
    consumer.drain();
    CHECK(consumer.stats().handler_errors == 0);  // isolated inside the handler
  }
  const auto st = stats(q);
  CHECK(st.processed == 300);
  CHECK(st.dead_lettered == 2);
  CHECK(count(audit, "SELECT count(*) FROM rows") == 300);
  CHECK(count(audit, "SELECT count(*) FROM rows WHERE key IN ('same-payload', 'bad-bytes')") == 0);
  CHECK(count(audit, "SELECT count(*) FROM ingest_idempotency WHERE key IN ('same-payload', 'bad-bytes')") == 0);
  std::map<std::string, dead_letter> dead;
  for (auto& d : dead_letters(q)) dead.emplace(d.message.idempotency_key, d);
  REQUIRE(dead.size() == 2);
  CHECK(dead.at("same-payload").reason == "constraint_violation");
  CHECK(dead.at("same-payload").last_error.find("23505") != std::string::npos);
  CHECK(dead.at("bad-bytes").reason == "invalid_data");
  CHECK(dead.at("bad-bytes").last_error.find("22021") != std::string::npos);

  // A key known with another payload is a conflict, dead-lettered; its row stays.
  memory_queue later(io.executor(), {.quiet = true});
  REQUIRE_FALSE(publish(later, message("k3", "another payload")).first);
  {
    batching_consumer consumer(later, handler, fast_consumer());
    consumer.start();
    REQUIRE(eventually([&] { return stats(later).dead_lettered == 1; }, 30s));
    consumer.drain();
  }
  CHECK(count(audit, "SELECT count(*) FROM rows WHERE key = 'k3' AND payload = 'payload of k3'") == 1);
}

TEST_CASE("postgres handler: workers of two machines on the same tables store each key once") {
  io_thread io(4);
  const auto url = shared_postgres::get().fresh_database();
  postgres::connection audit(url);
  create_rows_table(audit);
  // Two "machines", each with its own pool of two connections and two workers, drain
  // two queues that hold the same 2,000 messages (as after a lease expired on one).
  postgres::connection_pool pool_a(url, {.size = 2}), pool_b(url, {.size = 2});
  auto handler_a = postgres::transactional_handler(pool_a, insert_rows);
  auto handler_b = postgres::transactional_handler(pool_b, insert_rows);
  memory_queue qa(io.executor(), {.quiet = true}), qb(io.executor(), {.quiet = true});
  publish_all(qa, 2000);
  publish_all(qb, 2000);
  auto options = fast_consumer(2, 50);
  options.retry.max_attempts = 20;
  batching_consumer a(qa, handler_a, options), b(qb, handler_b, options);
  a.start();
  b.start();
  REQUIRE(eventually([&] { return stats(qa).processed == 2000 && stats(qb).processed == 2000; }, 60s));
  a.drain();
  b.drain();
  CHECK(count(audit, "SELECT count(*) FROM rows") == 2000);
  CHECK(count(audit, "SELECT count(DISTINCT key) FROM rows") == 2000);
  CHECK(stats(qa).dead_lettered + stats(qb).dead_lettered == 0);
}

TEST_CASE("postgres handler: a backend terminated mid-transaction: the batch is retried, nothing lost or doubled") {
  io_thread io(2);
  const auto url = shared_postgres::get().fresh_database();
  postgres::connection audit(url);
  create_rows_table(audit);
  postgres::connection_pool pool(url, {.size = 1});
  std::atomic<int> terminated{0}, writes{0};
  auto handler = postgres::transactional_handler(pool, [&](postgres::connection& db, auto items) {
    ++writes;
    insert_rows(db, items);  // written, not committed
    if (terminated == 0) {
      ++terminated;
      postgres::connection admin(url);
      admin.exec("SELECT pg_terminate_backend($1)", {db.backend_pid()});
    }
  });
  memory_queue q(io.executor(), {.quiet = true});
  publish_all(q, 300);
  batching_consumer consumer(q, handler, fast_consumer(1, 100));
  consumer.start();
  REQUIRE(eventually([&] { return stats(q).processed == 300; }, 30s));
  consumer.drain();
  CHECK(terminated == 1);
  // The lost batch was written again on a new connection (by the handler, which waits
  // for the database rather than failing the batch), and acked once committed.
  CHECK(writes.load() == static_cast<int>(consumer.stats().batches) + 1);
  CHECK(stats(q).dead_lettered == 0);
  CHECK(count(audit, "SELECT count(*) FROM rows") == 300);
  CHECK(count(audit, "SELECT count(DISTINCT key) FROM rows") == 300);
}

TEST_CASE("postgres handler: the server stopped (-m immediate) and started again during a drain") {
  io_thread io(2);
  temp_dir dir;
  postgres_server server(dir.path() / "pg");
  postgres::connection setup(server.url());
  create_rows_table(setup);
  postgres::connection_pool pool(server.url(), {.size = 1, .connection = {.connect_timeout = 2s}});
  auto handler = postgres::transactional_handler(pool, [](postgres::connection& db, auto items) {
    insert_rows(db, items);
    std::this_thread::sleep_for(10ms);  // a drain that takes a while
  });
  memory_queue q(io.executor(), {.quiet = true});
  constexpr int n = 4000;
  publish_all(q, n);
  // The consumer's default attempts (5, from 200 ms of backoff): the handler waits the
  // outage out itself (reconnect_patience) instead of spending them.
  batching_consumer consumer(q, handler, {.workers = 1, .max_batch = 50, .linger = 5ms, .poll_wait = 20ms});
  consumer.start();
  REQUIRE(eventually([&] { return stats(q).processed >= 500; }, 30s));
  server.stop_immediate();
  std::this_thread::sleep_for(200ms);  // the ack of a batch committed just before the stop
  const auto processed_at_stop = stats(q).processed;
  std::this_thread::sleep_for(2s);
  CHECK(stats(q).processed == processed_at_stop);  // nothing acked while the database is down
  server.start();
  REQUIRE(eventually([&] { return stats(q).processed == n; }, 60s));
  consumer.drain();
  CHECK(processed_at_stop < n);
  CHECK(stats(q).dead_lettered == 0);
  CHECK(stats(q).retrying == 0);
  postgres::connection audit(server.url());
  CHECK(count(audit, "SELECT count(*) FROM rows") == n);
  CHECK(count(audit, "SELECT count(DISTINCT key) FROM rows") == n);
  CHECK(count(audit, "SELECT count(*) FROM ingest_idempotency") == n);
}

// A worker process SIGKILLed in its fifth batch, at `where`; a new worker finishes.
void kill_worker_mid_batch(const std::string& where) {
  temp_dir dir;
  const auto path = dir.file("queue.db");
  const auto url = shared_postgres::get().fresh_database();
  postgres::connection audit(url);
  create_rows_table(audit);
  constexpr int n = 2000;
  {
    io_thread io;
    sqlite::queue q(io.executor(), {.path = path});
    publish_all(q, n);
  }
  {
    // Killed in its fifth batch of 100: with the rows written but not committed, or
    // committed but not acked. Its leases last 3 s.
    child_process child({INGEST_POSTGRES_CHILD, path, url, "100", "3000", "5", where});
    while (true) {
      auto line = child.read_line();
      REQUIRE(line);
      if (*line == "stopped") break;
    }
    CHECK(child.kill() == SIGKILL);
  }
  const std::int64_t committed = where == "in_transaction" ? 400 : 500;
  REQUIRE(eventually([&] { return count(audit, "SELECT count(*) FROM rows") == committed; }, 10s));

  io_thread io;
  sqlite::queue q(io.executor(), {.path = path, .visibility_timeout = 10s});
  postgres::connection_pool pool(url, {.size = 2});
  batching_consumer consumer(q, postgres::transactional_handler(pool, insert_rows), fast_consumer(2, 200));
  consumer.start();
  REQUIRE(eventually([&] { return stats(q).processed == n; }, 60s));
  consumer.drain();
  CHECK(count(audit, "SELECT count(*) FROM rows") == n);
  CHECK(count(audit, "SELECT count(DISTINCT key) FROM rows") == n);
  CHECK(count(audit, "SELECT count(DISTINCT receipt_id) FROM rows") == n);
  const auto st = stats(q);
  CHECK(st.dead_lettered == 0);
  CHECK(st.balanced());
}

TEST_CASE("postgres handler: a worker SIGKILLed with its batch written but not committed") {
  kill_worker_mid_batch("in_transaction");
}

TEST_CASE("postgres handler: a worker SIGKILLed between its commit and its ack") {
  kill_worker_mid_batch("before_ack");
}

}  // namespace ingest::test
