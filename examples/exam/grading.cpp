#include "grading.hpp"

#include <cstdio>
#include <stdexcept>
#include <thread>

#include "ingest/retry_policy.hpp"
#include "ingest/sqlite/idempotency_store.hpp"
#include "ingest/sqlite/transactional_handler.hpp"
#include "ledger.hpp"
#include "pg_store.hpp"
#include "store.hpp"

namespace exam {

ingest::batch_handler grading_handler(ingest::sqlite::database& db, const catalog& exams,
                                      std::shared_ptr<grading_counters> counters,
                                      std::shared_ptr<attachment_checker> checker) {
  create_schema(db);
  create_copies_table(db);
  auto keys = std::make_shared<ingest::sqlite::idempotency_store>(db);
  auto writer = std::make_shared<store_writer>(db);
  auto copies = std::make_shared<copy_writer>(db);
  auto handler = ingest::sqlite::transactional_handler(
      db, *keys, [&exams, writer, copies, counters](ingest::sqlite::database&, const ingest::delivery& d) {
        const auto s = submission::from_json(d.message.payload);
        if (!s) throw ingest::permanent_error("payload is not a submission");
        const auto* e = exams.find(s->exam_id);
        if (!e) throw ingest::permanent_error("unknown exam '" + s->exam_id + "'");
        const auto path = path_of(d.message);
        // A copy of a direct write: the direct row is authoritative (and its accept
        // time counts); only what the queued path made of it is kept.
        if (path == copy_path::shadow) {
          copies->insert(copy_row(d.message, *s, e, path));
          ++counters->copied;
          return;
        }
        if (e->late(d.message.accepted_at)) {
          // Stored before the broker could tell the key was new (NATS, SQS), postmarked
          // after the deadline: the student was answered 403 and has no receipt. A
          // teacher sees it as a dead letter with this reason, never silently gone.
          throw ingest::permanent_error("accepted at " + ingest::format_time(d.message.accepted_at) +
                                            ", after the deadline plus grace (" +
                                            ingest::format_time(e->deadline + e->grace) + ")",
                                        "deadline_passed");
        }
        writer->insert(graded_row(*e, *s, d.message.receipt_id, d.message.accepted_at, d.message.fingerprint,
                                  ingest::clock::now()));
        ++counters->graded;
        if (path == copy_path::queue) {
          copies->insert(copy_row(d.message, *s, e, path));
          ++counters->copied;
        }
      });
  // The handler owns what it uses; the files are checked outside the transaction.
  return with_attachment_checks(std::move(checker),
                                [handler = std::move(handler), keys, writer, copies](ingest::batch& b) { handler(b); });
}

namespace {

// The dead letter for every server's teachers (pg_store.hpp). The queue holds it
// already; a note that cannot be written after a few tries is reported and skipped
// (`exam_worker dlq list` still shows it).
void record_dead_letter(ingest::postgres::connection_pool& notes, const ingest::dead_letter& d) {
  auto pause = std::chrono::milliseconds(100);
  for (int attempt = 1;; ++attempt) {
    try {
      auto db = notes.acquire();
      note_dead_letter(*db, d);
      return;
    } catch (const std::exception& e) {
      if (attempt == 5) {
        std::fprintf(stderr, "ALERT dead letter receipt=%s not noted in PostgreSQL: %s\n", d.message.receipt_id.c_str(),
                     e.what());
        return;
      }
    }
    std::this_thread::sleep_for(pause);
    pause *= 2;
  }
}

}  // namespace

grading_consumer::grading_consumer(ingest::durable_queue& queue, const std::string& sink, const catalog& exams,
                                   consumer_settings settings, std::shared_ptr<ingest::pipeline_metrics> metrics,
                                   std::shared_ptr<ingest::logger> log)
    : counters_(std::make_shared<grading_counters>()),
      checker_(std::make_shared<attachment_checker>(settings.storage)) {
  const bool postgres = is_postgres_url(sink);
  if (!postgres && settings.workers != 1)
    throw std::invalid_argument("exam.db takes one grader per process (several need PostgreSQL)");
  ingest::consumer_options options{.workers = settings.workers,
                                   .max_batch = settings.max_batch,
                                   .linger = settings.linger,
                                   .max_rate = settings.rate,
                                   .metrics = std::move(metrics),
                                   .log = std::move(log)};
  options.retry.max_attempts = settings.max_attempts;
  if (postgres)
    notes_ = std::make_shared<ingest::postgres::connection_pool>(
        sink, ingest::postgres::pool_options{.size = 1, .connection = {.application_name = "exam_dead_letters"}});
  options.dead_letter.alert = [counters = counters_, notes = notes_](const ingest::dead_letter& d) {
    if (d.reason == "deadline_passed") ++counters->late;
    switch (path_of(d.message)) {
      case copy_path::none:
        ++counters->dead_plain;
        break;
      case copy_path::queue:
        ++counters->dead_queue_path;
        break;
      case copy_path::shadow:
        ++counters->dead_copies;
        break;
    }
    std::fprintf(stderr, "ALERT dead letter receipt=%s key=%s reason=%s attempts=%u error=%s\n",
                 d.message.receipt_id.c_str(), d.message.idempotency_key.c_str(), d.reason.c_str(), d.attempts,
                 d.last_error.c_str());
    if (notes) record_dead_letter(*notes, d);
  };
  ingest::batch_handler handler;
  if (postgres) {
    pool_ = std::make_unique<ingest::postgres::connection_pool>(
        sink,
        ingest::postgres::pool_options{.size = settings.workers, .connection = {.application_name = "exam_grader"}});
    handler = grading_handler(*pool_, exams, counters_, checker_);
  } else {
    db_ = std::make_unique<ingest::sqlite::database>(sink);
    handler = grading_handler(*db_, exams, counters_, checker_);
  }
  consumer_ = std::make_unique<ingest::batching_consumer>(queue, std::move(handler), options);
}

void grading_consumer::drain() {
  consumer_->drain();
}

}  // namespace exam
