// The NATS queue against a server that goes away or asks for credentials: publishes while
// it is down, a consumer SIGKILLed mid-batch, token authentication with the server-side
// redelivery backoff, and TLS.

#include <doctest/doctest.h>
#include <nats/nats.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <set>

#include "ingest/batching_consumer.hpp"
#include "ingest/error.hpp"
#include "ingest/nats/queue.hpp"
#include "ingest/producer.hpp"
#include "ingest/testing/queue_helpers.hpp"
#include "support/nats_client.hpp"
#include "support/nats_server.hpp"
#include "support/nats_shared.hpp"
#include "support/sqlite_sink.hpp"
#include "support/test_support.hpp"

namespace ingest::test {

TEST_CASE("nats: while the server is down, publishes fail at once with retry-later errors, never receipts") {
  temp_dir dir;
  nats_server server(dir.path() / "down");
  io_thread io;
  auto o = queue_options_for(server.url(), "DOWN", 5s);
  o.publish_timeout = 1s;
  nats::queue q(io.executor(), o);
  REQUIRE_FALSE(publish(q, message("before")).first);
  server.stop();
  const auto t0 = std::chrono::steady_clock::now();
  auto [ec, r] = publish(q, message("during"));
  CHECK(ec);
  CHECK(is_retry_later(ec));
  CHECK(r.id.empty());
  CHECK(std::chrono::steady_clock::now() - t0 < 4s);
  server.start();
  // It resumes by itself; the refused key, retried, gets one receipt (new, or the
  // original if the buffered publish reached the server after the reconnect).
  std::string id;
  REQUIRE(eventually(
      [&] {
        auto [e2, r2] = publish(q, message("during"));
        id = r2.id;
        return !e2;
      },
      30s));
  auto [e3, again] = publish(q, message("during"));
  CHECK_FALSE(e3);
  CHECK(again.duplicate);
  CHECK(again.id == id);
}

TEST_CASE("crash: a NATS consumer SIGKILLed mid-batch: its batch comes back, the sink holds each key once") {
  const auto name = unique_name("KILLED");
  const auto url = shared_server().url() + "?stream=" + name + "&subject=ingest." + name +
                   "&dead_letter_stream=" + name + "_DLQ&dead_letter_subject=ingest." + name +
                   ".dead&consumer=" + name + "_w&ack_wait=3s";
  temp_dir dir;
  const auto sink_path = dir.file("sink.db");
  constexpr int n = 2000;
  io_thread io;
  auto q = std::make_unique<nats::queue>(io.executor(), nats::queue_options::from_url(url));
  for (int i = 0; i < n; ++i) REQUIRE_FALSE(publish(*q, message("k" + std::to_string(i))).first);
  {
    // The child commits its fifth batch of 100 and is killed before it acks it.
    child_process child({INGEST_QUEUE_CHILD, "consume", url, sink_path, "100", "3000", "5"});
    while (true) {
      auto line = child.read_line();
      REQUIRE(line);
      if (*line == "holding") break;
    }
    CHECK(child.kill() == SIGKILL);
  }
  sqlite_sink sink(sink_path);
  CHECK(sink.rows() == 500);
  const auto before = stats(*q);
  CHECK(before.pending == n - 400);  // the held batch is still owed
  batching_consumer consumer(*q, sink.handler(), {.workers = 1, .max_batch = 200, .linger = 0ms, .poll_wait = 100ms});
  consumer.start();
  REQUIRE(eventually([&] { return sink.rows() == n && stats(*q).pending == 0; }, 60s));
  consumer.drain();
  // The held batch came back after its ack wait, and its committed keys were recognised.
  CHECK(sink.redelivered() == 100);
  CHECK(sink.rows() == n);
  CHECK(sink.distinct_receipts() == n);
}

}  // namespace ingest::test

namespace ingest::test {

TEST_CASE("nats: token authentication, and the server-side redelivery backoff") {
  temp_dir dir;
  nats_server server(dir.path() / "auth", "auth", {"--auth", "s3cret"});
  io_thread io;
  auto o = queue_options_for(server.url(), "AUTH", 1s);
  o.request_timeout = 1s;
  o.token = "wrong";
  CHECK_THROWS_AS(nats::queue(io.executor(), o), ingest::error);
  o.token = "s3cret";
  o.max_deliver = 5;
  o.redelivery_backoff = {300ms, 1s};
  nats::queue q(io.executor(), o);
  REQUIRE_FALSE(publish(q, message("a")).first);
  // Unacked: the first redelivery comes after the first backoff step, not ack_wait.
  auto [ec, first] = fetch(q, 1, 1s);
  REQUIRE(first.size() == 1);
  const auto t0 = std::chrono::steady_clock::now();
  auto [ec2, again] = fetch(q, 1, 3s);
  REQUIRE(again.size() == 1);
  CHECK(again[0].message.attempts == 2);
  CHECK(std::chrono::steady_clock::now() - t0 >= 250ms);
  // Reopening with another backoff is a configuration mismatch.
  o.redelivery_backoff = {300ms};
  CHECK_THROWS_AS(nats::queue(io.executor(), o), ingest::error);
  o.redelivery_backoff = {};
  o.max_deliver = -1;
  CHECK_THROWS_AS((nats::queue_options{.redelivery_backoff = {1s}}.validate()), ingest::error);
}

}  // namespace ingest::test

namespace ingest::test {

TEST_CASE("nats: TLS, the server's certificate checked against the given CA") {
  test_certificates certs;
  const auto &cert = certs.cert, &key = certs.key, &other = certs.other;
  nats_server server(certs.dir.path() / "tls", "tls", {"--tls", "--tlscert", cert, "--tlskey", key});
  io_thread io;
  auto o = nats::queue_options::from_url("tls://127.0.0.1:" + std::to_string(server.port()) +
                                         "?stream=TLS&subject=ingest.tls&dead_letter_stream=TLS_DLQ"
                                         "&dead_letter_subject=ingest.tls.dead&consumer=tls_w&tls_ca=" +
                                         cert);
  nats::queue q(io.executor(), o);
  auto [ec, r] = publish(q, message("secure"));
  REQUIRE_FALSE(ec);
  auto [fec, got] = fetch(q, 1, 2s);
  REQUIRE(got.size() == 1);
  CHECK(got[0].message.receipt_id == r.id);

  // A certificate from another CA is refused.
  o.tls_ca_file = other;
  o.request_timeout = 1s;
  try {
    nats::queue refused(io.executor(), o);
    FAIL("connected with a certificate from another CA");
  } catch (const ingest::error& e) {
    CHECK(e.code() == errc::backend_unavailable);
    CHECK(std::string(e.what()).find("SSL handshake error") != std::string::npos);
  }
}

}  // namespace ingest::test
