#pragma once
/// @file
/// Receipt ids that vouch for themselves: a process holding the key tells a receipt the
/// system issued from a made-up one, and reads its accept time and claims, without
/// asking the queue or a database.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/envelope.hpp"

namespace ingest {

/// What a signed receipt id says.
struct signed_receipt {
  time_point accepted_at{};  ///< the postmark, to the microsecond
  std::string claims{};      ///< what the publisher asked the id to vouch for (`envelope::receipt_claims`)
};

/// Signs and verifies receipt ids (HMAC-SHA256, 128-bit tags).
///
/// A signed id is `<UUIDv7>.<claims>.<tag>`: the UUIDv7 carries the postmark's
/// milliseconds and, in its 12-bit field, the microseconds within that millisecond
/// (RFC 9562 method 3), then 62 random bits; the claims and the tag are base64url.
/// Ids stay time-ordered and at most 255 characters, so that every backend carries
/// them where it carries any receipt id.
///
/// Backends sign when told to (`durable_queue::sign_receipts`): a server that sees a
/// receipt id it has never stored can still answer for it, e.g. "received, accepted at
/// ..." while the message is in a broker that cannot be searched by id (NATS, SQS).
///
/// **Keys.** The first key signs; every key verifies, so a key is rotated by putting
/// the new one first and keeping the old one for as long as its receipts are asked
/// about. Each key is at least 16 bytes; processes that verify each other's receipts
/// share the keys.
///
/// **Threading.** Immutable after construction: `sign` and `verify` may run on any
/// number of threads at once.
///
/// @code
/// auto signer = std::make_shared<ingest::receipt_signer>(std::vector<std::string>{key});
/// queue.sign_receipts(signer);
/// // later, on any process holding `key`:
/// if (auto r = signer->verify(id)) show(r->accepted_at, r->claims);
/// @endcode
class receipt_signer {
 public:
  /// Longest `claims` that still gives an id of at most 255 characters.
  static constexpr std::size_t max_claims = 146;

  /// Throws `ingest::error(errc::invalid_config)` when `keys` is empty or a key is
  /// shorter than 16 bytes.
  explicit receipt_signer(std::vector<std::string> keys);
  ~receipt_signer();
  receipt_signer(const receipt_signer&) = delete;
  receipt_signer& operator=(const receipt_signer&) = delete;

  /// The id of a message postmarked `accepted_at` (kept to the microsecond; from 1970
  /// on) vouching for `claims`; nullopt when `claims` is longer than `max_claims` or
  /// the time is before 1970. Throws std::runtime_error when OpenSSL fails.
  std::optional<std::string> sign(time_point accepted_at, std::string_view claims) const;
  /// What `receipt_id` says, when one of the keys signed it; nullopt for anything
  /// else (tampered, truncated, signed with another key, not a signed id at all).
  std::optional<signed_receipt> verify(std::string_view receipt_id) const;

 private:
  struct keys;
  std::unique_ptr<keys> keys_;
};

}  // namespace ingest
