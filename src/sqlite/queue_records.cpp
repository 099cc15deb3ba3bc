#include "ingest/sqlite/queue_records.hpp"

#include <chrono>
#include <limits>

#include "ingest/error.hpp"
#include "ingest/sqlite/database.hpp"

namespace ingest::sqlite {

namespace {

std::int64_t micros(time_point t) {
  if (t == time_point::max()) return std::numeric_limits<std::int64_t>::max();
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

constexpr const char* fields =
    "m.receipt_id, m.fingerprint, m.accepted_at, CASE m.state WHEN 2 THEN 'processed' WHEN 3 THEN 'dead_lettered' "
    "WHEN 4 THEN 'purged' ELSE 'pending' END FROM ingest_messages m";

}  // namespace

struct queue_records::impl {
  explicit impl(const std::string& path)
      : db(path, database_options{.create = false, .read_only = true}),
        page(db, std::string("SELECT ") + fields +
                     " INDEXED BY ingest_messages_receipt WHERE m.receipt_id > ?1 AND m.accepted_at >= ?2 AND "
                     "m.accepted_at < ?3 ORDER BY m.receipt_id LIMIT ?4"),
        find(db, std::string("SELECT ") + fields + " INDEXED BY ingest_messages_receipt WHERE m.receipt_id = ?1") {}

  std::vector<reconcile_record> read(statement& s) {
    std::vector<reconcile_record> out;
    try {
      while (s.step())
        out.push_back({std::string(s.column_text(0)), std::string(s.column_text(1)),
                       time_point(std::chrono::duration_cast<clock::duration>(
                           std::chrono::microseconds(s.column_int(2)))),
                       std::string(s.column_text(3))});
    } catch (...) {
      s.reset();
      throw;
    }
    s.reset();
    return out;
  }

  database db;
  statement page, find;
};

queue_records::queue_records(const std::string& path) {
  try {
    impl_ = std::make_unique<impl>(path);
  } catch (const error& e) {
    if (std::string_view(e.what()).find("no such index") != std::string_view::npos)
      throw error(errc::not_supported, "queue_records: " + path + " has no receipt index (receipt_index=false)");
    throw;
  }
}

queue_records::~queue_records() = default;

std::vector<reconcile_record> queue_records::page(const reconcile_window& window, std::string_view after,
                                                  std::size_t limit) {
  auto& s = impl_->page;
  s.bind(1, after).bind(2, micros(window.from)).bind(3, micros(window.until));
  s.bind(4, static_cast<std::int64_t>(limit));
  return impl_->read(s);
}

std::vector<reconcile_record> queue_records::find(std::span<const std::string> keys) {
  std::vector<reconcile_record> out;
  for (const auto& key : keys) {
    impl_->find.bind(1, key);
    for (auto& r : impl_->read(impl_->find)) out.push_back(std::move(r));
  }
  return out;
}

}  // namespace ingest::sqlite
