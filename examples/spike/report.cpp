#include "report.hpp"

#include "followers.hpp"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <fstream>
#include <mutex>

#include "json_text.hpp"

namespace spike {

void results::scheduled_answer(steady::time_point scheduled, double seconds) {
  using namespace std::chrono_literals;
  std::lock_guard lock(mutex);
  const auto second = static_cast<std::size_t>(std::max<std::int64_t>(0, (scheduled - t0) / 1s));
  if (latency_by_second.size() <= second) latency_by_second.resize(second + 1);
  latency_by_second[second].push_back(static_cast<float>(seconds));
}

namespace {

double ms(double seconds) {
  return seconds * 1000.0;
}

double avg_ms(const ingest::histogram& lat) {
  return lat.count() ? ms(lat.sum() / static_cast<double>(lat.count())) : 0.0;
}

// The rate exam.db was written at: rows over the time from the first row to the last.
double write_rate_of(const std::vector<std::int64_t>& written) {
  double write_rate = 0;
  std::size_t first = written.size(), last = 0;
  for (std::size_t i = 0; i < written.size(); ++i) {
    if (written[i] > 0 && first == written.size()) first = i;
    if (i > 0 && written[i] > written[i - 1]) last = i;
  }
  if (first < written.size() && last > first)
    write_rate = static_cast<double>(written[last] - (first > 0 ? written[first - 1] : 0)) /
                 (0.1 * static_cast<double>(last - first + 1));
  return write_rate;
}

// The rate while a backlog exists (at least a few batches waiting in the queue): what
// load leveling promises to hold at the consumer's configured rate.
double backlog_rate_of(const std::vector<std::int64_t>& written, const results& r) {
  double backlog_rate = 0;
  std::int64_t accepted_cum = 0, rows = 0;
  double seconds = 0;
  for (std::size_t i = 1; i < written.size(); ++i) {
    accepted_cum += i - 1 < r.accepted_per_tick.size() ? r.accepted_per_tick[i - 1] : 0;
    const auto backlog = accepted_cum - written[i - 1];
    if (backlog >= 2000 && written[i] < static_cast<std::int64_t>(r.receipts.size())) {
      rows += written[i] - written[i - 1];
      seconds += 0.1;
    }
  }
  if (seconds >= 0.5) backlog_rate = static_cast<double>(rows) / seconds;
  return backlog_rate;
}

// The figures that the summary and run.json share.
struct figures {
  const ingest::histogram& latency;  // accept latency; open loop: from the scheduled time
  std::int64_t receipts;
  double success;  // % of students (submissions) with a receipt
  std::uint64_t failed_requests;
  double write_rate, backlog_rate;
  double accept_rate;  // receipts per second from t0 to the last accept
};

figures figures_of(const run_plan& plan, results& r, const run_outcome& o) {
  const double write_rate = write_rate_of(o.written);
  const double accept_span = std::chrono::duration<double>(r.last_accept - r.t0).count();
  const double backlog_rate = backlog_rate_of(o.written, r);
  const auto receipts = static_cast<std::int64_t>(r.receipts.size());
  const double success = 100.0 * static_cast<double>(receipts) / plan.n;
  const auto failed_requests = [&] {
    std::uint64_t f = 0;
    std::lock_guard lock(r.mutex);
    for (const auto& [k, v] : r.errors) f += v;
    return f;
  }();
  return {plan.open_loop ? r.scheduled_latency : r.accept_latency,
          receipts,
          success,
          failed_requests,
          write_rate,
          backlog_rate,
          accept_span > 0 ? static_cast<double>(receipts) / accept_span : 0.0};
}

void print_audit(const run_outcome& o) {
  const auto& a = o.audit;
  std::printf(
      "  audit: rows %lld, receipts %lld, lost %lld, duplicated %lld, rows without receipt %lld; drained %.2f s after "
      "the last accept\n"
      "  states of the receipts: graded %lld + pending %lld + dead-lettered %lld + lost %lld = %lld\n",
      static_cast<long long>(a.rows), static_cast<long long>(a.receipts), static_cast<long long>(a.lost),
      static_cast<long long>(a.duplicated), static_cast<long long>(a.unreceipted), o.drain_seconds,
      static_cast<long long>(a.receipts - static_cast<std::int64_t>(a.missing.size())),
      static_cast<long long>(a.pending), static_cast<long long>(a.dead_lettered), static_cast<long long>(a.lost),
      static_cast<long long>(a.receipts));
}

// Each second's answers, by the second they were scheduled in: p50 and p99 from the
// scheduled time (the second of a burst, and the ones after it).
struct second_figures {
  std::size_t answers = 0;
  double p50_ms = 0, p99_ms = 0;
};
std::vector<second_figures> seconds_of(results& r) {
  std::vector<second_figures> out;
  std::lock_guard lock(r.mutex);
  for (auto latencies : r.latency_by_second) {
    second_figures f;
    f.answers = latencies.size();
    if (!latencies.empty()) {
      std::sort(latencies.begin(), latencies.end());
      const auto at = [&](double q) {
        return 1000.0 * latencies[std::min(latencies.size() - 1, static_cast<std::size_t>(q * latencies.size()))];
      };
      f.p50_ms = at(0.5);
      f.p99_ms = at(0.99);
    }
    out.push_back(f);
  }
  return out;
}

void print_seconds(const settings& s, results& r) {
  std::printf("  receipts by the second their submission was scheduled in (burst %.0f/s for %.1f s, then %.0f/s):\n",
              s.burst_rate, s.burst_s, s.rate);
  std::printf("  %6s %9s %9s %10s %10s\n", "second", "rate/s", "receipts", "p50 ms", "p99 ms");
  const auto seconds = seconds_of(r);
  for (std::size_t i = 0; i < seconds.size(); ++i) {
    const bool burst = static_cast<double>(i) < s.burst_s;
    if (seconds[i].answers == 0) {
      std::printf("  %6zu %9.0f %9s %10s %10s\n", i, burst ? s.burst_rate : s.rate, "0", "-", "-");
      continue;
    }
    std::printf("  %6zu %9.0f %9zu %10.1f %10.1f\n", i, burst ? s.burst_rate : s.rate, seconds[i].answers,
                seconds[i].p50_ms, seconds[i].p99_ms);
  }
}

void print_summary(const settings& s, const run_plan& plan, results& r, const run_outcome& o, const figures& f) {
  const bool open_loop = plan.open_loop;
  const auto& lat = f.latency;
  std::printf("\n%s (%s, %d %s)\n", s.label.c_str(), open_loop ? "open loop" : "wall", plan.n,
              open_loop ? "submissions" : "students");
  std::printf("  requests %llu, 2xx %llu, failed %llu, retried %llu, gave up %llu\n",
              static_cast<unsigned long long>(r.requests.load()), static_cast<unsigned long long>(r.ok.load()),
              static_cast<unsigned long long>(f.failed_requests), static_cast<unsigned long long>(r.retried.load()),
              static_cast<unsigned long long>(r.gave_up.load()));
  std::printf("  students with a receipt: %lld of %d (%.2f %%)\n", static_cast<long long>(f.receipts), plan.n,
              f.success);
  {
    std::lock_guard lock(r.mutex);
    for (const auto& [k, v] : r.errors)
      std::printf("  error %-20s %llu\n", k.c_str(), static_cast<unsigned long long>(v));
  }
  {
    std::lock_guard lock(r.mutex);
    for (const auto& [server, n] : r.answered_2xx_by)
      std::printf("  2xx from %-20s %llu\n", server.c_str(), static_cast<unsigned long long>(n));
  }
  std::printf("  accept latency ms: avg %.1f  p50 %.1f  p95 %.1f  p99 %.1f  max %.1f%s\n", avg_ms(lat),
              ms(lat.quantile(0.5)), ms(lat.quantile(0.95)), ms(lat.quantile(0.99)), ms(lat.quantile(1.0)),
              open_loop ? " (from scheduled time)" : "");
  std::printf("  connect ms: p50 %.1f p99 %.1f; flood %.2f s; accepted %.0f/s\n", ms(r.connect_latency.quantile(0.5)),
              ms(r.connect_latency.quantile(0.99)), o.flood_seconds, f.accept_rate);
  if (s.server_pid > 0)
    std::printf("  server: peak RSS %.1f MB, CPU %.2f s during the flood, %.2f s until drained\n",
                static_cast<double>(o.after.peak_rss_kib) / 1024.0, o.after_flood.cpu_seconds - o.before.cpu_seconds,
                o.after.cpu_seconds - o.before.cpu_seconds);
  if (o.audited)
    std::printf("  database written at %.0f rows/s (%.0f rows/s while a backlog of 2,000+ waited)\n", f.write_rate,
                f.backlog_rate);
  if (o.audited) print_audit(o);
  if (open_loop && s.burst_rate > 0) print_seconds(s, r);
}

// The status reads: how many, at what rate, what they answered, how fast.
void print_polls(const settings& s, results& p, double flood_seconds) {
  const auto sent = p.requests.load();
  std::printf("  status reads %llu (%.0f/s asked, %.0f/s sent), latency ms p50 %.1f p99 %.1f\n",
              static_cast<unsigned long long>(sent), s.poll_rate,
              flood_seconds > 0 ? static_cast<double>(sent) / flood_seconds : 0.0, ms(p.all_latency.quantile(0.5)),
              ms(p.all_latency.quantile(0.99)));
  std::lock_guard lock(p.mutex);
  for (const auto& [answer, n] : p.errors)
    std::printf("    %-24s %llu\n", answer.c_str(), static_cast<unsigned long long>(n));
}

boost::json::object polls_json(const settings& s, results& p, double flood_seconds) {
  boost::json::object j;
  j["asked_per_s"] = s.poll_rate;
  j["sent"] = p.requests.load();
  j["sent_per_s"] = flood_seconds > 0 ? static_cast<double>(p.requests.load()) / flood_seconds : 0.0;
  j["p50_ms"] = ms(p.all_latency.quantile(0.5));
  j["p99_ms"] = ms(p.all_latency.quantile(0.99));
  boost::json::object answers;
  std::lock_guard lock(p.mutex);
  for (const auto& [answer, n] : p.errors) answers[answer] = n;
  j["answers"] = std::move(answers);
  return j;
}

// The status streams: how many were open through the flood, and the server's memory.
void print_streams(const followers_report& f) {
  std::printf(
      "  status streams %d asked, %d open (in %.1f s), %d refused, %d still open after the flood, %llu events\n",
      f.asked, f.opened, f.open_seconds, f.refused, f.open_at_end, static_cast<unsigned long long>(f.events));
  if (f.rss_before_kib >= 0)
    std::printf("  server memory %.1f MiB before the streams, %.1f MiB with them open (%.1f KiB a stream)\n",
                static_cast<double>(f.rss_before_kib) / 1024.0, static_cast<double>(f.rss_with_kib) / 1024.0,
                f.opened > 0 ? static_cast<double>(f.rss_with_kib - f.rss_before_kib) / f.opened : 0.0);
}

boost::json::object streams_json(const followers_report& f) {
  boost::json::object j;
  j["asked"] = f.asked;
  j["receipts"] = f.receipts;
  j["opened"] = f.opened;
  j["refused"] = f.refused;
  j["open_at_end"] = f.open_at_end;
  j["events"] = f.events;
  j["open_s"] = f.open_seconds;
  j["server_rss_before_mb"] = static_cast<double>(f.rss_before_kib) / 1024.0;
  j["server_rss_with_mb"] = static_cast<double>(f.rss_with_kib) / 1024.0;
  return j;
}

void write_json(const settings& s, const run_plan& plan, results& r, const run_outcome& o, const figures& f) {
  boost::json::object j;
  j["label"] = s.label;
  j["mode"] = plan.open_loop ? "open_loop" : "wall";
  j["students"] = plan.n;
  j["window_s"] = s.window_s;
  j["rate"] = s.rate;
  j["requests"] = r.requests.load();
  j["ok"] = r.ok.load();
  j["failed_requests"] = f.failed_requests;
  j["retried"] = r.retried.load();
  j["gave_up"] = r.gave_up.load();
  j["receipts"] = f.receipts;
  j["success_pct"] = f.success;
  boost::json::object errs;
  {
    std::lock_guard lock(r.mutex);
    for (const auto& [k, v] : r.errors) errs[k] = v;
  }
  j["errors"] = std::move(errs);
  if (o.polls) j["polls"] = polls_json(s, *o.polls, o.flood_seconds);
  if (o.streams) j["streams"] = streams_json(*o.streams);
  if (s.urls.size() > 1) {
    boost::json::object by;
    std::lock_guard lock(r.mutex);
    for (const auto& [server, n] : r.answered_2xx_by) by[server] = n;
    j["answered_2xx_by"] = std::move(by);
  }
  const auto& lat = f.latency;
  boost::json::object l;
  l["avg_ms"] = avg_ms(lat);
  l["p50_ms"] = ms(lat.quantile(0.5));
  l["p95_ms"] = ms(lat.quantile(0.95));
  l["p99_ms"] = ms(lat.quantile(0.99));
  l["max_ms"] = ms(lat.quantile(1.0));
  j["accept_latency"] = std::move(l);
  j["connect_p99_ms"] = ms(r.connect_latency.quantile(0.99));
  j["flood_s"] = o.flood_seconds;
  j["server_peak_rss_mb"] = static_cast<double>(o.after.peak_rss_kib) / 1024.0;
  j["server_cpu_flood_s"] = o.after_flood.cpu_seconds - o.before.cpu_seconds;
  j["drain_s"] = o.drain_seconds;
  j["write_rate"] = f.write_rate;
  j["backlog_write_rate"] = f.backlog_rate;
  j["accept_rate"] = f.accept_rate;
  boost::json::object au;
  au["rows"] = o.audit.rows;
  au["lost"] = o.audit.lost;
  au["duplicated"] = o.audit.duplicated;
  au["rows_without_receipt"] = o.audit.unreceipted;
  au["pending"] = o.audit.pending;
  au["dead_lettered"] = o.audit.dead_lettered;
  au["audited"] = o.audited;
  j["audit"] = std::move(au);
  boost::json::array acc, wr;
  for (auto v : r.accepted_per_tick) acc.push_back(v);
  for (auto v : o.written) wr.push_back(v);
  j["accepted_per_100ms"] = std::move(acc);
  if (plan.open_loop) {
    j["burst_rate"] = s.burst_rate;
    j["burst_s"] = s.burst_s;
    boost::json::array by_second;
    for (const auto& sf : seconds_of(r))
      by_second.push_back({{"receipts", sf.answers}, {"p50_ms", sf.p50_ms}, {"p99_ms", sf.p99_ms}});
    j["scheduled_latency_by_second"] = std::move(by_second);
  }
  j["written_cumulative_per_100ms"] = std::move(wr);
  std::ofstream(s.json_out) << exam::to_plain_json(j) << "\n";
}

}  // namespace

void report_run(const settings& s, const run_plan& plan, results& r, const run_outcome& o) {
  const figures f = figures_of(plan, r, o);
  print_summary(s, plan, r, o, f);
  if (o.polls) print_polls(s, *o.polls, o.flood_seconds);
  if (o.streams) print_streams(*o.streams);
  if (!s.json_out.empty()) write_json(s, plan, r, o, f);
  if (!s.svg_out.empty()) std::ofstream(s.svg_out) << svg_chart(s, r.accepted_per_tick, o.written, f.latency);
}

}  // namespace spike
