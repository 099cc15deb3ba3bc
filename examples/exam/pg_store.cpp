#include "pg_store.hpp"

#include <fmt/format.h>

#include <charconv>
#include <unordered_map>

namespace exam {
namespace pg = ingest::postgres;

namespace {

// Migration n brings the schema from version n-1 to n. Identifiers compare as bytes
// (COLLATE "C"), so that paging by receipt id follows the same order as exam.db.
const char* const migrations[] = {
    R"sql(
CREATE TABLE submissions(
  receipt_id text COLLATE "C" PRIMARY KEY,
  idempotency_key text COLLATE "C" NOT NULL,
  exam_id text COLLATE "C" NOT NULL,
  student_id text COLLATE "C" NOT NULL,
  accepted_at text NOT NULL,
  answers_json text NOT NULL,
  fingerprint text NOT NULL,
  status text NOT NULL,
  score double precision,
  graded_at text,
  UNIQUE(exam_id, student_id, idempotency_key));
CREATE INDEX submissions_by_exam ON submissions(exam_id, receipt_id);
CREATE TABLE exam_stats(
  exam_id text COLLATE "C" PRIMARY KEY,
  submissions bigint NOT NULL DEFAULT 0,
  last_accepted_at text);
)sql",
    // 2: the graders' notes on receipts without a row (what any server answers for them).
    R"sql(
CREATE UNLOGGED TABLE exam_in_hand(
  receipt_id text COLLATE "C" PRIMARY KEY,
  until timestamptz NOT NULL);
CREATE TABLE exam_dead_letters(
  receipt_id text COLLATE "C" PRIMARY KEY,
  exam_id text COLLATE "C" NOT NULL,
  student_id text COLLATE "C" NOT NULL,
  idempotency_key text COLLATE "C" NOT NULL,
  accepted_at text NOT NULL,
  reason text NOT NULL,
  last_error text NOT NULL,
  attempts integer NOT NULL,
  dead_lettered_at text NOT NULL);
CREATE INDEX exam_dead_letters_by_exam ON exam_dead_letters(exam_id, receipt_id);
)sql",
    // 3: receipts of copies not kept (the same key accepted twice, e.g. by two servers
    // on SQS), each pointing at the kept row.
    R"sql(
CREATE TABLE exam_receipt_aliases(
  receipt_id text COLLATE "C" PRIMARY KEY,
  kept_receipt_id text COLLATE "C" NOT NULL);
CREATE INDEX exam_receipt_aliases_by_kept ON exam_receipt_aliases(kept_receipt_id);
)sql",
    // 4: the files a submission names (a JSON array), kept with its row.
    R"sql(
ALTER TABLE submissions ADD COLUMN attachments_json text;
)sql",
    // 5: what the queued path produced beside a direct-write path (ledger.hpp).
    R"sql(
CREATE TABLE queue_copies(
  exam_id text COLLATE "C" NOT NULL,
  student_id text COLLATE "C" NOT NULL,
  idempotency_key text COLLATE "C" NOT NULL,
  path text NOT NULL,
  receipt_id text NOT NULL,
  direct_receipt_id text,
  accepted_at text NOT NULL,
  queued_at text NOT NULL,
  fingerprint text NOT NULL,
  score double precision,
  written_at text NOT NULL,
  PRIMARY KEY(exam_id, student_id, idempotency_key));
CREATE INDEX queue_copies_by_receipt ON queue_copies(receipt_id);
)sql",
};
static_assert(std::size(migrations) == schema_version);

constexpr const char* columns =
    "receipt_id, idempotency_key, exam_id, student_id, accepted_at, answers_json, fingerprint, status, score, "
    "graded_at, attachments_json";
constexpr const char* columns_of_s =
    "s.receipt_id, s.idempotency_key, s.exam_id, s.student_id, s.accepted_at, s.answers_json, s.fingerprint, "
    "s.status, s.score, s.graded_at, s.attachments_json";

