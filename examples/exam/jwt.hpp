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
enum class token_error { none, malformed, bad_algorithm, bad_signature, expired, bad_claims };
std::string_view to_string(token_error e) noexcept;

// A signed token for `p` (header {"alg":"HS256","typ":"JWT"}).
std::string mint_token(const principal& p, std::string_view secret);
// Signs any claims text as it is (tests and fuzzing: odd claims, correctly signed).
std::string sign_claims(std::string_view claims_json, std::string_view secret);

// Verifies signature (constant-time), algorithm (HS256 only: "none" and every other
// algorithm are refused), expiry and claims.
struct verified {
  token_error error = token_error::none;
  principal who{};
};
verified verify_token(std::string_view token, std::string_view secret,
                      std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// A random secret (32 bytes, URL-safe base64) for servers started without one.
std::string random_secret();

// "2h", "30m", "90s", "1d" -> seconds.
std::optional<std::chrono::seconds> parse_ttl(std::string_view text);

}  // namespace exam
