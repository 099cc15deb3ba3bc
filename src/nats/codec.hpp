#pragma once
// How an envelope and a dead letter travel as NATS message headers. Pure functions of
// a natsMsg, so they can be tested and fuzzed without a server.

#include <nats/nats.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "ingest/durable_queue.hpp"
#include "ingest/envelope.hpp"

namespace ingest::nats::detail {

// Headers the library writes. The application headers travel together in one of them
// (h_headers): nats.c 3.4 (Debian 12) mixes up two header names when one is a prefix
// of the other and their hashes collide (for "X-Long" and then "X-Lo", both get the
// value of "X-Long", on write and on parse), so they cannot be NATS headers of their
// own. No name below is a prefix of another.
inline constexpr const char* h_receipt = "Ingest-Receipt-Id";
inline constexpr const char* h_key = "Ingest-Key";
inline constexpr const char* h_fingerprint = "Ingest-Fingerprint";
inline constexpr const char* h_accepted = "Ingest-Accepted-At";
inline constexpr const char* h_subject = "Ingest-Subject";
inline constexpr const char* h_headers = "Ingest-Headers";  // name=value&name=value, each escaped
inline constexpr const char* h_sequence = "Ingest-Stream-Seq";
inline constexpr const char* h_reason = "Ingest-Reason";
inline constexpr const char* h_error = "Ingest-Last-Error";
inline constexpr const char* h_attempts = "Ingest-Attempts";
inline constexpr const char* h_first = "Ingest-First-Attempt-At";
inline constexpr const char* h_last = "Ingest-Last-Attempt-At";
inline constexpr const char* h_dead = "Ingest-Dead-At";

std::int64_t to_us(time_point t);

/// The value of header `name`, unescaped; "" when absent.
std::string header(natsMsg* m, const char* name);
/// The value of header `name` as a decimal integer, 0 when absent or not a number.
std::int64_t header_int(natsMsg* m, const char* name);

/// Writes the envelope's fields (receipt id, key, fingerprint, accept time, subject)
/// and its application headers (in order, in `Ingest-Headers`) onto `msg`, whose data
/// is the payload. The envelope must have passed `validate_envelope`.
void write_envelope(natsMsg* msg, const envelope& m);
/// What a publish into the queue's stream carries, with `Nats-Msg-Id` set to the key:
/// `write_envelope` without the two headers a delivery gets from the message itself
/// (`read_delivered`): the key, when it needs no escaping (then `Nats-Msg-Id` says the
/// same), and the fingerprint (computed from the payload on every delivery anyway).
void write_published(natsMsg* msg, const envelope& m);
/// Reads what `write_envelope` wrote, and the payload; `attempts` is left 0. A message
/// without `Ingest-Headers` (published by another client) gives its own headers,
/// other than the library's, as the application headers.
envelope read_envelope(natsMsg* msg);

/// What JetStream itself knows of a delivered message: the stream, the message's
/// sequence in it, and when the server stored it.
struct broker_facts {
  std::string_view stream;
  std::uint64_t sequence = 0;
  time_point stored_at{};
  /// How far after its postmark the server may have stored a message for the
  /// postmark to stand; later (a stalled server that stored a timed-out publish), the
  /// store time is the accept time. Zero: not checked.
  std::chrono::milliseconds postmark_bound{0};
};

/// Reads a delivered message, whoever published it (docs/wire-format.md). Fields the
/// library writes are read and checked; a missing one is derived: the key from
/// `Nats-Msg-Id` (else `nats:<stream>:<sequence>`), the receipt id from the stream and
/// sequence, the accept time from the broker's store time (also when the postmark is
/// older than the store time by more than `postmark_bound`), the fingerprint from the
/// payload, the subject from the NATS subject. A field present but unreadable (or a
/// fingerprint that does not match the payload) is named in `malformed` and derived
/// instead, so that the envelope returned is always publishable.
envelope read_delivered(natsMsg* msg, const broker_facts& facts, std::string& malformed);

/// The application headers as one header value, and back: `name=value` pairs joined
/// by `&`, with `%`, `&`, `=`, control characters and edge spaces written as %XX.
std::string encode_headers(const header_list& headers);
header_list decode_headers(std::string_view text);

/// Text of any bytes as a header value that survives the wire: `%`, control
/// characters and a space or tab at either end are written as %XX, and the empty text
/// as `%E` (an empty value would swallow the next header line); `unescape_value`
/// gives the bytes back. Every text header the library writes goes through it.
std::string escape_value(std::string_view text);
std::string unescape_value(std::string_view text);

/// Writes a dead letter's reason, last error, attempts and times (and the stream
/// sequence it came from) onto `letter`.
void write_dead(natsMsg* letter, const dead_letter& l, std::uint64_t sequence);
/// Reads what `write_dead` wrote into `l` (the message is read by `read_envelope`).
void read_dead(natsMsg* letter, dead_letter& l);

}  // namespace ingest::nats::detail