// The columns above, from column `at` on.
stored_submission read_row(const pg::result& r, int row, int at = 0) {
  stored_submission s;
  s.receipt_id = r.text(row, at + 0);
  s.idempotency_key = r.text(row, at + 1);
  s.exam_id = r.text(row, at + 2);
  s.student_id = r.text(row, at + 3);
  s.accepted_at = r.text(row, at + 4);
  s.answers_json = r.text(row, at + 5);
  s.fingerprint = r.text(row, at + 6);
  s.status = r.text(row, at + 7);
  if (!r.is_null(row, at + 8)) s.score = std::stod(std::string(r.text(row, at + 8)));
  if (!r.is_null(row, at + 9)) s.graded_at = r.text(row, at + 9);
  if (!r.is_null(row, at + 10)) s.attachments_json = r.text(row, at + 10);
  return s;
}

// A progress_note from `state` and the dead letter's columns, from column `at` on.
progress_note read_note(const pg::result& r, int row, std::string state, int at) {
  progress_note n;
  n.state = std::move(state);
  n.exam_id = r.text(row, at + 0);
  n.student_id = r.text(row, at + 1);
  n.accepted_at = r.text(row, at + 2);
  n.reason = r.text(row, at + 3);
  n.last_error = r.text(row, at + 4);
  n.attempts = r.integer(row, at + 5);
  n.dead_lettered_at = r.text(row, at + 6);
  return n;
}

// Per receipt asked for (and found): its row or the kept row (columns 1-11), else its
// dead letter (12-18), else whether a grader holds it (19). A dead letter wins over a
// note that a grader holds it, as in exam_progress.
const std::string records_statement = fmt::format(
    "SELECT i.id, s.*, d.exam_id, d.student_id, d.accepted_at, d.reason, d.last_error, d.attempts, "
    "d.dead_lettered_at, h.receipt_id IS NOT NULL FROM (SELECT DISTINCT unnest($1::text[]) AS id) i "
    "LEFT JOIN LATERAL (SELECT {} FROM submissions WHERE receipt_id = i.id UNION ALL SELECT {} FROM "
    "exam_receipt_aliases a JOIN submissions s ON s.receipt_id = a.kept_receipt_id WHERE a.receipt_id = i.id "
    "LIMIT 1) s ON true "
    "LEFT JOIN exam_dead_letters d ON s.receipt_id IS NULL AND d.receipt_id = i.id "
    "LEFT JOIN exam_in_hand h ON s.receipt_id IS NULL AND d.receipt_id IS NULL AND h.receipt_id = i.id "
    "AND h.until > now() "
    "WHERE s.receipt_id IS NOT NULL OR d.receipt_id IS NOT NULL OR h.receipt_id IS NOT NULL",
    columns, columns_of_s);

}  // namespace

bool is_postgres_url(const std::string& sink) {
  return sink.starts_with("postgresql://") || sink.starts_with("postgres://");
}

int migrate_schema(pg::connection& db) {
  pg::transaction tx(db);
  db.exec("SELECT pg_advisory_xact_lock(7170617)");  // one migrating process at a time
  db.exec("CREATE TABLE IF NOT EXISTS exam_schema_version(version integer NOT NULL)");
  const auto found = db.exec("SELECT version FROM exam_schema_version");
  const int before = found.rows() == 0 ? 0 : static_cast<int>(found.integer(0, 0));
  if (before > schema_version)
    throw std::runtime_error(
        fmt::format("the exam schema is at version {}, newer than this program's {}", before, schema_version));
  for (int v = before; v < schema_version; ++v) db.exec(migrations[v]);
  if (found.rows() == 0)
    db.exec("INSERT INTO exam_schema_version(version) VALUES ($1)", {schema_version});
  else
    db.exec("UPDATE exam_schema_version SET version = $1", {schema_version});
  tx.commit();
  return before;
}

pg_reader::pg_reader(const std::string& url, std::size_t connections)
    : pool_(url, {.size = connections, .connection = {.application_name = "exam_reader"}}),
      registered_(connections, false) {
  auto db = pool_.acquire();
  migrate_schema(*db);
}

