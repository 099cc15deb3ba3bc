#include "reconcile_sources.hpp"

#include <fmt/format.h>

#include "ingest/postgres/connection.hpp"
#include "ingest/sqlite/database.hpp"
#include "ingest/error.hpp"
#include "pg_store.hpp"

namespace exam {

namespace {

constexpr char sep = '\x1f';

const char* table_name(rows_table t) {
  return t == rows_table::submissions ? "submissions" : "queue_copies";
}

// The window's bounds as the tables write times (RFC 3339, milliseconds, UTC), which
// compare as text; the end of time as a string after every date.
std::pair<std::string, std::string> bounds(const ingest::reconcile_window& w) {
  return {ingest::format_time(w.from), w.until == ingest::time_point::max() ? "~" : ingest::format_time(w.until)};
}

ingest::reconcile_record record(std::string_view exam, std::string_view student, std::string_view key,
                                std::string fingerprint, std::string_view at, std::string score) {
  return {join_key(exam, student, key), std::move(fingerprint), ingest::parse_time(at), std::move(score)};
}

constexpr const char* fields = "exam_id, student_id, idempotency_key, fingerprint, accepted_at, score";

class sqlite_rows final : public ingest::record_source {
 public:
  sqlite_rows(const std::string& path, rows_table t)
      : db_(prepare(path)),
        page_(db_, fmt::format("SELECT {} FROM {} WHERE accepted_at >= ?1 AND accepted_at < ?2 AND "
                               "(exam_id, student_id, idempotency_key) > (?3, ?4, ?5) "
                               "ORDER BY exam_id, student_id, idempotency_key LIMIT ?6",
                               fields, table_name(t))),
        find_(db_, fmt::format("SELECT {} FROM {} WHERE exam_id = ?1 AND student_id = ?2 AND idempotency_key = ?3",
                               fields, table_name(t))) {}

  std::vector<ingest::reconcile_record> page(const ingest::reconcile_window& w, std::string_view after,
                                             std::size_t limit) override {
    const auto [from, until] = bounds(w);
    const auto k = split_key(after);
    page_.bind(1, from).bind(2, until).bind(3, k.exam_id).bind(4, k.student_id).bind(5, k.idempotency_key);
    page_.bind(6, static_cast<std::int64_t>(limit));
    return read(page_);
  }

  std::vector<ingest::reconcile_record> find(std::span<const std::string> keys) override {
    std::vector<ingest::reconcile_record> out;
    for (const auto& key : keys) {
      const auto k = split_key(key);
      find_.bind(1, k.exam_id).bind(2, k.student_id).bind(3, k.idempotency_key);
      for (auto& r : read(find_)) out.push_back(std::move(r));
    }
    return out;
  }

 private:
  // Reads only: a file without queue_copies (no grader of this version has run on it)
  // is refused, not changed.
  static ingest::sqlite::database prepare(const std::string& path) {
    ingest::sqlite::database db(path, {.create = false, .read_only = true});
    ingest::sqlite::statement has(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('submissions', 'queue_copies')");
    if (!has.step() || has.column_int(0) != 2)
      throw ingest::error(ingest::errc::invalid_config,
                          path + " has no submissions or queue_copies table (no grader of this version has run on it)");
    return db;
  }

  std::vector<ingest::reconcile_record> read(ingest::sqlite::statement& s) {
    std::vector<ingest::reconcile_record> out;
    try {
      while (s.step())
        out.push_back(record(s.column_text(0), s.column_text(1), s.column_text(2), std::string(s.column_text(3)),
                             s.column_text(4), s.column_is_null(5) ? "" : fmt::format("{}", s.column_double(5))));
    } catch (...) {
      s.reset();
      throw;
    }
    s.reset();
    return out;
  }

  ingest::sqlite::database db_;
  ingest::sqlite::statement page_, find_;
};

class pg_rows final : public ingest::record_source {
 public:
  // Reads only: a database whose schema predates queue_copies is refused, not migrated.
  pg_rows(const std::string& url, rows_table t) : db_(url), table_(table_name(t)) {
    int version = 0;
    if (db_.exec("SELECT to_regclass('exam_schema_version') IS NOT NULL").text(0, 0) == "t")
      version = static_cast<int>(db_.exec("SELECT coalesce(max(version), 0) FROM exam_schema_version").integer(0, 0));
    if (version < 5)
      throw ingest::error(ingest::errc::invalid_config,
                          fmt::format("the exam schema is at version {}: queue_copies comes with version 5 "
                                      "(start exam_worker of this version once)",
                                      version));
  }

