#include "ingest/detail/hmac.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>

namespace ingest::detail {
namespace {

struct free_ctx {
  void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};
using md_ctx = std::unique_ptr<EVP_MD_CTX, free_ctx>;

constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

}  // namespace

struct hmac_sha256::pads {
  md_ctx inner{EVP_MD_CTX_new()};
  md_ctx outer{EVP_MD_CTX_new()};
};

hmac_sha256::hmac_sha256(std::string_view key) : pads_(std::make_unique<pads>()) {
  std::array<unsigned char, 64> block{};
  if (key.size() > block.size()) {
    unsigned int len = 0;
    if (!EVP_Digest(key.data(), key.size(), block.data(), &len, EVP_sha256(), nullptr))
      throw std::runtime_error("HMAC-SHA256 set-up failed");
  } else {
    std::copy(key.begin(), key.end(), block.begin());
  }
  std::array<unsigned char, 64> ipad{}, opad{};
  for (std::size_t i = 0; i < block.size(); ++i) {
    ipad[i] = block[i] ^ 0x36;
    opad[i] = block[i] ^ 0x5c;
  }
  const bool ok = pads_->inner && pads_->outer && EVP_DigestInit_ex(pads_->inner.get(), EVP_sha256(), nullptr) &&
                  EVP_DigestUpdate(pads_->inner.get(), ipad.data(), ipad.size()) &&
                  EVP_DigestInit_ex(pads_->outer.get(), EVP_sha256(), nullptr) &&
                  EVP_DigestUpdate(pads_->outer.get(), opad.data(), opad.size());
  OPENSSL_cleanse(block.data(), block.size());
  OPENSSL_cleanse(ipad.data(), ipad.size());
  OPENSSL_cleanse(opad.data(), opad.size());
  if (!ok) throw std::runtime_error("HMAC-SHA256 set-up failed");
}

hmac_sha256::~hmac_sha256() = default;
hmac_sha256::hmac_sha256(hmac_sha256&&) noexcept = default;
hmac_sha256& hmac_sha256::operator=(hmac_sha256&&) noexcept = default;

std::array<unsigned char, 32> hmac_sha256::mac(std::string_view data) const {
  // The prepared pads are only read (copied into this thread's working context).
  thread_local md_ctx work(EVP_MD_CTX_new());
  std::array<unsigned char, 32> inner{}, out{};
  unsigned int len = 0;
  if (!work || !EVP_MD_CTX_copy_ex(work.get(), pads_->inner.get()) ||
      !EVP_DigestUpdate(work.get(), data.data(), data.size()) || !EVP_DigestFinal_ex(work.get(), inner.data(), &len) ||
      !EVP_MD_CTX_copy_ex(work.get(), pads_->outer.get()) ||
      !EVP_DigestUpdate(work.get(), inner.data(), inner.size()) || !EVP_DigestFinal_ex(work.get(), out.data(), &len))
    throw std::runtime_error("HMAC-SHA256 failed");
  return out;
}

std::string base64url_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() * 4 + 2) / 3);
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(alphabet[(acc >> bits) & 0x3F]);
    }
  }
  if (bits > 0) out.push_back(alphabet[(acc << (6 - bits)) & 0x3F]);
  return out;
}

std::optional<std::string> base64url_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const auto pos = alphabet.find(c);
    if (pos == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (bits >= 6) return std::nullopt;
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

}  // namespace ingest::detail
