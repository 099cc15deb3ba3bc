// The direct-insert baseline: every request writes exam.db inside its own transaction
// (WAL, synchronous=FULL) on a connection from a bounded pool, bumps the exam's
// exam_stats row, grades, commits, and only then answers 201.

#include <cstdio>

#include "app.hpp"
#include "cli.hpp"
#include "direct.hpp"
#include "run.hpp"

int main(int argc, char** argv) {
  exam::prepare_process();
  exam::server_cli o;
  exam::token_cli t;
  exam::direct_settings db;
  CLI::App cli{"direct_server: writes each exam submission to exam.db inside the request (the baseline)"};
  exam::add_server_options(cli, o, "127.0.0.1:8080", false);
  cli.add_option("--pool-size", db.pool_size, "database connections (and database threads)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  auto* token_cmd = exam::add_token_command(cli, t);
  CLI11_PARSE(cli, argc, argv);
  if (*token_cmd) return exam::run_token(t);

  try {
    const auto setup = exam::prepare_server(o);
    const std::string db_path = o.data + "/exam.db";

    boost::asio::io_context io;
    exam::store_pool store(db_path);
    exam::direct_backend backend(db_path, db);
    exam::app api(setup.exams, store, backend, exam::make_app_options(o, setup.secret));
    ingest::http::server server(io, exam::make_http_options(o, setup, "direct_server"),
                                [&api](auto req, const auto& info, auto respond) {
                                  api.handle(std::move(req), info, std::move(respond));
                                });
    server.start();
    exam::print_banner("direct_server", exam::server_url(o, setup, server.port()), setup.secret,
                       setup.generated_secret, setup.exams, o.jwt);
    std::printf("database pool: %zu connections\n", db.pool_size);
    std::fflush(stdout);
    return exam::run_until_signal(io, o.threads, [&] {
      std::fprintf(stderr, "direct_server: draining\n");
      api.drain();
      server.stop();
      backend.stop();  // every queued request runs and is answered
      exam::wait_closed(server);
      std::fprintf(stderr, "direct_server: drained (peak RSS %ld KiB)\n", exam::peak_rss_kib());
      return 0;
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "direct_server: %s\n", e.what());
    return 1;
  }
}
