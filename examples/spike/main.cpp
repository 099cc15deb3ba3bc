// spike: replays a deadline flood against an exam server and audits exam.db afterwards.
//
// Wall mode (default): N students, each on its own connection opened beforehand (they
// are already on the page), all pressing "submit" within a window. Open-loop mode
// (--rate R --duration D): R submissions per second on a pool of connections, latency
// measured from each request's scheduled time (no coordinated omission).
//
// Browsers are imitated: a share of double clicks (the same key twice, on a second
// connection), and on a timeout, a 5xx, a 409/429 or a connection error a retry with the
// same key after a backoff, up to --retries times. Every receipt is kept; after the
// flood the tool waits for the drain and checks exam.db: every receipt exactly once, no
// row without a receipt. See examples/README.md.

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit.hpp"
#include "cli.hpp"
#include "followers.hpp"
#include "ingest/envelope.hpp"
#include "progress.hpp"
#include "report.hpp"
#include "results.hpp"
#include "scenarios.hpp"
#include "server_process.hpp"
#include "settings.hpp"

namespace spike {

namespace {

void define_options(CLI::App& cli, settings& s) {
  cli.add_option("--url", s.urls,
                 "server base URL; give several (repeated or comma-separated) to spread the students over them, "
                 "a retry after a connection error going to the next")
      ->delimiter(',')
      ->capture_default_str();
  cli.add_option("--exam", s.exam, "exam id")->capture_default_str();
  cli.add_option("--students", s.students, "students in the wall")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  cli.add_option("--window", s.window_s, "seconds within which every student submits")->capture_default_str();
  cli.add_option("--double-click", s.double_click, "share of students who click twice")->capture_default_str();
  cli.add_option("--click-again", s.click_again_s,
                 "seconds between a student's first and second click (a later second click is a retry after "
                 "whatever changed meanwhile; its receipt must be the first's)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 600.0));
  cli.add_option("--timeout", s.timeout_s, "client timeout, seconds")->capture_default_str();
  cli.add_option("--retries", s.retries, "retries after a timeout, 5xx, 409/429 or connection error")
      ->capture_default_str();
  cli.add_option("--rate", s.rate, "open-loop mode: submissions per second (0: wall mode)");
  cli.add_option("--duration", s.duration_s, "open-loop mode: seconds")->capture_default_str();
  cli.add_option("--burst-rate", s.burst_rate,
                 "open-loop mode: submissions per second for the first --burst-seconds, then --rate (a burst, and "
                 "whether the tail recovers after it)")
      ->check(CLI::PositiveNumber);
  cli.add_option("--burst-seconds", s.burst_s, "open-loop mode: how long the burst lasts (less than --duration)")
      ->check(CLI::PositiveNumber);
  cli.add_option("--connections", s.connections, "open-loop mode: connection pool size")->capture_default_str();
  cli.add_option("--threads", s.threads, "client threads")->capture_default_str();
  cli.add_option("--jwt-secret", s.secret, "the server's secret (default: $INGEST_JWT_SECRET)");
  cli.add_option("--attachments", s.attachments,
                 "files each submission names, as references issued with the server's secret (the accept path's "
                 "cost of checking them; no file is uploaded: run the server without graders)")
      ->capture_default_str()
      ->check(CLI::Range(0, 20));
  exam::add_token_check_options(cli, s.jwt);
  cli.add_option("--db", s.db,
                 "exam.db or the postgresql:// URL of the submissions to watch and audit (empty: no audit)");
  cli.add_option("--server-pid", s.server_pid, "server process, for peak RSS and CPU");
  cli.add_option("--drain-timeout", s.drain_timeout_s, "seconds to wait for exam.db to catch up")
      ->capture_default_str();
  cli.add_option("--json", s.json_out, "write the results as JSON here");
  cli.add_option("--svg", s.svg_out, "draw the chart here");
  cli.add_option("--label", s.label, "name of this run in the outputs");
  cli.add_flag("--one-student", s.one_student,
               "every submission from one student, each with a new key (an abusive client; see the rate limits)");
  cli.add_option("--poll-rate", s.poll_rate,
                 "status reads (GET of a receipt already given, with its student's token) per second during the "
                 "flood, on connections of their own (0: none)")
      ->capture_default_str();
  cli.add_option("--poll-connections", s.poll_connections, "connections of the status reads")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  cli.add_option("--streams", s.streams,
                 "students who submit before the flood and follow their status over an event stream each "
                 "through it (GET /v1/submissions/{id}/events; 0: none)")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  cli.add_option("--bind", s.bind, "local address to connect from, e.g. 127.0.0.2 (another client IP)");
}

run_plan plan_run(const settings& s) {
  run_plan plan;
  plan.open_loop = s.rate > 0;
  plan.n = plan.open_loop ? static_cast<int>(std::lround(s.rate * s.duration_s)) : s.students;
  if (plan.open_loop && s.burst_rate > 0) {
    plan.burst_n = static_cast<int>(std::lround(s.burst_rate * s.burst_s));
    plan.n = plan.burst_n + static_cast<int>(std::lround(s.rate * (s.duration_s - s.burst_s)));
  }
  // Keys of this run share a prefix, so that the audit sees this run only.
  plan.run = ingest::make_receipt_id().substr(0, 13);
  plan.prefix = "spike-" + plan.run + "-";
  return plan;
}

// The live progress line's counts: receipts, this run's rows in exam.db (once sampled), errors.
exam::progress_sample progress_of(results& r, const db_watch& db) {
  exam::progress_sample p;
  std::lock_guard lock(r.mutex);
  p.accepted = r.receipts.size();
  if (const auto rows = db.rows_now(); rows >= 0) {
    p.written = static_cast<std::uint64_t>(rows);
    p.backlog = *p.accepted > *p.written ? *p.accepted - *p.written : 0;
  }
  for (const auto& [kind, n] : r.errors) p.errors += n;
  return p;
}

// One run: connections, flood, drain, audit, report. Returns the exit code.
int run(const settings& s) {
  const run_plan plan = plan_run(s);
  const std::vector<student> students = make_students(s, plan);
  results r;
  flood f(s, plan, r);
  const tcp::endpoint ep = f.resolve().front().endpoint;  // where the audit asks about missing receipts
  run_outcome o;
  o.before = sample_process(s.server_pid);
  db_watch db;
  if (!s.db.empty()) {
    try {
      db.open(s.db, plan.prefix);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "spike: cannot audit %s: %s\n", s.db.c_str(), e.what());
      return 2;
    }
  }
  std::optional<followers> following;
  if (s.streams > 0) {
    following.emplace(s, plan, f.resolve());
    following->open();
  }
  f.connect();
  f.schedule(students);
  db.start(s, r);
  std::optional<exam::progress_meter> progress;
  progress.emplace(s.label, [&] { return progress_of(r, db); });
  o.flood_seconds = f.run();
  o.after_flood = sample_process(s.server_pid);
  followers_report streams;
  if (following) {
    streams = following->close();
    following.reset();
    o.streams = &streams;
  }
  db.stop();
  progress.reset();
  o.after = sample_process(s.server_pid);
  o.audited = db.opened();
  o.audit = db.audit(s, r, ep);
  o.written = db.written();
  o.drain_seconds = db.drain_seconds();
  o.polls = s.poll_rate > 0 ? &f.polls() : nullptr;
  report_run(s, plan, r, o);
  // Exit status: the audit is the verdict.
  if (o.audited && (o.audit.lost != 0 || o.audit.duplicated != 0)) return 1;
  return 0;
}

}  // namespace

}  // namespace spike

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "report") {
    std::vector<std::string> files(argv + 2, argv + argc);
    if (files.empty()) {
      std::fputs("usage: spike report RESULT.json...\n", stderr);
      return 2;
    }
    return spike::report_command(files);
  }
  spike::settings s;
  CLI::App cli{"spike: replays a deadline flood against an exam server, then audits exam.db"};
  spike::define_options(cli, s);
  CLI11_PARSE(cli, argc, argv);
  if (s.label.empty())
    for (const auto& url : s.urls) s.label += (s.label.empty() ? "" : ",") + url;
  bool generated = false;
  s.secret = exam::resolve_secret(s.secret, generated);
  if (generated) {
    std::fputs("spike: give --jwt-secret or set INGEST_JWT_SECRET (the server's secret)\n", stderr);
    return 2;
  }
  if ((s.burst_rate > 0) != (s.burst_s > 0) || (s.burst_rate > 0 && (s.rate <= 0 || s.burst_s >= s.duration_s))) {
    std::fputs(
        "spike: --burst-rate and --burst-seconds go together, with --rate, and the burst must be shorter "
        "than --duration\n",
        stderr);
    return 2;
  }
  exam::raise_fd_limit();
  return spike::run(s);
}
