#include <string>
#include <utility>

#include "engine.hpp"
#include "header_codec.hpp"
#include "ingest/error.hpp"

namespace ingest::sqlite {

void queue::engine::apply_replay(replay_op& o, std::int64_t t, deltas& d) {
  if (o.ids.empty()) {
    auto& all = *sql.all_dead;
    while (all.step()) o.ids.push_back(all.column_text(0));
    all.reset();
  }
  for (const auto& id : o.ids) {
    auto& find = *sql.dead_seq;
    find.bind(1, id);
    const bool found = find.step();
    const auto seq = found ? find.column_int(0) : 0;
    find.reset();
    if (!found) continue;
    auto& move = o.purge ? *sql.purge : *sql.replay;
    move.bind(1, seq).bind(2, t);
    move.run();
    if (db.changes() != 1) continue;
    auto& drop = *sql.drop_dead;
    drop.bind(1, id);
    drop.run();
    --d.dead;
    if (o.purge) ++d.purged;
    ++o.result;
  }
}

void queue::engine::read_message(find_op& o, std::int64_t now) {
  auto& s = *sql.find;
  s.bind(1, o.receipt_id);
  try {
    if (!s.step()) {
      o.ec = errc::not_found;
    } else {
      auto& m = o.result.message;
      m.receipt_id = s.column_text(0);
      m.idempotency_key = s.column_text(1);
      m.fingerprint = s.column_text(2);
      m.subject = s.column_text(3);
      m.payload = s.column_text(4);
      m.headers = detail::decode_headers(s.column_text(5));
      m.accepted_at = time_from_us(s.column_int(6));
      m.attempts = static_cast<std::uint32_t>(s.column_int(9));
      o.result.last_error = s.column_text(10);
      o.result.reason = s.column_text(11);
      switch (s.column_int(7)) {
        case 0:
          o.result.state = message_state::pending;
          break;
        case 1:  // a lapsed lease is deliverable again
          o.result.state = s.column_int(8) > now ? message_state::leased : message_state::pending;
          break;
        case 2:
          o.result.state = message_state::processed;
          break;
        default:
          o.result.state = message_state::dead_lettered;
      }
    }
  } catch (...) {
    s.reset();
    throw;
  }
  s.reset();
}

void queue::engine::read_dead_letters(list_op& o) {
  auto& s = *sql.list;
  s.bind(1, o.after).bind(2, static_cast<std::int64_t>(o.limit));
  try {
    while (s.step()) {
      dead_letter l;
      l.message.receipt_id = s.column_text(0);
      l.reason = s.column_text(1);
      l.last_error = s.column_text(2);
      l.attempts = static_cast<std::uint32_t>(s.column_int(3));
      l.first_attempt_at = time_from_us(s.column_int(4));
      l.last_attempt_at = time_from_us(s.column_int(5));
      l.dead_lettered_at = time_from_us(s.column_int(6));
      l.message.idempotency_key = s.column_text(7);
      l.message.fingerprint = s.column_text(8);
      l.message.subject = s.column_text(9);
      l.message.payload = s.column_text(10);
      l.message.headers = detail::decode_headers(s.column_text(11));
      l.message.accepted_at = time_from_us(s.column_int(12));
      l.message.attempts = l.attempts;
      o.result.push_back(std::move(l));
    }
  } catch (...) {
    s.reset();
    throw;
  }
  s.reset();
}

}  // namespace ingest::sqlite