pg::connection_pool::lease pg_reader::acquire() {
  auto db = pool_.acquire();
  // The statements are registered once per connection (its slot is this thread's alone
  // while leased); a read on the accept path formats no SQL.
  if (!registered_[db.slot()]) {
    // A receipt of a copy not kept reads the kept row (the second branch runs only when
    // the first found nothing).
    db->prepare("exam_by_receipt",
                fmt::format("SELECT {} FROM submissions WHERE receipt_id = $1 UNION ALL SELECT {} FROM "
                            "exam_receipt_aliases a JOIN submissions s ON s.receipt_id = a.kept_receipt_id "
                            "WHERE a.receipt_id = $1 LIMIT 1",
                            columns, columns_of_s));
    db->prepare("exam_by_key", fmt::format("SELECT {} FROM submissions WHERE exam_id = $1 AND student_id = $2 AND "
                                           "idempotency_key = $3",
                                           columns));
    db->prepare("exam_list", fmt::format("SELECT {} FROM submissions WHERE exam_id = $1 AND receipt_id > $2 "
                                         "ORDER BY receipt_id LIMIT $3",
                                         columns));
    // A dead letter before a note that a grader holds it (ORDER BY the state's name).
    db->prepare("exam_progress",
                "SELECT 'dead_lettered' AS state, exam_id, student_id, accepted_at, reason, last_error, attempts, "
                "dead_lettered_at FROM exam_dead_letters WHERE receipt_id = $1 UNION ALL "
                "SELECT 'processing', '', '', '', '', '', 0, '' FROM exam_in_hand WHERE receipt_id = $1 "
                "AND until > now() ORDER BY 1 LIMIT 1");
    db->prepare("exam_records", records_statement);
    db->prepare("exam_forget_dead", "DELETE FROM exam_dead_letters WHERE receipt_id = $1 AND dead_lettered_at <= $2");
    registered_[db.slot()] = true;
  }
  return db;
}

std::vector<stored_submission> pg_reader::query(const std::string& statement, std::initializer_list<pg::param> params) {
  auto db = acquire();
  const auto r = db->exec_prepared(statement, params);
  std::vector<stored_submission> out;
  out.reserve(static_cast<std::size_t>(r.rows()));
  for (int row = 0; row < r.rows(); ++row) out.push_back(read_row(r, row));
  return out;
}

std::optional<stored_submission> pg_reader::by_receipt(const std::string& receipt_id) {
  auto rows = query("exam_by_receipt", {receipt_id});
  if (rows.empty()) return std::nullopt;
  return std::move(rows.front());
}

std::optional<stored_submission> pg_reader::by_key(const std::string& exam_id, const std::string& student_id,
                                                   const std::string& key) {
  auto rows = query("exam_by_key", {exam_id, student_id, key});
  if (rows.empty()) return std::nullopt;
  return std::move(rows.front());
}

std::vector<stored_submission> pg_reader::list(const std::string& exam_id, const std::string& after,
                                               std::size_t limit) {
  return query("exam_list", {exam_id, after, static_cast<std::int64_t>(limit)});
}

std::optional<progress_note> pg_reader::progress(const std::string& receipt_id) {
  auto db = acquire();
  const auto r = db->exec_prepared("exam_progress", {receipt_id});
  if (r.rows() == 0) return std::nullopt;
  return read_note(r, 0, std::string(r.text(0, 0)), 1);
}

std::vector<receipt_record> pg_reader::records(std::span<const std::string> receipt_ids) {
  std::vector<receipt_record> out(receipt_ids.size());
  if (receipt_ids.empty()) return out;
  pg::array_literal ids;
  for (const auto& id : receipt_ids) ids.push_back(id);
  auto db = acquire();
  const auto r = db->exec_prepared("exam_records", {ids.str()});
  std::unordered_map<std::string_view, receipt_record> found;
  for (int row = 0; row < r.rows(); ++row) {
    receipt_record rec;
    if (!r.is_null(row, 1))
      rec.row = read_row(r, row, 1);
    else if (!r.is_null(row, 12))
      rec.note = read_note(r, row, "dead_lettered", 12);
    else {
      rec.note.emplace();
      rec.note->state = "processing";
    }
    found.emplace(r.text(row, 0), std::move(rec));
  }
  for (std::size_t i = 0; i < receipt_ids.size(); ++i)
    if (auto f = found.find(receipt_ids[i]); f != found.end()) out[i] = f->second;
  return out;
}

