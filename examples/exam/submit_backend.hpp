#pragma once
// How a submission is stored, as the servers' HTTP layer sees it: a backend takes a
// validated, authorised submission and reports what became of it. It knows nothing of
// HTTP; app.cpp alone turns an outcome into an answer.

#include <boost/asio/any_io_executor.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "exams.hpp"
#include "ingest/detail/callback.hpp"
#include "ingest/durable_queue.hpp"
#include "submission.hpp"

namespace exam {

// What became of one submission.
struct submit_outcome {
  enum class kind {
    queued,      // durably in the queue, to be graded later (202)
    stored,      // written to exam.db and graded (201)
    repeat,      // this key was taken with this body before: the original receipt (200)
    key_reused,  // this key was taken with a different body (422)
    refused,     // `error` says why: deadline_passed, in_flight, or a reason to retry later
  };
  kind what = kind::refused;
  // queued, stored, repeat: the receipt and where the submission is now.
  std::string receipt_id{};
  std::string accepted_at{};
  std::string status{};
  // refused: an ingest::errc; `detail` replaces its message when set.
  ingest::error_code error{};
  std::string detail{};

  static submit_outcome receipt(kind k, std::string id, std::string at, std::string status) {
    return {k, std::move(id), std::move(at), std::move(status), {}, {}};
  }
  static submit_outcome refusal(ingest::error_code ec, std::string detail = {}) {
    return {kind::refused, {}, {}, {}, ec, std::move(detail)};
  }
};

// A submission the queue holds but exam.db does not have yet.
struct unprocessed {
  submission what;
  std::string accepted_at;
  ingest::message_state state = ingest::message_state::pending;
  std::string reason;  // dead letters
};

// Called exactly once with the outcome, from any thread.
using submit_done = ingest::detail::callback<void(submit_outcome)>;

class submit_backend {
 public:
  virtual ~submit_backend() = default;
  // Stores (or refuses) a validated, authorised submission and calls `done` once.
  // `answer_on` is where `done` is cheapest to run (the connection's strand; may be
  // empty). An exception may leave `submit` only before `done` was handed on, so
  // the caller still owes the answer.
  virtual void submit(const exam_info& exam, submission s, boost::asio::any_io_executor answer_on,
                      submit_done done) = 0;
  // Looks up a receipt that the database does not have: nullopt when unknown,
  // errc::not_supported when the backend cannot look receipts up (NATS, SQS, the
  // direct server: the default), another error when the lookup itself failed and may
  // succeed later.
  virtual void find_unprocessed(const std::string& receipt_id,
                                std::function<void(ingest::error_code, std::optional<unprocessed>)> done) {
    (void)receipt_id;
    done(ingest::errc::not_supported, std::nullopt);
  }
  // Moves a dead letter back into the queue: `done(ec, n)` with n = 1 when it was
  // there; not_supported where there are no dead letters (the direct server).
  virtual void replay_dead_letter(const std::string& receipt_id,
                                  std::function<void(ingest::error_code, std::size_t)> done) {
    (void)receipt_id;
    done(ingest::errc::not_supported, 0);
  }
  // A page of the queue's dead letters, in receipt order after `after`: `done(ec,
  // letters)`; not_supported where there are none (the direct server).
  virtual void dead_letters(const std::string& after, std::size_t limit,
                            std::function<void(ingest::error_code, std::vector<ingest::dead_letter>)> done) {
    (void)after;
    (void)limit;
    done(ingest::errc::not_supported, {});
  }
  // The queue's counts as last read (at most a second old): nullopt without a queue
  // (the direct server), or while the queue cannot be read.
  virtual std::optional<ingest::queue_stats> queue_counts() const { return std::nullopt; }
  // Whether submissions wait in a queue (queue_counts then says how many).
  virtual bool has_queue() const { return false; }
  // Whether submissions naming attachments are taken (their files are checked before
  // grading); the direct-insert baseline grades at once and takes none.
  virtual bool takes_attachments() const { return true; }
  virtual bool ready() const = 0;
  // Prometheus text appended to /metrics.
  virtual std::string metrics() const = 0;
};

}  // namespace exam
