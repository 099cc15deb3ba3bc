#include "ingest/memory_queue.hpp"

#include <doctest/doctest.h>

#include "ingest/testing/queue_conformance.hpp"
#include "support/test_support.hpp"
#include "ingest/error.hpp"

namespace ingest::test {

struct memory_backend {
  static constexpr const char* name = "memory";
  explicit memory_backend(boost::asio::any_io_executor ex) : ex_(ex) {}
  std::unique_ptr<durable_queue> open(std::chrono::milliseconds visibility) {
    return std::make_unique<memory_queue>(ex_, memory_queue_options{.visibility_timeout = visibility, .quiet = true});
  }
  queue_features expected_features() const {
    return {.durable = false,
            .native_dedup = true,
            .fifo = true,
            .delayed_retry = true,
            .lease_extension = true,
            .exact_stats = true,
            .lookup = true,
            .deadline_before_store = true,
            .dedup_window = std::chrono::milliseconds::max()};
  }
  boost::asio::any_io_executor ex_;
};

INGEST_QUEUE_CONFORMANCE(std::tuple<memory_backend>);

TEST_CASE("memory_queue says it is not durable") {
  io_thread io;
  memory_queue q(io.executor(), {.quiet = true});
  CHECK_FALSE(q.features().durable);
}

TEST_CASE("memory_queue refuses work past capacity and evicts nothing") {
  io_thread io;
  memory_queue q(io.executor(), {.max_messages = 3, .quiet = true});
  for (int i = 0; i < 3; ++i) REQUIRE_FALSE(publish(q, message("k" + std::to_string(i))).first);
  CHECK(publish(q, message("k3")).first == errc::queue_full);
  CHECK(is_retry_later(errc::queue_full));
  auto [ec, got] = fetch(q, 10);
  CHECK(got.size() == 3);
  REQUIRE_FALSE(ack(q, got));
  CHECK_FALSE(publish(q, message("k3")).first);
}

TEST_CASE("memory_queue fault injection") {
  io_thread io;
  memory_queue q(io.executor(), {.quiet = true});

  SUBCASE("failed publishes store nothing") {
    q.fail_publishes(errc::backend_unavailable);
    CHECK(publish(q, message("x")).first == errc::backend_unavailable);
    q.fail_publishes({});
    CHECK(stats(q).accepted == 0);
    CHECK_FALSE(publish(q, message("x")).first);
  }

  SUBCASE("held acks complete when released") {
    q.hold_acks(true);
    capture<receipt> c;
    q.async_publish(message("held"), c.handler());
    CHECK(c.future.wait_for(100ms) == std::future_status::timeout);
    q.hold_acks(false);
    auto [ec, r] = c.get();
    CHECK_FALSE(ec);
    CHECK_FALSE(r.id.empty());
  }

  SUBCASE("dropped settlements leave the message to come back") {
    memory_queue short_lease(io.executor(), {.visibility_timeout = 200ms, .quiet = true});
    REQUIRE_FALSE(publish(short_lease, message("lost-ack")).first);
    auto [ec, got] = fetch(short_lease, 1);
    short_lease.drop_settlements(true);
    CHECK_FALSE(ack(short_lease, got));
    short_lease.drop_settlements(false);
    auto [ec2, again] = fetch(short_lease, 1, 2s);
    REQUIRE(again.size() == 1);
    CHECK(again[0].message.attempts == 2);
  }
}

}  // namespace ingest::test
