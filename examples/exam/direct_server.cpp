// The direct-insert baseline: every request writes exam.db (WAL, synchronous=FULL) or
// PostgreSQL inside its own transaction on a connection from a bounded pool, bumps the
// exam's exam_stats row, grades, commits, and only then answers 201.

#include <boost/asio/use_future.hpp>
#include <cstdio>

#include "app.hpp"
#include "cli.hpp"
#include "direct.hpp"
#include "direct_pg.hpp"
#include "ingest/shadow_producer.hpp"
#include "pg_store.hpp"
#include "queue_url.hpp"
#include "run.hpp"
#include "shadow_backend.hpp"

int main(int argc, char** argv) {
  exam::prepare_process();
  exam::server_cli o;
  exam::token_cli t;
  exam::direct_settings db;
  std::size_t pool = 0;
  CLI::App cli{"direct_server: writes each exam submission to its database inside the request (the baseline)"};
  exam::add_server_options(cli, o, "127.0.0.1:8080", false);
  cli.add_option("--pool,--pool-size", pool,
                 "database connections and threads (default: 8 for exam.db, 100 for PostgreSQL)")
      ->check(CLI::Range(1, 1000));
  std::string shadow_url;
  cli.add_option("--shadow-queue", shadow_url,
                 "dual write: also publish a copy of every stored submission to this queue URL (sqlite://, "
                 "nats://, sqs+http://), for exam_worker to keep in queue_copies and reconcile");
  auto* token_cmd = exam::add_token_command(cli, t);
  CLI11_PARSE(cli, argc, argv);
  if (*token_cmd) return exam::run_token(t);

  try {
    const auto setup = exam::prepare_server(o);
    const std::string db_path = exam::submissions_db(o);
    const bool postgres = exam::is_postgres_url(db_path);
    db.pool_size = pool ? pool : postgres ? 100 : 8;

    boost::asio::io_context io;
    auto store = exam::open_reader(db_path);
    std::unique_ptr<exam::submit_backend> backend;
    if (postgres)
      backend = std::make_unique<exam::pg_direct_backend>(db_path, db);
    else
      backend = std::make_unique<exam::direct_backend>(db_path, db);
    // Dual write: the copies go through their own producer, in the background.
    std::unique_ptr<ingest::durable_queue> shadow_queue;
    std::unique_ptr<ingest::producer> shadow_producer;
    std::unique_ptr<ingest::shadow_producer> shadow;
    std::unique_ptr<exam::shadow_backend> dual;
    if (!shadow_url.empty()) {
      auto log = ingest::json_lines_logger(stderr, ingest::parse_log_level(o.log_level));
      shadow_queue = exam::open_queue(shadow_url, io.get_executor());
      shadow_producer = std::make_unique<ingest::producer>(*shadow_queue, ingest::producer_options{.log = log});
      shadow = std::make_unique<ingest::shadow_producer>(*shadow_producer, ingest::shadow_options{.log = log});
      dual = std::make_unique<exam::shadow_backend>(*backend, *shadow);
    }
    exam::submit_backend& front = dual ? static_cast<exam::submit_backend&>(*dual) : *backend;
    exam::app api(setup.exams, *store, front, exam::make_app_options(o, setup.secret));
    ingest::http::server server(io, exam::make_http_options(o, setup, "direct_server"),
                                [&api](auto req, const auto& info, auto respond) {
                                  api.handle(std::move(req), info, std::move(respond));
                                });
    server.start();
    exam::print_banner("direct_server", exam::server_url(o, setup, server.port()), setup.secret,
                       setup.generated_secret, setup.exams, o.jwt);
    std::printf("database: %s, pool: %zu connections\n", exam::redact_url(db_path).c_str(), db.pool_size);
    if (shadow) std::printf("shadow queue: %s\n", exam::redact_url(shadow_url).c_str());
    std::fflush(stdout);
    return exam::run_until_signal(io, o.threads, [&] {
      std::fprintf(stderr, "direct_server: draining\n");
      api.drain();
      server.stop();
      // Every queued request runs and is answered.
      if (auto* pg = dynamic_cast<exam::pg_direct_backend*>(backend.get()))
        pg->stop();
      else
        static_cast<exam::direct_backend&>(*backend).stop();
      exam::wait_closed(server);
      if (shadow) {
        // The copies in flight get their outcome (a gap is logged), for at most 10 s.
        auto copies = shadow->async_drain(boost::asio::use_future);
        if (copies.wait_for(std::chrono::seconds(10)) != std::future_status::ready)
          std::fprintf(stderr, "direct_server: copies still pending after 10 s; reconcile finds them\n");
        const auto st = shadow->stats();
        std::fprintf(stderr, "direct_server: copies sent %llu, repeats %llu, gaps %llu\n",
                     static_cast<unsigned long long>(st.sent), static_cast<unsigned long long>(st.repeats),
                     static_cast<unsigned long long>(st.failed + st.conflicts + st.skipped));
        shadow_queue->close();
      }
      std::fprintf(stderr, "direct_server: drained (peak RSS %ld KiB)\n", exam::peak_rss_kib());
      return 0;
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "direct_server: %s\n", e.what());
    return 1;
  }
}
