// queue_copies on PostgreSQL.

#include <fmt/format.h>

#include <map>
#include <tuple>

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
  const auto found = db.exec(
      "SELECT s.exam_id, s.student_id, s.idempotency_key, s.receipt_id FROM unnest($1::text[], $2::text[], "
      "$3::text[]) AS k(e, s, i) JOIN submissions s ON s.exam_id = k.e AND s.student_id = k.s AND "
      "s.idempotency_key = k.i FOR UPDATE OF s",
      {exams.str(), students.str(), keys.str()});
  if (found.rows() == 0) return;
  std::map<std::tuple<std::string, std::string, std::string>, std::string> kept;
  for (int i = 0; i < found.rows(); ++i)
    kept[{std::string(found.text(i, 0)), std::string(found.text(i, 1)), std::string(found.text(i, 2))}] =
        std::string(found.text(i, 3));
  db.prepare("exam_alias_direct",
             "INSERT INTO exam_receipt_aliases(receipt_id, kept_receipt_id) VALUES ($1, $2) "
             "ON CONFLICT (receipt_id) DO UPDATE SET kept_receipt_id = excluded.kept_receipt_id");
  std::erase_if(queue_rows, [&](const stored_submission& r) {
    const auto it = kept.find({r.exam_id, r.student_id, r.idempotency_key});
    if (it == kept.end()) return false;
    if (it->second != r.receipt_id) db.exec_prepared("exam_alias_direct", {r.receipt_id, it->second});
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
