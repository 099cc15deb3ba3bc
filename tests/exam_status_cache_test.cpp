// Status reads of graded submissions answered from memory (graded_cache.hpp): the
// same answer as the database's, no query, and still only to its student or a teacher.

#include <doctest/doctest.h>

#include "support/exam_fixture.hpp"

using namespace ingest;
using namespace ingest::test;
using namespace std::chrono_literals;

namespace {

std::int64_t metric(exam_fixture& f, const std::string& name) {
  auto c = f.client();
  const auto text = c.call(verb::get, "/metrics").body;
  const auto at = text.find("\n" + name + " ");
  REQUIRE(at != std::string::npos);
  return std::stoll(text.substr(at + name.size() + 2));
}

}  // namespace

TEST_CASE("a graded receipt read again is answered from memory: the same answer, no query, same rules") {
  for (const std::size_t capacity : {std::size_t{50000}, std::size_t{0}}) {
    CAPTURE(capacity);
    exam_fixture f(kind::queue_sqlite, {.graded_cache = capacity});
    auto c = f.client();
    const auto s1 = token("s1");
    const auto id = f.submit(c, "open", s1, "k-cache").field("receipt_id");
    REQUIRE(f.written(1));
    const auto first = c.call(verb::get, "/v1/submissions/" + id, bearer(s1));
    REQUIRE(first.status == 200);
    REQUIRE(first.field("status") == "graded");
    const auto queries = metric(f, "exam_status_queries_total");
    const auto again = c.call(verb::get, "/v1/submissions/" + id, bearer(s1));
    CHECK(again.status == 200);
    CHECK(again.body == first.body);
    check_error(c.call(verb::get, "/v1/submissions/" + id, bearer(token("s2"))), 404, "not_found");
    const auto teacher = c.call(verb::get, "/v1/submissions/" + id, bearer(token("t1", exam::role::teacher)));
    CHECK(teacher.body == first.body);
    if (capacity > 0) {
      CHECK(metric(f, "exam_status_queries_total") == queries);
      CHECK(metric(f, "exam_status_cache_hits_total") == 3);
    } else {
      CHECK(metric(f, "exam_status_queries_total") == queries + 3);
      CHECK(metric(f, "exam_status_cache_hits_total") == 0);
    }
  }
}
