// queue_copies on PostgreSQL.

#include <fmt/format.h>

#include <map>
#include <tuple>

#include "ingest/retry_policy.hpp"
#include "ledger.hpp"

namespace exam {

void keep_direct_rows(ingest::postgres::connection& db, std::vector<stored_submission>& queue_rows) {
  if (queue_rows.empty()) return;
  ingest::postgres::array_literal exams, students, keys;
  for (const auto& r : queue_rows) {
    exams.push_back(r.exam_id);
    students.push_back(r.student_id);
    keys.push_back(r.idempotency_key);
  }
  // Locked in key order, as every grader locks them: two graders never wait on each other
  // in a circle.
  const auto found = db.exec(
      "SELECT t.exam_id, t.student_id, t.idempotency_key, t.receipt_id, t.fingerprint FROM unnest($1::text[], "
      "$2::text[], $3::text[]) AS k(e, st, i) JOIN submissions t ON t.exam_id = k.e AND t.student_id = k.st AND "
      "t.idempotency_key = k.i ORDER BY t.exam_id, t.student_id, t.idempotency_key FOR UPDATE OF t",
      {exams.str(), students.str(), keys.str()});
  if (found.rows() == 0) return;
  struct row_of_key {
    std::string receipt_id, fingerprint;
  };
  std::map<std::tuple<std::string, std::string, std::string>, row_of_key> kept;
  for (int i = 0; i < found.rows(); ++i)
    kept[{std::string(found.text(i, 0)), std::string(found.text(i, 1)), std::string(found.text(i, 2))}] = {
        std::string(found.text(i, 3)), std::string(found.text(i, 4))};
  db.prepare("exam_alias_direct",
             "INSERT INTO exam_receipt_aliases(receipt_id, kept_receipt_id) VALUES ($1, $2) "
             "ON CONFLICT (receipt_id) DO UPDATE SET kept_receipt_id = excluded.kept_receipt_id");
  std::erase_if(queue_rows, [&](const stored_submission& r) {
    const auto it = kept.find({r.exam_id, r.student_id, r.idempotency_key});
    if (it == kept.end()) return false;
    // The same key with another body is a conflict, as on every other path: the batch is
    // written again item by item and this one is dead-lettered with its reason.
    if (it->second.fingerprint != r.fingerprint)
      throw ingest::permanent_error("the direct path stored this key with another body", "conflict");
    if (it->second.receipt_id != r.receipt_id) db.exec_prepared("exam_alias_direct", {r.receipt_id, it->second.receipt_id});
    return true;
  });
}

void write_copies(ingest::postgres::connection& db, const std::vector<queue_copy>& rows) {
  if (rows.empty()) return;
  ingest::postgres::array_literal exams, students, keys, paths, receipts, direct, accepted, queued, fps, scores, written;
  for (const auto& c : rows) {
    exams.push_back(c.exam_id);
    students.push_back(c.student_id);
    keys.push_back(c.idempotency_key);
    paths.push_back(c.path);
    receipts.push_back(c.receipt_id);
    if (c.direct_receipt_id.empty())
      direct.push_null();
    else
      direct.push_back(c.direct_receipt_id);
    accepted.push_back(c.accepted_at);
    queued.push_back(c.queued_at);
    fps.push_back(c.fingerprint);
    if (c.score)
      scores.push_back(fmt::format("{}", *c.score));
    else
      scores.push_null();
    written.push_back(c.written_at);
  }
  db.prepare("exam_copies_insert",
             "INSERT INTO queue_copies(exam_id, student_id, idempotency_key, path, receipt_id, direct_receipt_id,"
             " accepted_at, queued_at, fingerprint, score, written_at)"
             " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
             " $7::text[], $8::text[], $9::text[], $10::float8[], $11::text[]) ON CONFLICT DO NOTHING");
  db.exec_prepared("exam_copies_insert", {exams.str(), students.str(), keys.str(), paths.str(), receipts.str(),
                                          direct.str(), accepted.str(), queued.str(), fps.str(), scores.str(),
                                          written.str()});
}

}  // namespace exam
