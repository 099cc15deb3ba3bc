// The graders as their own process, for broker-backed setups (exam_server --queue
// nats://... --workers 0): drains the queue into exam.db or PostgreSQL, one transaction
// per batch.

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <functional>
#include <filesystem>
#include <iostream>
#include <thread>

#include "cli.hpp"
#include "dlq.hpp"
#include "grading.hpp"
#include "pg_store.hpp"
#include "progress.hpp"
#include "audit_cmd.hpp"
#include "reconcile_cmd.hpp"
#include "queue_url.hpp"
#include "run.hpp"
#include "worker_metrics.hpp"

namespace {

// Runs a subcommand with an io_context running on a thread of its own (where the
// queue's completions run); returns its exit code, 2 when it throws.
int with_io(const char* name, const std::function<int(boost::asio::io_context&)>& command) {
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });
  int code = 2;
  try {
    code = command(io);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
  }
  work.reset();
  runner.join();
  return code;
}

// The progress line's figures: what this process wrote, and the queue's counts.
exam::progress_sample sample(const exam::grading_consumer& grader, ingest::durable_queue& queue) {
  exam::progress_sample p;
  p.written = grader.counters().graded.load();
  auto stats = queue.async_stats(boost::asio::use_future);
  try {
    if (stats.wait_for(std::chrono::seconds(1)) == std::future_status::ready) {
      const auto st = stats.get();
      if (st.exact.accepted) p.accepted = st.accepted;
      p.backlog = st.pending;
      p.errors = st.dead_lettered;
    }
  } catch (const std::exception&) {
    // The broker cannot be asked right now (restarting, or the queue closed while
    // draining): the line shows what this process counted itself.
  }
  return p;
}

// The graders' settings from the command line.
struct worker_paths {
  std::string data, queue_url, sink, exams_path, storage, log_level;
  std::string metrics_listen;  // HOST:PORT of GET /metrics (empty: none)
};

// exam_worker itself: drains the queue into the sink until SIGINT/SIGTERM.
int run_graders(worker_paths w, exam::consumer_settings grading) {
  try {
    std::filesystem::create_directories(w.data);
    if (w.queue_url.empty()) w.queue_url = "sqlite://" + w.data + "/queue.db";
    const auto exams = exam::load_exams(w.exams_path);
    boost::asio::io_context io;
    auto queue = exam::open_queue(w.queue_url, io.get_executor());
    auto metrics = std::make_shared<ingest::pipeline_metrics>();
    if (!w.storage.empty())
      grading.storage = exam::open_storage(w.storage);
    exam::grading_consumer grader(*queue, w.sink, exams, grading, metrics,
                                  ingest::json_lines_logger(stderr, ingest::parse_log_level(w.log_level)));
    // Bound before the graders start: an address that cannot be had ends the process
    // before any grader waits on the I/O loop.
    std::unique_ptr<ingest::http::server> metrics_server;
    if (!w.metrics_listen.empty())
      metrics_server = exam::serve_worker_metrics(io, w.metrics_listen, metrics, grader.counters());
    grader.start();
    std::printf("exam_worker: draining %s into %s\n", exam::redact_url(w.queue_url).c_str(),
                exam::redact_url(w.sink).c_str());
    if (metrics_server)
      std::printf("exam_worker: metrics on http://%s:%u/metrics\n", exam::parse_listen(w.metrics_listen).first.c_str(),
                  metrics_server->port());
    std::fflush(stdout);
    exam::progress_meter progress("exam_worker", [&] { return sample(grader, *queue); });
    return exam::run_until_signal(io, 1, [&] {
      if (metrics_server) metrics_server->stop();
      grader.drain();  // the batch in hand commits and is acked; nothing else is taken
      queue->close();
      std::fprintf(stderr, "exam_worker: drained (graded %llu, late %llu)\n",
                   static_cast<unsigned long long>(grader.counters().graded.load()),
                   static_cast<unsigned long long>(grader.counters().late.load()));
      return 0;
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "exam_worker: %s\n", e.what());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  exam::prepare_process();
  std::string data = "data", queue_url, exams_path, log_level = "warning", sink;
  exam::consumer_settings grading;
  CLI::App cli{"exam_worker: grades queued exam submissions into exam.db"};
  cli.add_option("--data", data, "directory of exam.db")->capture_default_str();
  cli.add_option("--queue", queue_url, "queue URL (default: sqlite://DATA/queue.db)");
  cli.add_option("--sink,--db", sink,
                 "submissions database: an SQLite file (default: DATA/exam.db) or postgresql://USER@HOST:PORT/DB");
  cli.add_option("--workers", grading.workers, "grader threads, each with its own connection (PostgreSQL only)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cli.add_option("--exams", exams_path, "exams JSON file (default: the built-in demo exam)");
  cli.add_option("--rate", grading.rate, "rows/s written to exam.db (0: no limit)")->capture_default_str();
  cli.add_option("--batch", grading.max_batch, "rows per transaction at most")->capture_default_str();
  std::string storage;
  cli.add_option("--storage", storage,
                 "S3-compatible storage of the attachments, checked before grading: s3+http[s]://HOST:PORT/BUCKET");
  std::string metrics_listen;
  cli.add_option("--metrics", metrics_listen,
                 "HOST:PORT to serve GET /metrics on (the graders' counters, dead letters by path); none by default");
  cli.add_option("--log-level", log_level, "JSON-lines events on standard error: debug, info, warning, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"debug", "info", "warning", "warn", "error"}));
  exam::dlq_request dlq;
  auto* dlq_cmd = exam::add_dlq_command(cli, dlq);
  exam::reconcile_request rec;
  auto* rec_cmd = exam::add_reconcile_command(cli, rec);
  exam::audit_request audit;
  auto* audit_cmd = exam::add_audit_command(cli, audit);
  CLI11_PARSE(cli, argc, argv);
  if (sink.empty()) sink = data + "/exam.db";
  const auto default_queue = [&] {
    if (queue_url.empty()) {
      std::filesystem::create_directories(data);
      queue_url = "sqlite://" + data + "/queue.db";
    }
    return queue_url;
  };
  if (*rec_cmd)
    return with_io("exam_worker reconcile", [&](boost::asio::io_context& io) {
      // The queue is opened only to re-send.
      auto queue = rec.resend ? exam::open_queue(default_queue(), io.get_executor()) : nullptr;
      const int code = exam::run_reconcile(sink, queue.get(), rec, std::cout, std::cerr);
      if (queue) queue->close();
      return code;
    });
  if (*audit_cmd)
    return exam::run_audit(queue_url.empty() ? "sqlite://" + data + "/queue.db" : queue_url, sink, audit, std::cout,
                           std::cerr);
  if (*dlq_cmd)
    return with_io("exam_worker dlq", [&](boost::asio::io_context& io) {
      auto queue = exam::open_queue(default_queue(), io.get_executor());
      // With PostgreSQL as the sink, the graders' notes follow a replay or a purge.
      std::unique_ptr<exam::submission_reader> notes;
      if (exam::is_postgres_url(sink) && (dlq.action == "replay" || dlq.action == "purge"))
        notes = exam::open_reader(sink);
      const int code = exam::run_dlq(*queue, dlq, std::cout, std::cerr, notes.get());
      queue->close();
      return code;
    });
  return run_graders({data, queue_url, sink, exams_path, storage, log_level, metrics_listen}, grading);
}
