#include "ingest/fingerprint.hpp"

#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/sha.h>

#include <memory>

namespace ingest {
namespace {

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
struct free_ctx {
  void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};

// SHA256() looks the algorithm up by name on every call (OpenSSL 3), about half of
// its time for a payload of a few hundred bytes: fetched once (and kept to the end,
// for threads still hashing while the process exits), with a context per thread.
void sha256(std::string_view data, unsigned char* digest) {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  thread_local const std::unique_ptr<EVP_MD_CTX, free_ctx> ctx(EVP_MD_CTX_new());
  unsigned int len = 0;
  if (md && ctx && EVP_DigestInit_ex(ctx.get(), md, nullptr) && EVP_DigestUpdate(ctx.get(), data.data(), data.size()) &&
      EVP_DigestFinal_ex(ctx.get(), digest, &len))
    return;
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
}
#else
void sha256(std::string_view data, unsigned char* digest) {
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
}
#endif

}  // namespace

std::string fingerprint(std::string_view payload) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  sha256(payload, digest);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(2 * SHA256_DIGEST_LENGTH, '\0');
  for (int i = 0; i < SHA256_DIGEST_LENGTH; ++i) {
    out[2 * i] = hex[digest[i] >> 4];
    out[2 * i + 1] = hex[digest[i] & 0x0F];
  }
  return out;
}

bool valid_idempotency_key(std::string_view key) noexcept {
  if (key.empty() || key.size() > 255) return false;
  for (unsigned char c : key)
    if (c < 0x20 || c > 0x7E) return false;
  return true;
}

}  // namespace ingest
