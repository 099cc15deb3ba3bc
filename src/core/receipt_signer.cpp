#include "ingest/receipt_signer.hpp"

#include <openssl/crypto.h>

#include <array>

#include "ingest/detail/hmac.hpp"
#include "ingest/error.hpp"
#include "uuid7.hpp"

namespace ingest {
namespace {

constexpr std::size_t uuid_chars = 36;
constexpr std::size_t tag_bytes = 16;
constexpr std::size_t tag_chars = 22;  // base64url of 16 bytes
// 48 bits of milliseconds.
constexpr std::int64_t max_ms = (std::int64_t{1} << 48) - 1;

// The hex digits of a UUID's text, or nullopt when it is not a UUIDv7 in lower case.
std::optional<std::array<unsigned char, 16>> parse_uuid7(std::string_view text) {
  if (text.size() != uuid_chars) return std::nullopt;
  std::array<unsigned char, 16> b{};
  std::size_t at = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return std::nullopt;
      continue;
    }
    const char c = text[i];
    int v = -1;
    if (c >= '0' && c <= '9') v = c - '0';
    if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    if (v < 0) return std::nullopt;
    b[at / 2] = static_cast<unsigned char>((b[at / 2] << 4) | v);
    ++at;
  }
  if ((b[6] >> 4) != 7 || (b[8] >> 6) != 2) return std::nullopt;
  return b;
}

}  // namespace

struct receipt_signer::keys {
  std::vector<detail::hmac_sha256> macs;
};

receipt_signer::receipt_signer(std::vector<std::string> keys) : keys_(std::make_unique<struct keys>()) {
  if (keys.empty()) throw error(errc::invalid_config, "a receipt signer needs at least one key");
  for (auto& k : keys) {
    if (k.size() < 16) throw error(errc::invalid_config, "a receipt signing key is at least 16 bytes");
    keys_->macs.emplace_back(k);
    OPENSSL_cleanse(k.data(), k.size());
  }
}

receipt_signer::~receipt_signer() = default;

std::optional<std::string> receipt_signer::sign(time_point accepted_at, std::string_view claims) const {
  if (claims.size() > max_claims) return std::nullopt;
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(accepted_at.time_since_epoch()).count();
  if (us < 0 || us / 1000 > max_ms) return std::nullopt;
  std::string id =
      detail::uuid7(static_cast<std::uint64_t>(us / 1000), static_cast<std::uint64_t>(us % 1000), detail::random_u64());
  id += '.';
  id += detail::base64url_encode(claims);
  const auto tag = keys_->macs.front().mac(id);
  id += '.';
  id += detail::base64url_encode({reinterpret_cast<const char*>(tag.data()), tag_bytes});
  return id;
}

std::optional<signed_receipt> receipt_signer::verify(std::string_view id) const {
  if (id.size() < uuid_chars + 2 + tag_chars || id.size() > 255) return std::nullopt;
  const auto signed_part = id.substr(0, id.size() - tag_chars - 1);
  if (id[signed_part.size()] != '.' || signed_part[uuid_chars] != '.') return std::nullopt;
  const auto tag = detail::base64url_decode(id.substr(signed_part.size() + 1));
  if (!tag || tag->size() != tag_bytes) return std::nullopt;
  bool genuine = false;
  for (const auto& k : keys_->macs) {
    const auto expected = k.mac(signed_part);
    genuine = genuine || CRYPTO_memcmp(expected.data(), tag->data(), tag_bytes) == 0;
  }
  if (!genuine) return std::nullopt;
  // Only what this signer wrote gets here; the parse checks it all the same.
  const auto uuid = parse_uuid7(id.substr(0, uuid_chars));
  auto claims = detail::base64url_decode(signed_part.substr(uuid_chars + 1));
  if (!uuid || !claims) return std::nullopt;
  std::uint64_t ms = 0;
  for (int i = 0; i < 6; ++i) ms = (ms << 8) | (*uuid)[i];
  const std::uint64_t sub = (static_cast<std::uint64_t>((*uuid)[6] & 0x0F) << 8) | (*uuid)[7];
  if (sub > 999) return std::nullopt;
  const auto us = std::chrono::microseconds(static_cast<std::int64_t>(ms * 1000 + sub));
  return signed_receipt{time_point(std::chrono::duration_cast<time_point::duration>(us)), std::move(*claims)};
}

}  // namespace ingest
