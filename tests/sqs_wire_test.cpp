// The SQS backend's wire code without a server: replies SQS (or something pretending
// to be it) may send, and messages other writers put in the queue.

#include "sqs/wire.hpp"

#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <limits>

#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"

using namespace ingest;
namespace wire = ingest::sqs::detail::wire;
namespace json = boost::json;

TEST_CASE("sqs wire: a 200 whose body is not a JSON object is an unreadable reply, not a crash") {
  for (const char* body : {"[]", "\"text\"", "42", "{\"Messages\":", "not json"}) {
    CAPTURE(body);
    const auto r = wire::read_reply("ReceiveMessage", 200, body);
    CHECK(r.ec == errc::backend_unavailable);
    CHECK(r.body.is_object());
    CHECK(r.message.find("ReceiveMessage: HTTP 200") == 0);
  }
  CHECK_FALSE(wire::read_reply("ReceiveMessage", 200, "").ec);
  CHECK_FALSE(wire::read_reply("ReceiveMessage", 200, "{}").ec);
}

TEST_CASE("sqs wire: refusals are told apart") {
  CHECK(wire::read_reply("SendMessage", 400, R"({"__type":"com.amazonaws.sqs#QueueDoesNotExist"})").ec ==
        errc::not_found);
  CHECK(wire::read_reply("SendMessage", 400, R"({"__type":"ThrottlingException"})").ec == errc::backend_unavailable);
  CHECK(wire::read_reply("SendMessage", 503, "<html>").ec == errc::backend_unavailable);
  const auto denied = wire::read_reply("SendMessage", 403, R"({"__type":"AccessDenied","message":"no"})");
  CHECK(denied.ec == errc::invalid_config);
  CHECK(denied.message == "SendMessage: HTTP 403 AccessDenied: no");
}

TEST_CASE("sqs wire: batch entries are matched by id, first answer wins, strangers ignored") {
  const auto body = json::parse(R"({
    "Successful": [{"Id": "e3"}, {"Id": "e3"}, {"Id": "e99"}, {"Id": "e-1"}, {"Id": "e4x"}, {"Id": 4}, "e4"],
    "Failed": [{"Id": "e3", "Code": "Late"}, {"Id": "e5", "SenderFault": true, "Code": "InvalidParameterValue",
                "Message": "too long"}, {"Id": "e6", "SenderFault": "yes", "Code": "InternalError"}]})")
                        .as_object();
  const auto r = wire::batch_entries(body, 3, 5);
  REQUIRE(r.size() == 5);
  using outcome = wire::entry_result::outcome;
  CHECK(r[0].what == outcome::succeeded);
  CHECK(r[1].what == outcome::unanswered);
  CHECK(r[2].what == outcome::failed);
  CHECK(r[2].sender_fault);
  CHECK(r[2].code == "InvalidParameterValue");
  CHECK(r[3].what == outcome::failed);
  CHECK_FALSE(r[3].sender_fault);
  CHECK(r[4].what == outcome::unanswered);
}

TEST_CASE("sqs wire: times from foreign or damaged messages never overflow") {
  CHECK(wire::from_ms_text("1763800000123") == time_point(std::chrono::milliseconds(1763800000123)));
  CHECK(wire::from_ms_text("") == time_point{});
  CHECK(wire::from_ms_text("x") == time_point{});
  CHECK(wire::from_ms_text("99999999999999999999999") == time_from_us(std::numeric_limits<std::int64_t>::max()));
  CHECK(wire::from_ms_text("9223372036854775") == time_from_us(std::numeric_limits<std::int64_t>::max()));

  // An accept time of 2^63-1 microseconds is no time at all: malformed, and SQS's own
  // sent time stands in for it.
  const auto msg = json::parse(R"({"MessageId": "m", "Body": "b", "MessageAttributes": {"ingest": {
      "DataType": "String", "StringValue": "{\"id\":\"r\",\"key\":\"k\",\"at\":9223372036854775807}"}},
      "Attributes": {"ApproximateReceiveCount": "-4", "SentTimestamp": "1763800000123"}})")
                       .as_object();
  std::string malformed;
  const auto e = wire::decode(msg, malformed);
  CHECK(e.receipt_id == "r");
  CHECK(e.accepted_at == time_point(std::chrono::milliseconds(1763800000123)));
  CHECK(malformed.find("ingest.at: not microseconds") != std::string::npos);
  CHECK(e.attempts == 1);
}

