#include "ingest/error.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "support/test_support.hpp"

using namespace ingest;

TEST_CASE("ingest::errc converts to std::error_code in the ingest category") {
  std::error_code ec = errc::conflict;
  CHECK(ec.category().name() == std::string("ingest"));
  CHECK(ec == errc::conflict);
  CHECK(ec != errc::in_flight);
  CHECK(ec.message().find("different payload") != std::string::npos);
  // The completion-handler error type holds it too, and compares equal.
  ingest::error_code completion = errc::conflict;
  CHECK(completion == errc::conflict);
  CHECK(std::error_code(completion) == ec);
  CHECK(completion.message() == ec.message());
  for (int v = static_cast<int>(errc::invalid_key); v <= static_cast<int>(errc::storage_error); ++v)
    CHECK(make_error_code(static_cast<errc>(v)).message() != "unknown ingest error");
}

TEST_CASE("retry-later errors are exactly the ones a client may retry with the same key") {
  CHECK(is_retry_later(errc::backpressure));
  CHECK(is_retry_later(errc::queue_full));
  CHECK(is_retry_later(errc::publish_timeout));
  CHECK(is_retry_later(errc::shutting_down));
  CHECK(is_retry_later(errc::backend_unavailable));
  CHECK(is_retry_later(errc::storage_error));
  CHECK_FALSE(is_retry_later(errc::conflict));
  CHECK_FALSE(is_retry_later(errc::invalid_key));
  CHECK_FALSE(is_retry_later(errc::in_flight));
  CHECK_FALSE(is_retry_later(std::error_code{}));
  CHECK_FALSE(is_retry_later(std::make_error_code(std::errc::timed_out)));
}

TEST_CASE("blocking helpers throw ingest::error, a std::system_error") {
  CHECK_NOTHROW(throw_if({}, "fine"));
  try {
    throw_if(errc::conflict, "submit");
    FAIL("no throw");
  } catch (const std::system_error& e) {
    CHECK(e.code() == errc::conflict);
    CHECK(std::string(e.what()).find("submit") != std::string::npos);
  }
}

TEST_CASE("every errc has a snake_case name of its own, for labels and logs") {
  CHECK(errc_name(errc::queue_full) == "queue_full");
  CHECK(errc_name(errc::deadline_passed) == "deadline_passed");
  std::set<std::string_view> names;
  // deadline_passed is the last value of the enumeration.
  for (int v = 1; v <= static_cast<int>(errc::deadline_passed); ++v) {
    const auto name = errc_name(static_cast<errc>(v));
    CHECK_FALSE(name.empty());
    CHECK(name.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string_view::npos);
    CHECK(names.insert(name).second);
  }
}
