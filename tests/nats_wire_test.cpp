// Messages another program published into the NATS stream, with nats.c's ordinary
// JetStream publish: built from docs/wire-format.md alone, or carrying only a payload
// and a Nats-Msg-Id, or breaking the rules. Every one ends as a row or a dead letter.
// And the postmark's bound (guarantee 7) against a server that stalls.

#include <doctest/doctest.h>
#include <nats/nats.h>
#include <openssl/evp.h>

#include <boost/asio/use_future.hpp>
#include <map>
#include <mutex>
#include <thread>

#include "ingest/batching_consumer.hpp"
#include "ingest/nats/queue.hpp"
#include "ingest/producer.hpp"
#include "support/nats_client.hpp"
#include "support/nats_server.hpp"
#include "support/sqlite_sink.hpp"

namespace ingest::test {
namespace {

// SHA-256 in lower-case hex, as the document says, without the library's helper.
std::string sha256_hex(std::string_view data) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}


}  // namespace

TEST_CASE("nats: messages another program published are processed or dead-lettered, never acked into nothing") {
  temp_dir dir;
  nats_server server(dir.path() / "wire");
  io_thread io;
  const auto o = queue_options_for(server.url(), "WIRE");
  nats::queue q(io.executor(), o);

  nats_client other(server.url());
  const auto before = clock::now();
  // Only a payload, as a plain client sends it; and two with ids of their own (which
  // used to read as the same empty key and vanish after the first).
  REQUIRE(other.publish(o.subject, R"({"n":1})", {}));
  REQUIRE(other.publish(o.subject, R"({"n":2})", {{"Nats-Msg-Id", "ext-a"}}));
  REQUIRE(other.publish(o.subject, R"({"n":3})", {{"Nats-Msg-Id", "ext-b"}}));
  CHECK_FALSE(other.publish(o.subject, R"({"n":2})", {{"Nats-Msg-Id", "ext-a"}}));  // the server's dedup
  // Built from docs/wire-format.md alone.
  const std::string doc_payload = R"({"answers":{"q1":"B"}})";
  const std::string doc_receipt = "0190b5c8-0000-7000-8000-00000000d0c1";
  const auto to_us = [](time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  };
  const std::int64_t doc_at_us = to_us(clock::now());
  REQUIRE(other.publish(o.subject, doc_payload,
                        {{"Nats-Msg-Id", "doc/s1/100%"},
                         {"Ingest-Receipt-Id", doc_receipt},
                         {"Ingest-Key", "doc/s1/100%25"},
                         {"Ingest-Fingerprint", sha256_hex(doc_payload)},
                         {"Ingest-Accepted-At", std::to_string(doc_at_us)},
                         {"Ingest-Subject", "exam.doc"},
                         {"Ingest-Headers", "X-Trace=abc&X-Note=a%26b%3Dc"}}));
  // A postmark a minute older than the server's store time: as a publish that timed out
  // and was stored only when a stalled server came back would look. Past the postmark's
  // bound (publish_timeout + 1 s), the store time is the accept time.
  REQUIRE(other.publish(o.subject, "stale", {{"Nats-Msg-Id", "stale"},
                                             {"Ingest-Accepted-At", std::to_string(doc_at_us - 60'000'000)}}));
  // Breaking the rules: nanoseconds for microseconds, and a fingerprint of another body.
  REQUIRE(other.publish(o.subject, "late?", {{"Nats-Msg-Id", "bad-time"},
                                             {"Ingest-Accepted-At", std::to_string(doc_at_us * 1000)}}));
  REQUIRE(other.publish(o.subject, "changed", {{"Nats-Msg-Id", "bad-fp"},
                                               {"Ingest-Fingerprint", sha256_hex("original")}}));

  sqlite_sink sink(dir.file("sink.db"));
  std::mutex m;
  std::map<std::string, delivery> seen;  // by key
  sink.on_write = [&](const delivery& d) {
    std::lock_guard lock(m);
    seen.emplace(d.message.idempotency_key, d);
  };
  std::vector<dead_letter> alerts;
  consumer_options co{.workers = 1, .max_batch = 50, .linger = 0ms, .poll_wait = 50ms};
  co.dead_letter.alert = [&](const dead_letter& l) {
    std::lock_guard lock(m);
    alerts.push_back(l);
  };
  batching_consumer consumer(q, sink.handler(), co);
  consumer.start();
  REQUIRE(eventually([&] { return stats(q).pending == 0 && sink.rows() + dead_letters(q).size() >= 7; }, 20s));
  consumer.drain();

  CHECK(sink.rows() == 5);
  CHECK(sink.distinct_receipts() == 5);
  std::lock_guard lock(m);
  REQUIRE(seen.size() == 5);
  REQUIRE(seen.count("stale"));
  CHECK(seen.at("stale").message.accepted_at >= before - 2s);  // the store time, not the minute-old postmark
  // The document's message arrives exactly as written.
  REQUIRE(seen.count("doc/s1/100%"));
  const auto& doc = seen.at("doc/s1/100%").message;
  CHECK(doc.receipt_id == doc_receipt);
  CHECK(doc.accepted_at == time_from_us(doc_at_us));
  CHECK(doc.subject == "exam.doc");
  CHECK(doc.payload == doc_payload);
  CHECK(doc.headers == header_list{{"X-Trace", "abc"}, {"X-Note", "a&b=c"}});
  // The others are completed from what JetStream knows.
  for (const auto& key : {std::string("ext-a"), std::string("ext-b"), std::string("nats:WIRE:1")}) {
    CAPTURE(key);
    REQUIRE(seen.count(key));
    const auto& e = seen.at(key).message;
    CHECK(e.receipt_id.size() == 36);
    CHECK(e.receipt_id[14] == '7');  // UUIDv7 layout
    CHECK(e.accepted_at >= before - 2s);
    CHECK(e.accepted_at <= clock::now());
    CHECK(e.subject == o.subject);
    CHECK(e.fingerprint == sha256_hex(e.payload));
  }
  // A library client repeating a foreign message's key gets the receipt the consumer saw.
  producer p(q);
  const auto again =
      p.async_submit({.idempotency_key = "ext-a", .subject = {}, .payload = R"({"n":2})", .headers = {}},
                     boost::asio::use_future)
          .get();
  CHECK(again.duplicate);
  CHECK(again.id == seen.at("ext-a").message.receipt_id);
  CHECK(again.accepted_at == seen.at("ext-a").message.accepted_at);
  // The two that break the rules are dead letters that say which field and why.
  const auto letters = dead_letters(q);
  REQUIRE(letters.size() == 2);
  REQUIRE(alerts.size() == 2);
  std::map<std::string, dead_letter> by_key;
  for (const auto& l : letters) by_key.emplace(l.message.idempotency_key, l);
  REQUIRE(by_key.count("bad-time"));
  REQUIRE(by_key.count("bad-fp"));
  CHECK(by_key.at("bad-time").reason == "malformed_envelope");
  CHECK(by_key.at("bad-time").last_error.find("Ingest-Accepted-At") != std::string::npos);
  CHECK(by_key.at("bad-time").message.payload == "late?");
  CHECK(by_key.at("bad-fp").reason == "malformed_envelope");
  CHECK(by_key.at("bad-fp").last_error.find("Ingest-Fingerprint: does not match the payload") != std::string::npos);
  CHECK(by_key.at("bad-fp").message.payload == "changed");
}

