#include <string_view>

#include "engine.hpp"

namespace ingest::sqlite {

void queue::engine::flush(const deltas& d) {
  auto add = [&](const char* name, std::int64_t v) {
    if (v == 0) return;
    sql.add_counter->bind(1, std::string_view(name)).bind(2, v);
    sql.add_counter->run();
  };
  add("accepted", d.accepted);
  add("processed", d.processed);
  add("dead_lettered", d.dead);
  add("purged", d.purged);
  add("compacted_processed", d.compacted_processed);
  add("compacted_purged", d.compacted_purged);
}

// Every state is counted on its own: pending and dead letters from their rows,
// processed and purged from their rows plus what compaction removed of them, and
// accepted from its counter, moved only by the transaction that inserts a row. A
// row that vanished behind the queue's back breaks the balance instead of hiding in
// a derived figure.
void queue::engine::read_stats(stats_op& o, std::int64_t t) {
  auto& c = *sql.counters;
  std::int64_t compacted_processed = 0, compacted_purged = 0;
  while (c.step()) {
    const auto name = c.column_text(0);
    const auto v = c.column_int(1);
    if (name == "accepted") o.result.accepted = static_cast<std::uint64_t>(v);
    if (name == "compacted_processed") compacted_processed = v;
    if (name == "compacted_purged") compacted_purged = v;
  }
  c.reset();
  auto& p = *sql.pending_counts;
  p.bind(1, t);
  p.step();
  o.result.pending = static_cast<std::uint64_t>(p.column_int(0));
  o.result.leased = static_cast<std::uint64_t>(p.column_int(1));
  o.result.retrying = static_cast<std::uint64_t>(p.column_int(2));
  p.reset();
  std::int64_t processed = compacted_processed, purged = compacted_purged;
  auto& f = *sql.finished_counts;
  while (f.step()) {
    const auto state = f.column_int(0);
    const auto n = f.column_int(1);
    if (state == st_done) processed += n;
    if (state == st_purged) purged += n;
  }
  f.reset();
  auto& dc = *sql.dead_count;
  dc.step();
  const auto dead = dc.column_int(0);
  dc.reset();
  o.result.processed = static_cast<std::uint64_t>(processed);
  o.result.dead_lettered = static_cast<std::uint64_t>(dead);
  o.result.purged = static_cast<std::uint64_t>(purged);
  o.result.exact = {.accepted = true, .pending = true, .processed = true, .dead_lettered = true, .purged = true};
}

}  // namespace ingest::sqlite