  std::vector<ingest::reconcile_record> page(const ingest::reconcile_window& w, std::string_view after,
                                             std::size_t limit) override {
    const auto [from, until] = bounds(w);
    const auto k = split_key(after);
    const auto n = std::to_string(limit);
    // The times compare as text byte by byte, whatever the database's collation.
    return read(db_.exec(fmt::format("SELECT {} FROM {} WHERE accepted_at >= $1 COLLATE \"C\" AND "
                                     "accepted_at < $2 COLLATE \"C\" AND "
                                     "(exam_id, student_id, idempotency_key) > ($3, $4, $5) "
                                     "ORDER BY exam_id, student_id, idempotency_key LIMIT $6",
                                     fields, table_),
                         {from, until, k.exam_id, k.student_id, k.idempotency_key, n}));
  }

  // In slices of 500 keys: with a few thousand, PostgreSQL 15 hashes the whole table
  // for each lookup instead of probing its index (measured: 4x slower at 5,000 a page).
  std::vector<ingest::reconcile_record> find(std::span<const std::string> keys) override {
    std::vector<ingest::reconcile_record> out;
    for (std::size_t from = 0; from < keys.size(); from += 500) {
      ingest::postgres::array_literal exams, students, ids;
      for (const auto& key : keys.subspan(from, std::min<std::size_t>(500, keys.size() - from))) {
        auto k = split_key(key);
        exams.push_back(k.exam_id);
        students.push_back(k.student_id);
        ids.push_back(k.idempotency_key);
      }
      for (auto& r : read(db_.exec(fmt::format("SELECT t.exam_id, t.student_id, t.idempotency_key, t.fingerprint, "
                                               "t.accepted_at, t.score FROM unnest($1::text[], $2::text[], "
                                               "$3::text[]) AS k(e, s, i) JOIN {} t ON t.exam_id = k.e AND "
                                               "t.student_id = k.s AND t.idempotency_key = k.i",
                                               table_),
                                   {exams.str(), students.str(), ids.str()})))
        out.push_back(std::move(r));
    }
    return out;
  }

 private:
  static std::vector<ingest::reconcile_record> read(const ingest::postgres::result& r) {
    std::vector<ingest::reconcile_record> out;
    out.reserve(r.rows());
    for (int i = 0; i < r.rows(); ++i) {
      std::string score;
      if (!r.is_null(i, 5)) score = fmt::format("{}", std::stod(std::string(r.text(i, 5))));
      out.push_back(record(r.text(i, 0), r.text(i, 1), r.text(i, 2), std::string(r.text(i, 3)), r.text(i, 4),
                           std::move(score)));
    }
    return out;
  }

  ingest::postgres::connection db_;
  std::string table_;
};

}  // namespace

std::string join_key(std::string_view exam_id, std::string_view student_id, std::string_view key) {
  std::string out;
  out.reserve(exam_id.size() + student_id.size() + key.size() + 2);
  out.append(exam_id).push_back(sep);
  out.append(student_id).push_back(sep);
  out.append(key);
  return out;
}

row_key split_key(std::string_view key) {
  row_key k;
  const auto a = key.find(sep);
  if (a == std::string_view::npos) {
    k.exam_id = key;
    return k;
  }
  const auto b = key.find(sep, a + 1);
  k.exam_id = key.substr(0, a);
  k.student_id = key.substr(a + 1, b == std::string_view::npos ? std::string_view::npos : b - a - 1);
  if (b != std::string_view::npos) k.idempotency_key = key.substr(b + 1);
  return k;
}

bool same_submission(const ingest::reconcile_record& truth, const ingest::reconcile_record& copy) {
  return truth.fingerprint == copy.fingerprint && truth.detail == copy.detail;
}

std::unique_ptr<ingest::record_source> open_rows(const std::string& sink, rows_table table) {
  if (is_postgres_url(sink)) return std::make_unique<pg_rows>(sink, table);
  return std::make_unique<sqlite_rows>(sink, table);
}

}  // namespace exam
