#pragma once
/// @file
/// The NATS JetStream backend (nats.c): a durable queue on a JetStream stream with a
/// durable pull consumer and a dead-letter stream.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/durable_queue.hpp"

namespace ingest::nats {

/// Where a `nats::queue` connects and how its streams and consumer are configured.
struct queue_options {
  /// Server URLs (`nats://host:port`); several for a cluster.
  std::vector<std::string> servers{"nats://127.0.0.1:4222"};
  std::string connection_name = "ingest";  ///< the client name shown by the server
  std::string token{};  ///< token authentication
  std::string user{};   ///< user / password authentication
  std::string password{};  ///< with `user`
  std::string credentials_file{};  ///< a `.creds` file (JWT + NKey)
  bool tls = false;  ///< TLS to the server (`tls://` URLs set it)
  std::string tls_ca_file{};  ///< CA bundle that verifies the server
  std::string tls_cert_file{};  ///< client certificate (mutual TLS)
  std::string tls_key_file{};  ///< its private key

  std::string stream = "INGEST";  ///< the work stream
  std::string subject = "ingest.messages";  ///< the subject messages are published on (the stream's only subject)
  std::string dead_letter_stream = "INGEST_DLQ";  ///< the dead-letter stream
  std::string dead_letter_subject = "ingest.dead";  ///< its subject
  bool file_storage = true;  ///< file storage (durable); false = memory storage
  int replicas = 1;          ///< 3 for power-loss durability in a cluster
  /// The stream's duplicate window: a repeated key within it is answered with the
  /// original receipt. Accepted messages are kept at least this long, and each key
  /// costs the server memory for the whole window.
  std::chrono::milliseconds duplicate_window{std::chrono::minutes(2)};
  /// Stream limits (0 = none). With `DiscardNew`, a full stream refuses new work
  /// (`errc::queue_full`) and never deletes accepted work. Processed messages within
  /// the duplicate window count too.
  std::int64_t max_messages = 0;
  std::int64_t max_bytes = 0;  ///< stream size limit in bytes (0 = none)

  /// Streams one logical queue is spread over, by a hash of the key (`partition_of`).
  /// 1: the streams and subjects above. N > 1: partition i is the stream `stream-i` on
  /// the subject `subject.i`, with its dead letters in `dead_letter_stream-i` on
  /// `dead_letter_subject.i` (`INGEST-0`, `ingest.messages.0`, `INGEST_DLQ-0`,
  /// `ingest.dead.0`, ...), each with its own leader in a cluster; open them with
  /// `open_queue`. The layout is checked at start: a queue is never opened over streams
  /// laid out for another N (a retry could reach a partition that never saw its key).
  int partitions = 1;
  /// The largest number of partitions a queue may have.
  static constexpr int max_partitions = 64;
  /// Which partition this queue is, 0 to `partitions - 1` (`for_partition` sets it); -1
  /// for an unpartitioned queue.
  int partition = -1;

  std::string consumer = "ingest-workers";                       ///< durable pull consumer
  std::chrono::milliseconds ack_wait{std::chrono::seconds(30)};  ///< the lease
  /// -1: unlimited. The batching consumer dead-letters after its own `max_attempts`
  /// (counted from the delivery metadata); a server limit at or below that would
  /// leave the last deliveries unacked forever, so keep it unlimited or higher.
  std::int64_t max_deliver = -1;
  /// Server-side redelivery delays for unacked deliveries (the consumer's `BackOff`;
  /// needs `max_deliver` greater than its length). Empty: `ack_wait` each time.
  /// Retries the library decides on use `NakWithDelay` with the retry policy's delay.
  std::vector<std::chrono::milliseconds> redelivery_backoff{};
  std::int64_t max_ack_pending = 20000;  ///< deliveries handed out and not yet acked, at most (server-side flow control)
  /// Publishes awaiting their PubAck at once; past it, publishes fail at once with
  /// `errc::backpressure`.
  std::size_t max_pending_publishes = 4096;
  /// How long a publish may wait for its PubAck, resends after a reconnect included.
  std::chrono::milliseconds publish_timeout{std::chrono::seconds(5)};
  /// Timeout of JetStream API requests (stream info, get message, ...).
  std::chrono::milliseconds request_timeout{std::chrono::seconds(5)};
  /// How often processed messages older than the duplicate window are purged.
  std::chrono::milliseconds compaction_interval{std::chrono::seconds(5)};

  /// Throws `ingest::error(errc::invalid_config)` when a value is out of range.
  void validate() const;

  /// The options of partition `i` of `partitions`: the stream names above with `-i`
  /// appended and the subjects with `.i` (`INGEST-2`, `ingest.messages.2`), and
  /// `partition = i`.
  queue_options for_partition(int i) const;

