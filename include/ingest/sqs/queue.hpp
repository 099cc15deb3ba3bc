#pragma once
/// @file
/// The SQS-compatible backend: a durable queue on an Amazon SQS queue or an endpoint
/// speaking the same AWS JSON 1.0 protocol (tested against the fauxqs emulator), with
/// SigV4 signing and a dead-letter queue.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ingest/durable_queue.hpp"
#include "ingest/aws/sigv4.hpp"

namespace ingest::sqs {

/// Where an `sqs::queue` sends requests, which queues it uses and how it batches.
struct queue_options {
  /// Where requests go: `http://host:port` or `https://sqs.<region>.amazonaws.com`.
  std::string endpoint = "http://127.0.0.1:4566";
  /// Empty: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the profile's region in the
  /// shared config file (`aws::region_from_shared_config`), else `us-east-1`.
  std::string region{};
  /// Empty: `aws::credentials::from_default_chain()` (the environment, then the shared
  /// credentials file). Emulators accept any non-empty pair; the library signs with
  /// `test`/`test` when none is found and the endpoint is plain http.
  aws::credentials creds{};
  std::string account{};  ///< the queue owner's account id (GetQueueUrl); empty: the caller's
  std::string queue = "ingest";  ///< a name ending in `.fifo` is a FIFO queue
  /// The library-managed dead-letter queue (same type as `queue`: `.fifo` for FIFO).
  std::string dead_letter_queue = "ingest-dlq";
  /// Create missing queues (and check that existing ones have the same attributes).
  bool create_queues = true;
  /// With `create_queues`: a `RedrivePolicy` on the main queue that makes SQS itself
  /// move a message to the dead-letter queue after this many receives (0 = none; the
  /// consumer's own `max_attempts` then decides). Set it above the consumer's
  /// `max_attempts` so that it only catches consumers that die on a message.
  std::uint32_t redrive_max_receives = 0;

  /// The lease: `VisibilityTimeout` of each receive (SQS counts whole seconds: rounded up).
  std::chrono::milliseconds visibility_timeout{std::chrono::seconds(30)};
  /// FIFO: the `MessageGroupId` of every message (one group = strict order, one batch
  /// in flight at a time) ...
  std::string message_group = "ingest";
  /// ... or one group per idempotency key (parallel consumption, no global order).
  bool group_per_key = false;

  /// Publishes not yet acknowledged; past it, publishes fail at once with `errc::backpressure`.
  std::size_t max_pending_publishes = 8192;
  /// `SendMessageBatch` requests in flight at once (publishes coalesce while they are busy).
  std::size_t max_send_batches = 32;
  /// Total size of one `SendMessageBatch` (bodies + attributes).
  std::size_t max_batch_bytes = 1u << 20;
  /// How long a publish may take, retries of throttled or failed entries included.
  std::chrono::milliseconds publish_timeout{std::chrono::seconds(5)};
  /// Parallel `ReceiveMessage` calls a large fetch is split into (each returns <= 10).
  std::size_t receive_concurrency = 10;
  /// A repeated key published through this queue object within this time gets the
  /// original receipt (`duplicate = true`) or `errc::conflict`; SQS cannot tell a
  /// sender which message a key belongs to, so repeats through other processes are
  /// new messages (FIFO: dropped by SQS within its 5-minute deduplication interval).
  std::chrono::milliseconds remember_keys{std::chrono::minutes(5)};
  std::size_t remember_keys_max = 1'000'000;  ///< keys remembered at most (oldest forgotten first; ~100 bytes each)

  std::size_t max_connections = 64;  ///< HTTP connections to the endpoint at most (keep-alive pool)
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(3)};  ///< TCP connect (and TLS handshake) limit per connection
  std::chrono::milliseconds request_timeout{std::chrono::seconds(10)};  ///< plus the long-poll wait
  bool tls_verify = true;  ///< verify the endpoint's certificate and host name (https)
  std::string tls_ca_file{};  ///< CA bundle for that (empty: the system's)

  /// Throws `ingest::error(errc::invalid_config)` when a value is out of range.
  void validate() const;

  /// `sqs+http://host:port/account/queue[?name=value&...]` (`sqs+https://` for TLS)
  /// with parameters `dlq`, `region`, `create` (`true`|`false`), `redrive` (receives),
  /// `visibility`, `group`, `group_per_key`, `publish_timeout`, `max_connections`,
  /// `receive_concurrency`, `tls_verify`, `tls_ca`. An `account` of `-` means "the
  /// caller's". Parts are percent-decoded; an unknown or repeated parameter, a boolean
  /// other than `true`/`false`/`1`/`0`, or `tls_ca`/`tls_verify` on `sqs+http://` is
  /// refused by name. Credentials never come from the URL (see `sigv4.hpp`).
  static queue_options from_url(std::string_view url);
};

