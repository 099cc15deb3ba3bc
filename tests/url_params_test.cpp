// The query parsing every backend's from_url() shares.

#include "core/url_params.hpp"

#include <doctest/doctest.h>

#include "ingest/error.hpp"

using namespace ingest;

namespace {

// The text of the invalid_config error `f` throws ("" when it throws none).
template <class F>
std::string refusal(F f) {
  try {
    f();
  } catch (const ingest::error& e) {
    CHECK(e.code() == errc::invalid_config);
    return e.what();
  }
  return {};
}

}  // namespace

TEST_CASE("url parameters: percent-decoded, each once, unknown ones named") {
  detail::url_query q("test URL", "path=%2Fvar%2Flib%20x&plus=a+b&empty=&name%3D=v");
  CHECK(q.take("path") == "/var/lib x");
  CHECK(q.take("plus") == "a+b");  // a query's '+' is not a space here (RFC 3986)
  CHECK(q.take("empty") == "");
  CHECK_FALSE(q.take("absent"));
  CHECK(refusal([&] { q.finish(); }).find("unknown parameter 'name='") != std::string::npos);
  CHECK(q.take("name="));
  CHECK(refusal([&] { q.finish(); }).empty());

  CHECK(refusal([] { detail::url_query("test URL", "a=1&a=2"); }).find("'a' given twice") != std::string::npos);
  CHECK(refusal([] { detail::url_query("test URL", "a"); }).find("without a value") != std::string::npos);
  CHECK(refusal([] { detail::url_query("test URL", "a=%4"); }).find("two hex digits") != std::string::npos);
  CHECK(refusal([] { detail::url_query("test URL", "a=%zz"); }).find("two hex digits") != std::string::npos);
  detail::url_query two("test URL", "colour=red&size=9");
  const auto both = refusal([&] { two.finish(); });
  CHECK(both.find("'colour'") != std::string::npos);
  CHECK(both.find("'size'") != std::string::npos);
}

TEST_CASE("url parameters: one spelling of a boolean, durations with their unit, counts") {
  CHECK(detail::parse_bool("tls", "true"));
  CHECK(detail::parse_bool("tls", "1"));
  CHECK_FALSE(detail::parse_bool("tls", "false"));
  CHECK_FALSE(detail::parse_bool("tls", "0"));
  for (const char* guess : {"yes", "no", "on", "TRUE", ""})
    CHECK(refusal([&] { detail::parse_bool("tls", guess); }).find("tls must be true or false") != std::string::npos);
  CHECK(detail::parse_duration("ack_wait", "45s") == std::chrono::seconds(45));
  CHECK(refusal([] { detail::parse_duration("ack_wait", "45"); }).find("ack_wait must be a duration") !=
        std::string::npos);
  CHECK(detail::parse_count("replicas", "3") == 3);
  CHECK(refusal([] { detail::parse_duration("ack_wait", "9223372036854775807h"); }).find("at most a year") !=
        std::string::npos);
  detail::url_query narrow("test URL", "small=70000");
  std::uint16_t small = 0;
  CHECK(refusal([&] { narrow.set("small", small); }).find("small is too large") != std::string::npos);
  CHECK_FALSE(refusal([] { detail::parse_count("replicas", "-1"); }).empty());
}
