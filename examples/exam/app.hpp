#pragma once
// The HTTP contract of examples/README.md, shared by exam_server and direct_server:
// routing, authentication, validation, rate limits, the read routes, and the answer
// to every submit outcome. What differs between the two servers (how a submission is
// stored) is a `submit_backend`, which knows nothing of HTTP.

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "exams.hpp"
#include "attachments.hpp"
#include "graded_cache.hpp"
#include "ingest/aws/s3.hpp"
#include "ingest/durable_queue.hpp"
#include "ingest/http/response.hpp"
#include "ingest/http/server.hpp"
#include "ingest/log.hpp"
#include "ingest/receipt_signer.hpp"
#include "jwt.hpp"
#include "limits.hpp"
#include "overview.hpp"
#include "record_batcher.hpp"
#include "status_streams.hpp"
#include "store.hpp"
#include "submission.hpp"
#include "submit_backend.hpp"

namespace exam {

struct app_options {
  std::string jwt_secret{};
  token_checks jwt{};        // iss and aud required of every token, when set
  double student_rate = 10;  // per principal, requests/s (0: off)
  double student_burst = 20;
  double ip_rate = 0;  // per client IP (0: off; every load-test student shares 127.0.0.1)
  double ip_burst = 100;
  std::size_t max_answers = 1000;
  std::size_t max_page = 1000;
  std::shared_ptr<ingest::logger> log{};  // unexpected failures (their text never reaches a client)
  // Verifies the receipt ids the queue signed (any server's): a receipt that is in
  // neither the queue nor the database is answered from its signature. Null: no such
  // answer (a receipt unknown to both is 404).
  std::shared_ptr<const ingest::receipt_signer> receipts{};
  // Threads that run the database reads of GET routes, so that a read waiting on the
  // database never holds up a connection thread (and the submissions behind it on that
  // thread). 0: the reads run on the connection's thread.
  std::size_t read_threads = 4;
  // How much lower the read threads run than the rest (the nice value they add, on
  // Linux): when the cores are short, submissions go first and status reads wait.
  int read_nice = 10;
  // GET /v1/submissions/{id}/events: how often a followed receipt is read again, and
  // how many streams may be open.
  stream_options streams{};
  // Graded answers kept in memory for status reads (graded_cache.hpp); 0: none. Only
  // where a key is accepted once (the embedded queue, the direct server): on a broker
  // an earlier copy of the same key graded later replaces the row.
  std::size_t graded_cache = 50000;
  // GET /v1/overview: how often the counts are sampled, and how many samples the chart keeps.
  overview_options overview{};
  // Where attachments go (POST /v1/exams/{id}/uploads hands out presigned URLs to it,
  // GET /v1/exams/{id}/attachments download URLs). Null: no uploads here (references
  // to files another server issued are still checked and accepted).
  std::shared_ptr<ingest::aws::s3_bucket> storage{};
  std::chrono::seconds upload_expiry{std::chrono::minutes(15)};
  std::chrono::seconds download_expiry{std::chrono::minutes(5)};
};

class app {
 public:
  app(const catalog& exams, submission_reader& store, submit_backend& backend, app_options options);
  // Waits for the reads in progress.
  ~app();

  // The ingest::http handler.
  void handle(ingest::http::request req, const ingest::http::request_info& info, ingest::http::responder respond);
  // Readiness goes false and new submissions get 503 shutting_down.
  void drain() { draining_ = true; }
  // Counts a refused request under `reason` (the error code of its body).
  void reject(std::string_view reason);
  std::string metrics() const;

  // The 202/200/201 body.
  static std::string receipt_json(std::string_view receipt_id, std::string_view accepted_at, std::string_view status);
  static std::string submission_json(const stored_submission& s);
  // GET /v1/exams/{id}: what a page shows before a submission (no answer key).
  // With `uploads` (storage configured), the exam's attachment limits when it takes files.
  static std::string exam_json(const exam_info& e, bool uploads = false);

