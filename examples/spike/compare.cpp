#include "report.hpp"

#include <algorithm>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>

namespace spike {

namespace {

using getter = std::function<const boost::json::value*(const boost::json::object&)>;

// The result files by label; the labels in the order they first come.
struct runs_by_label {
  std::vector<std::string> labels;
  std::map<std::string, std::vector<boost::json::object>> runs;
};

// False (with a message) when a file is not a result file.
bool load(const std::vector<std::string>& files, runs_by_label& out) {
  for (const auto& f : files) {
    std::ifstream in(f);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    boost::system::error_code ec;
    auto v = boost::json::parse(text, ec);
    if (ec || !v.is_object()) {
      std::fprintf(stderr, "spike report: %s is not a result file\n", f.c_str());
      return false;
    }
    const std::string label(v.as_object().at("label").as_string());
    if (!out.runs.count(label)) out.labels.push_back(label);
    out.runs[label].push_back(v.as_object());
  }
  return true;
}

double number(const boost::json::value* v) {
  if (!v) return std::nan("");
  if (v->is_double()) return v->as_double();
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  return std::nan("");
}

double median(const std::vector<boost::json::object>& runs, const getter& get) {
  std::vector<double> xs;
  for (const auto& o : runs)
    if (double x = number(get(o)); !std::isnan(x)) xs.push_back(x);
  if (xs.empty()) return std::nan("");
  std::sort(xs.begin(), xs.end());
  return xs.size() % 2 ? xs[xs.size() / 2] : (xs[xs.size() / 2 - 1] + xs[xs.size() / 2]) / 2;
}

struct row {
  const char* name;
  getter get;
  const char* format;
};

getter field(const char* k) {
  return [k](const boost::json::object& o) { return o.if_contains(k); };
}

getter nested(const char* a, const char* b) {
  return [a, b](const boost::json::object& o) -> const boost::json::value* {
    const auto* x = o.if_contains(a);
    return x && x->is_object() ? x->as_object().if_contains(b) : nullptr;
  };
}

std::vector<row> table_rows() {
  return {
      {"students / submissions", field("students"), "%.0f"},
      {"success rate %", field("success_pct"), "%.2f"},
      {"failed requests", field("failed_requests"), "%.0f"},
      {"accept latency avg ms", nested("accept_latency", "avg_ms"), "%.1f"},
      {"accept latency p50 ms", nested("accept_latency", "p50_ms"), "%.1f"},
      {"accept latency p95 ms", nested("accept_latency", "p95_ms"), "%.1f"},
      {"accept latency p99 ms", nested("accept_latency", "p99_ms"), "%.1f"},
      {"accept latency max ms", nested("accept_latency", "max_ms"), "%.1f"},
      {"accepted/s", field("accept_rate"), "%.0f"},
      {"database rows/s", field("write_rate"), "%.0f"},
      {"database rows/s with a backlog", field("backlog_write_rate"), "%.0f"},
      {"drain after last accept s", field("drain_s"), "%.2f"},
      {"server peak RSS MB", field("server_peak_rss_mb"), "%.1f"},
      {"server CPU s (flood)", field("server_cpu_flood_s"), "%.2f"},
      {"audit: lost", nested("audit", "lost"), "%.0f"},
      {"audit: duplicated", nested("audit", "duplicated"), "%.0f"},
      {"audit: rows without receipt", nested("audit", "rows_without_receipt"), "%.0f"},
  };
}

void print_header(const runs_by_label& r) {
  const auto& labels = r.labels;
  std::printf("| median of runs |");
  for (const auto& l : labels) std::printf(" %s (%zu) |", l.c_str(), r.runs.at(l).size());
  for (std::size_t i = 1; i < labels.size(); ++i) std::printf(" %s / %s |", labels[i].c_str(), labels[0].c_str());
  std::printf("\n|---|");
  for (std::size_t i = 0; i < 2 * labels.size() - 1; ++i) std::printf("---|");
  std::printf("\n");
}

void print_row(const row& rw, const runs_by_label& r) {
  std::printf("| %s |", rw.name);
  std::vector<double> values;
  for (const auto& l : r.labels) {
    values.push_back(median(r.runs.at(l), rw.get));
    if (std::isnan(values.back()))
      std::printf(" - |");
    else
      std::printf((" " + std::string(rw.format) + " |").c_str(), values.back());
  }
  for (std::size_t i = 1; i < values.size(); ++i) {
    if (std::isnan(values[i]) || std::isnan(values[0]) || values[0] == 0)
      std::printf(" - |");
    else
      std::printf(" %.2fx |", values[i] / values[0]);
  }
  std::printf("\n");
}

}  // namespace

int report_command(const std::vector<std::string>& files) {
  runs_by_label r;
  if (!load(files, r)) return 2;
  print_header(r);
  for (const auto& rw : table_rows()) print_row(rw, r);
  return 0;
}

}  // namespace spike
