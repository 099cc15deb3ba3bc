// queue_copies on PostgreSQL.

#include <fmt/format.h>

#include "ledger.hpp"

namespace exam {

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
