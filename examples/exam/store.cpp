#include "store.hpp"

#include "ingest/envelope.hpp"

namespace exam {

void create_schema(ingest::sqlite::database& db) {
  db.exec(R"sql(
CREATE TABLE IF NOT EXISTS submissions(
  receipt_id TEXT PRIMARY KEY,
  idempotency_key TEXT NOT NULL,
  exam_id TEXT NOT NULL,
  student_id TEXT NOT NULL,
  accepted_at TEXT NOT NULL,
  answers_json TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  status TEXT NOT NULL,
  score REAL,
  graded_at TEXT,
  attachments_json TEXT,
  UNIQUE(exam_id, student_id, idempotency_key));
CREATE INDEX IF NOT EXISTS submissions_by_exam ON submissions(exam_id, receipt_id);
CREATE TABLE IF NOT EXISTS exam_stats(
  exam_id TEXT PRIMARY KEY,
  submissions INTEGER NOT NULL DEFAULT 0,
  last_accepted_at TEXT);
)sql");
  // exam.db files made before submissions carried files lack the column. Added under
  // the write lock, checked again there: processes opening the file at once add it once.
  const auto missing = [&db] {
    ingest::sqlite::statement has(db, "SELECT count(*) FROM pragma_table_info('submissions') "
                                      "WHERE name = 'attachments_json'");
    return has.step() && has.column_int(0) == 0;
  };
  if (!missing()) return;
  db.exec("BEGIN IMMEDIATE");
  try {
    if (missing()) db.exec("ALTER TABLE submissions ADD COLUMN attachments_json TEXT");
    db.exec("COMMIT");
  } catch (...) {
    db.exec("ROLLBACK");
    throw;
  }
}

namespace {
constexpr const char* columns =
    "receipt_id, idempotency_key, exam_id, student_id, accepted_at, answers_json, fingerprint, status, score, "
    "graded_at, attachments_json";

stored_submission read_row(ingest::sqlite::statement& s) {
  stored_submission r;
  r.receipt_id = s.column_text(0);
  r.idempotency_key = s.column_text(1);
  r.exam_id = s.column_text(2);
  r.student_id = s.column_text(3);
  r.accepted_at = s.column_text(4);
  r.answers_json = s.column_text(5);
  r.fingerprint = s.column_text(6);
  r.status = s.column_text(7);
  if (!s.column_is_null(8)) r.score = s.column_double(8);
  if (!s.column_is_null(9)) r.graded_at = s.column_text(9);
  if (!s.column_is_null(10)) r.attachments_json = s.column_text(10);
  return r;
}

template <class Fn>
auto with_reset(ingest::sqlite::statement& s, Fn&& f) {
  try {
    auto out = f();
    s.reset();
    return out;
  } catch (...) {
    s.reset();
    throw;
  }
}

ingest::sqlite::database open_db(const std::string& path) {
  ingest::sqlite::database db(path);
  create_schema(db);
  return db;
}
}  // namespace

store_reader::store_reader(const std::string& path)
    : db_(open_db(path)),
      by_receipt_(db_, std::string("SELECT ") + columns + " FROM submissions WHERE receipt_id = ?1"),
      by_key_(db_, std::string("SELECT ") + columns +
                       " FROM submissions WHERE exam_id = ?1 AND student_id = ?2 AND idempotency_key = ?3"),
      list_(db_, std::string("SELECT ") + columns +
                     " FROM submissions WHERE exam_id = ?1 AND receipt_id > ?2 ORDER BY receipt_id LIMIT ?3") {}

std::optional<stored_submission> store_reader::by_receipt(const std::string& receipt_id) {
  by_receipt_.bind(1, receipt_id);
  return with_reset(by_receipt_, [&]() -> std::optional<stored_submission> {
    if (!by_receipt_.step()) return std::nullopt;
    return read_row(by_receipt_);
  });
}

std::optional<stored_submission> store_reader::by_key(const std::string& exam_id, const std::string& student_id,
                                                      const std::string& key) {
  by_key_.bind(1, exam_id).bind(2, student_id).bind(3, key);
  return with_reset(by_key_, [&]() -> std::optional<stored_submission> {
    if (!by_key_.step()) return std::nullopt;
    return read_row(by_key_);
  });
}

std::vector<stored_submission> store_reader::list(const std::string& exam_id, const std::string& after,
                                                  std::size_t limit) {
  list_.bind(1, exam_id).bind(2, after).bind(3, static_cast<std::int64_t>(limit));
  return with_reset(list_, [&] {
    std::vector<stored_submission> out;
    while (list_.step()) out.push_back(read_row(list_));
    return out;
  });
}

std::vector<receipt_record> submission_reader::records(std::span<const std::string> receipt_ids) {
  std::vector<receipt_record> out(receipt_ids.size());
  for (std::size_t i = 0; i < receipt_ids.size(); ++i) {
    out[i].row = by_receipt(receipt_ids[i]);
    if (!out[i].row) out[i].note = progress(receipt_ids[i]);
  }
  return out;
}

std::optional<stored_submission> store_pool::by_receipt(const std::string& receipt_id) {
  return with([&](store_reader& r) { return r.by_receipt(receipt_id); });
}

std::optional<stored_submission> store_pool::by_key(const std::string& exam_id, const std::string& student_id,
                                                    const std::string& key) {
  return with([&](store_reader& r) { return r.by_key(exam_id, student_id, key); });
}

std::vector<stored_submission> store_pool::list(const std::string& exam_id, const std::string& after,
                                                std::size_t limit) {
  return with([&](store_reader& r) { return r.list(exam_id, after, limit); });
}

std::uint64_t store_pool::written_total() {
  return with([](store_reader& r) {
    ingest::sqlite::statement sum(r.db(), "SELECT coalesce(sum(submissions), 0) FROM exam_stats");
    return sum.step() ? static_cast<std::uint64_t>(sum.column_int(0)) : 0U;
  });
}

store_writer::store_writer(ingest::sqlite::database& db)
    : insert_(db,
              std::string("INSERT INTO submissions(") + columns + ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
      bump_(db,
            "INSERT INTO exam_stats(exam_id, submissions, last_accepted_at) VALUES (?1, 1, ?2)"
            " ON CONFLICT(exam_id) DO UPDATE SET submissions = submissions + 1,"
            " last_accepted_at = max(coalesce(last_accepted_at, ''), excluded.last_accepted_at)") {}

void store_writer::insert(const stored_submission& s) {
  insert_.bind(1, s.receipt_id)
      .bind(2, s.idempotency_key)
      .bind(3, s.exam_id)
      .bind(4, s.student_id)
      .bind(5, s.accepted_at)
      .bind(6, s.answers_json)
      .bind(7, s.fingerprint)
      .bind(8, s.status);
  if (s.score)
    insert_.bind(9, *s.score);
  else
    insert_.bind_null(9);
  if (s.graded_at)
    insert_.bind(10, *s.graded_at);
  else
    insert_.bind_null(10);
  if (!s.attachments_json.empty())
    insert_.bind(11, s.attachments_json);
  else
    insert_.bind_null(11);
  insert_.run();
  bump_.bind(1, s.exam_id).bind(2, s.accepted_at);
  bump_.run();
}

stored_submission graded_row(const exam_info& exam, const submission& s, std::string receipt_id, time_point accepted_at,
                             std::string fingerprint, time_point graded_at) {
  stored_submission row;
  row.receipt_id = std::move(receipt_id);
  row.idempotency_key = s.idempotency_key;
  row.exam_id = s.exam_id;
  row.student_id = s.student_id;
  row.accepted_at = ingest::format_time(accepted_at);
  row.answers_json = s.answers_json();
  row.fingerprint = std::move(fingerprint);
  row.status = "graded";
  row.score = exam.grade(s.answers);
  row.graded_at = ingest::format_time(graded_at);
  row.attachments_json = s.attachments_json();
  return row;
}

}  // namespace exam
