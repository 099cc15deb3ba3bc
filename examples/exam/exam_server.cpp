// The queue-based exam server: validate, publish durably, answer 202 with a receipt;
// graders drain the queue into exam.db at their own pace. See examples/README.md.

#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <optional>

#include "app.hpp"
#include "cli.hpp"
#include "grading.hpp"
#include "ingest/producer.hpp"
#include "pg_store.hpp"
#include "queue_backend.hpp"
#include "queue_url.hpp"
#include "run.hpp"

int main(int argc, char** argv) {
  exam::prepare_process();
  exam::server_cli o;
  exam::token_cli t;
  int workers = -1;
  exam::consumer_settings grading;
  std::size_t max_in_flight = 20000;
  CLI::App cli{"exam_server: accepts exam submissions into a durable queue, grades them into exam.db"};
  exam::add_server_options(cli, o, "127.0.0.1:8081", true);
  cli.add_option("--workers", workers,
                 "in-process graders (default: 1 with the embedded queue, 0 with a broker: run exam_worker)");
  cli.add_option("--rate", grading.rate, "rows/s the graders write to exam.db (0: no limit)")->capture_default_str();
  cli.add_option("--batch", grading.max_batch, "rows per exam.db transaction at most")->capture_default_str();
  cli.add_option("--max-in-flight", max_in_flight, "publishes awaiting their durable ack at most (then 503)")
      ->capture_default_str();
  auto* token_cmd = exam::add_token_command(cli, t);
  CLI11_PARSE(cli, argc, argv);
  if (*token_cmd) return exam::run_token(t);

  try {
    const auto setup = exam::prepare_server(o);
    const auto& exams = setup.exams;
    // A commit waits up to 5 ms for more publishes to share its fsync. Each commit
    // costs the writer a fixed share of CPU (WAL frames, fdatasync), so fewer commits
    // leave the cores to the accept path: at 18,000/s the writer took 0.30 of a core
    // with 0.5 ms and 0.18 with 5 ms, for 4 ms more at the median.
    const std::string queue_url = o.queue.empty() ? "sqlite://" + o.data + "/queue.db?commit_linger=5ms" : o.queue;
    const bool embedded = queue_url.starts_with("sqlite://") || queue_url == "memory";
    if (workers < 0) workers = embedded ? 1 : 0;
    const std::string db_path = exam::submissions_db(o);
    if (!exam::is_postgres_url(db_path) && workers > 1)
      throw std::invalid_argument("exam.db takes one grader per process: --workers 0 or 1 (or --db postgresql://...)");
    grading.workers = exam::is_postgres_url(db_path) && workers > 1 ? static_cast<std::size_t>(workers) : 1;

    boost::asio::io_context io;
    auto queue = exam::open_queue(queue_url, io.get_executor());
    auto metrics = std::make_shared<ingest::pipeline_metrics>();
    auto log = ingest::json_lines_logger(stderr, ingest::parse_log_level(o.log_level));
    ingest::producer producer(*queue, {.max_in_flight = max_in_flight,
                                       .max_payload_bytes = o.max_body * 2,
                                       .publish_timeout = std::chrono::seconds(5),
                                       .default_subject = "exam",
                                       .metrics = metrics,
                                       .log = log});
    auto store = exam::open_reader(db_path);  // creates or migrates the tables now
    exam::queue_backend backend(*queue, producer, *store, metrics);
    auto app_options = exam::make_app_options(o, setup.secret);
    // On a broker the same key may be accepted twice (SQS cannot look keys up, NATS
    // forgets them after its window): a later-graded earlier copy then replaces the
    // row, so a graded answer is not final there and is not kept in memory.
    if (!embedded) app_options.graded_cache = 0;
    grading.storage = app_options.storage;  // the graders check the files where they were uploaded
    // Receipt ids any server sharing the key answers for, before the graders write them.
    queue->sign_receipts(app_options.receipts);
    exam::app api(exams, *store, backend, std::move(app_options));
    // With PostgreSQL, one consumer with `workers` threads, each on its own connection.
    std::vector<std::unique_ptr<exam::grading_consumer>> graders;
    if (workers > 0) {
      graders.push_back(std::make_unique<exam::grading_consumer>(*queue, db_path, exams, grading, metrics, log));
      graders.back()->start();
    }
    ingest::http::server server(
        io, exam::make_http_options(o, setup, "exam_server"),
        [&api](auto req, const auto& info, auto respond) { api.handle(std::move(req), info, std::move(respond)); });
    server.start();
    backend.start();
    exam::print_banner("exam_server", exam::server_url(o, setup, server.port()), setup.secret, setup.generated_secret,
                       exams, o.jwt);
    std::printf("queue: %s, graders in this process: %d, submissions: %s\n", exam::redact_url(queue_url).c_str(),
                workers, exam::redact_url(db_path).c_str());
    std::fflush(stdout);

    return exam::run_until_signal(io, o.threads, [&] {
      // Guarantee 8: refuse new work, answer what is in flight, commit what is in hand.
      std::fprintf(stderr, "exam_server: draining\n");
      api.drain();
      server.stop();
      producer.async_drain(boost::asio::use_future).wait();
      for (auto& g : graders) g->drain();
      backend.stop();
      queue->close();
      exam::wait_closed(server);
      const auto ps = producer.stats();
      std::fprintf(stderr, "exam_server: drained (accepted %llu, duplicates %llu, refused %llu; peak RSS %ld KiB)\n",
                   static_cast<unsigned long long>(ps.accepted), static_cast<unsigned long long>(ps.duplicates),
                   static_cast<unsigned long long>(ps.rejected), exam::peak_rss_kib());
      return 0;
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "exam_server: %s\n", e.what());
    return 1;
  }
}
