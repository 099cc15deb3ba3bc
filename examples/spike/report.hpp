#pragma once
// What spike writes: a run's summary on standard output, its run.json (--json) and chart
// (--svg), and `spike report`, which sets the medians of several runs side by side.

#include <cstdint>
#include <string>
#include <vector>

#include "audit.hpp"
#include "ingest/metrics.hpp"
#include "results.hpp"
#include "server_process.hpp"
#include "settings.hpp"

namespace spike {

struct followers_report;  // followers.hpp

// What a run measured besides its `results`.
struct run_outcome {
  double flood_seconds = 0;
  proc_sample before, after_flood, after;  // the server: before the flood, after it, after the drain
  bool audited = false;                    // exam.db was watched (--db)
  audit_result audit;
  std::vector<std::int64_t> written;  // this run's rows in exam.db, every 100 ms
  double drain_seconds = -1;
  results* polls = nullptr;  // the status reads of the flood (--poll-rate), if any
  const followers_report* streams = nullptr;  // the status streams open during it (--streams), if any
};

// Prints the summary, then writes run.json and the chart where the settings ask for them.
void report_run(const settings& s, const run_plan& plan, results& r, const run_outcome& o);

std::string svg_chart(const settings& s, const std::vector<std::uint32_t>& accepted,
                      const std::vector<std::int64_t>& written, const ingest::histogram& latency);

// `spike report a.json b.json ...`: medians per label, side by side, with the ratio of
// each label to the first one. Returns the exit code.
int report_command(const std::vector<std::string>& files);

}  // namespace spike