TEST_CASE("sqs wire: a message another program sent is read from what SQS knows of it") {
  const auto plain = json::parse(R"({"MessageId": "5fea7756-0ea4-451a-a703-a558b933e274", "Body": "{\"a\":1}",
      "Attributes": {"SentTimestamp": "1763800000123", "ApproximateReceiveCount": "1"}})")
                         .as_object();
  std::string malformed;
  const auto e = wire::decode(plain, malformed);
  CHECK(malformed.empty());
  CHECK(e.receipt_id == "5fea7756-0ea4-451a-a703-a558b933e274");
  CHECK(e.idempotency_key == e.receipt_id);
  CHECK(e.payload == R"({"a":1})");
  CHECK(e.fingerprint == fingerprint(e.payload));
  CHECK(e.accepted_at == time_point(std::chrono::milliseconds(1763800000123)));
  // On a FIFO queue the deduplication id is the key.
  auto fifo = plain;
  fifo["Attributes"].as_object()["MessageDeduplicationId"] = "exam/s1/k-1";
  CHECK(wire::decode(fifo, malformed).idempotency_key == "exam/s1/k-1");
}

TEST_CASE("sqs wire: metadata that breaks the format is named, never thrown") {
  auto with_meta = [](const std::string& meta, const std::string& body = "b") {
    json::object m{{"MessageId", "m-1"}, {"Body", body}};
    m["MessageAttributes"] = json::object{{wire::meta_attribute, wire::attribute(meta)}};
    m["Attributes"] = json::object{{"SentTimestamp", "1763800000123"}};
    return m;
  };
  const auto fp = fingerprint("b");
  const auto good = R"({"id":"r-1","key":"k","subject":"s","fp":")" + fp + R"(","at":1763800000123456})";
  std::string malformed;
  (void)wire::decode(with_meta(good), malformed);
  CHECK(malformed.empty());
  for (const auto& [meta, named] : std::vector<std::pair<std::string, std::string>>{
           {"not json", "attribute ingest: not a JSON object"},
           {R"({"id":"r-1","key":"k","fp":")" + fp + R"(","at":1763800000123456000})", "ingest.at"},  // nanoseconds
           {R"({"id":"r-1","key":"k","fp":")" + fp + R"(","at":"1763800000123456"})", "ingest.at"},
           {R"({"id":"r-1","key":"k","fp":")" + fingerprint("other") + R"(","at":1763800000123456})",
            "ingest.fp: does not match"},
           {R"({"id":"r-1","key":"","fp":")" + fp + R"(","at":1763800000123456})", "ingest.key"},
           {R"({"id":"r-1","key":"k","fp":")" + fp + R"(","at":1763800000123456,"h":[["bad name","v"]]})",
            "ingest.h"}}) {
    CAPTURE(meta);
    malformed.clear();
    const auto e = wire::decode(with_meta(meta), malformed);
    CHECK(malformed.find(named) != std::string::npos);
    CHECK_FALSE(validate_envelope(e));  // still publishable: a dead letter keeps it
    CHECK(e.payload == "b");
    CHECK_THROWS_AS(wire::decode(with_meta(meta)), ingest::error);
  }
}

TEST_CASE("sqs wire: unreadable metadata is refused; a damaged dead-letter attribute is no dead letter") {
  const auto bad_meta = json::parse(R"({"MessageId": "m", "Body": "b", "MessageAttributes": {"ingest": {
      "DataType": "Binary", "BinaryValue": "***"}}})")
                            .as_object();
  CHECK_THROWS_AS(wire::decode(bad_meta), ingest::error);
  std::string malformed;
  CHECK(wire::decode(bad_meta, malformed).payload == "b");
  CHECK(malformed.find("not base64") != std::string::npos);
  const auto attrs = json::parse(R"({"ingest-dead": {"DataType": "Binary", "BinaryValue": "a"}})");
  dead_letter l;
  CHECK_FALSE(wire::decode_dead(attrs, l));

  dead_letter written;
  written.reason = "max_attempts";
  written.last_error = "line 1\nline 2 \xff\xfe";  // not UTF-8: the attribute goes binary
  written.attempts = 5;
  written.first_attempt_at = time_from_us(1);
  written.last_attempt_at = time_from_us(2);
  written.dead_lettered_at = time_from_us(3);
  json::object a;
  a[wire::dead_attribute] = wire::attribute(wire::encode_dead(written));
  dead_letter read;
  REQUIRE(wire::decode_dead(a, read));
  CHECK(read.reason == written.reason);
  CHECK(read.last_error == written.last_error);
  CHECK(read.attempts == 5);
  CHECK(read.dead_lettered_at == written.dead_lettered_at);
}
