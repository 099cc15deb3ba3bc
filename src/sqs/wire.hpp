#pragma once
// What ingest::sqs reads and writes on the wire, apart from the HTTP client: the
// envelope's body and metadata attribute, dead-letter attributes, and the reading of
// SQS's JSON replies. Pure functions of their input, so they can be tested and fuzzed
// without a server.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/durable_queue.hpp"
#include "ingest/envelope.hpp"

namespace ingest::sqs::detail::wire {

namespace json = boost::json;

/// Message attribute holding an envelope's metadata (receipt id, key, headers...).
inline constexpr const char* meta_attribute = "ingest";
/// Message attribute of a dead letter: reason, last error, attempts and times.
inline constexpr const char* dead_attribute = "ingest-dead";

std::int64_t to_us(time_point t);
/// Milliseconds since the epoch as SQS writes them (decimal text); clamped, never
/// overflowing; 0 for text that does not start with a digit.
time_point from_ms_text(std::string_view text);

std::string base64_encode(std::string_view in);
/// Throws ingest::error(storage_error) on malformed input.
std::string base64_decode(std::string_view in);

/// What SQS accepts in a body or string attribute: well-formed UTF-8 of #x9 #xA #xD,
/// #x20-#xD7FF, #xE000-#xFFFD, #x10000-#x10FFFF.
bool sqs_text(std::string_view s);

/// A string attribute, or a binary one when `text` is not SQS text.
json::object attribute(const std::string& text);
/// The text of attribute `name` in a MessageAttributes object ("" when absent).
/// Throws ingest::error(storage_error) on a malformed binary value.
std::string attribute_text(const json::value& attrs, const char* name);

/// `o[key]` when it is a string, else "".
std::string str(const json::object& o, std::string_view key);
/// `o[key]` as an integer (number or decimal text), else 0.
std::int64_t num(const json::object& o, std::string_view key);

/// The message body and the metadata attribute of an envelope.
struct encoded {
  std::string body;
  std::string meta;
  std::size_t size() const { return body.size() + meta.size() + 32; }
};
encoded encode(const envelope& m);

/// A message as SQS returns it (an element of ReceiveMessage's "Messages"), whoever
/// sent it (docs/wire-format.md). A message without the metadata attribute (another
/// program sent it) gets the SQS message id as receipt id, its deduplication id (FIFO)
/// or else the message id as key, and SQS's SentTimestamp as accept time. Metadata
/// present but unreadable, or a fingerprint that does not match the body, is named in
/// `malformed` and the field derived as for a foreign message. A postmark older than
/// `SentTimestamp` by more than `postmark_bound` (zero: not checked) gives way to
/// `SentTimestamp`. Never throws.
envelope decode(const json::object& msg, std::string& malformed,
                std::chrono::milliseconds postmark_bound = std::chrono::milliseconds::zero());
/// The same for messages the library wrote itself (dead letters): throws
/// ingest::error(storage_error) when anything is malformed.
envelope decode(const json::object& msg);

/// A MessageGroupId / MessageDeduplicationId for `key`: the key itself when SQS allows
/// it, else its SHA-256.
std::string dedup_id(std::string_view key);

/// The dead-letter attribute's text.
std::string encode_dead(const dead_letter& l);
/// Reads the dead-letter attribute of a MessageAttributes object into `l` (reason,
/// last error, attempts, times). False when there is none or it is unreadable.
bool decode_dead(const json::value& attrs, dead_letter& l);

/// One SQS reply, read.
struct aws_reply {
  boost::system::error_code ec;
  bool sent = false;    ///< the request may have reached SQS (timeout, reset after write)
  json::value body;     ///< without error: always an object
  std::string message;  ///< for errors: AWS type and message
};

/// Reads the HTTP status and body of a reply to `action`. Throttling, 5xx and
/// unreadable replies (a 200 whose body is not a JSON object included) are
/// backend_unavailable; a missing queue is not_found; every other refusal is
/// invalid_config (access denied, bad signature, bad request: fail fast).
aws_reply read_reply(std::string_view action, unsigned status, std::string_view body);

/// The outcome of one entry of a batch request.
struct entry_result {
  enum class outcome { unanswered, succeeded, failed };
  outcome what = outcome::unanswered;
  bool sender_fault = false;
  std::string code;
  std::string message;
};
/// The entries `first` ... `first + count - 1` of a batch reply ("Successful" and
/// "Failed" lists, entry ids of one letter and the index, e.g. "e12"). An entry named
/// twice keeps its first answer; ids out of range are ignored.
std::vector<entry_result> batch_entries(const json::object& body, std::size_t first, std::size_t count);

}  // namespace ingest::sqs::detail::wire
