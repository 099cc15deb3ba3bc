#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "engine.hpp"
#include "header_codec.hpp"
#include "ingest/error.hpp"

namespace ingest::sqlite {
namespace {

std::string make_token(std::int64_t seq, std::int64_t lease) {
  return std::to_string(seq) + ':' + std::to_string(lease);
}

}  // namespace

void queue::engine::lease(fetch_op& o, std::int64_t t) {
  if (o.max == 0) return;
  const auto lease_id = static_cast<std::int64_t>(rng() >> 1);
  auto& s = *sql.lease;
  s.bind(1, t)
      .bind(2, static_cast<std::int64_t>(o.max))
      .bind(3, lease_id)
      .bind(4, t + std::chrono::duration_cast<micros>(options.visibility_timeout).count());
  std::vector<std::pair<std::int64_t, delivery>> rows;
  try {
    while (s.step()) {
      delivery d;
      const auto seq = s.column_int(0);
      d.message.receipt_id = s.column_text(1);
      d.message.idempotency_key = s.column_text(2);
      d.message.fingerprint = s.column_text(3);
      d.message.subject = s.column_text(4);
      d.message.payload = s.column_text(5);
      d.message.headers = detail::decode_headers(s.column_text(6));
      d.message.accepted_at = time_from_us(s.column_int(7));
      d.message.attempts = static_cast<std::uint32_t>(s.column_int(8));
      d.first_attempt_at = time_from_us(s.column_int(9));
      d.token = make_token(seq, lease_id);
      rows.emplace_back(seq, std::move(d));
    }
  } catch (...) {
    s.reset();
    throw;
  }
  s.reset();
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [seq, d] : rows) o.result.push_back(std::move(d));
}

// Runs `s` on the delivery named by `token` if its lease still holds; false if not.
bool queue::engine::on_lease(statement& s, const std::string& token, std::int64_t t) {
  std::int64_t seq = 0, lease_id = 0;
  if (!detail::parse_token(token, seq, lease_id)) return false;
  s.bind(1, seq).bind(2, lease_id).bind(3, t);
  return true;
}

void queue::engine::apply_extend(extend_op& o, std::int64_t t) {
  auto& s = *sql.extend;
  for (const auto& token : o.tokens) {
    s.bind(4, t + std::chrono::duration_cast<micros>(o.by).count());
    if (!on_lease(s, token, t)) {
      s.reset();
      o.ec = errc::lease_expired;
      continue;
    }
    s.run();
    if (db.changes() != 1) o.ec = errc::lease_expired;
  }
}

bool queue::engine::any_due() {
  auto& s = *sql.any_due;
  s.bind(1, detail::now_us());
  bool due = false;
  try {
    due = s.step();
  } catch (const ingest::error&) {
    due = true;  // let the transaction report the failure
  }
  s.reset();
  return due;
}

}  // namespace ingest::sqlite
