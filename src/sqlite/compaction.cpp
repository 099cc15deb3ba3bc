#include <cstddef>

#include "engine.hpp"

namespace ingest::sqlite {

// The last seq accepted before `cutoff`, found by bisecting on seq (accepted_at
// grows with seq), or 0 when there is none. About 20 point lookups, no scan.
std::int64_t queue::engine::last_seq_before(std::int64_t cutoff) {
  auto& b = *sql.seq_bounds;
  b.step();
  std::int64_t lo = b.column_int(0), hi = b.column_int(1);
  b.reset();
  std::int64_t found = 0;
  auto& at = *sql.accepted_at_or_after;
  while (lo <= hi && lo > 0) {
    const auto mid = lo + (hi - lo) / 2;
    at.bind(1, mid);
    const bool row = at.step();
    const auto seq = row ? at.column_int(0) : 0;
    const auto accepted = row ? at.column_int(1) : 0;
    at.reset();
    if (!row || seq > hi) {
      hi = mid - 1;
    } else if (accepted < cutoff) {
      found = seq;
      lo = seq + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

// Deletes finished (processed or purged) rows accepted more than dedup_window ago,
// oldest first. Unfinished rows (pending, dead letters) are never compacted.
void queue::engine::compact_rows(std::int64_t t, deltas& d) {
  const auto bound = last_seq_before(t - std::chrono::duration_cast<micros>(options.dedup_window).count());
  if (bound == 0) return;
  auto& s = *sql.compact;
  s.bind(1, bound).bind(2, static_cast<std::int64_t>(options.compaction_batch));
  std::size_t removed = 0;
  try {
    while (s.step()) {
      keys_removed.emplace_back(s.column_int(1), s.column_int(0));
      ++(s.column_int(2) == st_done ? d.compacted_processed : d.compacted_purged);
      ++removed;
    }
  } catch (...) {
    s.reset();
    throw;
  }
  s.reset();
  compacted_full = removed == options.compaction_batch;
  // Now and then, drop the keys of rows that another process compacted away (once
  // this transaction has committed: its own deletes count only then).
  if (++compactions % 64 == 0) {
    auto& m = *sql.min_seq;
    m.step();
    sweep_below = m.column_int(0);
    m.reset();
  }
}

}  // namespace ingest::sqlite
