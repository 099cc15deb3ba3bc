// Structured events: the receipt id ties the producer's and the consumer's events of a
// submission together; the JSON-lines logger writes one well-formed object per event.

#include <doctest/doctest.h>

#include <cstdio>
#include <mutex>

#include "ingest/batching_consumer.hpp"
#include "ingest/log.hpp"
#include "ingest/memory_queue.hpp"
#include "ingest/producer.hpp"
#include "ingest/retry_policy.hpp"
#include "support/test_support.hpp"

using namespace ingest;
using namespace ingest::test;
using namespace std::chrono_literals;

namespace {

struct recorded {
  std::string component, event, receipt_id, key, detail;
  log_level level;
  std::uint32_t attempts;
};

class capture_logger final : public logger {
 public:
  bool enabled(log_level) const noexcept override { return true; }
  void write(const log_event& e) noexcept override {
    std::lock_guard lock(mutex);
    events.push_back({std::string(e.component), std::string(e.event), std::string(e.receipt_id),
                      std::string(e.idempotency_key), std::string(e.detail), e.level, e.attempts});
  }
  std::vector<recorded> find(const std::string& event) {
    std::lock_guard lock(mutex);
    std::vector<recorded> out;
    for (const auto& e : events)
      if (e.event == event) out.push_back(e);
    return out;
  }
  std::mutex mutex;
  std::vector<recorded> events;
};

}  // namespace

TEST_CASE("the receipt id correlates producer and consumer events") {
  io_thread io;
  memory_queue queue(io.executor(), {.quiet = true});
  auto log = std::make_shared<capture_logger>();
  producer prod(queue, {.log = log});
  consumer_options options{.workers = 1, .max_batch = 10, .linger = 1ms, .log = log};
  options.retry.max_attempts = 2;
  options.retry.initial_backoff = 1ms;
  batching_consumer consumer(
      queue,
      [](batch& b) {
        for (std::size_t i = 0; i < b.size(); ++i)
          if (b[i].message.payload == "poison") b.fail(i, "cannot read the answers");
      },
      options);
  consumer.start();

  auto submit = [&](std::string key, std::string payload) {
    capture<receipt> c;
    prod.async_submit(submission{std::move(key), "", std::move(payload), {}}, c.handler());
    return c.get();
  };
  auto [e1, good] = submit("good", "{}");
  auto [e2, again] = submit("good", "{}");
  auto [e3, poison] = submit("bad", "poison");
  auto [e4, refused] = submit("", "{}");
  REQUIRE_FALSE(e1);
  REQUIRE_FALSE(e3);
  CHECK(e4 == errc::invalid_key);
  REQUIRE(eventually([&] { return log->find("processed").size() == 1 && log->find("dead_lettered").size() == 1; }));
  consumer.drain();

  const auto accepted = log->find("accepted");
  REQUIRE(accepted.size() == 2);
  CHECK(accepted[0].component == "producer");
  CHECK(accepted[0].receipt_id == good.id);
  CHECK(accepted[0].key == "good");
  const auto dup = log->find("duplicate");
  REQUIRE(dup.size() == 1);
  CHECK(dup[0].receipt_id == good.id);
  const auto processed = log->find("processed");
  CHECK(processed[0].component == "consumer");
  CHECK(processed[0].receipt_id == good.id);
  CHECK(processed[0].attempts == 1);
  const auto dead = log->find("dead_lettered");
  CHECK(dead[0].receipt_id == poison.id);
  CHECK(dead[0].level == log_level::error);
  CHECK(dead[0].detail.find("permanent_failure") != std::string::npos);
  CHECK(dead[0].detail.find("cannot read the answers") != std::string::npos);
  const auto rejected = log->find("rejected");
  REQUIRE(rejected.size() == 1);
  CHECK(rejected[0].receipt_id.empty());
  CHECK(rejected[0].detail.find("invalid_key") != std::string::npos);
  // Payloads are never logged.
  for (const auto& e : log->events) CHECK(e.detail.find("poison") == std::string::npos);
}

TEST_CASE("json lines: one escaped object per event, filtered by level") {
  temp_dir dir;
  const auto path = dir.file("log.jsonl");
  std::FILE* f = std::fopen(path.c_str(), "w+");
  REQUIRE(f);
  auto log = json_lines_logger(f, log_level::info);
  CHECK_FALSE(log->enabled(log_level::debug));
  log->write({.level = log_level::debug, .component = "consumer", .event = "processed"});
  log->write({.level = log_level::warning,
              .component = "consumer",
              .event = "retry",
              .receipt_id = "01a2",
              .idempotency_key = "k\"1",
              .detail = "line\nbreak\\ \x01",
              .attempts = 2});
  std::fclose(f);
  std::FILE* in = std::fopen(path.c_str(), "r");
  char buf[1024] = {};
  const auto n = std::fread(buf, 1, sizeof buf - 1, in);
  std::fclose(in);
  const std::string text(buf, n);
  CHECK(std::count(text.begin(), text.end(), '\n') == 1);
  CHECK(text.find(R"("level":"warning","component":"consumer","event":"retry","receipt_id":"01a2")") != std::string::npos);
  CHECK(text.find(R"("key":"k\"1")") != std::string::npos);
  CHECK(text.find(R"("detail":"line\nbreak\\ \u0001")") != std::string::npos);
  CHECK(text.find(R"("attempts":2})") != std::string::npos);
  CHECK(parse_log_level("warn") == log_level::warning);
  CHECK_THROWS_AS(parse_log_level("loud"), ingest::error);
}