TEST_CASE("nats: a publish carries what docs/wire-format.md says, and a consumer reads back every field") {
  temp_dir dir;
  nats_server server(dir.path() / "written");
  io_thread io;
  const auto o = queue_options_for(server.url(), "WRITTEN");
  nats::queue q(io.executor(), o);
  producer p(q);
  // A key as it is, one with a '%' and one with a space at its start: the last two
  // need escaping, so Ingest-Key carries them; the first is Nats-Msg-Id alone.
  const std::vector<std::string> keys{"plain/s1/1", "100%", " edge"};
  std::map<std::string, receipt> given;
  for (const auto& key : keys) {
    const submission s{.idempotency_key = key, .subject = "exam.written", .payload = "body of " + key, .headers = {}};
    given.emplace(key, p.async_submit(s, boost::asio::use_future).get());
  }
  nats_client reader(server.url());
  for (std::uint64_t seq = 1; seq <= keys.size(); ++seq) {
    const auto& key = keys[seq - 1];
    CAPTURE(key);
    const auto h = reader.stored_headers(o.stream, seq);
    CHECK(h.count("Nats-Msg-Id") == 1);
    CHECK(h.count("Ingest-Fingerprint") == 0);  // computed from the payload on delivery
    CHECK(h.count("Ingest-Receipt-Id") == 1);
    CHECK(h.count("Ingest-Accepted-At") == 1);
    CHECK(h.count("Ingest-Subject") == 1);
    if (key == "plain/s1/1")
      CHECK(h.count("Ingest-Key") == 0);
    else
      CHECK(h.count("Ingest-Key") == 1);
  }
  CHECK(reader.stored_headers(o.stream, 2)["Ingest-Key"] == "100%25");
  CHECK(reader.stored_headers(o.stream, 3)["Ingest-Key"] == "%20edge");

  // A repeat is told from a changed body by the stored payload's fingerprint.
  const auto repeat =
      p.async_submit({.idempotency_key = "100%", .subject = "exam.written", .payload = "body of 100%", .headers = {}},
                     boost::asio::use_future)
          .get();
  CHECK(repeat.duplicate);
  CHECK(repeat.id == given.at("100%").id);
  CHECK_THROWS(
      p.async_submit({.idempotency_key = "100%", .subject = "exam.written", .payload = "another body", .headers = {}},
                     boost::asio::use_future)
          .get());

  auto [ec, got] = fetch(q, 10, 2s);
  REQUIRE_FALSE(ec);
  REQUIRE(got.size() == keys.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    const auto& e = got[i].message;
    CAPTURE(keys[i]);
    CHECK(got[i].malformed.empty());
    CHECK(e.idempotency_key == keys[i]);
    CHECK(e.payload == "body of " + keys[i]);
    CHECK(e.fingerprint == sha256_hex(e.payload));
    CHECK(e.subject == "exam.written");
    CHECK(e.receipt_id == given.at(keys[i]).id);
    CHECK(e.accepted_at == given.at(keys[i]).accepted_at);
  }
  CHECK_FALSE(ack(q, got));
}

