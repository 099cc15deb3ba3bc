#include <map>
#include <string>

#include "engine.hpp"
#include "ingest/error.hpp"

namespace ingest::sqlite {

void queue::engine::apply_settle(settle_op& o, std::int64_t t, deltas& d) {
  // Acks of one fetch share its lease id: one statement acks them all.
  std::map<std::int64_t, std::string> acks;  // lease id -> JSON array of seqs
  std::map<std::int64_t, std::int64_t> ack_counts;
  for (auto& decision : o.decisions) {
    std::int64_t seq = 0, lease_id = 0;
    if (!detail::parse_token(decision.token, seq, lease_id)) {
      o.ec = errc::lease_expired;
      continue;
    }
    if (decision.action == settle_action::ack) {
      auto& list = acks[lease_id];
      list += list.empty() ? "[" : ",";
      list += std::to_string(seq);
      ++ack_counts[lease_id];
      continue;
    }
    statement& s = decision.action == settle_action::retry ? *sql.retry : *sql.dead;
    if (decision.action == settle_action::retry)
      s.bind(4, t + std::chrono::duration_cast<micros>(decision.delay).count()).bind(5, decision.last_error);
    else
      s.bind(4, decision.last_error);
    s.bind(1, seq).bind(2, lease_id).bind(3, t);
    s.run();
    if (db.changes() != 1) {
      o.ec = errc::lease_expired;
      continue;
    }
    if (decision.action == settle_action::dead_letter) {
      auto& row = *sql.dead_row;
      row.bind(1, seq).bind(2, decision.reason).bind(3, decision.last_error).bind(4, t);
      row.run();
      ++d.dead;
    }
  }
  for (auto& [lease_id, list] : acks) {
    list += "]";
    auto& s = *sql.ack;
    s.bind(1, list).bind(2, lease_id).bind(3, t);
    s.run();
    const auto acked = db.changes();
    d.processed += acked;
    if (acked != ack_counts[lease_id]) o.ec = errc::lease_expired;
  }
}

}  // namespace ingest::sqlite
