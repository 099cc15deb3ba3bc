#pragma once
/// @file
/// Metrics of the pipeline: lock-free counters and log-linear histograms, and their
/// Prometheus text exposition.

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/error.hpp"

namespace ingest {

/// A monotonic count. Thread-safe, lock-free.
class counter {
 public:
  /// Adds `n`.
  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  /// The count so far.
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

/// A value that goes up and down (a backlog, a queue depth). Thread-safe, lock-free.
class gauge {
 public:
  /// Sets the value.
  void set(std::int64_t v) noexcept { value_.store(v, std::memory_order_relaxed); }
  /// The value last set.
  std::int64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

/// A distribution of non-negative values that keeps every sample's precision to
/// 1/8 of its power of two (log-linear buckets: each octave from 2^-20 to 2^20 split
/// into 8 equal parts, each bucket (lower, upper]), so quantiles are within 12.5 % of
/// the true value without storing samples. Values below 2^-20 count in the first bucket, values above 2^20
/// in the last. Thread-safe, lock-free; `observe` is a few instructions.
///
/// @code
/// ingest::histogram latency;
/// latency.observe(0.0042);           // seconds
/// double p99 = latency.quantile(0.99);
/// @endcode
class histogram {
 public:
  static constexpr int min_exponent = -20;  ///< smallest power of two with its own buckets
  static constexpr int max_exponent = 20;  ///< largest power of two with its own buckets
  static constexpr int sub_buckets = 8;  ///< buckets per power of two
  static constexpr std::size_t bucket_count = (max_exponent - min_exponent) * sub_buckets;  ///< number of buckets

  /// Records one sample (negative values count as 0).
  void observe(double value) noexcept;

  /// Number of samples.
  std::uint64_t count() const noexcept;
  /// Sum of the samples.
  double sum() const noexcept;
  /// The upper bound of the bucket holding the q-th sample (0 <= q <= 1); 0 when empty.
  double quantile(double q) const noexcept;
  /// Upper bound of bucket `i`.
  static double upper_bound(std::size_t i) noexcept;
  /// Per-bucket counts (not cumulative), index as in `upper_bound`.
  std::vector<std::uint64_t> counts() const;

 private:
  std::array<std::atomic<std::uint64_t>, bucket_count> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<double> sum_{0.0};
};

/// The library's metrics, shared by the objects that record them (pass the same
/// instance to `producer_options::metrics` and `consumer_options::metrics`).
/// Every member is thread-safe; read them at any time.
struct pipeline_metrics {
  // Accept path (producer).
  counter accepted;                              ///< new messages durably accepted
  counter duplicates;                            ///< repeats answered with the original receipt
  std::array<counter, 32> rejected_by_reason{};  ///< indexed by `ingest::errc` value
  histogram accept_latency;                      ///< seconds from submit to its answer, every answer

  // Drain path (consumer).
  counter processed;         ///< items committed and acked
  counter retried;           ///< items sent back for another attempt
  counter dead_lettered;     ///< items moved to the dead-letter store
  counter handler_errors;    ///< handler calls that threw
  histogram batch_size;      ///< items per handler call
  histogram commit_latency;  ///< seconds per handler call (its transaction)

  // Set by whoever reads the queue's stats (e.g. a /metrics handler).
  gauge backlog;  ///< messages accepted and not yet processed or dead-lettered

  /// Counts one rejected submit under its `errc` reason (`other` for any other code).
  void reject(const error_code& ec) noexcept;
  /// Rejected submits with this reason so far.
  std::uint64_t rejected(errc reason) const noexcept;
};

/// Prometheus text exposition (format 0.0.4) of `m`, every name prefixed with
/// `prefix`: `<prefix>accepted_total`, `<prefix>rejected_total{reason="..."}`,
/// `<prefix>accept_latency_seconds` (histogram), `<prefix>processed_total`, ...
std::string to_prometheus(const pipeline_metrics& m, std::string_view prefix = "ingest_");

}  // namespace ingest