TEST_CASE("nats: what a stalled server stores after the publish timed out carries the store time, not the postmark") {
  temp_dir dir;
  nats_server server(dir.path() / "stall");
  io_thread io(2);
  auto o = queue_options_for(server.url(), "STALL");
  o.publish_timeout = 500ms;  // the postmark's bound: 1.5 s
  nats::queue q(io.executor(), o);
  producer p(q, {.max_in_flight = 512, .publish_timeout = 500ms});

  // Publishes go on while the server is frozen for 3 s with its connection open: they
  // time out, and the frozen server stores them when it resumes, seconds after their
  // postmark.
  std::mutex m;
  std::map<std::string, receipt> receipts;
  std::atomic<bool> stop{false};
  std::thread flooder([&] {
    for (int i = 0; !stop; ++i) {
      p.async_submit({.idempotency_key = "s" + std::to_string(i), .subject = {}, .payload = "x", .headers = {}},
                     [&, key = "s" + std::to_string(i)](error_code ec, receipt r) {
                       if (ec) return;
                       std::lock_guard lock(m);
                       receipts.emplace(key, std::move(r));
                     });
      std::this_thread::sleep_for(2ms);
    }
  });
  std::this_thread::sleep_for(300ms);
  server.freeze();
  std::this_thread::sleep_for(3s);
  server.thaw();
  std::this_thread::sleep_for(300ms);
  stop = true;
  flooder.join();
  REQUIRE(eventually([&] { return p.stats().in_flight == 0; }, 10s));

  // Every stored message, as the consumer reads it, against the server's store time.
  std::map<std::string, delivery> delivered;
  while (true) {
    auto [ec, got] = fetch(q, 500, 500ms);
    if (got.empty()) break;
    REQUIRE_FALSE(ack(q, got));
    for (auto& d : got) delivered.emplace(d.message.idempotency_key, std::move(d));
  }
  std::size_t stale = 0;
  for (const auto& [key, d] : delivered) {
    CAPTURE(key);
    // A repeat now gets the receipt the consumer sees: the same accept time.
    auto again = p.async_submit({.idempotency_key = key, .subject = {}, .payload = "x", .headers = {}},
                                boost::asio::use_future)
                     .get();
    CHECK(again.accepted_at == d.message.accepted_at);
    if (auto r = receipts.find(key); r != receipts.end()) CHECK(r->second.accepted_at == d.message.accepted_at);
    if (receipts.count(key) == 0) ++stale;  // stored, but its publish was told it timed out
  }
  MESSAGE("stored after their publish timed out: " << stale << " of " << delivered.size());
  CHECK(stale > 0);  // the stall really left such messages
  // Against the server's own record: a postmark within its bound of the store time
  // stands; beyond it, the store time is the accept time.
  nats_client reader(server.url());
  std::size_t past_bound = 0;
  for (const auto& [key, d] : delivered) {
    CAPTURE(key);
    time_point stored_at, postmark;
    REQUIRE(reader.times(o.stream, std::stoull(d.token.substr(0, d.token.find(':'))), stored_at, postmark));
    if (stored_at - postmark > o.publish_timeout + 1s) {
      ++past_bound;
      CHECK(d.message.accepted_at == stored_at);
    } else {
      CHECK(d.message.accepted_at == postmark);
    }
  }
  MESSAGE("stored more than the bound after their postmark: " << past_bound);
  CHECK(past_bound > 0);
}

}  // namespace ingest::test
