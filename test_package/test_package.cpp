// Publishes one submission to an embedded SQLite queue, takes it back, acks it, and
// checks the books: the package's headers, libraries and dependencies work together.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <ingest/ingest.hpp>
#include <ingest/sqlite/queue.hpp>

int main() {
  namespace asio = boost::asio;
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });
  const auto path = std::filesystem::temp_directory_path() / "ingest_test_package.db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
  int status = 1;
  {
    ingest::sqlite::queue queue(io.get_executor(), {.path = path.string()});
    ingest::producer producer(queue);
    const auto receipt =
        producer.async_submit({.idempotency_key = "k1", .subject = "", .payload = "{}", .headers = {}}, asio::use_future)
            .get();
    auto batch = queue.async_fetch(1, std::chrono::seconds(1), asio::use_future).get();
    if (batch.size() == 1 && batch[0].message.receipt_id == receipt.id) {
      queue.async_settle({{batch[0].token, ingest::settle_action::ack, {}, {}, {}}}, asio::use_future).get();
      const auto stats = queue.async_stats(asio::use_future).get();
      status = stats.processed == 1 && stats.balanced() ? 0 : 1;
    }
    queue.close();
  }
  work.reset();
  runner.join();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
  std::printf("ingest %d.%d.%d test_package: %s\n", ingest::version.major, ingest::version.minor, ingest::version.patch,
              status == 0 ? "ok" : "FAILED");
  return status;
}
