// The exam servers' body validator and the canonical JSON the idempotency fingerprint
// is taken of: a body is accepted or refused with a reason; an accepted body's
// canonical form reads back to the same submission and does not depend on how the
// client wrote the JSON (key order, spacing, escapes).

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <vector>

#include "fuzz_support.hpp"
#include "ingest/fingerprint.hpp"
#include "submission.hpp"

namespace json = boost::json;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ingest::fuzz::reader in(data, size);
  const std::size_t max_answers = 1 + in.byte() % 64;
  auto key = in.field();
  if (!ingest::valid_idempotency_key(key)) key = "key-1";  // the server refuses others before the body
  const auto body = in.rest();

  // The consumer's side: whatever a queue hands back is read or refused, never a crash.
  (void)exam::submission::from_json(body);

  auto parsed = exam::parse_answers(body, max_answers);
  if (!parsed.error.empty()) {
    FUZZ_CHECK(parsed.answers.empty());
    return 0;
  }
  FUZZ_CHECK(parsed.answers.size() <= max_answers);
  for (const auto& [q, a] : parsed.answers) FUZZ_CHECK(!q.empty());

  const exam::submission s{"exam-1", "student-1", key, parsed.answers};
  const auto canonical = s.to_json();
  const auto back = exam::submission::from_json(canonical);
  FUZZ_CHECK(back.has_value());
  FUZZ_CHECK(back->answers == s.answers && back->idempotency_key == key);
  FUZZ_CHECK(back->to_json() == canonical);
  FUZZ_CHECK(json::parse(s.answers_json()).as_object().size() == s.answers.size());
  const auto queue_key = s.queue_key();
  FUZZ_CHECK(ingest::valid_idempotency_key(queue_key));

  // The same answers written another way: keys reversed, re-serialised.
  json::object answers;
  for (auto it = s.answers.rbegin(); it != s.answers.rend(); ++it) answers[it->first] = it->second;
  const auto rewritten = json::serialize(json::object{{"answers", std::move(answers)}});
  auto again = exam::parse_answers(rewritten, max_answers);
  FUZZ_CHECK(again.error.empty());
  const exam::submission s2{"exam-1", "student-1", key, again.answers};
  FUZZ_CHECK(ingest::fingerprint(s2.to_json()) == ingest::fingerprint(canonical));
  return 0;
}