  /// `nats://[user:password@|token@]host:port[,host:port...][?name=value&...]` with
  /// parameters `stream`, `subject`, `dead_letter_stream`, `dead_letter_subject`,
  /// `consumer`, `partitions`, `replicas`, `storage` (`file`|`memory`), `duplicate_window`,
  /// `ack_wait`, `max_deliver`, `max_ack_pending`, `max_messages`, `max_bytes`,
  /// `publish_timeout`, `creds`, `tls` (`true` or `false`), `tls_ca`, `tls_cert`,
  /// `tls_key` (durations as `250ms`, `30s`, `2m`, `24h`). `tls://` implies `tls=true`.
  /// The credentials and the parameters are percent-decoded (a password with `@` is
  /// written `%40`); a URL is never echoed in an error (it may hold a password). Throws
  /// `ingest::error(errc::invalid_config)` naming what is wrong: an unknown or repeated
  /// parameter, a boolean other than `true`/`false`/`1`/`0`, TLS files without TLS.
  static queue_options from_url(std::string_view url);
};

/// `durable_queue` on NATS JetStream.
///
/// **Durability.** A publish completes after the stream's PubAck (file storage).
/// nats-server 2.9 acknowledges before it fsyncs (it syncs periodically): power-loss
/// durability comes from replication (`replicas = 3` in a three-node cluster).
///
/// **Dedup.** The idempotency key is the `Nats-Msg-Id`. A duplicate PubAck is answered
/// with the original receipt and accept time, read from the stored original (the
/// stream keeps messages at least `duplicate_window`); another payload under the same
/// key is `errc::conflict`.
///
/// **On the wire.** The payload is the message data. Receipt id, key, fingerprint,
/// accept time and subject are `Ingest-*` headers; the application headers travel
/// together, in order, in `Ingest-Headers` (`name=value` pairs joined by `&`, with `%`,
/// `&`, `=`, control characters and edge spaces written as %XX), because nats.c 3.4
/// mixes up two header names when one is a prefix of the other. docs/wire-format.md
/// has the whole format for programs in other languages. A message another client
/// published is completed from what JetStream knows (key from `Nats-Msg-Id`, receipt
/// id from the stream sequence, accept time from the store time, its own headers);
/// one that breaks the format is delivered with `delivery::malformed` set.
///
/// **Consume.** A durable pull consumer: fetch in batches, ack after commit,
/// `NakWithDelay` for retry (a plain Nak when the delay is zero), `InProgress` to
/// extend a lease (by the consumer's `ack_wait`, whatever is asked), attempts from the
/// delivery metadata, and dead letters written to the dead-letter stream *before* the
/// original is terminated, with reason, attempts, times and the original subject and
/// sequence in headers. `first_attempt_at` is exact when this process made the first
/// delivery, and the accept time otherwise (JetStream does not keep it).
///
/// **Stats** (`features().exact_stats` is false, so `balanced()` is never claimed):
/// `pending` and `leased` come from the consumer's own counts and `dead_lettered` from
/// the dead-letter stream, exactly (`queue_stats::exact`). JetStream keeps no count of
/// acknowledged messages: `accepted` is the stream's last sequence number (a replayed
/// dead letter is stored, and counted, again), `processed` is what remains of it, and
/// `purged` is not counted (0).
///
/// **Reconnects** are automatic. While disconnected, publishes fail at once with
/// `errc::backend_unavailable` (retry later with the same key); a publish whose
/// PubAck timed out is resent with the same `Nats-Msg-Id` once connected again, until
/// `publish_timeout`.
///
/// **Ownership.** Owns its connection and threads; messages live in the server. Not
/// copyable. Completion and cancellation: as `durable_queue` says.
///
/// **Threading.** Thread-safe. Blocking NATS calls run on the queue's own threads;
/// completions run on their associated executor (default: the one given here).
/// The constructor connects and creates or verifies the streams and the consumer,
/// and throws `ingest::error` (`errc::backend_unavailable` when no server answers,
/// `errc::invalid_config` when an existing stream or consumer is configured
/// differently: it is never silently reconfigured).
///
/// @code
/// ingest::nats::queue queue(io.get_executor(),
///     ingest::nats::queue_options::from_url("nats://127.0.0.1:4222?stream=EXAMS&replicas=3"));
/// @endcode
class queue final : public durable_queue {
 public:
  /// Connects, creates or verifies the streams and the consumer; completions run on `ex`.
  queue(executor_type ex, queue_options options);
  ~queue() override;
  queue(const queue&) = delete;
  queue& operator=(const queue&) = delete;

  executor_type get_executor() const override;
  queue_features features() const override;
  void close() override;

 private:
  void do_publish(envelope message, callback<error_code, receipt> done) override;
  void do_fetch(std::size_t max, duration wait, callback<error_code, std::vector<delivery>> done) override;
  void do_settle(std::vector<settlement> decisions, callback<error_code> done) override;
  void do_extend(std::vector<std::string> tokens, duration by, callback<error_code> done) override;
  void do_stats(callback<error_code, queue_stats> done) override;
  void do_dead_letters(std::string after, std::size_t limit,
                       callback<error_code, std::vector<dead_letter>> done) override;
  void do_replay(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) override;
  void do_purge(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) override;

  struct engine;
  std::shared_ptr<engine> engine_;
  executor_type executor_;
};

/// Opens the queue `options` describe: one `queue` when `partitions` is 1, else a
/// `partitioned_queue` over `partitions` of them (partition 0 first; its start checks
/// the whole layout). Throws as `queue`'s constructor does.
///
/// @code
/// auto q = ingest::nats::open_queue(io.get_executor(),
///     ingest::nats::queue_options::from_url("nats://127.0.0.1:4222?stream=EXAMS&partitions=4"));
/// @endcode
std::unique_ptr<durable_queue> open_queue(durable_queue::executor_type ex, const queue_options& options);

}  // namespace ingest::nats
