#include "audit_cmd.hpp"

#include <csignal>
#include <fmt/format.h>
#include <ostream>
#include <unordered_map>

#include "ingest/auditor.hpp"
#include "ingest/postgres/connection.hpp"
#include "ingest/sqlite/database.hpp"
#include "ingest/sqlite/queue_records.hpp"
#include "jwt.hpp"
#include "ledger.hpp"
#include "pg_store.hpp"
#include "store.hpp"

namespace exam {

namespace {

// The sink's rows of some receipts: receipt id -> fingerprint.
class sink_rows {
 public:
  explicit sink_rows(const std::string& sink) {
    if (is_postgres_url(sink))
      pg_ = std::make_unique<ingest::postgres::connection>(sink);
    else
      db_ = std::make_unique<ingest::sqlite::database>(sink, ingest::sqlite::database_options{.create = false});
  }

  std::unordered_map<std::string, std::string> of(std::span<const std::string> ids) {
    std::unordered_map<std::string, std::string> out;
    if (pg_) {
      ingest::postgres::array_literal list;
      for (const auto& id : ids) list.push_back(id);
      // Rows, copies, and the receipts of copies not kept (their kept row stands for them).
      const auto r = pg_->exec(
          "SELECT receipt_id, fingerprint FROM submissions WHERE receipt_id = ANY($1::text[]) "
          "UNION ALL SELECT receipt_id, fingerprint FROM queue_copies WHERE receipt_id = ANY($1::text[]) "
          "UNION ALL SELECT a.receipt_id, s.fingerprint FROM exam_receipt_aliases a JOIN submissions s "
          "ON s.receipt_id = a.kept_receipt_id WHERE a.receipt_id = ANY($1::text[])",
          {list.str()});
      for (int i = 0; i < r.rows(); ++i) out.emplace(std::string(r.text(i, 0)), std::string(r.text(i, 1)));
      return out;
    }
    ingest::sqlite::statement row(*db_, "SELECT fingerprint FROM submissions WHERE receipt_id = ?1 UNION ALL "
                                        "SELECT fingerprint FROM queue_copies WHERE receipt_id = ?1");
    for (const auto& id : ids) {
      row.bind(1, id);
      if (row.step()) out.emplace(id, std::string(row.column_text(0)));
      row.reset();
    }
    return out;
  }

 private:
  std::unique_ptr<ingest::postgres::connection> pg_;
  std::unique_ptr<ingest::sqlite::database> db_;
};

class accounted final : public ingest::record_source {
 public:
  accounted(const std::string& queue_path, const std::string& sink) : queue_(queue_path), rows_(sink) {}

  // Only looked up: the audit has no extra pass (the sink also holds rows the queue
  // never saw, and rows of receipts older than the queue keeps).
  std::vector<ingest::reconcile_record> page(const ingest::reconcile_window&, std::string_view,
                                             std::size_t) override {
    return {};
  }

  std::vector<ingest::reconcile_record> find(std::span<const std::string> ids) override {
    auto rows = rows_.of(ids);
    std::vector<ingest::reconcile_record> out;
    for (auto& r : queue_.find(ids)) {
      if (auto it = rows.find(r.key); it != rows.end()) {
        out.push_back({r.key, it->second, r.at, "processed"});  // the row's body, compared with the accepted one
      } else if (r.detail != "processed") {
        out.push_back(std::move(r));  // pending, dead-lettered or purged: accounted for
      }
      // Processed, and no row: not accounted for.
    }
    return out;
  }

 private:
  ingest::sqlite::queue_records queue_;
  sink_rows rows_;
};

std::chrono::seconds span(const std::string& text, const char* what) {
  const auto s = parse_ttl(text);
  if (!s) throw std::invalid_argument(fmt::format("bad --{} '{}' (90s, 30m, 2h, 1d)", what, text));
  return *s;
}

std::string queue_path_of(const std::string& url) {
  if (!url.starts_with("sqlite://"))
    throw std::invalid_argument("the audit reads an embedded queue (sqlite://...): " + url +
                                " keeps no record of what it processed");
  const auto path = url.substr(9);
  return path.substr(0, path.find('?'));
}

void report_run(std::ostream& out, std::ostream& err, const ingest::reconcile_report& r) {
  out << fmt::format("audit {}: {} receipts checked, {} accounted for, {} not, {} with another body\n",
                     ingest::format_time(ingest::clock::now()), r.checked, r.matched, r.missing, r.different)
      << std::flush;
  for (const auto& d : r.found)
    err << fmt::format(R"({{"event":"audit_alert","kind":"{}","receipt_id":"{}"}})", ingest::to_string(d.kind),
                       d.key)
        << '\n';
  err << std::flush;
}

}  // namespace

CLI::App* add_audit_command(CLI::App& cli, audit_request& a) {
  auto* cmd = cli.add_subcommand("audit", "check that every receipt the embedded queue accepted is processed, "
                                          "pending or dead-lettered; alert with the ones that are not");
  cmd->fallthrough();  // --sink, --queue and --data may follow
  cmd->add_option("--lookback", a.lookback, "how far back each run looks (90s, 30m, 2h, 1d)")->capture_default_str();
  cmd->add_option("--settle", a.settle, "the newest receipts left to the next run (0 for none)")->capture_default_str();
  cmd->add_option("--every", a.every, "between runs")->capture_default_str();
  cmd->add_flag("--once", a.once, "one run, then exit 0 (all accounted for), 1 (alerts) or 2 (the run failed)");
  return cmd;
}

std::unique_ptr<ingest::record_source> open_accounted(const std::string& queue_path, const std::string& sink) {
  return std::make_unique<accounted>(queue_path, sink);
}

int run_audit(const std::string& queue_url, const std::string& sink, const audit_request& request, std::ostream& out,
              std::ostream& err) {
  try {
    const auto path = queue_path_of(queue_url);
    ingest::audit_options o{.every = span(request.every, "every"),
                            .lookback = span(request.lookback, "lookback"),
                            .settle = request.settle == "0" ? std::chrono::seconds(0) : span(request.settle, "settle"),
                            .compare = {.max_reported = 10000, .find_extra = false},
                            .alert = {},
                            .on_run = [&](const ingest::reconcile_report& r) { report_run(out, err, r); }};
    ingest::auditor audit([path] { return std::make_unique<ingest::sqlite::queue_records>(path); },
                          [path, sink] { return open_accounted(path, sink); }, o);
    if (request.once) return audit.run_once().clean() ? 0 : 1;
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);  // the auditor's thread inherits the mask
    audit.start();
    int signal = 0;
    sigwait(&stop_signals, &signal);
    audit.stop();
    const auto st = audit.stats();
    out << fmt::format("audit stopped: {} runs, {} with alerts, {} failed\n", st.runs, st.alerts, st.failed_runs);
    if (st.failed_runs > 0 && st.runs == 0) {
      err << "audit: no run completed: " << st.last_error << '\n';
      return 2;
    }
    return st.alerts ? 1 : 0;
  } catch (const std::exception& e) {
    err << "audit: " << e.what() << '\n';
    return 2;
  }
}

}  // namespace exam