void pg_reader::forget_dead_letter(const std::string& receipt_id, const std::string& at) {
  acquire()->exec_prepared("exam_forget_dead", {receipt_id, at});
}

void pg_reader::forget_dead_letters(const std::string& at) {
  acquire()->exec("DELETE FROM exam_dead_letters WHERE dead_lettered_at <= $1", {at});
}

std::uint64_t pg_reader::written_total() {
  const auto r = acquire()->exec("SELECT coalesce(sum(submissions), 0)::text FROM exam_stats");
  std::uint64_t n = 0;
  const auto text = r.text(0, 0);
  std::from_chars(text.data(), text.data() + text.size(), n);
  return n;
}

void note_in_hand(pg::connection& db, const std::vector<std::string>& receipt_ids, std::chrono::milliseconds lease) {
  if (receipt_ids.empty()) return;
  pg::array_literal ids;
  for (const auto& id : receipt_ids) ids.push_back(id);
  db.prepare("exam_note_in_hand",
             "INSERT INTO exam_in_hand(receipt_id, until) SELECT DISTINCT unnest($1::text[]), "
             "now() + $2 * interval '1 millisecond' ON CONFLICT (receipt_id) DO UPDATE SET until = excluded.until");
  db.exec_prepared("exam_note_in_hand", {ids.str(), static_cast<std::int64_t>(lease.count())});
}

void clear_in_hand(pg::connection& db, const std::vector<std::string>& receipt_ids) {
  if (receipt_ids.empty()) return;
  pg::array_literal ids;
  for (const auto& id : receipt_ids) ids.push_back(id);
  db.prepare("exam_clear_in_hand", "DELETE FROM exam_in_hand WHERE receipt_id = ANY($1::text[])");
  db.exec_prepared("exam_clear_in_hand", {ids.str()});
}

void prune_in_hand(pg::connection& db) {
  db.exec("DELETE FROM exam_in_hand WHERE until < now()");
}

void note_dead_letter(pg::connection& db, const ingest::dead_letter& d) {
  const auto s = submission::from_json(d.message.payload);
  db.prepare("exam_note_dead",
             "WITH released AS (DELETE FROM exam_in_hand WHERE receipt_id = $1) "
             "INSERT INTO exam_dead_letters(receipt_id, exam_id, student_id, idempotency_key, accepted_at, reason, "
             "last_error, attempts, dead_lettered_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
             "ON CONFLICT (receipt_id) DO UPDATE SET reason = excluded.reason, last_error = excluded.last_error, "
             "attempts = excluded.attempts, dead_lettered_at = excluded.dead_lettered_at");
  db.exec_prepared(
      "exam_note_dead",
      {d.message.receipt_id, s ? s->exam_id : std::string(), s ? s->student_id : std::string(),
       s ? s->idempotency_key : d.message.idempotency_key, ingest::format_time(d.message.accepted_at), d.reason,
       d.last_error, static_cast<std::int64_t>(d.attempts), ingest::format_time(d.dead_lettered_at)});
}

