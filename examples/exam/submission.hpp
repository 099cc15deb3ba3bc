#pragma once
// What travels through the queue: one validated submission, canonical JSON.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attachments.hpp"

namespace exam {

struct submission {
  std::string exam_id;
  std::string student_id;
  std::string idempotency_key;                 // the client's key
  std::map<std::string, std::string> answers;  // question id -> answer
  std::vector<attachment> attachments{};      // files in storage, in the student's order

  // Canonical JSON (keys sorted): the same answers give the same bytes, so the
  // payload fingerprint tells a retry from a changed body.
  std::string to_json() const;
  // The answers alone, as stored in exam.db.
  std::string answers_json() const;
  // The attachments as stored with the graded row (a JSON array); empty when none.
  std::string attachments_json() const;
  static std::optional<submission> from_json(std::string_view text);
  // The queue's idempotency key: unique per (exam, student, client key).
  std::string queue_key() const;
};

// What a signed receipt id vouches for (ingest::receipt_signer): the exam and the
// student, so that any server holding the key answers for the receipt (and only to its
// student or a teacher) before the submission reaches the database.
struct receipt_owner {
  std::string exam_id;
  std::string student_id;
};
// ["exam_id","student_id"] as compact JSON; parse_receipt_claims reads it back.
std::string receipt_claims(const std::string& exam_id, const std::string& student_id);
std::optional<receipt_owner> parse_receipt_claims(std::string_view claims);

// The body of POST /v1/exams/{id}/submissions: {"answers": {"q1": "B", ...},
// "attachments"?: [{"key", "sha256", "size", "filename"?}]}.
// Returns the answers, or the reason the body is refused (400).
struct parsed_answers {
  std::map<std::string, std::string> answers;
  std::vector<attachment> attachments;  // shape checked only (check_attachments does the rest)
  std::string error;  // empty when valid
};
parsed_answers parse_answers(std::string_view body, std::size_t max_questions = 1000);

}  // namespace exam
