#pragma once
// JWT HS256 tokens for the exam servers: mint for demos and tests, verify on every request.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace exam {

enum class role { student, teacher };

struct principal {
  std::string sub;
  exam::role role = role::student;
  std::chrono::system_clock::time_point expires{};
};

// Why a token was refused (all answered 401; the reason goes to the log and metrics).
enum class token_error {
  none,
  malformed,       // not three canonical base64url parts of JSON objects
  bad_algorithm,   // anything but HS256
  bad_signature,
  expired,         // exp has passed
  not_yet_valid,   // nbf is still to come
  bad_claims,      // sub, role or exp missing or of the wrong type; nbf not a number
  bad_issuer,      // iss is not the configured issuer
  bad_audience,    // aud does not name the configured audience
};
std::string_view to_string(token_error e) noexcept;

// What a server requires of a token beyond its signature, expiry and claims. Empty:
// not checked (and not written by mint_token).
struct token_checks {
  std::string issuer{};    // `iss` must be exactly this
  std::string audience{};  // `aud` must be this, or an array holding it
};

// A signed token for `p` (header {"alg":"HS256","typ":"JWT"}), with `iss` and `aud`
// when `checks` names them.
std::string mint_token(const principal& p, std::string_view secret, const token_checks& checks = {});
// Signs any claims text as it is (tests and fuzzing: odd claims, correctly signed).
std::string sign_claims(std::string_view claims_json, std::string_view secret);

// Verifies the encoding (each part canonical base64url: one token has one spelling),
// the signature (constant-time), the algorithm (HS256 only: "none" and every other
// algorithm are refused), expiry, not-before and claims, and `checks`.
struct verified {
  token_error error = token_error::none;
  principal who{};
};
verified verify_token(std::string_view token, std::string_view secret, const token_checks& checks,
                      std::chrono::system_clock::time_point now = std::chrono::system_clock::now());
inline verified verify_token(std::string_view token, std::string_view secret,
                             std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) {
  return verify_token(token, secret, token_checks{}, now);
}

// A random secret (32 bytes, URL-safe base64) for servers started without one.
std::string random_secret();

// "2h", "30m", "90s", "1d" -> seconds.
std::optional<std::chrono::seconds> parse_ttl(std::string_view text);

}  // namespace exam