 private:
  using request = ingest::http::request;
  using responder = ingest::http::responder;
  // Each answers through `respond`, moving it away only to answer later.
  void post_submission(const std::string& exam_id, request req, responder& respond);
  // app_uploads.cpp: a presigned upload URL for a student, a download URL for a teacher.
  void post_upload(const std::string& exam_id, request req, responder& respond);
  void get_attachment(const std::string& exam_id, request req, responder& respond);
  void get_exam(const std::string& exam_id, request req, responder& respond);  // app_pages.cpp
  // app_events.cpp: the status as server-sent events, and the status read they repeat.
  void follow_submission(const std::string& receipt_id, request req, responder& respond);
  void read_status(const std::string& receipt_id, const std::string& authorization,
                   std::function<void(ingest::http::response)> done);
  void get_submission(const std::string& receipt_id, request req, responder& respond);
  void list_submissions(const std::string& exam_id, request req, responder& respond);
  // app_status.cpp: a submission the queue no longer holds (or never could look up),
  // answered from the database's row, the graders' notes and the receipt's signature.
  void answer_from_records(const std::string& receipt_id, const principal& who, const receipt_record& rec,
                           const request& req, responder& respond);
  // What the queue said of a receipt the database had no row for (`first`): its state,
  // or the records, or a second read when it was graded meanwhile.
  void answer_from_queue(const std::string& receipt_id, const principal& who, const receipt_record& first,
                         ingest::error_code ec, const std::optional<unprocessed>& u,
                         const std::shared_ptr<std::pair<request, responder>>& job, request& rq, responder& rs);
  // Runs one step of an answer made off the connection thread; what it throws is
  // answered like an exception thrown in handle().
  void guarded(std::pair<request, responder>& job, const std::function<void(request&, responder&)>& step);
  // A status read the database could not answer: 503, logged.
  void answer_read_failure(const std::string& receipt_id, std::exception_ptr failed, const request& req,
                           responder& respond);
  // app_teacher.cpp: the teachers' overview, an exam's dead letters, and a replay.
  void get_overview(request req, responder& respond);
  void list_dead_letters(const std::string& exam_id, request req, responder& respond);
  void replay_dead_letter(const std::string& exam_id, const std::string& receipt_id, request req, responder& respond);
  struct page_query {
    std::string after{};
    std::size_t limit = 100;
  };
  // True, and answered 429, when `who` is over the per-account rate.
  bool rate_limited(const principal& who, const request& req, responder& respond);
  // The decoded query parameters of the request's target.
  static std::map<std::string, std::string> query_of(const request& req);
  // A Content-Type of application/json (parameters allowed).
  static bool json_body(const request& req);
  // The ?after=&limit= of a paged list, or an answered 400 and nullopt.
  std::optional<page_query> page_of(const request& req, responder& respond);
  // Runs `read(req, respond)` on a read thread (or here when there are none); an
  // exception it throws is answered like one thrown in handle().
  void off_loop(request req, responder& respond, std::function<void(request, responder&)> read);
  // The answer to an exception a route threw (500, or 503 for a database that may be
  // readable in a moment).
  void answer_exception(ingest::http::reply_to to, responder& respond, const std::exception& e);
  // The caller, or an answered 401 and nullopt.
  std::optional<principal> authenticate(const request& req, responder& respond);
  // Routes by path and method (405 with Allow for a method the path does not take).
  void route(request req, const ingest::http::request_info& info, responder& respond);
  // The one place a submit outcome becomes an HTTP answer.
  void answer(ingest::http::reply_to to, responder& respond, const submit_outcome& outcome);
  void fail(ingest::http::reply_to to, responder& respond, ingest::http::status s, std::string_view code,
            std::string_view message, std::chrono::seconds retry_after = std::chrono::seconds(0));

  const catalog& exams_;
  submission_reader& store_;
  submit_backend& backend_;
  app_options options_;
  keyed_limiter per_student_;
  keyed_limiter per_ip_;
  std::atomic<bool> draining_{false};
  mutable std::mutex mutex_;
  std::map<std::string, std::uint64_t, std::less<>> rejected_;
  std::unique_ptr<boost::asio::thread_pool> reads_;  // joined before the rest goes
  record_batcher records_;                           // reads on reads_
  graded_cache graded_;                              // status reads of graded receipts
  upload_keys upload_keys_;                          // issues and checks attachment keys
  std::shared_ptr<status_streams> streams_;          // stopped first: its reads use the rest
  std::atomic<std::uint64_t> accepted_{0};           // new receipts given (queued or stored)
  std::unique_ptr<overview> overview_;               // samples backend_, store_ and accepted_
};

}  // namespace exam
