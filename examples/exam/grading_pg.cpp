// The graders' batch handler on PostgreSQL.

#include "grading.hpp"
#include "ingest/postgres/transactional_handler.hpp"
#include "pg_store.hpp"

namespace exam {

ingest::batch_handler grading_handler(ingest::postgres::connection_pool& pool, const catalog& exams,
                                      std::shared_ptr<grading_counters> counters) {
  {
    auto db = pool.acquire();
    migrate_schema(*db);
  }
  return ingest::postgres::transactional_handler(
      pool, [&exams, counters](ingest::postgres::connection& db, std::span<const ingest::delivery* const> items) {
        std::vector<stored_submission> rows;
        rows.reserve(items.size());
        const auto now = ingest::clock::now();
        for (const auto* d : items) {
          // A bad item throws: the handler then writes the batch one item at a time, and
          // this one alone is dead-lettered with its reason.
          const auto s = submission::from_json(d->message.payload);
          if (!s) throw ingest::permanent_error("payload is not a submission");
          const auto* e = exams.find(s->exam_id);
          if (!e) throw ingest::permanent_error("unknown exam '" + s->exam_id + "'");
          if (e->late(d->message.accepted_at))
            throw ingest::permanent_error("accepted at " + ingest::format_time(d->message.accepted_at) +
                                              ", after the deadline plus grace (" +
                                              ingest::format_time(e->deadline + e->grace) + ")",
                                          "deadline_passed");
          rows.push_back(graded_row(*e, *s, d->message.receipt_id, d->message.accepted_at, d->message.fingerprint, now));
        }
        write_graded(db, rows);
        counters->graded += rows.size();
      });
}

}  // namespace exam