void keep_earliest(pg::connection& db, std::span<const ingest::postgres::repeated_item> repeats) {
  db.prepare("exam_kept_row",
             "SELECT receipt_id, accepted_at FROM submissions WHERE exam_id = $1 AND student_id = $2 AND "
             "idempotency_key = $3 FOR UPDATE");
  db.prepare("exam_alias",
             "INSERT INTO exam_receipt_aliases(receipt_id, kept_receipt_id) VALUES ($1, $2) "
             "ON CONFLICT (receipt_id) DO UPDATE SET kept_receipt_id = excluded.kept_receipt_id");
  db.prepare("exam_rekeep", "UPDATE submissions SET receipt_id = $2, accepted_at = $3 WHERE receipt_id = $1");
  db.prepare("exam_realias", "UPDATE exam_receipt_aliases SET kept_receipt_id = $2 WHERE kept_receipt_id = $1");
  for (const auto& r : repeats) {
    const auto& m = r.item->message;
    // A redelivery of the copy that recorded the key: whatever it led to is written
    // (its row, or its alias to a row it did not replace).
    if (r.original_result == m.receipt_id) continue;
    const auto s = submission::from_json(m.payload);
    if (!s) continue;
    const auto kept = db.exec_prepared("exam_kept_row", {s->exam_id, s->student_id, s->idempotency_key});
    if (kept.rows() == 0) continue;
    const std::string kept_id(kept.text(0, 0));
    if (kept_id == m.receipt_id) continue;  // a redelivery of the kept copy
    const std::string kept_at(kept.text(0, 1));
    const auto at = ingest::format_time(m.accepted_at);
    // Milliseconds in the text; within the same one the ids decide (a signed id
    // begins with a UUIDv7 of the accept time to the microsecond).
    if (at < kept_at || (at == kept_at && m.receipt_id < kept_id)) {
      db.exec_prepared("exam_rekeep", {kept_id, m.receipt_id, at});
      db.exec_prepared("exam_realias", {kept_id, m.receipt_id});
      db.exec_prepared("exam_alias", {kept_id, m.receipt_id});
    } else {
      db.exec_prepared("exam_alias", {m.receipt_id, kept_id});
    }
  }
}

void write_graded(pg::connection& db, const std::vector<stored_submission>& rows) {
  if (rows.empty()) return;
  pg::array_literal ids, keys, exams, students, accepted, answers, fps, statuses, scores, graded, files;
  for (const auto& r : rows) {
    ids.push_back(r.receipt_id);
    keys.push_back(r.idempotency_key);
    exams.push_back(r.exam_id);
    students.push_back(r.student_id);
    accepted.push_back(r.accepted_at);
    answers.push_back(r.answers_json);
    fps.push_back(r.fingerprint);
    statuses.push_back(r.status);
    if (r.score)
      scores.push_back(fmt::format("{}", *r.score));
    else
      scores.push_null();
    if (r.graded_at)
      graded.push_back(*r.graded_at);
    else
      graded.push_null();
    if (r.attachments_json.empty())
      files.push_null();
    else
      files.push_back(r.attachments_json);
  }
  db.prepare("exam_insert", fmt::format("INSERT INTO submissions({}) SELECT * FROM unnest($1::text[], $2::text[], "
                                        "$3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], "
                                        "$9::float8[], $10::text[], $11::text[])",
                                        columns));
  // The hot row: one update per exam per batch (per request in the direct server).
  db.prepare("exam_bump",
             "INSERT INTO exam_stats(exam_id, submissions, last_accepted_at) SELECT e, count(*), max(a) "
             "FROM unnest($1::text[], $2::text[]) AS u(e, a) GROUP BY e ORDER BY e "
             "ON CONFLICT (exam_id) DO UPDATE SET submissions = exam_stats.submissions + excluded.submissions, "
             "last_accepted_at = greatest(exam_stats.last_accepted_at, excluded.last_accepted_at)");
  db.exec_prepared("exam_insert", {ids.str(), keys.str(), exams.str(), students.str(), accepted.str(), answers.str(),
                                   fps.str(), statuses.str(), scores.str(), graded.str(), files.str()});
  db.exec_prepared("exam_bump", {exams.str(), accepted.str()});
}

std::unique_ptr<submission_reader> open_reader(const std::string& sink) {
  if (is_postgres_url(sink)) return std::make_unique<pg_reader>(sink, 8);
  auto store = std::make_unique<store_pool>(sink);
  store->with([](store_reader&) { return 0; });  // creates exam.db and its tables now
  return store;
}

}  // namespace exam
