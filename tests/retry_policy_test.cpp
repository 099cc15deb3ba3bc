#include "ingest/retry_policy.hpp"

#include <doctest/doctest.h>

#include <algorithm>

#include "support/test_support.hpp"

#include "ingest/error.hpp"

using namespace ingest;
using namespace std::chrono_literals;

TEST_CASE("backoff grows exponentially up to the cap, with full jitter below it") {
  retry_policy p{.max_attempts = 10, .initial_backoff = 100ms, .max_backoff = 1s, .multiplier = 2.0};
  CHECK(p.ceiling(1) == 100ms);
  CHECK(p.ceiling(2) == 200ms);
  CHECK(p.ceiling(4) == 800ms);
  CHECK(p.ceiling(5) == 1s);
  CHECK(p.ceiling(40) == 1s);

  std::mt19937_64 rng(42);
  std::int64_t low = 1 << 30, high = 0;
  double sum = 0;
  constexpr int n = 20000;
  for (int i = 0; i < n; ++i) {
    const auto d = p.backoff(3, rng).count();
    low = std::min(low, d);
    high = std::max(high, d);
    sum += static_cast<double>(d);
  }
  CHECK(low >= 0);
  CHECK(low < 20);  // full jitter reaches down to zero
  CHECK(high <= 400);
  CHECK(high > 380);                                     // and up to the ceiling
  CHECK(sum / n == doctest::Approx(200).epsilon(0.05));  // uniform: mean is half the ceiling
}

TEST_CASE("max_attempts counts deliveries") {
  retry_policy p{.max_attempts = 3};
  CHECK(p.may_retry(1));
  CHECK(p.may_retry(2));
  CHECK_FALSE(p.may_retry(3));
}

TEST_CASE("the default classifier: permanent_error is permanent, anything else transient") {
  auto as_ptr = [](auto e) { return std::make_exception_ptr(e); };
  CHECK(default_classifier(as_ptr(permanent_error("bad data"))) == failure_kind::permanent);
  CHECK(default_classifier(as_ptr(std::runtime_error("db locked"))) == failure_kind::transient);
  CHECK(default_classifier(as_ptr(42)) == failure_kind::transient);
  CHECK(default_classifier(nullptr) == failure_kind::transient);
}

TEST_CASE("invalid policies are refused") {
  CHECK_THROWS_AS((retry_policy{.max_attempts = 0}.validate()), ingest::error);
  CHECK_THROWS_AS((retry_policy{.initial_backoff = 2s, .max_backoff = 1s}.validate()), ingest::error);
  CHECK_THROWS_AS((retry_policy{.multiplier = 0.5}.validate()), ingest::error);
  CHECK_NOTHROW(retry_policy{}.validate());
}

TEST_CASE("failure_message gives the exception's text") {
  CHECK(failure_message(std::make_exception_ptr(std::runtime_error("disk full"))) == "disk full");
  CHECK(failure_message(std::make_exception_ptr(7)) == "unknown exception");
  CHECK(failure_message(nullptr) == "no error");
}
