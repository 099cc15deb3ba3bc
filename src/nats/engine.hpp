#pragma once
// The engine behind ingest::nats::queue: the connection, the JetStream context and
// subscription, and the state shared by the queue's threads. Its member functions are
// defined by what they do: setup.cpp, layout.cpp, publish.cpp, fetch.cpp, settle.cpp, stats.cpp,
// admin.cpp and compaction.cpp.

#include <nats/nats.h>

#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ingest/error.hpp"
#include "ingest/nats/queue.hpp"

namespace ingest::nats::detail {

using steady = std::chrono::steady_clock;

// Every nats.c handle is owned by a unique_ptr with a stateless deleter.
template <class T, void (*Destroy)(T*)>
struct destroyer {
  void operator()(T* p) const noexcept { Destroy(p); }
};
template <class T, void (*Destroy)(T*)>
using handle = std::unique_ptr<T, destroyer<T, Destroy>>;
using options_handle = handle<natsOptions, natsOptions_Destroy>;
using connection_handle = handle<natsConnection, natsConnection_Destroy>;
using context_handle = handle<jsCtx, jsCtx_Destroy>;
using subscription_handle = handle<natsSubscription, natsSubscription_Destroy>;
using message_handle = handle<natsMsg, natsMsg_Destroy>;
using stream_info_handle = handle<jsStreamInfo, jsStreamInfo_Destroy>;
using consumer_info_handle = handle<jsConsumerInfo, jsConsumerInfo_Destroy>;
using metadata_handle = handle<jsMsgMetaData, jsMsgMetaData_Destroy>;
using pub_ack_handle = handle<jsPubAck, jsPubAck_Destroy>;

// The description a partition's stream carries: "ingest queue partition i of n".
std::string partition_description(int i, int n);

inline error_code unavailable_or(natsStatus s, errc otherwise) {
  switch (s) {
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NO_SERVER:
    case NATS_NO_RESPONDERS:
    case NATS_STALE_CONNECTION:
    case NATS_TIMEOUT:
    case NATS_IO_ERROR:
      return errc::backend_unavailable;
    default:
      return otherwise;
  }
}

// JetStream's times are nanoseconds since 1970.
inline time_point time_from_ns(std::int64_t ns) {
  return time_point(std::chrono::duration_cast<clock::duration>(std::chrono::nanoseconds(ns)));
}

// nats.c calls back with a void*; it names an engine through this registry, so that a
// callback arriving after the queue is gone finds nothing instead of freed memory.
template <class Engine>
struct registry {
  std::mutex mutex;
  std::uint64_t next = 1;
  std::unordered_map<std::uint64_t, std::weak_ptr<Engine>> engines;

  static registry& get() {
    static registry instance;
    return instance;
  }
  std::uint64_t add(std::weak_ptr<Engine> e) {
    std::lock_guard lock(mutex);
    engines.emplace(next, std::move(e));
    return next++;
  }
  void remove(std::uint64_t id) {
    std::lock_guard lock(mutex);
    engines.erase(id);
  }
  std::shared_ptr<Engine> find(std::uint64_t id) {
    std::lock_guard lock(mutex);
    auto it = engines.find(id);
    return it == engines.end() ? nullptr : it->second.lock();
  }
};

}  // namespace ingest::nats::detail

namespace ingest::nats {

struct queue::engine : std::enable_shared_from_this<engine> {
  struct pending_publish {
    callback<error_code, receipt> done;
    std::string receipt_id;
    std::string key;
    time_point accepted_at;
    detail::steady::time_point deadline;
  };
  struct held_message {
    detail::message_handle msg;
    detail::steady::time_point deadline;  // when the server will consider the lease expired
    std::uint64_t sequence = 0;
    std::uint32_t attempts = 0;
    time_point first_attempt_at{};
    envelope message{};  // as delivered (derived fields included): what a dead letter keeps
  };

  explicit engine(queue_options o) : options(std::move(o)) {}

  queue_options options;
  std::uint64_t id = 0;
  jsOptions js_options{};
  // Declared so that destruction runs subscription, context, connection, options.
  detail::options_handle nats_options;
  detail::connection_handle connection;
  detail::context_handle js;
  detail::subscription_handle subscription;

  std::mutex mutex;
  bool closed = false;
  // By the message nats.c hands back with its PubAck (the one published, also when it
  // is resent): no header is read to find a publish.
  std::unordered_map<const natsMsg*, pending_publish> pending;
  std::unordered_map<std::string, held_message> held;        // by delivery token
  // When this process first delivered each stream sequence (JetStream keeps no such
  // time); forgotten when settled here, and wholesale if it grows past a bound.
  std::unordered_map<std::uint64_t, time_point> first_seen;
  std::mutex fetch_mutex;  // one Fetch at a time on the subscription
  std::condition_variable compaction_wake;
  std::thread compactor;
  // Blocking NATS calls; declared last so that it is joined first.
  std::unique_ptr<boost::asio::thread_pool> blocking;

  // ---- set-up and shutdown (setup.cpp) ----

  void open();
  void connect();

  // ---- the layout of the streams (layout.cpp) ----

  struct layout {
    bool unpartitioned = false;  // the stream without an index exists
    std::set<int> partitions;    // the indexes of the streams `<base>-<index>` that exist
  };
  std::optional<std::string> stream_description(const std::string& name);
  std::optional<std::vector<std::string>> stream_names();
  layout read_layout(const std::string& base, int probe_to);
  void check_layout();
  void ensure_stream(const std::string& name, const std::string& subj, bool main);
  void ensure_consumer();
  void subscribe();
  void shut();
  void stop();

  // ---- publish (publish.cpp) ----

  static void on_pub_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) noexcept;
  void pub_ack(detail::message_handle& msg, jsPubAck* pa, jsPubAckErr* pae);
  void answer_duplicate(pending_publish p, std::uint64_t seq, const std::string& fingerprint);
  void fail_pending(const natsMsg* id, error_code ec) noexcept;  // a publish answered `ec`, if still pending
  void publish(envelope m, callback<error_code, receipt> done);

  // A message reaches the server while its publish is live: within publish_timeout of
  // its postmark, and a second more for one already on the wire. Stored later (a
  // server that stalled and then stored a publish that had timed out), its postmark is
  // not trusted and the store time is its accept time (guarantee 7).
  std::chrono::milliseconds postmark_bound() const { return options.publish_timeout + std::chrono::seconds(1); }

  // ---- fetch and leases (fetch.cpp) ----

  std::vector<delivery> fetch(std::size_t max, std::chrono::milliseconds wait, error_code& ec);
  void take(natsMsgList& list, std::vector<delivery>& out);
  std::chrono::milliseconds lease_for(std::uint32_t attempts) const;
  std::optional<held_message> release_lease(const std::string& token);
  void forget_first_seen(std::uint64_t sequence);
  error_code extend(const std::vector<std::string>& tokens);

  // ---- settle (settle.cpp) ----

  error_code settle(std::vector<settlement>& decisions);
  error_code write_dead_letter(held_message& h, const settlement& d);

  // ---- stats (stats.cpp) ----

  error_code stats(queue_stats& st);

  // ---- dead letters (admin.cpp) ----

  error_code read_dead_letters(std::vector<std::pair<std::uint64_t, dead_letter>>& out);
  error_code list_dead_letters(const std::string& after, std::size_t limit, std::vector<dead_letter>& out);
  error_code move_dead_letters(std::vector<std::string> ids, bool replay, std::size_t& moved);

  // ---- compaction (compaction.cpp) ----

  void compact();
  void run_compactor();
};

}  // namespace ingest::nats
