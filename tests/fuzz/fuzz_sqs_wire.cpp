// The SQS backend's reading of SQS replies (status + JSON body, batch entries, received
// messages, dead-letter attributes) and its envelope codec.

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "fuzz_support.hpp"
#include "ingest/error.hpp"
#include "sqs/wire.hpp"

using namespace ingest;
namespace wire = ingest::sqs::detail::wire;
namespace json = boost::json;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::reader in(data, size);
  const auto mode = in.byte();
  if (mode % 2 == 0) {
    // A reply from the server, any status and body.
    static constexpr unsigned statuses[] = {200, 200, 200, 400, 403, 404, 429, 500, 503};
    const auto status = statuses[(mode / 2) % std::size(statuses)];
    const auto r = wire::read_reply("ReceiveMessage", status, in.rest());
    if (r.ec) {
      FUZZ_CHECK(!r.message.empty());
      FUZZ_CHECK(status != 200 || r.ec == errc::backend_unavailable);
      return 0;
    }
    FUZZ_CHECK(status == 200 && r.body.is_object());
    const auto& body = r.body.as_object();
    const auto entries = wire::batch_entries(body, 3, 10);
    FUZZ_CHECK(entries.size() == 10);
    if (const auto* msgs = body.if_contains("Messages"); msgs && msgs->is_array())
      for (const auto& m : msgs->as_array()) {
        if (!m.is_object()) continue;
        // Read without an exception, whoever wrote it; what comes out can be published
        // again (a dead letter of it, a replay) whether or not it was malformed.
        std::string malformed;
        const auto e = wire::decode(m.as_object(), malformed);
        FUZZ_CHECK(e.attempts >= 1);
        FUZZ_CHECK(!validate_envelope(e));
        FUZZ_CHECK(e.fingerprint == fingerprint(e.payload));
        dead_letter l;
        if (const auto* a = m.as_object().if_contains("MessageAttributes")) (void)wire::decode_dead(*a, l);
        (void)wire::from_ms_text(wire::str(m.as_object(), "SentTimestamp"));
      }
    return 0;
  }
  // An envelope sent and received again: the message SQS hands back is read as written.
  auto m = fuzz::make_envelope(in);
  if (validate_envelope(m)) return 0;
  m.attempts = 0;
  fuzz::make_well_formed(m);
  const auto sent = wire::encode(m);
  FUZZ_CHECK(wire::sqs_text(sent.body));
  json::object msg{{"MessageId", "id-1"}, {"ReceiptHandle", "rh-1"}, {"Body", sent.body}};
  msg["MessageAttributes"] = json::object{{wire::meta_attribute, wire::attribute(sent.meta)}};
  msg["Attributes"] = json::object{{"ApproximateReceiveCount", "2"}, {"SentTimestamp", "1700000000000"}};
  // Through JSON text, as the client receives it.
  const auto received = json::parse(json::serialize(msg)).as_object();
  const auto back = wire::decode(received);
  fuzz::check_same_fields(back, m);
  FUZZ_CHECK(back.headers == m.headers);
  FUZZ_CHECK(back.attempts == 2);
  return 0;
}
