#include "ledger.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "ingest/fingerprint.hpp"

namespace exam {

copy_path path_of(const ingest::envelope& m) {
  for (const auto& [name, value] : m.headers)
    if (name == path_header) return value == "shadow" ? copy_path::shadow : value == "queue" ? copy_path::queue : copy_path::none;
  return copy_path::none;
}

namespace {
std::string header(const ingest::envelope& m, std::string_view name) {
  for (const auto& [n, v] : m.headers)
    if (n == name) return v;
  return {};
}

ingest::submission message_of(const submission& s) {
  return ingest::submission{.idempotency_key = s.queue_key(),
                            .subject = "exam." + s.exam_id,
                            .payload = s.to_json(),
                            .headers = {},
                            .not_after = ingest::time_point::max(),
                            .receipt_claims = receipt_claims(s.exam_id, s.student_id)};
}
}  // namespace

queue_copy copy_row(const ingest::envelope& m, const submission& s, const exam_info* exam, copy_path path) {
  queue_copy c;
  c.exam_id = s.exam_id;
  c.student_id = s.student_id;
  c.idempotency_key = s.idempotency_key;
  c.path = path == copy_path::shadow ? "shadow" : "queue";
  c.receipt_id = m.receipt_id;
  c.queued_at = ingest::format_time(m.accepted_at);
  c.accepted_at = c.queued_at;
  if (path == copy_path::shadow) {
    c.direct_receipt_id = header(m, direct_receipt_header);
    if (auto at = header(m, direct_accepted_header); !at.empty()) c.accepted_at = at;
  }
  c.fingerprint = m.fingerprint.empty() ? ingest::fingerprint(m.payload) : m.fingerprint;
  if (exam) c.score = exam->grade(s.answers);
  c.written_at = ingest::format_time(ingest::clock::now());
  return c;
}

ingest::submission shadow_message(const submission& s, const std::string& receipt_id, const std::string& accepted_at) {
  auto m = message_of(s);
  m.headers = {{path_header, "shadow"}, {direct_receipt_header, receipt_id}, {direct_accepted_header, accepted_at}};
  return m;
}

std::optional<submission> submission_of(const stored_submission& row) {
  boost::system::error_code ec;
  boost::json::object o;
  o["exam_id"] = row.exam_id;
  o["student_id"] = row.student_id;
  o["idempotency_key"] = row.idempotency_key;
  o["answers"] = boost::json::parse(row.answers_json, ec);
  if (ec) return std::nullopt;
  if (!row.attachments_json.empty()) {
    o["attachments"] = boost::json::parse(row.attachments_json, ec);
    if (ec) return std::nullopt;
  }
  return submission::from_json(boost::json::serialize(o));
}

void create_copies_table(ingest::sqlite::database& db) {
  db.exec(R"sql(
CREATE TABLE IF NOT EXISTS queue_copies(
  exam_id TEXT NOT NULL,
  student_id TEXT NOT NULL,
  idempotency_key TEXT NOT NULL,
  path TEXT NOT NULL,
  receipt_id TEXT NOT NULL,
  direct_receipt_id TEXT,
  accepted_at TEXT NOT NULL,
  queued_at TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  score REAL,
  written_at TEXT NOT NULL,
  PRIMARY KEY(exam_id, student_id, idempotency_key));
CREATE INDEX IF NOT EXISTS queue_copies_by_receipt ON queue_copies(receipt_id);
)sql");
}

copy_writer::copy_writer(ingest::sqlite::database& db)
    : insert_(db,
              "INSERT INTO queue_copies(exam_id, student_id, idempotency_key, path, receipt_id, direct_receipt_id,"
              " accepted_at, queued_at, fingerprint, score, written_at)"
              " VALUES (?1, ?2, ?3, ?4, ?5, nullif(?6, ''), ?7, ?8, ?9, ?10, ?11)"
              " ON CONFLICT DO NOTHING") {}

void copy_writer::insert(const queue_copy& c) {
  insert_.bind(1, c.exam_id).bind(2, c.student_id).bind(3, c.idempotency_key).bind(4, c.path);
  insert_.bind(5, c.receipt_id).bind(6, c.direct_receipt_id).bind(7, c.accepted_at).bind(8, c.queued_at);
  insert_.bind(9, c.fingerprint);
  if (c.score)
    insert_.bind(10, *c.score);
  else
    insert_.bind_null(10);
  insert_.bind(11, c.written_at);
  try {
    insert_.step();
  } catch (...) {
    insert_.reset();
    throw;
  }
  insert_.reset();
}

}  // namespace exam
