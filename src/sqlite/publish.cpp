#include <string>
#include <string_view>

#include "engine.hpp"
#include "header_codec.hpp"
#include "ingest/error.hpp"

namespace ingest::sqlite {
namespace {

// Dedup looks keys up by a 64-bit hash kept in memory (see `engine::keys`), not by an
// index in the file: client keys are random (UUIDv4, mostly), and an index of them is
// written all over on every commit, which halved the publish rate. The hash is stored
// in each row so that the map can be rebuilt, and the key text in the row settles
// collisions. FNV-1a: stable across processes and versions, which the file needs.
std::int64_t key_hash(std::string_view key) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<std::int64_t>(h);
}

}  // namespace

// The capacity check's figure: taken from the counters, which every commit keeps,
// because counting the rows on each commit would cost as much as the backlog is long.
std::int64_t queue::engine::pending_count() {
  auto& s = *sql.counters;
  std::int64_t accepted = 0, done = 0;
  while (s.step()) {
    const auto name = s.column_text(0);
    if (name == "accepted")
      accepted = s.column_int(1);
    else if (name == "processed" || name == "dead_lettered" || name == "purged")
      done += s.column_int(1);
  }
  s.reset();
  return accepted - done;
}

void queue::engine::catch_up() {
  auto& s = *sql.new_keys;
  s.bind(1, last_seen_seq);
  try {
    while (s.step()) {
      last_seen_seq = s.column_int(0);
      keys.emplace(s.column_int(1), last_seen_seq);
    }
  } catch (...) {
    s.reset();
    throw;
  }
  s.reset();
}

void queue::engine::erase_key(std::int64_t hash, std::int64_t seq) {
  auto [first, last] = keys.equal_range(hash);
  for (auto it = first; it != last; ++it)
    if (it->second == seq) {
      keys.erase(it);
      return;
    }
}

void queue::engine::apply_publish(publish_op& o, std::int64_t t, deltas& d, std::int64_t& pending_now) {
  auto& m = o.message;
  const auto hash = key_hash(m.idempotency_key);
  auto [first, last] = keys.equal_range(hash);
  for (auto it = first; it != last;) {
    auto& look = *sql.lookup_key;
    look.bind(1, it->second);
    const bool exists = look.step();
    const bool same = exists && look.column_text(3) == m.idempotency_key;
    if (same) {
      if (look.column_text(1) != m.fingerprint)
        o.ec = errc::conflict;
      else
        o.result = receipt{look.column_text(0), m.idempotency_key, time_from_us(look.column_int(2)), true};
    }
    look.reset();
    if (same) return;
    // A row compacted away by another process: forget it.
    it = exists ? std::next(it) : keys.erase(it);
  }
  // The postmark is t: a new message that would carry one after its deadline is
  // refused here, before anything is written.
  if (time_from_us(t) > m.not_after) {
    o.ec = errc::deadline_passed;
    return;
  }
  if (options.max_messages != 0 && pending_now >= static_cast<std::int64_t>(options.max_messages)) {
    o.ec = errc::queue_full;
    return;
  }
  if (o.signer) {
    m.accepted_at = time_from_us(t);
    sign_receipt(o.signer.get(), m);
  }
  auto& ins = *sql.insert;
  ins.bind(1, m.idempotency_key)
      .bind(2, m.receipt_id)
      .bind(3, m.fingerprint)
      .bind(4, m.subject)
      .bind_blob(5, m.payload)
      .bind_blob(6, detail::encode_headers(m.headers))
      .bind(7, t)
      .bind(8, hash);
  ins.run();
  const auto seq = db.last_insert_rowid();
  keys.emplace(hash, seq);
  keys_added.emplace_back(hash, seq);
  last_seen_seq = seq;
  // The message is done with: its strings move into the receipt (allocated by the
  // publishing thread, they are freed there too).
  o.result = receipt{std::move(m.receipt_id), std::move(m.idempotency_key), time_from_us(t), false};
  ++d.accepted;
  if (pending_now >= 0) ++pending_now;
}

}  // namespace ingest::sqlite
