#pragma once
/// @file
/// The embedded queue's own record of what it accepted, as a reconciler reads it: the
/// standing audit of guarantee 4 (every accepted receipt processed, pending or
/// dead-lettered) compares it with the sink.

#include <memory>
#include <string>

#include "ingest/reconciler.hpp"

namespace ingest::sqlite {

/// The messages an embedded queue file holds, one record per receipt: key = receipt
/// id, fingerprint = the payload's, at = accept time, detail = where the message is:
/// `pending` (ready, leased or waiting for a retry), `processed`, `dead_lettered` or
/// `purged`. Processed and purged messages stay in the file for the queue's
/// `dedup_window` (24 h by default), then compaction removes them: audit windows
/// shorter than that.
///
/// Reads on a read-only connection of its own, so it runs beside the queue's processes
/// without taking its write lock. Pages in receipt-id order through the queue's receipt
/// index (`receipt_index`, on by default); without it the constructor throws
/// `ingest::error(errc::not_supported)`. Not thread-safe (one reconciler at a time).
class queue_records final : public record_source {
 public:
  /// Opens `path`, a queue file (the path of a `sqlite://` URL). Throws
  /// `ingest::error` when it cannot be read.
  explicit queue_records(const std::string& path);
  ~queue_records() override;
  queue_records(const queue_records&) = delete;
  queue_records& operator=(const queue_records&) = delete;

  /// Messages accepted within `window` with receipt ids after `after`, in receipt order.
  std::vector<reconcile_record> page(const reconcile_window& window, std::string_view after,
                                     std::size_t limit) override;
  /// The messages with these receipt ids.
  std::vector<reconcile_record> find(std::span<const std::string> keys) override;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace ingest::sqlite
