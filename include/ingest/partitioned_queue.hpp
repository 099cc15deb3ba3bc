#pragma once
/// @file
/// One logical queue spread over several partitions (queues of one backend), chosen by a
/// hash of the idempotency key.

#include <cstddef>
#include <memory>
#include <string_view>
#include <vector>

#include "ingest/durable_queue.hpp"

namespace ingest {

/// The partition of `key` among `count` (at least 1): the 64-bit FNV-1a hash of the
/// key's bytes, modulo `count`. Fixed for good (docs/wire-format.md), so that every
/// process, in any language, sends a key's repeats to the same partition.
std::size_t partition_of(std::string_view key, std::size_t count) noexcept;

/// A `durable_queue` over N partitions, each a queue of its own (for NATS, a JetStream
/// stream with its own leader: see `nats::open_queue`).
///
/// **Publish.** A message goes to `partition_of(idempotency_key, N)`. A key's repeats
/// therefore meet its original in the same partition, and that partition's dedup
/// answers them as on one queue. A producer in another language that publishes into
/// the partitions must use the same function; a key sent to another partition is a new
/// message there.
///
/// **Fetch.** Deliveries kept from an earlier fetch come first. Otherwise every idle
/// partition is asked at once, `max` shared among them (each asked for at least one,
/// so that none is passed over when `max` is smaller than N; what does not fit is
/// kept for the next fetch, its lease already running), the order of the partitions
/// turning by one each time; a partition that gave all it was asked is asked again
/// while the batch has room. Only when all are empty does the fetch wait, on every
/// partition at once, each asked for one message; it ends at its own deadline even
/// while another fetch's wait holds the partitions. A partition whose fetch fails is
/// left out for 250 ms; the fetch fails only when every partition does, with the last
/// error. Deliveries are not in publish order across partitions (`features().fifo` is
/// false), only within one.
///
/// **Settle, extend.** A token names its partition (`P/token`); a decision goes to the
/// partition that delivered it.
///
/// **Stats** are the sums over the partitions, exact where every partition's count is.
/// **Dead letters** are listed across the partitions in receipt-id order; replay and
/// purge reach every partition, and a replayed letter goes back into its own.
///
/// **Held deliveries** are handed out by a later fetch only while held less than
/// `hold_limit` (default 5 s; give about half the partitions' lease): the fetch that
/// finds one held longer releases it (a retry with no delay: it comes again with a
/// fresh lease, and the partition counts one more delivery attempt) instead of handing
/// it out with its lease nearly or already run out. A delivery held for the next fetch
/// when the queue closes is released at once.
///
/// **Close** closes every partition.
///
/// **Threading.** Thread-safe. The partitions' completions are taken on this queue's
/// executor, which must be running for fetches to complete.
///
/// Changing N changes the partition of most keys, so a retry could reach a partition
/// that never saw its original: the NATS backend refuses to open a layout of another N
/// (docs/sizing.md says how to change it).
class partitioned_queue final : public durable_queue {
 public:
  /// How long a delivery that came after its fetch was answered is kept for the next one.
  static constexpr duration default_hold_limit = std::chrono::seconds(5);

  /// Takes the partitions (at least one, all with the same features); completions run
  /// on `ex`; `hold_limit` as above (more than zero). Throws
  /// `ingest::error(errc::invalid_config)` otherwise.
  partitioned_queue(executor_type ex, std::vector<std::unique_ptr<durable_queue>> partitions,
                    duration hold_limit = default_hold_limit);
  ~partitioned_queue() override;
  partitioned_queue(const partitioned_queue&) = delete;
  partitioned_queue& operator=(const partitioned_queue&) = delete;

  /// How many partitions there are.
  std::size_t partition_count() const noexcept { return partitions_.size(); }
  /// Partition `i` (for its own stats or tools; publishing to it directly skips the routing).
  durable_queue& partition(std::size_t i) { return *partitions_.at(i); }

  executor_type get_executor() const override { return executor_; }
  queue_features features() const override { return features_; }
  void close() override;
  /// Signs on every partition.
  void sign_receipts(std::shared_ptr<const receipt_signer> signer) override;

  /// The fetch machinery (partition_fetcher.cpp).
  class fetcher;

 protected:
  void do_publish(envelope message, callback<error_code, receipt> done) override;
  void do_fetch(std::size_t max, duration wait, callback<error_code, std::vector<delivery>> done) override;
  void do_settle(std::vector<settlement> decisions, callback<error_code> done) override;
  void do_extend(std::vector<std::string> tokens, duration by, callback<error_code> done) override;
  void do_stats(callback<error_code, queue_stats> done) override;
  void do_dead_letters(std::string after, std::size_t limit,
                       callback<error_code, std::vector<dead_letter>> done) override;
  void do_replay(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) override;
  void do_purge(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) override;
  void do_find(std::string receipt_id, callback<error_code, message_status> done) override;

 private:
  executor_type executor_;
  std::vector<std::unique_ptr<durable_queue>> partitions_;
  queue_features features_{};
  std::shared_ptr<fetcher> fetcher_;
};

}  // namespace ingest
