#include "audit.hpp"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <map>
#include <mutex>

#include "ingest/error.hpp"
#include "jwt.hpp"

namespace spike {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using namespace std::chrono_literals;

row_counter::row_counter(ingest::sqlite::database& db, const std::string& prefix)
    : prefix_(prefix),
      end_(prefix + "\x7f"),
      count_(db,
             "SELECT count(*) FILTER (WHERE idempotency_key >= ?2 AND idempotency_key < ?3),"
             " coalesce(max(rowid), ?1) FROM submissions WHERE rowid > ?1") {}

std::int64_t row_counter::total() {
  count_.bind(1, last_rowid_).bind(2, prefix_).bind(3, end_);
  count_.step();
  total_ += count_.column_int(0);
  last_rowid_ = count_.column_int(1);
  count_.reset();
  return total_;
}

namespace {

class sqlite_rows final : public row_source {
 public:
  sqlite_rows(const std::string& path, const std::string& prefix)
      : db_(path, {.create = false, .read_only = true, .wal = false, .synchronous_full = false}),
        counter_(db_, prefix),
        prefix_(prefix) {}
  std::int64_t count() override { return counter_.total(); }
  std::vector<std::pair<std::string, std::string>> rows() override {
    ingest::sqlite::statement s(db_,
                                "SELECT idempotency_key, receipt_id FROM submissions WHERE idempotency_key >= ?1 AND "
                                "idempotency_key < ?2");
    s.bind(1, prefix_).bind(2, prefix_ + "\x7f");
    std::vector<std::pair<std::string, std::string>> out;
    while (s.step()) out.emplace_back(s.column_text(0), s.column_text(1));
    return out;
  }

 private:
  ingest::sqlite::database db_;
  row_counter counter_;
  std::string prefix_;
};

// PostgreSQL: each count scans this run's key range (no rowid to resume from). While
// the server cannot be reached (a fault test restarts it) the last count stands.
class postgres_rows final : public row_source {
 public:
  postgres_rows(const std::string& url, const std::string& prefix)
      : db_(url, {.application_name = "spike_audit"}), prefix_(prefix), end_(prefix + "\x7f") {}
  std::int64_t count() override {
    try {
      db_.ensure_open();
      last_ = db_.exec("SELECT count(*) FROM submissions WHERE idempotency_key >= $1 AND idempotency_key < $2",
                       {prefix_, end_})
                  .integer(0, 0);
    } catch (const ingest::error&) {
      db_.close();  // connected again at the next count
    }
    return last_;
  }
  std::vector<std::pair<std::string, std::string>> rows() override {
    db_.ensure_open();
    const auto r = db_.exec(
        "SELECT idempotency_key, receipt_id FROM submissions WHERE idempotency_key >= $1 AND idempotency_key < $2",
        {prefix_, end_});
    std::vector<std::pair<std::string, std::string>> out;
    for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.text(i, 0), r.text(i, 1));
    return out;
  }

 private:
  ingest::postgres::connection db_;
  std::string prefix_, end_;
  std::int64_t last_ = 0;
};

audit_result audit_rows(row_source& db, results& r) {
  audit_result a;
  std::map<std::string, std::vector<std::string>> rows_by_key;
  for (auto& [key, id] : db.rows()) {
    rows_by_key[key].push_back(id);
    ++a.rows;
  }
  std::lock_guard lock(r.mutex);
  a.receipts = static_cast<std::int64_t>(r.receipts.size());
  for (const auto& [key, id] : r.receipts) {
    auto it = rows_by_key.find(key);
    if (it == rows_by_key.end() || std::find(it->second.begin(), it->second.end(), id) == it->second.end())
      a.missing.push_back(id);
  }
  for (const auto& [key, ids] : rows_by_key) {
    if (ids.size() > 1) a.duplicated += static_cast<std::int64_t>(ids.size() - 1);
    auto it = r.receipts.find(key);
    for (const auto& id : ids)
      if (it == r.receipts.end() || it->second != id) ++a.unreceipted;
  }
  a.duplicated += static_cast<std::int64_t>(r.mismatched.load());
  return a;
}

// A receipt with no row: asks the server (as a teacher) where it is. Every receipt
// must be in exactly one state: graded (a row), pending, or dead-lettered.
void classify_missing(audit_result& a, const settings& s, const boost::asio::ip::tcp::endpoint& ep) {
  if (a.missing.empty()) return;
  const auto teacher =
      exam::mint_token({"spike-auditor", exam::role::teacher, std::chrono::system_clock::now() + std::chrono::hours(1)},
                       s.secret, s.jwt);
  boost::asio::io_context io;
  beast::tcp_stream stream(io);
  beast::error_code ec;
  stream.connect(ep, ec);
  beast::flat_buffer buffer;
  for (const auto& id : a.missing) {
    int status = 0;
    std::string body;
    // 503: the server could not read its queue just now; asked again a few times.
    for (int attempt = 0; attempt < 5 && !ec && (status == 0 || status == 503); ++attempt) {
      if (status == 503) std::this_thread::sleep_for(std::chrono::seconds(1));
      bhttp::request<bhttp::empty_body> req{bhttp::verb::get, "/v1/submissions/" + id, 11};
      req.set(bhttp::field::host, "127.0.0.1");
      req.set(bhttp::field::authorization, "Bearer " + teacher);
      bhttp::write(stream, req, ec);
      bhttp::response<bhttp::string_body> res;
      if (!ec) bhttp::read(stream, buffer, res, ec);
      if (!ec) {
        status = static_cast<int>(res.result_int());
        body = res.body();
      }
    }
    if (status == 200 && body.find("\"dead_lettered\"") != std::string::npos)
      ++a.dead_lettered;
    else if (status == 200)
      ++a.pending;  // received or processing (or graded since the check: counted as pending)
    else
      ++a.lost;
  }
}

}  // namespace

void db_watch::open(const std::string& path, const std::string& prefix) {
  prefix_ = prefix;
  if (path.starts_with("postgresql://") || path.starts_with("postgres://"))
    source_ = std::make_unique<postgres_rows>(path, prefix);
  else
    source_ = std::make_unique<sqlite_rows>(path, prefix);
  rows_before_ = source_->count();
}

void db_watch::start(const settings& s, results& r) {
  if (source_) watcher_ = std::thread([this, &s, &r] { watch(s, r); });
}

void db_watch::watch(const settings& s, results& r) {
  std::this_thread::sleep_until(r.t0);
  std::optional<steady::time_point> give_up;  // set when the flood is over
  auto tick = r.t0;
  while (true) {
    const auto rows = source_->count() - rows_before_;
    written_.push_back(rows);
    rows_now_ = rows;
    if (flood_done_) {
      if (!give_up)
        give_up = steady::now() +
                  std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(s.drain_timeout_s));
      std::lock_guard lock(r.mutex);
      if (rows >= static_cast<std::int64_t>(r.receipts.size())) {
        drain_seconds_ = std::chrono::duration<double>(steady::now() - r.last_accept).count();
        break;
      }
      if (steady::now() > *give_up) break;
    }
    tick += 100ms;
    std::this_thread::sleep_until(tick);
  }
}

void db_watch::stop() {
  flood_done_ = true;
  if (watcher_.joinable()) watcher_.join();
}

audit_result db_watch::audit(const settings& s, results& r, const boost::asio::ip::tcp::endpoint& ep) {
  audit_result a;
  if (source_) {
    a = audit_rows(*source_, r);
    classify_missing(a, s, ep);
  }
  return a;
}

}  // namespace spike
