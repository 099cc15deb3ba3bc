// End to end: producer -> queue -> batching consumer -> SQLite sink, with double
// clicks, transient and permanent failures. Every receipt a client got must end in
// exactly one place: the sink (once) or the dead-letter store.

#include <doctest/doctest.h>

#include <map>
#include <set>

#include "ingest/ingest.hpp"
#include "support/sqlite_sink.hpp"

namespace ingest::test {

TEST_CASE("every receipt ends processed once or dead-lettered, and the counts add up") {
  io_thread io(2);
  temp_dir dir;
  memory_queue q(io.executor(), {.visibility_timeout = 5s, .quiet = true});
  producer p(q, {.max_in_flight = 64});
  sqlite_sink sink(dir.file("sink.db"));
  sink.on_write = [](const delivery& d) {
    const auto& key = d.message.idempotency_key;
    if (key.ends_with("-poison")) throw permanent_error("unreadable answers");
    if (d.message.attempts == 1 && std::hash<std::string>{}(key) % 10 == 0) throw std::runtime_error("busy");
  };
  auto options = consumer_options{.workers = 1, .max_batch = 100, .linger = 2ms, .poll_wait = 20ms};
  options.retry.initial_backoff = 1ms;
  options.retry.max_backoff = 10ms;
  std::atomic<int> alerts{0};
  options.dead_letter.alert = [&](const dead_letter&) { ++alerts; };
  batching_consumer consumer(q, sink.handler(), options);
  consumer.start();

  constexpr int clients = 4, per_client = 600;
  std::mutex m;
  std::map<std::string, std::string> receipt_by_key;  // what the clients were told
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      for (int i = 0; i < per_client; ++i) {
        auto key = "c" + std::to_string(c) + "-" + std::to_string(i) + (i % 100 == 7 ? "-poison" : "");
        const int sends = i % 5 == 0 ? 2 : 1;  // double clicks
        for (int s = 0; s < sends; ++s) {
          for (int tries = 0; tries < 1000; ++tries) {
            capture<receipt> r;
            p.async_submit({.idempotency_key = key, .subject = {}, .payload = "answers of " + key, .headers = {}},
                           r.handler());
            auto [ec, got] = r.get();
            if (!ec) {
              std::lock_guard lock(m);
              auto [it, inserted] = receipt_by_key.emplace(key, got.id);
              CHECK(it->second == got.id);  // a retry returns the same receipt
              break;
            }
            REQUIRE((is_retry_later(ec) || ec == errc::in_flight));
            std::this_thread::sleep_for(1ms);
          }
        }
      }
    });
  for (auto& t : threads) t.join();
  REQUIRE(receipt_by_key.size() == clients * per_client);

  const std::uint64_t poison = clients * (per_client / 100);
  REQUIRE(eventually([&] { return stats(q).pending == 0; }, 30s));
  consumer.drain();

  const auto st = stats(q);
  CHECK(st.accepted == receipt_by_key.size());
  CHECK(st.dead_lettered == poison);
  CHECK(st.processed == receipt_by_key.size() - poison);
  CHECK(st.balanced());
  CHECK(alerts == static_cast<int>(poison));
  CHECK(sink.rows() == static_cast<std::int64_t>(st.processed));
  CHECK(sink.distinct_receipts() == sink.rows());

  std::set<std::string> dead;
  for (const auto& d : dead_letters(q, 10000)) dead.insert(d.message.receipt_id);
  for (const auto& [key, id] : receipt_by_key) {
    const bool in_dlq = dead.count(id) == 1;
    CHECK((key.ends_with("-poison") ? in_dlq : sink.rows_for(key) == 1));
  }
  CHECK(consumer.stats().retried > 0);
}

}  // namespace ingest::test
