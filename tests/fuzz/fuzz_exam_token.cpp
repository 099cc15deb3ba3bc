// Token checks of the exam servers: any text as a bearer token, and any claims text
// correctly signed (so the claims reader is reached), and the token lifetime option.

#include "fuzz_support.hpp"
#include "jwt.hpp"

using namespace std::chrono_literals;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ingest::fuzz::reader in(data, size);
  const auto mode = in.byte() % 3;
  const std::string secret = "fuzz-secret";
  const auto now = std::chrono::system_clock::time_point(1'800'000'000s);
  if (mode == 2) {
    const auto text = in.rest();
    if (const auto ttl = exam::parse_ttl(text)) FUZZ_CHECK(ttl->count() > 0);
    return 0;
  }
  const auto text = in.rest();
  const auto token = mode == 0 ? text : exam::sign_claims(text, secret);
  const auto v = exam::verify_token(token, secret, now);
  if (v.error == exam::token_error::none) {
    FUZZ_CHECK(!v.who.sub.empty());
    FUZZ_CHECK(v.who.expires > now);
    // Accepted under this secret only.
    FUZZ_CHECK(exam::verify_token(token, "another-secret", now).error != exam::token_error::none);
    // A token minted for the same principal is accepted the same way.
    const auto again = exam::verify_token(exam::mint_token(v.who, secret), secret, now);
    FUZZ_CHECK(again.error == exam::token_error::none);
    FUZZ_CHECK(again.who.sub == v.who.sub && again.who.role == v.who.role);
  }
  FUZZ_CHECK(!exam::to_string(v.error).empty());
  return 0;
}
