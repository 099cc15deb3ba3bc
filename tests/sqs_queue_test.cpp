// The SQS backend against the fauxqs emulator (a real SQS implementation speaking the
// AWS JSON protocol) started on a free 127.0.0.1 port.
#include "ingest/sqs/queue.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <boost/json/serialize.hpp>

#include "ingest/testing/queue_conformance.hpp"
#include "support/test_support.hpp"
#include "ingest/batching_consumer.hpp"
#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"
#include "support/fauxqs.hpp"
#include "support/http_client.hpp"
#include "support/sqlite_sink.hpp"

namespace ingest::test {

namespace {

fauxqs& shared_emulator() {
  static fauxqs server;
  return server;
}

std::string unique_name(const char* prefix) {
  static std::atomic<int> n{0};
  return std::string(prefix) + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

sqs::queue_options options_for(const std::string& endpoint, const std::string& name, bool fifo,
                               std::chrono::milliseconds visibility = 30s) {
  sqs::queue_options o;
  o.endpoint = endpoint;
  o.queue = fifo ? name + ".fifo" : name;
  o.dead_letter_queue = fifo ? name + "-dlq.fifo" : name + "-dlq";
  o.visibility_timeout = visibility;
  o.group_per_key = fifo;
  return o;
}

// Sends one AWS JSON request as it is (set-up the library does not do: queue attributes).
http_result aws(int port, const std::string& action, const std::string& body) {
  http_client c(static_cast<std::uint16_t>(port));
  return c.call(boost::beast::http::verb::post, "/",
                {{"content-type", "application/x-amz-json-1.0"}, {"x-amz-target", "AmazonSQS." + action}}, body);
}

}  // namespace

// A standard queue, and a FIFO queue with a group per key (conformance needs batches
// of several messages; one group hands out one message at a time).
template <bool Fifo>
struct sqs_backend {
  static constexpr const char* name = Fifo ? "sqs-fifo" : "sqs";
  explicit sqs_backend(boost::asio::any_io_executor ex) : ex_(ex), queue_(unique_name("conf")) {}
  std::unique_ptr<durable_queue> open(std::chrono::milliseconds visibility) {
    return std::make_unique<sqs::queue>(ex_, options_for(shared_emulator().endpoint(), queue_, Fifo, visibility));
  }
  // A FIFO queue dedups by key; with a message group per key it no longer keeps one
  // order. SQS cannot name the original message of a key (dedup_window 0).
  queue_features expected_features() const {
    return {.durable = true,
            .native_dedup = Fifo,
            .fifo = false,
            .delayed_retry = true,
            .lease_extension = true,
            .exact_stats = false,
            .lookup = false,
            .deadline_before_store = false,
            .dedup_window = std::chrono::milliseconds::zero()};
  }
  boost::asio::any_io_executor ex_;
  std::string queue_;
};
using sqs_standard = sqs_backend<false>;
using sqs_fifo = sqs_backend<true>;

INGEST_QUEUE_CONFORMANCE(std::tuple<sqs_standard, sqs_fifo>);

TEST_CASE("sqs: queue URLs name the endpoint, account, queue and options") {
  auto o = sqs::queue_options::from_url("sqs+http://127.0.0.1:4566/000000000000/exams?visibility=45s&redrive=8");
  CHECK(o.endpoint == "http://127.0.0.1:4566");
  CHECK(o.account == "000000000000");
  CHECK(o.queue == "exams");
  CHECK(o.dead_letter_queue == "exams-dlq");
  CHECK(o.visibility_timeout == 45s);
  CHECK(o.redrive_max_receives == 8);
  auto f = sqs::queue_options::from_url("sqs+https://sqs.eu-west-1.amazonaws.com/-/exams.fifo?dlq=dead.fifo&region=eu-west-1");
  CHECK(f.endpoint == "https://sqs.eu-west-1.amazonaws.com");
  CHECK(f.account.empty());
  CHECK(f.dead_letter_queue == "dead.fifo");
  CHECK(f.region == "eu-west-1");
  CHECK(sqs::queue_options::from_url("sqs+http://h:1/a/q.fifo").dead_letter_queue == "q-dlq.fifo");
  CHECK_THROWS_AS(sqs::queue_options::from_url("sqs+http://h:1/onlyqueue"), ingest::error);
  CHECK_THROWS_AS(sqs::queue_options::from_url("sqs+http://h:1/a/q?secret=x"), ingest::error);
  CHECK_THROWS_AS(sqs::queue_options::from_url("http://h:1/a/q"), ingest::error);
  CHECK_THROWS_AS(sqs::queue_options::from_url("sqs+http://h:1/a/q?tls_ca=/ca.pem"), ingest::error);  // no TLS
  CHECK_THROWS_AS(sqs::queue_options::from_url("sqs+http://h:1/a/q?create=yes"), ingest::error);
  CHECK_THROWS_AS(sqs::queue_options::from_url("sqs+http://h:1/a/q?dlq=x&dlq=y"), ingest::error);
  auto mixed = sqs::queue_options::from_url("sqs+http://h:1/a/q.fifo?dlq=plain");
  CHECK_THROWS_AS(mixed.validate(), ingest::error);
}

TEST_CASE("sqs: a repeat through the same queue gets the original receipt, another payload a conflict") {
  io_thread io;
  sqs::queue q(io.executor(), options_for(shared_emulator().endpoint(), unique_name("dup"), false));
  CHECK(q.features().dedup_window == 0ms);
  auto [e1, first] = publish(q, message("k", "one"));
  REQUIRE_FALSE(e1);
  auto [e2, again] = publish(q, message("k", "one"));
  REQUIRE_FALSE(e2);
  CHECK(again.duplicate);
  CHECK(again.id == first.id);
  CHECK(again.accepted_at == first.accepted_at);
  CHECK(publish(q, message("k", "two")).first == errc::conflict);
  // One message in the queue.
  auto [fec, got] = fetch(q, 10, 1500ms);
  REQUIRE(got.size() == 1);
  CHECK_FALSE(ack(q, got));
  CHECK(fetch(q, 10, 1100ms).second.empty());
}

TEST_CASE("sqs: FIFO keeps publish order in one group, and SQS drops a key repeated from elsewhere") {
  io_thread io;
  auto o = options_for(shared_emulator().endpoint(), unique_name("order"), true);
  o.group_per_key = false;
  sqs::queue q(io.executor(), o);
  CHECK(q.features().fifo);
  CHECK(q.features().native_dedup);
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) {
    auto [ec, r] = publish(q, message("o" + std::to_string(i)));
    REQUIRE_FALSE(ec);
    ids.push_back(r.id);
  }
  // Another process (another queue object, nothing remembered) sends o3 again.
  {
    sqs::queue other(io.executor(), o);
    auto [ec, r] = publish(other, message("o3"));
    REQUIRE_FALSE(ec);
    CHECK_FALSE(r.duplicate);
  }
  std::vector<std::string> order;
  while (order.size() < 12) {
    auto [ec, got] = fetch(q, 10, 2s);
    REQUIRE_FALSE(ec);
    REQUIRE_FALSE(got.empty());
    for (const auto& d : got) order.push_back(d.message.receipt_id);
    REQUIRE_FALSE(ack(q, got));
  }
  CHECK(order == ids);
  CHECK(fetch(q, 10, 1100ms).second.empty());  // the repeat was never delivered
}

TEST_CASE("sqs: payloads that are not SQS text travel base64 and come back byte for byte") {
  io_thread io;
  sqs::queue q(io.executor(), options_for(shared_emulator().endpoint(), unique_name("bytes"), false));
  std::string bytes("\x00\x01\xff\xfe binary \xc3\x28", 14);
  auto e = message("bin", bytes);
  e.headers = {{"h", "v\xc3\x28"}};  // not UTF-8: the metadata attribute goes binary
  REQUIRE_FALSE(publish(q, e).first);
  REQUIRE_FALSE(publish(q, message("empty", "")).first);
  std::map<std::string, delivery> by_key;
  while (by_key.size() < 2) {
    auto [ec, got] = fetch(q, 10, 2s);
    REQUIRE_FALSE(got.empty());
    for (auto& d : got) by_key[d.message.idempotency_key] = d;
  }
  CHECK(by_key["bin"].message.payload == bytes);
  CHECK(by_key["bin"].message.headers == header_list{{"h", "v\xc3\x28"}});
  CHECK(by_key["empty"].message.payload.empty());
}

TEST_CASE("sqs: an entry SQS refuses fails alone; its batch neighbours get receipts") {
  io_thread io;
  const auto name = unique_name("small");
  auto created = aws(shared_emulator().port(), "CreateQueue",
                     R"({"QueueName":")" + name + R"(","Attributes":{"MaximumMessageSize":"1024"}})");
  REQUIRE(created.status == 200);
  sqs::queue q(io.executor(), options_for(shared_emulator().endpoint(), name, false));
  std::vector<capture<receipt>> results(6);
  for (int i = 0; i < 6; ++i)
    q.async_publish(message("s" + std::to_string(i), i == 3 ? std::string(4000, 'x') : "small"), results[i].handler());
  for (int i = 0; i < 6; ++i) {
    auto [ec, r] = results[i].get();
    if (i == 3) {
      CHECK(ec == errc::payload_too_large);
      CHECK(r.id.empty());
    } else {
      CHECK_FALSE(ec);
      CHECK(!r.id.empty());
    }
  }
  CHECK(q.last_error().find("shorter") != std::string::npos);
}

TEST_CASE("sqs: a RedrivePolicy moves a message that keeps coming back; it is listed as a dead letter") {
  io_thread io;
  auto o = options_for(shared_emulator().endpoint(), unique_name("redrive"), false, 1s);
  o.redrive_max_receives = 2;
  sqs::queue q(io.executor(), o);
  auto [ec, r] = publish(q, message("stuck", "p"));
  REQUIRE_FALSE(ec);
  // Two deliveries that are never settled (a consumer that dies on this message) ...
  for (int i = 1; i <= 2; ++i) {
    auto [fec, got] = fetch(q, 1, 3s);
    REQUIRE(got.size() == 1);
    CHECK(got[0].message.attempts == static_cast<std::uint32_t>(i));
  }
  // ... and on the third receive SQS moves it instead of delivering it.
  std::this_thread::sleep_for(1100ms);
  CHECK(fetch(q, 1, 1500ms).second.empty());
  auto letters = dead_letters(q);
  REQUIRE(letters.size() == 1);
  CHECK(letters[0].message.receipt_id == r.id);
  CHECK(letters[0].reason == "max_receives");
  CHECK(letters[0].attempts == 2);
  capture<std::size_t> replay;
  q.async_replay({}, replay.handler());
  CHECK(replay.get().second == 1);
  auto [bec, back] = fetch(q, 1, 2s);
  REQUIRE(back.size() == 1);
  CHECK(back[0].message.receipt_id == r.id);
  CHECK_FALSE(ack(q, back));
}

TEST_CASE("sqs: set-up errors are clear: no endpoint, no such queue") {
  io_thread io;
  auto o = options_for("http://127.0.0.1:" + std::to_string(free_port()), "nowhere", false);
  o.connect_timeout = 1s;
  try {
    sqs::queue q(io.executor(), o);
    FAIL("opened a queue on a closed port");
  } catch (const ingest::error& e) {
    CHECK(e.code() == errc::backend_unavailable);
  }
  auto missing = options_for(shared_emulator().endpoint(), unique_name("missing"), false);
  missing.create_queues = false;
  try {
    sqs::queue q(io.executor(), missing);
    FAIL("opened a queue that does not exist");
  } catch (const ingest::error& e) {
    CHECK(e.code() == errc::invalid_config);
    CHECK(std::string(e.what()).find("GetQueueUrl") != std::string::npos);
  }
}

TEST_CASE("sqs: HTTPS, the endpoint's certificate checked against the given CA") {
  test_certificates certs;
  const auto &cert = certs.cert, &other = certs.other;
  fauxqs emulator(cert, certs.key);
  io_thread io;
  auto o = options_for(emulator.endpoint(), unique_name("tls"), false);
  o.creds = {"AKIDEXAMPLE", "secret", ""};  // https wants credentials; the emulator takes any
  o.tls_ca_file = cert;
  sqs::queue q(io.executor(), o);
  auto [ec, r] = publish(q, message("secure", "over tls"));
  REQUIRE_FALSE(ec);
  auto [fec, got] = fetch(q, 1, 2s);
  REQUIRE(got.size() == 1);
  CHECK(got[0].message.receipt_id == r.id);
  CHECK_FALSE(ack(q, got));

  o.tls_ca_file = other;  // a certificate from another CA is refused at the handshake
  try {
    sqs::queue refused(io.executor(), o);
    FAIL("accepted a certificate from another CA");
  } catch (const ingest::error& e) {
    CHECK(e.code() == errc::backend_unavailable);
    CHECK(std::string(e.what()).find("certificate verify failed") != std::string::npos);
  }
  o.creds = {};
  const char* saved = std::getenv("AWS_ACCESS_KEY_ID");
  if (!saved) CHECK_THROWS_AS(sqs::queue(io.executor(), o), ingest::error);  // no credentials for https
}

TEST_CASE("sqs: emulator killed mid-flood: errors, never receipts; publishing recovers when it is back") {
  io_thread io;
  fauxqs emulator;
  auto o = options_for(emulator.endpoint(), unique_name("flood"), false);
  o.publish_timeout = 2s;
  o.connect_timeout = 500ms;
  sqs::queue q(io.executor(), o);

  std::atomic<bool> down{false}, stop{false};
  std::atomic<int> counter{0}, receipts_while_down{0}, errors{0};
  std::mutex m;
  std::set<std::string> receipts;  // issued after the restart
  std::atomic<bool> restarted{false};
  std::vector<std::thread> publishers;
  for (int t = 0; t < 4; ++t)
    publishers.emplace_back([&] {
      const auto until = std::chrono::steady_clock::now() + 30s;  // bounded, whatever happens
      while (!stop && std::chrono::steady_clock::now() < until) {
        const bool was_down = down;
        const bool after_restart = restarted;
        auto [ec, r] = publish(q, message("f" + std::to_string(counter++), "x"));
        if (ec) {
          ++errors;
          CHECK(r.id.empty());
          CHECK(is_retry_later(ec));
        } else if (was_down && down) {
          ++receipts_while_down;
        } else if (after_restart) {
          std::lock_guard lock(m);
          receipts.insert(r.id);
        }
      }
    });
  std::this_thread::sleep_for(700ms);
  CHECK(errors == 0);
  emulator.kill();
  // Publishes in flight at the kill may still fail for up to publish_timeout.
  std::this_thread::sleep_for(100ms);
  down = true;
  std::this_thread::sleep_for(1500ms);
  const int errors_while_down = errors;
  CHECK(errors_while_down > 0);
  emulator.start();  // same port, no queues: the library creates them again
  down = false;
  restarted = true;
  CHECK(eventually([&] {
    std::lock_guard lock(m);
    return receipts.size() >= 200;
  }, 15s));
  stop = true;
  for (auto& t : publishers) t.join();
  CHECK(receipts_while_down == 0);

  // Everything receipted after the restart is in the queue, once.
  std::set<std::string> seen;
  int doubles = 0;
  while (true) {
    auto [ec, got] = fetch(q, 100, 1500ms);
    if (got.empty()) break;
    for (const auto& d : got)
      if (!seen.insert(d.message.receipt_id).second) ++doubles;
    REQUIRE_FALSE(ack(q, got));
  }
  CHECK(doubles == 0);
  for (const auto& id : receipts) CHECK(seen.count(id) == 1);
}

TEST_CASE("sqs: messages another program sent are processed or dead-lettered, never acked into nothing") {
  namespace json = boost::json;
  io_thread io;
  temp_dir dir;
  sqs::queue q(io.executor(), options_for(shared_emulator().endpoint(), unique_name("wire"), false));
  // Unsigned SendMessage requests, as an emulator takes them from any client.
  auto send = [&](const std::string& body, const std::string& meta = {}) {
    json::object request{{"QueueUrl", q.queue_url()}, {"MessageBody", body}};
    if (!meta.empty())
      request["MessageAttributes"] =
          json::object{{"ingest", json::object{{"DataType", "String"}, {"StringValue", meta}}}};
    REQUIRE(aws(shared_emulator().port(), "SendMessage", json::serialize(request)).status == 200);
  };
  const auto before = clock::now();
  send(R"({"n":1})");
  send(R"({"n":2})");
  // Built from docs/wire-format.md alone.
  const std::string doc_payload = R"({"answers":{"q1":"B"}})";
  const std::string doc_receipt = "0190b5c8-0000-7000-8000-00000000d0c2";
  const std::int64_t doc_at_us =
      std::chrono::duration_cast<std::chrono::microseconds>(clock::now().time_since_epoch()).count();
  json::object doc_meta{{"v", 1},           {"id", doc_receipt},        {"key", "doc/s1/k"},
                        {"subject", "exam.doc"}, {"fp", fingerprint(doc_payload)}, {"at", doc_at_us},
                        {"h", json::array{json::array{"X-Trace", "abc"}}}};
  send(doc_payload, json::serialize(doc_meta));
  // A postmark a minute older than SQS's sent time (a send that timed out and was taken
  // when a stalled endpoint came back): past its bound, the sent time is the accept time.
  doc_meta["key"] = "doc/s1/stale";
  doc_meta["id"] = "0190b5c8-0000-7000-8000-00000000d0c3";
  doc_meta["fp"] = fingerprint("stale");
  doc_meta["at"] = doc_at_us - 60'000'000;
  send("stale", json::serialize(doc_meta));
  // Breaking the rules: metadata that is not JSON, and an accept time in nanoseconds.
  send("broken", "{not json");
  doc_meta["key"] = "doc/s1/ns";
  doc_meta["fp"] = fingerprint("nanoseconds");
  doc_meta["at"] = doc_at_us * 1000;
  send("nanoseconds", json::serialize(doc_meta));

  sqlite_sink sink(dir.file("sink.db"));
  std::mutex m;
  std::map<std::string, envelope> seen;  // by key
  sink.on_write = [&](const delivery& d) {
    std::lock_guard lock(m);
    seen.emplace(d.message.idempotency_key, d.message);
  };
  batching_consumer consumer(q, sink.handler(), {.workers = 1, .max_batch = 10, .linger = 0ms, .poll_wait = 200ms});
  consumer.start();
  REQUIRE(eventually([&] { return sink.rows() + static_cast<std::int64_t>(dead_letters(q).size()) >= 6; }, 30s));
  consumer.drain();

  CHECK(sink.rows() == 4);
  CHECK(sink.distinct_receipts() == 4);
  std::lock_guard lock(m);
  REQUIRE(seen.count("doc/s1/stale"));
  CHECK(seen.at("doc/s1/stale").accepted_at >= before - 2s);
  REQUIRE(seen.count("doc/s1/k"));
  const auto& doc = seen.at("doc/s1/k");
  CHECK(doc.receipt_id == doc_receipt);
  CHECK(doc.accepted_at == time_from_us(doc_at_us));
  CHECK(doc.subject == "exam.doc");
  CHECK(doc.payload == doc_payload);
  CHECK(doc.headers == header_list{{"X-Trace", "abc"}});
  int plain = 0;
  for (const auto& [key, e] : seen) {
    if (key.rfind("doc/", 0) == 0) continue;
    ++plain;
    CHECK(e.receipt_id == key);  // the SQS message id is both
    CHECK(e.accepted_at >= before - 2s);
    CHECK(e.fingerprint == fingerprint(e.payload));
  }
  CHECK(plain == 2);
  std::map<std::string, dead_letter> by_payload;
  for (const auto& l : dead_letters(q)) by_payload.emplace(l.message.payload, l);
  REQUIRE(by_payload.size() == 2);
  REQUIRE(by_payload.count("broken"));
  REQUIRE(by_payload.count("nanoseconds"));
  CHECK(by_payload.at("broken").reason == "malformed_envelope");
  CHECK(by_payload.at("broken").last_error.find("attribute ingest: not a JSON object") != std::string::npos);
  CHECK(by_payload.at("nanoseconds").reason == "malformed_envelope");
  CHECK(by_payload.at("nanoseconds").last_error.find("ingest.at") != std::string::npos);
}

}  // namespace ingest::test
