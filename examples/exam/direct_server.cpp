// The direct-insert baseline: every request writes exam.db (WAL, synchronous=FULL) or
// PostgreSQL inside its own transaction on a connection from a bounded pool, bumps the
// exam's exam_stats row, grades, commits, and only then answers 201.

#include <cstdio>

#include "app.hpp"
#include "cli.hpp"
#include "direct.hpp"
#include "direct_pg.hpp"
#include "migration.hpp"
#include "pg_store.hpp"
#include "queue_url.hpp"
#include "run.hpp"

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
  exam::migration_settings migrating;
  cli.add_option("--shadow-queue", migrating.shadow_url,
                 "dual write: also publish a copy of every stored submission to this queue URL (sqlite://, "
                 "nats://, sqs+http://), for exam_worker to keep in queue_copies and reconcile");
  cli.add_option("--queue-percent", migrating.queue_percent,
                 "rollout: the share of students (0-100) whose submissions take the queue path (needs --shadow-queue)")
      ->check(CLI::Range(0.0, 100.0));
  cli.add_option("--admin-token", migrating.admin_token,
                 "bearer token of GET/PUT /v1/admin/rollout, which moves --queue-percent at run time "
                 "(default: $INGEST_ADMIN_TOKEN; none: no such route)")
      ->envname("INGEST_ADMIN_TOKEN");
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
    auto app_options = exam::make_app_options(o, setup.secret);
    migrating.log_level = o.log_level;
    exam::migration paths(io, migrating, *backend, *store, app_options);
    exam::app api(setup.exams, *store, paths.front(), std::move(app_options));
    ingest::http::server server(io, exam::make_http_options(o, setup, "direct_server"),
                                [&api, &paths](auto req, const auto& info, auto respond) {
                                  if (paths.handle_admin(req, respond)) return;
                                  api.handle(std::move(req), info, std::move(respond));
                                });
    server.start();
    exam::print_banner("direct_server", exam::server_url(o, setup, server.port()), setup.secret,
                       setup.generated_secret, setup.exams, o.jwt);
    std::printf("database: %s, pool: %zu connections\n", exam::redact_url(db_path).c_str(), db.pool_size);
    std::fputs(paths.banner().c_str(), stdout);
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
      paths.drain();  // the queue path's publishes and the copies finish
      std::fprintf(stderr, "direct_server: drained (peak RSS %ld KiB)\n", exam::peak_rss_kib());
      return 0;
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "direct_server: %s\n", e.what());
    return 1;
  }
}
