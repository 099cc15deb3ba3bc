#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>

namespace spike {

std::string svg_chart(const settings& s, const std::vector<std::uint32_t>& accepted,
                      const std::vector<std::int64_t>& written, const ingest::histogram& latency) {
  const double w = 900, h = 300, left = 60, top = 30;
  std::size_t ticks = std::max(accepted.size(), written.size());
  if (ticks < 2) ticks = 2;
  double peak = 1;
  std::vector<double> acc_rate(ticks, 0), wr_rate(ticks, 0);
  for (std::size_t i = 0; i < ticks; ++i) {
    acc_rate[i] = i < accepted.size() ? accepted[i] * 10.0 : 0;
    wr_rate[i] = i < written.size() && i > 0 ? static_cast<double>(written[i] - written[i - 1]) * 10.0 : 0;
    peak = std::max({peak, acc_rate[i], wr_rate[i]});
  }
  auto line = [&](const std::vector<double>& v, const char* colour) {
    std::string pts;
    for (std::size_t i = 0; i < v.size(); ++i)
      pts += std::to_string(left + w * static_cast<double>(i) / static_cast<double>(ticks - 1)) + "," +
             std::to_string(top + h - h * v[i] / peak) + " ";
    return "<polyline fill='none' stroke='" + std::string(colour) + "' stroke-width='2' points='" + pts + "'/>\n";
  };
  std::string out =
      "<svg xmlns='http://www.w3.org/2000/svg' width='1000' height='720' font-family='sans-serif' font-size='12'>\n";
  out += "<rect width='1000' height='720' fill='white'/>\n";
  out += "<text x='" + std::to_string(left) + "' y='18' font-size='14'>" + s.label +
         ": accepted/s (blue) vs written to exam.db/s (orange), 100 ms buckets</text>\n";
  out += "<line x1='" + std::to_string(left) + "' y1='" + std::to_string(top + h) + "' x2='" +
         std::to_string(left + w) + "' y2='" + std::to_string(top + h) + "' stroke='black'/>\n";
  out += "<line x1='" + std::to_string(left) + "' y1='" + std::to_string(top) + "' x2='" + std::to_string(left) +
         "' y2='" + std::to_string(top + h) + "' stroke='black'/>\n";
  out += "<text x='5' y='" + std::to_string(top + 10) + "'>" + std::to_string(static_cast<long>(peak)) + "/s</text>\n";
  out += "<text x='5' y='" + std::to_string(top + h) + "'>0</text>\n";
  out += "<text x='" + std::to_string(left + w - 60) + "' y='" + std::to_string(top + h + 16) + "'>" +
         std::to_string(static_cast<double>(ticks) / 10.0).substr(0, 5) + " s</text>\n";
  out += line(acc_rate, "#1f77b4");
  out += line(wr_rate, "#ff7f0e");
  // Latency distribution: the histogram's buckets from 100 us to 20 s.
  const double top2 = 400, h2 = 250;
  out += "<text x='" + std::to_string(left) + "' y='" + std::to_string(top2 - 12) +
         "' font-size='14'>accept latency distribution (requests per bucket, log time axis)</text>\n";
  const auto counts = latency.counts();
  std::uint64_t most = 1;
  std::size_t first = counts.size(), last = 0;
  for (std::size_t i = 0; i < counts.size(); ++i)
    if (counts[i]) {
      most = std::max(most, counts[i]);
      first = std::min(first, i);
      last = i;
    }
  if (first <= last) {
    const double lo = std::log10(std::max(1e-4, ingest::histogram::upper_bound(first > 0 ? first - 1 : 0)));
    const double hi = std::log10(ingest::histogram::upper_bound(last)) + 0.05;
    for (std::size_t i = first; i <= last; ++i) {
      const double x0 =
          left +
          w * (std::log10(std::max(1e-4, i > 0 ? ingest::histogram::upper_bound(i - 1) : 1e-6)) - lo) / (hi - lo);
      const double x1 = left + w * (std::log10(ingest::histogram::upper_bound(i)) - lo) / (hi - lo);
      const double bh = h2 * static_cast<double>(counts[i]) / static_cast<double>(most);
      out += "<rect x='" + std::to_string(x0) + "' y='" + std::to_string(top2 + h2 - bh) + "' width='" +
             std::to_string(std::max(1.0, x1 - x0 - 1)) + "' height='" + std::to_string(bh) + "' fill='#2ca02c'/>\n";
    }
    for (double decade = std::ceil(lo); decade <= hi; decade += 1) {
      const double x = left + w * (decade - lo) / (hi - lo);
      const double secs = std::pow(10.0, decade);
      const std::string label = secs < 1 ? std::to_string(static_cast<long>(std::lround(secs * 1000))) + " ms"
                                         : std::to_string(static_cast<long>(secs)) + " s";
      out += "<text x='" + std::to_string(x) + "' y='" + std::to_string(top2 + h2 + 16) + "'>" + label + "</text>\n";
    }
  }
  out += "<line x1='" + std::to_string(left) + "' y1='" + std::to_string(top2 + h2) + "' x2='" +
         std::to_string(left + w) + "' y2='" + std::to_string(top2 + h2) + "' stroke='black'/>\n</svg>\n";
  return out;
}

}  // namespace spike
