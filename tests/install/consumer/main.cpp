// Accepts a few submissions, drains them into an SQLite sink, and checks the books.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <ingest/http/server.hpp>
#include <ingest/ingest.hpp>
#include <ingest/nats/queue.hpp>
#include <ingest/postgres/transactional_handler.hpp>
#include <ingest/sqlite/transactional_handler.hpp>
#include <ingest/aws/s3.hpp>
#include <ingest/sqs/queue.hpp>

static_assert(ingest::version.major == PACKAGE_VERSION_MAJOR && ingest::version.minor == PACKAGE_VERSION_MINOR,
              "the installed package and its headers disagree on the version");

int main() {
  namespace asio = boost::asio;
  // The NATS component links: its options parse (no server is needed for that).
  if (ingest::nats::queue_options::from_url("nats://127.0.0.1:4222").servers.size() != 1) return 1;
  // The SQS component links: URLs parse and the signer signs.
  if (ingest::sqs::queue_options::from_url("sqs+http://127.0.0.1:4566/000000000000/q").queue != "q") return 1;
  if (ingest::aws::sha256_hex("").size() != 64) return 1;
  if (ingest::aws::s3_options::from_url("s3+http://127.0.0.1:4566/b").bucket != "b") return 1;
  // The PostgreSQL component links: SQLSTATEs classify, and a server that is not
  // there is a lost connection (libpq tried it).
  if (ingest::postgres::classify(std::make_exception_ptr(ingest::error(
          ingest::postgres::make_error_code("23505"), "x"))) != ingest::failure_kind::permanent)
    return 1;
  ingest::postgres::text_array ids;
  ids.push_back("r-1");
  if (ids.size() != 1 || !ingest::postgres::param::binary(ids.bytes()).is_binary()) return 1;
  try {
    ingest::postgres::connection pg("postgresql://nobody@127.0.0.1:1/none", {.connect_timeout = std::chrono::seconds(2)});
    return 1;
  } catch (const ingest::error& e) {
    if (!ingest::postgres::is_connection_lost(e.code())) return 1;
  }
  asio::io_context io;
  {
    // The HTTP component links: a server binds a free port and stops.
    ingest::http::server http(io, {}, [](auto, const auto&, auto respond) { respond({}); });
    http.start();
    if (http.port() == 0) return 1;
    http.stop();
  }
  auto work = asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });

  const auto path = (std::filesystem::temp_directory_path() / "ingest_consumer_test.db").string();
  std::filesystem::remove(path);
  ingest::sqlite::database db(path);
  db.exec("CREATE TABLE rows(receipt_id TEXT PRIMARY KEY)");
  ingest::sqlite::idempotency_store keys(db);
  ingest::sqlite::statement insert(db, "INSERT INTO rows VALUES (?1)");

  ingest::memory_queue queue(io.get_executor(), {.quiet = true});
  ingest::producer producer(queue);
  ingest::batching_consumer consumer(queue,
                                     ingest::sqlite::transactional_handler(db, keys,
                                                                           [&](auto&, const ingest::delivery& d) {
                                                                             insert.bind(1, d.message.receipt_id);
                                                                             insert.run();
                                                                           }),
                                     {.workers = 1});
  consumer.start();
  for (int i = 0; i < 100; ++i)
    producer
        .async_submit({.idempotency_key = "k" + std::to_string(i % 50), .subject = {}, .payload = "p", .headers = {}},
                      asio::use_future)
        .get();
  while (queue.async_stats(asio::use_future).get().processed < 50)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  consumer.drain();
  const auto st = queue.async_stats(asio::use_future).get();
  work.reset();
  runner.join();
  std::filesystem::remove(path);
  std::printf("accepted %llu processed %llu\n", static_cast<unsigned long long>(st.accepted),
              static_cast<unsigned long long>(st.processed));
  return st.accepted == 50 && st.processed == 50 && st.balanced() ? 0 : 1;
}
