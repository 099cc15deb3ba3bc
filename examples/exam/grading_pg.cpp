// The graders' batch handler on PostgreSQL.

#include <mutex>

#include "grading.hpp"
#include "ingest/postgres/transactional_handler.hpp"
#include "ledger.hpp"
#include "pg_store.hpp"

namespace exam {

namespace {

// `write`, with a note for every server that the batch is in hand ("processing"): one
// statement on an unlogged table, outside the batch's transaction (which would show it
// only once the rows are there). A note that cannot be written is skipped: the batch's
// own transaction meets the same trouble and is retried.
ingest::batch_handler with_in_hand_notes(ingest::postgres::connection_pool& pool, ingest::batch_handler write) {
  struct pruning {
    std::mutex mutex;
    std::chrono::steady_clock::time_point next{};
  };
  auto prune = std::make_shared<pruning>();
  return [&pool, write = std::move(write), prune](ingest::batch& b) {
    std::vector<std::string> ids;
    ids.reserve(b.size());
    for (const auto& d : b) ids.push_back(d.message.receipt_id);
    try {
      auto db = pool.acquire();
      note_in_hand(*db, ids, in_hand_lease);
      bool due = false;
      {
        std::lock_guard lock(prune->mutex);
        const auto now = std::chrono::steady_clock::now();
        if (now >= prune->next) {
          prune->next = now + std::chrono::minutes(1);
          due = true;
        }
      }
      if (due) prune_in_hand(*db);
    } catch (const std::exception&) {
    }
    // Items not written are "received" again while they wait for their retry (a
    // dead letter's own note replaces the note too). Best effort, like the note.
    auto release = [&pool](const std::vector<std::string>& gone) {
      try {
        auto db = pool.acquire();
        clear_in_hand(*db, gone);
      } catch (const std::exception&) {
      }
    };
    try {
      write(b);
    } catch (...) {
      release(ids);
      throw;
    }
    std::vector<std::string> not_written;
    for (std::size_t i = 0; i < b.size(); ++i)
      if (b.outcome(i) != ingest::item_outcome::ok) not_written.push_back(ids[i]);
    release(not_written);
  };
}

}  // namespace

ingest::batch_handler grading_handler(ingest::postgres::connection_pool& pool, const catalog& exams,
                                      std::shared_ptr<grading_counters> counters,
                                      std::shared_ptr<attachment_checker> checker) {
  {
    auto db = pool.acquire();
    migrate_schema(*db);
  }
  auto write = ingest::postgres::transactional_handler(
      pool,
      [&exams, counters](ingest::postgres::connection& db, std::span<const ingest::delivery* const> items) {
        std::vector<stored_submission> rows, queue_rows;
        std::vector<queue_copy> copies;
        rows.reserve(items.size());
        const auto now = ingest::clock::now();
        for (const auto* d : items) {
          // A bad item throws: the handler then writes the batch one item at a time, and
          // this one alone is dead-lettered with its reason.
          const auto s = submission::from_json(d->message.payload);
          if (!s) throw ingest::permanent_error("payload is not a submission");
          const auto* e = exams.find(s->exam_id);
          if (!e) throw ingest::permanent_error("unknown exam '" + s->exam_id + "'");
          const auto path = path_of(d->message);
          // A copy of a direct write: its row is authoritative (ledger.hpp).
          if (path == copy_path::shadow) {
            copies.push_back(copy_row(d->message, *s, e, path));
            continue;
          }
          if (e->late(d->message.accepted_at))
            throw ingest::permanent_error("accepted at " + ingest::format_time(d->message.accepted_at) +
                                              ", after the deadline plus grace (" +
                                              ingest::format_time(e->deadline + e->grace) + ")",
                                          "deadline_passed");
          (path == copy_path::queue ? queue_rows : rows)
              .push_back(graded_row(*e, *s, d->message.receipt_id, d->message.accepted_at, d->message.fingerprint,
                                    now));
          if (path == copy_path::queue) copies.push_back(copy_row(d->message, *s, e, path));
        }
        keep_direct_rows(db, queue_rows);
        rows.insert(rows.end(), queue_rows.begin(), queue_rows.end());
        write_graded(db, rows);
        write_copies(db, copies);
        counters->graded += rows.size();
        counters->copied += copies.size();
      },
      {.repeats = keep_earliest});
  // "processing" while the files are checked too.
  return with_in_hand_notes(pool, with_attachment_checks(std::move(checker), std::move(write)));
}

}  // namespace exam
