#include "ingest/metrics.hpp"

#include <fmt/format.h>
#include <cmath>

namespace ingest {

void histogram::observe(double value) noexcept {
  std::size_t index = 0;
  if (value > 0 && std::isfinite(value)) {
    // Buckets are (lower, upper], as Prometheus reads `le`: a value on an edge belongs
    // to the bucket below it, so it is placed one ulp lower.
    int exponent = 0;
    const double mantissa = std::frexp(std::nextafter(value, 0.0), &exponent);  // mantissa in [0.5, 1)
    const int octave = exponent - 1 - min_exponent;                             // value in [2^(exponent-1), 2^exponent)
    if (octave >= static_cast<int>(bucket_count / sub_buckets)) {
      index = bucket_count - 1;
    } else if (octave >= 0) {
      const auto sub = static_cast<std::size_t>((mantissa * 2 - 1) * sub_buckets);
      index = static_cast<std::size_t>(octave) * sub_buckets + std::min<std::size_t>(sub, sub_buckets - 1);
    }
  } else if (value > 0) {
    index = bucket_count - 1;  // +inf
  }
  buckets_[index].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  if (std::isfinite(value) && value > 0) sum_.fetch_add(value, std::memory_order_relaxed);
}

std::uint64_t histogram::count() const noexcept {
  return count_.load(std::memory_order_relaxed);
}

double histogram::sum() const noexcept {
  return sum_.load(std::memory_order_relaxed);
}

double histogram::upper_bound(std::size_t i) noexcept {
  const int octave = static_cast<int>(i / sub_buckets);
  const double sub = static_cast<double>(i % sub_buckets);
  return std::ldexp(1.0 + (sub + 1) / sub_buckets, octave + min_exponent);
}

std::vector<std::uint64_t> histogram::counts() const {
  std::vector<std::uint64_t> out(bucket_count);
  for (std::size_t i = 0; i < bucket_count; ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

double histogram::quantile(double q) const noexcept {
  std::uint64_t total = 0;
  std::array<std::uint64_t, bucket_count> snapshot{};
  for (std::size_t i = 0; i < bucket_count; ++i) total += snapshot[i] = buckets_[i].load(std::memory_order_relaxed);
  if (total == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const auto rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total))));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < bucket_count; ++i) {
    seen += snapshot[i];
    if (seen >= rank) return upper_bound(i);
  }
  return upper_bound(bucket_count - 1);
}

void pipeline_metrics::reject(const error_code& ec) noexcept {
  const std::error_code std_ec = ec;
  const auto value = std_ec.category() == ingest_category() ? static_cast<std::size_t>(std_ec.value()) : 0;
  rejected_by_reason[value < rejected_by_reason.size() ? value : 0].inc();
}

std::uint64_t pipeline_metrics::rejected(errc reason) const noexcept {
  const auto value = static_cast<std::size_t>(reason);
  return value < rejected_by_reason.size() ? rejected_by_reason[value].value() : 0;
}

namespace {

void write_counter(std::string& out, std::string_view prefix, std::string_view name, std::string_view help,
                   std::uint64_t value) {
  fmt::format_to(std::back_inserter(out), "# HELP {0}{1} {2}\n# TYPE {0}{1} counter\n{0}{1} {3}\n", prefix, name, help,
                 value);
}

// Cumulative buckets at the powers of two 2^lo .. 2^hi (exact: they are bucket edges).
void write_histogram(std::string& out, std::string_view prefix, std::string_view name, std::string_view help,
                     const histogram& h, int lo, int hi) {
  fmt::format_to(std::back_inserter(out), "# HELP {0}{1} {2}\n# TYPE {0}{1} histogram\n", prefix, name, help);
  const auto counts = h.counts();
  std::uint64_t cumulative = 0;
  std::size_t i = 0;
  for (int e = lo; e <= hi; ++e) {
    const double edge = std::ldexp(1.0, e);
    while (i < counts.size() && histogram::upper_bound(i) <= edge) cumulative += counts[i++];
    fmt::format_to(std::back_inserter(out), "{}{}_bucket{{le=\"{}\"}} {}\n", prefix, name, edge, cumulative);
  }
  std::uint64_t total = 0;
  for (auto c : counts) total += c;
  fmt::format_to(std::back_inserter(out), "{0}{1}_bucket{{le=\"+Inf\"}} {2}\n{0}{1}_sum {3}\n{0}{1}_count {2}\n",
                 prefix, name, total, h.sum());
}

}  // namespace

std::string to_prometheus(const pipeline_metrics& m, std::string_view prefix) {
  std::string out;
  write_counter(out, prefix, "accepted_total", "Messages durably accepted.", m.accepted.value());
  write_counter(out, prefix, "duplicates_total", "Repeated keys answered with the original receipt.",
                m.duplicates.value());
  fmt::format_to(std::back_inserter(out),
                 "# HELP {0}rejected_total Submissions refused, by reason.\n"
                 "# TYPE {0}rejected_total counter\n",
                 prefix);
  for (int v = static_cast<int>(errc::invalid_key); v <= static_cast<int>(errc::invalid_header); ++v)
    fmt::format_to(std::back_inserter(out), "{}rejected_total{{reason=\"{}\"}} {}\n", prefix,
                   errc_name(static_cast<errc>(v)), m.rejected_by_reason[static_cast<std::size_t>(v)].value());
  write_histogram(out, prefix, "accept_latency_seconds", "Time from submit to its answer.", m.accept_latency, -17, 5);
  write_counter(out, prefix, "processed_total", "Items committed and acknowledged.", m.processed.value());
  write_counter(out, prefix, "retried_total", "Items sent back for another attempt.", m.retried.value());
  write_counter(out, prefix, "dead_lettered_total", "Items moved to the dead-letter store.", m.dead_lettered.value());
  write_counter(out, prefix, "handler_errors_total", "Batch handler calls that threw.", m.handler_errors.value());
  write_histogram(out, prefix, "batch_size", "Items per batch handler call.", m.batch_size, 0, 14);
  write_histogram(out, prefix, "commit_latency_seconds", "Time per batch handler call (its transaction).",
                  m.commit_latency, -17, 5);
  fmt::format_to(std::back_inserter(out),
                 "# HELP {0}backlog Messages accepted and not yet processed or dead-lettered.\n"
                 "# TYPE {0}backlog gauge\n{0}backlog {1}\n",
                 prefix, m.backlog.value());
  return out;
}

}  // namespace ingest
