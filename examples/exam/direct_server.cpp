// The direct-insert baseline: every request writes exam.db (WAL, synchronous=FULL) or
// PostgreSQL inside its own transaction on a connection from a bounded pool, bumps the
// exam's exam_stats row, grades, commits, and only then answers 201.

#include <cstdio>

#include "app.hpp"
#include "cli.hpp"
#include "direct.hpp"
#include "direct_pg.hpp"
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
    exam::app api(setup.exams, *store, *backend, exam::make_app_options(o, setup.secret));
    ingest::http::server server(io, exam::make_http_options(o, setup, "direct_server"),
                                [&api](auto req, const auto& info, auto respond) {
                                  api.handle(std::move(req), info, std::move(respond));
                                });
    server.start();
    exam::print_banner("direct_server", exam::server_url(o, setup, server.port()), setup.secret,
                       setup.generated_secret, setup.exams, o.jwt);
    std::printf("database: %s, pool: %zu connections\n", exam::redact_url(db_path).c_str(), db.pool_size);
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
      std::fprintf(stderr, "direct_server: drained (peak RSS %ld KiB)\n", exam::peak_rss_kib());
      return 0;
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "direct_server: %s\n", e.what());
    return 1;
  }
}