/// `durable_queue` on SQS.
///
/// **Durability.** A publish completes after SQS accepted the entry (`SendMessageBatch`
/// success for that entry): SQS stores messages redundantly before it answers.
/// Concurrent publishes coalesce into batches of up to 10 entries and
/// `max_batch_bytes`; each entry's failure is checked on its own: sender faults fail
/// that publish, server faults and throttling are retried with backoff until
/// `publish_timeout`, after which the publish fails with `errc::publish_timeout`
/// (never a receipt). An unreachable endpoint fails publishes at once with
/// `errc::backend_unavailable`. The receipt id is made before the first send, so a
/// resent entry carries the same id (a standard queue may then hold two copies: the
/// consumer's idempotency store keeps one row).
///
/// **Dedup.** See `queue_options::remember_keys`; `features().dedup_window` is zero
/// because SQS itself cannot give the original receipt back. FIFO queues send the
/// idempotency key (hashed when it is not a valid deduplication id) as
/// `MessageDeduplicationId`.
///
/// **On the wire.** The body is the payload (base64 when it is not text SQS takes),
/// and the message attribute `ingest` holds the rest as JSON (docs/wire-format.md). A
/// message another program sent without it gets the SQS message id as receipt id, the
/// deduplication id (FIFO) or else the message id as key, and `SentTimestamp` as accept
/// time; one that breaks the format is delivered with `delivery::malformed` set.
///
/// **Consume.** `ReceiveMessage` long polling (split into `receive_concurrency` calls
/// for large fetches), `DeleteMessageBatch` for acks, `ChangeMessageVisibilityBatch`
/// for retry delays and lease extension (whole seconds, up to 12 h), attempts from
/// `ApproximateReceiveCount`, `first_attempt_at` from
/// `ApproximateFirstReceiveTimestamp`. SQS accepts a delete with a stale receipt
/// handle without deleting anything, so an ack after the lease ran out (known from the
/// lease this object handed out) completes with `errc::lease_expired`.
///
/// **Dead letters** go to the dead-letter queue with reason, attempts, last error and
/// times in a message attribute, *before* the original is deleted. Messages that SQS
/// moved there by a `RedrivePolicy` are listed with reason `max_receives`. Listing,
/// replay and purge scan the dead-letter queue (SQS has no browse): fine for the
/// hundreds of letters an operator looks at, not for millions.
///
/// **Stats** are approximate (`exact_stats` false, every flag of `queue_stats::exact`
/// false, so `balanced()` is never claimed): `pending`, `leased` and `dead_lettered`
/// come from SQS's approximate `GetQueueAttributes`, `processed` and `purged` count
/// what this object acked and purged since it was made, `retrying` the deliveries in
/// hand that are not first attempts, and `accepted` is their sum (SQS keeps no count
/// of messages sent).
///
/// **Ownership.** Owns its I/O thread and connection pool; messages live in SQS. Not
/// copyable. Destroying it drops operations still in progress (their handlers are not
/// called): close and let them finish first. Completion and cancellation: as
/// `durable_queue` says.
///
/// **Threading.** Thread-safe. HTTP runs on the queue's own I/O thread; completions
/// run on their associated executor (default: the one given here). The constructor
/// resolves (or creates) the queues and throws `ingest::error`:
/// `errc::backend_unavailable` when the endpoint does not answer, `errc::invalid_config`
/// with the AWS message for access denied, a missing queue or mismatching attributes.
///
/// @code
/// ingest::sqs::queue queue(io.get_executor(), ingest::sqs::queue_options::from_url(
///     "sqs+https://sqs.eu-west-1.amazonaws.com/123456789012/exam-submissions?dlq=exam-dlq"));
/// @endcode
class queue final : public durable_queue {
 public:
  /// Resolves or creates the queues (blocking); completions run on `ex`. Throws `ingest::error`.
  queue(executor_type ex, queue_options options);
  ~queue() override;
  queue(const queue&) = delete;
  queue& operator=(const queue&) = delete;

  executor_type get_executor() const override;
  queue_features features() const override;
  void close() override;

  /// The URL SQS gave for the main queue.
  std::string queue_url() const;
  /// The URL SQS gave for the dead-letter queue.
  std::string dead_letter_queue_url() const;
  /// The text of the last error SQS (or the connection) reported, for logs; empty if none.
  std::string last_error() const;

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
  std::unique_ptr<engine> engine_;
  executor_type executor_;
};

}  // namespace ingest::sqs
