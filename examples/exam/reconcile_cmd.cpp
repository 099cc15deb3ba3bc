#include "reconcile_cmd.hpp"

#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <unistd.h>

#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"
#include "ingest/shadow_producer.hpp"
#include "jwt.hpp"
#include "ledger.hpp"
#include "pg_store.hpp"
#include "reconcile_sources.hpp"

namespace exam {

ingest::time_point parse_instant(const std::string& text, ingest::time_point now) {
  if (const auto back = parse_ttl(text)) return now - *back;
  return ingest::parse_time(text);  // throws invalid_config with the text
}

namespace {

// The progress file: the window, the cursor and the counts, one per line.
struct saved_state {
  std::string from, until;
  ingest::reconcile_report report;
};

std::optional<saved_state> load_state(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  saved_state s;
  std::string cursor;
  auto& r = s.report;
  if (!std::getline(in, s.from) || !std::getline(in, s.until) || !std::getline(in, cursor) ||
      !(in >> r.checked >> r.copies_checked >> r.matched >> r.missing >> r.extra >> r.different))
    throw ingest::error(ingest::errc::invalid_config, "unreadable progress file " + path);
  auto c = ingest::reconcile_cursor::parse(cursor);
  if (!c) throw ingest::error(ingest::errc::invalid_config, "unreadable cursor in " + path);
  r.next = *c;
  return s;
}

void save_state(const std::string& path, const std::string& from, const std::string& until,
                const ingest::reconcile_report& r) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << from << '\n' << until << '\n' << r.next.to_string() << '\n'
        << r.checked << ' ' << r.copies_checked << ' ' << r.matched << ' ' << r.missing << ' ' << r.extra << ' '
        << r.different << '\n';
    if (!out.flush()) throw ingest::error(ingest::errc::storage_error, "cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

// The missing copies published again from their rows; returns how many are now in
// the queue (new or there already).
std::size_t resend(const std::string& sink, ingest::durable_queue& queue, const std::vector<std::string>& keys,
                   std::ostream& out, std::ostream& err) {
  auto rows = open_reader(sink);
  ingest::producer producer(queue);
  ingest::shadow_producer shadow(producer);
  std::size_t sent = 0, repeats = 0, failed = 0;
  for (const auto& key : keys) {
    const auto k = split_key(key);
    const auto row = rows->by_key(k.exam_id, k.student_id, k.idempotency_key);
    const auto s = row ? submission_of(*row) : std::nullopt;
    if (!s || ingest::fingerprint(s->to_json()) != row->fingerprint) {
      err << "reconcile: cannot rebuild " << k.text() << " from its row; not re-sent\n";
      ++failed;
      continue;
    }
    try {
      const auto r = shadow.async_resend(shadow_message(*s, row->receipt_id, row->accepted_at),
                                         boost::asio::use_future).get();
      ++(r.duplicate ? repeats : sent);
    } catch (const std::exception& e) {
      err << "reconcile: re-sending " << k.text() << ": " << e.what() << '\n';
      ++failed;
    }
  }
  producer.async_drain(boost::asio::use_future).wait();
  out << "re-sent " << sent << " (already in the queue " << repeats << ", failed " << failed << ")\n";
  return sent + repeats;
}

void print(std::ostream& out, const ingest::reconcile_report& r, const ingest::reconcile_options& o,
           std::size_t show) {
  out << "window " << ingest::format_time(o.window.from) << " .. "
      << (o.window.until == ingest::time_point::max() ? "now" : ingest::format_time(o.window.until)) << '\n';
  out << "submissions checked " << r.checked << ", copies checked " << r.copies_checked << '\n';
  out << "matched " << r.matched << ", missing " << r.missing << ", extra " << r.extra << ", different "
      << r.different << '\n';
  for (const auto kind : {ingest::discrepancy_kind::missing, ingest::discrepancy_kind::extra,
                          ingest::discrepancy_kind::different}) {
    std::size_t listed = 0;
    for (const auto& d : r.found) {
      if (d.kind != kind || listed++ >= show) continue;
      out << ingest::to_string(kind) << ' ' << split_key(d.key).text();
      if (d.truth) out << " row " << d.truth->fingerprint.substr(0, 12) << " score " << d.truth->detail;
      if (d.copy) out << " copy " << d.copy->fingerprint.substr(0, 12) << " score " << d.copy->detail;
      out << '\n';
    }
  }
  out << (r.clean() ? "clean\n" : "discrepancies found\n");
}

}  // namespace

CLI::App* add_reconcile_command(CLI::App& cli, reconcile_request& rec) {
  auto* cmd = cli.add_subcommand(
      "reconcile", "compare the submissions rows with what the queued path produced (direct_server --shadow-queue)");
  cmd->fallthrough();  // --sink, --queue and --data may follow
  cmd->add_option("--since", rec.since, "start of the window: RFC 3339, or a span back from now (90s, 30m, 2h, 1d)")
      ->required();
  cmd->add_option("--until", rec.until, "end of the window, the same (default: now)");
  cmd->add_option("--page", rec.page, "rows per page read")->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->add_option("--rate", rec.rate, "rows read per second at most (0: no limit)")->capture_default_str();
  cmd->add_option("--show", rec.show, "keys listed per kind of discrepancy")->capture_default_str();
  cmd->add_option("--state", rec.state, "progress file: saved after every page, resumed from when present");
  cmd->add_flag("--resend", rec.resend, "publish the missing copies again from their rows (to --queue)");
  return cmd;
}

int run_reconcile(const std::string& sink, ingest::durable_queue* queue, const reconcile_request& request,
                  std::ostream& out, std::ostream& err) {
  try {
    const auto now = ingest::clock::now();
    ingest::reconcile_options o;
    o.window.from = parse_instant(request.since, now);
    o.window.until = request.until.empty() ? now : parse_instant(request.until, now);
    o.page_size = request.page;
    o.max_records_per_second = request.rate;
    o.max_reported = std::max<std::size_t>(request.show * 3, 1);
    o.same = same_submission;
    std::vector<std::string> missing;
    if (request.resend)
      o.on_discrepancy = [&missing](const ingest::discrepancy& d) {
        if (d.kind == ingest::discrepancy_kind::missing) missing.push_back(d.key);
      };
    ingest::reconcile_report start;
    if (!request.state.empty())
      if (auto saved = load_state(request.state)) {
        // The keys found before the crash were not saved: re-sending only the rest
        // would look complete and is not.
        if (request.resend)
          throw ingest::error(ingest::errc::invalid_config,
                              "--resend cannot resume " + request.state +
                                  ": finish the run without --resend, then run again with it (without --state)");
        // A run resumes its own window only.
        o.window = {ingest::parse_time(saved->from), ingest::parse_time(saved->until)};
        start = saved->report;
        out << "resuming at " << split_key(start.next.after).text() << " (pass " << start.next.pass << ")\n";
      }
    const bool live = isatty(STDERR_FILENO);
    o.on_page = [&](const ingest::reconcile_report& r) {
      if (!request.state.empty())
        save_state(request.state, ingest::format_time(o.window.from), ingest::format_time(o.window.until), r);
      if (live)
        std::fprintf(stderr, "\rreconcile: %llu rows, %llu copies checked, %llu wrong ",
                     static_cast<unsigned long long>(r.checked), static_cast<unsigned long long>(r.copies_checked),
                     static_cast<unsigned long long>(r.missing + r.extra + r.different));
    };
    auto rows = open_rows(sink, rows_table::submissions);
    auto copies = open_rows(sink, rows_table::copies);
    const auto report = ingest::reconcile(*rows, *copies, o, std::move(start));
    if (live) std::fputc('\n', stderr);
    print(out, report, o, request.show);
    if (!request.state.empty()) std::filesystem::remove(request.state);
    if (request.resend && !missing.empty()) {
      if (!queue) throw ingest::error(ingest::errc::invalid_config, "--resend needs a queue");
      resend(sink, *queue, missing, out, err);
    }
    return report.clean() ? 0 : 1;
  } catch (const std::exception& e) {
    err << "reconcile: " << e.what() << '\n';
    return 2;
  }
}

}  // namespace exam
