#pragma once
// HMAC-SHA256 with the key's pads hashed once, and base64url without padding: what the
// receipt signer needs, shared with the examples' JWT code.

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace ingest::detail {

// HMAC-SHA256 (RFC 2104) with the key's inner and outer pads hashed once per key and
// the digest states copied per call: OpenSSL's one-shot HMAC() sets everything up again
// on every call, which costs more than the hashing for short messages. `mac` may be
// called from any number of threads at once. Throws std::runtime_error when OpenSSL fails.
class hmac_sha256 {
 public:
  explicit hmac_sha256(std::string_view key);
  ~hmac_sha256();
  hmac_sha256(hmac_sha256&&) noexcept;
  hmac_sha256& operator=(hmac_sha256&&) noexcept;

  std::array<unsigned char, 32> mac(std::string_view data) const;

 private:
  struct pads;
  std::unique_ptr<pads> pads_;
};

// RFC 4648 section 5, without padding.
std::string base64url_encode(std::string_view in);
// nullopt for a character outside the alphabet, a lone trailing character, or unused
// trailing bits that are not zero (so that every value has exactly one spelling).
std::optional<std::string> base64url_decode(std::string_view in);

}  // namespace ingest::detail
