// The SQS backend's wire code without a server: replies SQS (or something pretending
// to be it) may send, and messages other writers put in the queue.

#include "sqs/wire.hpp"

#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <limits>

#include "ingest/error.hpp"

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

  const auto msg = json::parse(R"({"MessageId": "m", "Body": "b", "MessageAttributes": {"ingest": {
      "DataType": "String", "StringValue": "{\"id\":\"r\",\"key\":\"k\",\"at\":9223372036854775807}"}},
      "Attributes": {"ApproximateReceiveCount": "-4"}})")
                       .as_object();
  const auto e = wire::decode(msg);
  CHECK(e.receipt_id == "r");
  CHECK(e.accepted_at == time_from_us(std::numeric_limits<std::int64_t>::max()));
  CHECK(e.attempts == 1);
}

TEST_CASE("sqs wire: unreadable metadata is refused; a damaged dead-letter attribute is no dead letter") {
  const auto bad_meta = json::parse(R"({"MessageId": "m", "Body": "b", "MessageAttributes": {"ingest": {
      "DataType": "Binary", "BinaryValue": "***"}}})")
                            .as_object();
  CHECK_THROWS_AS(wire::decode(bad_meta), ingest::error);
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
