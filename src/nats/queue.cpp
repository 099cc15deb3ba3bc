#include "ingest/nats/queue.hpp"

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "codec.hpp"
#include "ingest/detail/url_params.hpp"
#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"

namespace ingest::nats {
namespace {

using steady = std::chrono::steady_clock;
template <class... Args>
using callback = ingest::detail::callback<void(Args...)>;

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

using namespace detail;

std::string describe(natsStatus s, jsErrCode code, std::string_view what) {
  std::string text(what);
  text += ": ";
  text += natsStatus_GetText(s);
  if (code != 0) text += " (JetStream error " + std::to_string(static_cast<int>(code)) + ")";
  if (const char* last = nats_GetLastError(nullptr); last && *last) {
    text += ": ";
    text += last;
  }
  return text;
}

error_code unavailable_or(natsStatus s, errc otherwise) {
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
time_point time_from_ns(std::int64_t ns) {
  return time_point(std::chrono::duration_cast<clock::duration>(std::chrono::nanoseconds(ns)));
}

void check(natsStatus s, int code, std::string_view what) {
  if (s != NATS_OK)
    throw error(unavailable_or(s, errc::invalid_config), describe(s, static_cast<jsErrCode>(code), what));
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

}  // namespace

void queue_options::validate() const {
  auto bad = [](const std::string& what) { throw error(errc::invalid_config, "nats queue: " + what); };
  if (servers.empty()) bad("at least one server URL is needed");
  if (stream.empty() || subject.empty() || dead_letter_stream.empty() || dead_letter_subject.empty())
    bad("stream, subject and their dead-letter counterparts must be set");
  if (stream == dead_letter_stream || subject == dead_letter_subject)
    bad("the dead-letter stream and subject must differ from the main ones");
  if (consumer.empty()) bad("consumer must be set");
  if (replicas < 1 || replicas > 5) bad("replicas must be 1 to 5");
  if (duplicate_window <= std::chrono::milliseconds::zero()) bad("duplicate_window must be positive");
  if (max_messages < 0 || max_bytes < 0) bad("max_messages and max_bytes must not be negative");
  if (ack_wait < std::chrono::milliseconds(100)) bad("ack_wait must be at least 100ms");
  if (max_deliver == 0 || max_deliver < -1) bad("max_deliver must be -1 (unlimited) or at least 1");
  if (!redelivery_backoff.empty() &&
      (max_deliver == -1 || max_deliver <= static_cast<std::int64_t>(redelivery_backoff.size())))
    bad("redelivery_backoff needs max_deliver greater than its length");
  if (max_ack_pending < 1) bad("max_ack_pending must be at least 1");
  if (max_pending_publishes == 0) bad("max_pending_publishes must be at least 1");
  if (publish_timeout <= std::chrono::milliseconds::zero() || request_timeout <= std::chrono::milliseconds::zero())
    bad("timeouts must be positive");
  if (compaction_interval <= std::chrono::milliseconds::zero()) bad("compaction_interval must be positive");
  // Files that would be ignored are a mistake to point out, not to pass over.
  if (!tls && (!tls_ca_file.empty() || !tls_cert_file.empty() || !tls_key_file.empty()))
    bad("tls_ca, tls_cert and tls_key need TLS on (a tls:// URL, or tls=true)");
  if (tls_cert_file.empty() != tls_key_file.empty()) bad("tls_cert and tls_key go together");
  if (!token.empty() && !user.empty()) bad("a token and a user name are two ways to sign in: give one");
}

namespace {

// The URL parameters other than the hosts, credentials and `tls`.
void read_params(ingest::detail::url_query& params, queue_options& o) {
  params.set("stream", o.stream);
  params.set("subject", o.subject);
  params.set("dead_letter_stream", o.dead_letter_stream);
  params.set("dead_letter_subject", o.dead_letter_subject);
  params.set("consumer", o.consumer);
  params.set("replicas", o.replicas);
  if (auto v = params.take("storage")) {
    if (*v != "file" && *v != "memory") throw error(errc::invalid_config, "nats URL: storage must be file or memory");
    o.file_storage = *v == "file";
  }
  params.set("duplicate_window", o.duplicate_window);
  params.set("ack_wait", o.ack_wait);
  params.set("publish_timeout", o.publish_timeout);
  params.set("max_deliver", o.max_deliver);
  params.set("max_ack_pending", o.max_ack_pending);
  params.set("max_messages", o.max_messages);
  params.set("max_bytes", o.max_bytes);
  params.set("creds", o.credentials_file);
  params.set("tls_ca", o.tls_ca_file);
  params.set("tls_cert", o.tls_cert_file);
  params.set("tls_key", o.tls_key_file);
}

}  // namespace

queue_options queue_options::from_url(std::string_view url) {
  constexpr std::string_view what = "nats URL";
  queue_options o;
  std::string_view rest;
  bool tls_scheme = false;
  if (url.rfind("nats://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("tls://", 0) == 0) {
    rest = url.substr(6);
    tls_scheme = true;
  } else {
    throw error(errc::invalid_config, "not a nats:// or tls:// URL");  // never echoed: it may hold a password
  }
  // RFC 3986 has no authority with several hosts (a NATS cluster): the hosts are split
  // here, and every part is percent-decoded.
  const auto q = rest.find('?');
  auto hosts = rest.substr(0, q);
  if (const auto at = hosts.rfind('@'); at != std::string_view::npos) {
    const auto credentials = hosts.substr(0, at);
    hosts = hosts.substr(at + 1);
    if (const auto colon = credentials.find(':'); colon != std::string_view::npos) {
      o.user = ingest::detail::percent_decode(what, credentials.substr(0, colon), true);
      o.password = ingest::detail::percent_decode(what, credentials.substr(colon + 1), true);
    } else {
      o.token = ingest::detail::percent_decode(what, credentials, true);
    }
  }
  if (hosts.empty()) throw error(errc::invalid_config, "nats URL without a host");
  ingest::detail::url_query params(what, q == std::string_view::npos ? std::string_view{} : rest.substr(q + 1));
  o.tls = tls_scheme;
  params.set("tls", o.tls);
  if (tls_scheme && !o.tls) throw error(errc::invalid_config, "nats URL: tls:// with tls=false");
  o.servers.clear();
  while (!hosts.empty()) {
    const auto comma = hosts.find(',');
    const auto host = hosts.substr(0, comma);
    if (host.empty()) throw error(errc::invalid_config, "nats URL: an empty host in the list");
    o.servers.push_back(std::string(o.tls ? "tls://" : "nats://") + std::string(host));
    hosts = comma == std::string_view::npos ? std::string_view{} : hosts.substr(comma + 1);
  }
  read_params(params, o);
  params.finish();
  o.validate();
  return o;
}

// ---- the engine -------------------------------------------------------------------

struct queue::engine : std::enable_shared_from_this<engine> {
  struct pending_publish {
    callback<error_code, receipt> done;
    std::string key;
    std::string fingerprint;
    time_point accepted_at;
    steady::time_point deadline;
  };
  struct held_message {
    message_handle msg;
    steady::time_point deadline;  // when the server will consider the lease expired
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
  options_handle nats_options;
  connection_handle connection;
  context_handle js;
  subscription_handle subscription;

  std::mutex mutex;
  bool closed = false;
  std::unordered_map<std::string, pending_publish> pending;  // by receipt id
  std::unordered_map<std::string, held_message> held;        // by delivery token
  // When this process first delivered each stream sequence (JetStream keeps no such
  // time); forgotten when settled here, and wholesale if it grows past a bound.
  std::unordered_map<std::uint64_t, time_point> first_seen;
  std::mutex fetch_mutex;  // one Fetch at a time on the subscription
  std::condition_variable compaction_wake;
  std::thread compactor;
  // Blocking NATS calls; declared last so that it is joined first.
  std::unique_ptr<boost::asio::thread_pool> blocking;

  // ---- set-up ----

  void connect() {
    natsOptions* raw = nullptr;
    check(natsOptions_Create(&raw), 0, "natsOptions_Create");
    nats_options.reset(raw);
    std::vector<const char*> urls;
    for (const auto& s : options.servers) urls.push_back(s.c_str());
    auto* o = nats_options.get();
    check(natsOptions_SetServers(o, urls.data(), static_cast<int>(urls.size())), 0, "servers");
    check(natsOptions_SetName(o, options.connection_name.c_str()), 0, "name");
    check(natsOptions_SetTimeout(o, options.request_timeout.count()), 0, "timeout");
    check(natsOptions_SetMaxReconnect(o, -1), 0, "max reconnect");
    check(natsOptions_SetReconnectWait(o, 250), 0, "reconnect wait");
    // Next to nothing is kept to be sent after a reconnect (nats.c would keep 8 MB; it
    // takes one more write while its buffer is below this size, so at most one
    // message): publishes fail at once while disconnected, and acks sent then fail and
    // their messages come back. The one message that may still go out late carries a
    // postmark past its bound, and the consumer reads the store time for it.
    check(natsOptions_SetReconnectBufSize(o, 1), 0, "reconnect buffer");
    if (!options.token.empty()) check(natsOptions_SetToken(o, options.token.c_str()), 0, "token");
    if (!options.user.empty())
      check(natsOptions_SetUserInfo(o, options.user.c_str(), options.password.c_str()), 0, "user");
    if (!options.credentials_file.empty())
      check(natsOptions_SetUserCredentialsFromFiles(o, options.credentials_file.c_str(), nullptr), 0, "credentials");
    if (options.tls) {
      check(natsOptions_SetSecure(o, true), 0, "tls");
      if (!options.tls_ca_file.empty())
        check(natsOptions_LoadCATrustedCertificates(o, options.tls_ca_file.c_str()), 0, "tls ca");
      if (!options.tls_cert_file.empty())
        check(natsOptions_LoadCertificatesChain(o, options.tls_cert_file.c_str(), options.tls_key_file.c_str()), 0,
              "tls certificate");
    }
    natsConnection* conn = nullptr;
    const auto s = natsConnection_Connect(&conn, o);
    connection.reset(conn);
    if (s != NATS_OK) throw error(errc::backend_unavailable, describe(s, static_cast<jsErrCode>(0), "connect to NATS"));

    jsOptions_Init(&js_options);
    js_options.Wait = options.request_timeout.count();
    js_options.PublishAsync.MaxPending = static_cast<int64_t>(options.max_pending_publishes) + 16;
    js_options.PublishAsync.AckHandler = &engine::on_pub_ack;
    js_options.PublishAsync.AckHandlerClosure = reinterpret_cast<void*>(static_cast<std::uintptr_t>(id));
    js_options.PublishAsync.StallWait = 1;
    jsCtx* ctx = nullptr;
    check(natsConnection_JetStream(&ctx, connection.get(), &js_options), 0, "JetStream context");
    js.reset(ctx);
  }

  void ensure_stream(const std::string& name, const std::string& subj, bool main) {
    jsStreamInfo* raw = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    auto s = js_GetStreamInfo(&raw, js.get(), name.c_str(), nullptr, &code);
    stream_info_handle info(raw);
    const auto storage = options.file_storage ? js_FileStorage : js_MemoryStorage;
    const auto window_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(options.duplicate_window).count();
    if (s == NATS_NOT_FOUND) {
      jsStreamConfig cfg;
      jsStreamConfig_Init(&cfg);
      const char* subjects[] = {subj.c_str()};
      cfg.Name = name.c_str();
      cfg.Subjects = subjects;
      cfg.SubjectsLen = 1;
      cfg.Retention = js_LimitsPolicy;
      cfg.Storage = storage;
      cfg.Replicas = options.replicas;
      cfg.Duplicates = window_ns;
      if (main) {
        cfg.Discard = js_DiscardNew;
        cfg.MaxMsgs = options.max_messages > 0 ? options.max_messages : -1;
        cfg.MaxBytes = options.max_bytes > 0 ? options.max_bytes : -1;
      }
      raw = nullptr;
      s = js_AddStream(&raw, js.get(), &cfg, nullptr, &code);
      info.reset(raw);
      check(s, code, "create stream " + name);
      return;
    }
    check(s, code, "stream info " + name);
    const auto* c = info->Config;
    std::string mismatch;
    auto expect = [&](bool ok, const std::string& what) {
      if (!ok) mismatch += (mismatch.empty() ? "" : ", ") + what;
    };
    expect(c->SubjectsLen >= 1 &&
               std::any_of(c->Subjects, c->Subjects + c->SubjectsLen, [&](const char* x) { return subj == x; }),
           "subjects do not include " + subj);
    expect(c->Retention == js_LimitsPolicy, "retention is not limits");
    expect(c->Storage == storage, std::string("storage is not ") + (options.file_storage ? "file" : "memory"));
    expect(c->Replicas == options.replicas,
           "replicas " + std::to_string(c->Replicas) + " instead of " + std::to_string(options.replicas));
    expect(c->Duplicates == window_ns, "duplicate window differs");
    expect(c->MaxAge == 0, "max age is set (it would delete unprocessed work)");
    if (main) {
      expect(c->Discard == js_DiscardNew,
             "discard policy is not DiscardNew (a full stream would delete accepted work)");
      expect(c->MaxMsgs == (options.max_messages > 0 ? options.max_messages : -1), "max messages differ");
      expect(c->MaxBytes == (options.max_bytes > 0 ? options.max_bytes : -1), "max bytes differ");
    }
    if (!mismatch.empty())
      throw error(errc::invalid_config, "stream " + name + " exists with another configuration: " + mismatch +
                                            "; it is not changed automatically");
  }

  void ensure_consumer() {
    jsConsumerInfo* raw = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    auto s = js_GetConsumerInfo(&raw, js.get(), options.stream.c_str(), options.consumer.c_str(), nullptr, &code);
    consumer_info_handle info(raw);
    const auto ack_wait_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(options.ack_wait).count();
    if (s == NATS_NOT_FOUND) {
      jsConsumerConfig cc;
      jsConsumerConfig_Init(&cc);
      cc.Durable = options.consumer.c_str();
      cc.AckPolicy = js_AckExplicit;
      cc.AckWait = ack_wait_ns;
      cc.MaxDeliver = options.max_deliver;
      cc.MaxAckPending = options.max_ack_pending;
      cc.FilterSubject = options.subject.c_str();
      cc.Replicas = options.replicas;
      std::vector<int64_t> backoff;
      for (auto d : options.redelivery_backoff)
        backoff.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
      if (!backoff.empty()) {
        cc.BackOff = backoff.data();
        cc.BackOffLen = static_cast<int>(backoff.size());
      }
      raw = nullptr;
      s = js_AddConsumer(&raw, js.get(), options.stream.c_str(), &cc, nullptr, &code);
      info.reset(raw);
      check(s, code, "create consumer " + options.consumer);
      return;
    }
    check(s, code, "consumer info " + options.consumer);
    const auto* c = info->Config;
    std::string mismatch;
    if (c->AckPolicy != js_AckExplicit) mismatch += "ack policy is not explicit; ";
    if (c->AckWait != ack_wait_ns) mismatch += "ack wait differs; ";
    if (c->MaxDeliver != options.max_deliver) mismatch += "max deliver differs; ";
    if (!c->FilterSubject || options.subject != c->FilterSubject) mismatch += "filter subject differs; ";
    if (c->BackOffLen != static_cast<int>(options.redelivery_backoff.size()))
      mismatch += "redelivery backoff differs; ";
    if (!mismatch.empty())
      throw error(errc::invalid_config, "consumer " + options.consumer + " exists with another configuration: " +
                                            mismatch + "it is not changed automatically");
  }

  void subscribe() {
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = options.stream.c_str();
    so.Consumer = options.consumer.c_str();
    natsSubscription* raw = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const auto s =
        js_PullSubscribe(&raw, js.get(), options.subject.c_str(), options.consumer.c_str(), nullptr, &so, &code);
    subscription.reset(raw);
    check(s, code, "pull subscribe");
  }

  // ---- publish ----

  static void on_pub_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) noexcept {
    message_handle owned(msg);
    auto self = registry<engine>::get().find(reinterpret_cast<std::uintptr_t>(closure));
    if (!self) return;
    try {
      self->pub_ack(owned, pa, pae);
    } catch (...) {
      // Nothing may unwind into nats.c; the publish then fails by its deadline.
    }
  }

  void pub_ack(message_handle& msg, jsPubAck* pa, jsPubAckErr* pae) {
    const auto id = header(msg.get(), h_receipt);
    std::unique_lock lock(mutex);
    auto found = pending.find(id);
    if (found == pending.end()) return;
    if (pa && !pa->Duplicate) {
      auto p = std::move(found->second);
      pending.erase(found);
      lock.unlock();
      p.done(error_code{}, receipt{id, p.key, p.accepted_at, false});
      return;
    }
    if (pa && pa->Duplicate) {
      auto p = std::move(found->second);
      pending.erase(found);
      lock.unlock();
      // Reading the original is a request: not on nats.c's callback thread.
      boost::asio::post(*blocking, [self = shared_from_this(), p = std::move(p), seq = pa->Sequence]() mutable {
        self->answer_duplicate(std::move(p), seq);
      });
      return;
    }
    // A failed publish: resend the same message (same Nats-Msg-Id) while time allows,
    // when the failure may be a lost connection.
    const bool retryable =
        pae && pae->ErrCode == 0 && unavailable_or(pae->Err, errc::storage_error) == errc::backend_unavailable;
    if (retryable && !closed && steady::now() < found->second.deadline &&
        natsConnection_Status(connection.get()) == NATS_CONN_STATUS_CONNECTED) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(found->second.deadline - steady::now());
      lock.unlock();
      jsPubOptions po;  // the message keeps its Nats-Msg-Id header
      jsPubOptions_Init(&po);
      po.MaxWait = std::max<std::int64_t>(1, left.count());
      natsMsg* raw = msg.release();
      if (js_PublishMsgAsync(js.get(), &raw, &po) == NATS_OK) return;
      msg.reset(raw);
      lock.lock();
      found = pending.find(id);
      if (found == pending.end()) return;
    }
    auto p = std::move(found->second);
    pending.erase(found);
    lock.unlock();
    error_code ec = errc::backend_unavailable;
    if (pae && pae->ErrCode == JSStreamStoreFailedErr && pae->ErrText &&
        std::string_view(pae->ErrText).find("maximum") != std::string_view::npos)
      ec = errc::queue_full;
    else if (pae && pae->ErrCode != 0)
      ec = errc::storage_error;
    else if (pae && pae->Err == NATS_TIMEOUT)
      ec = errc::publish_timeout;
    p.done(ec, receipt{});
  }

  void answer_duplicate(pending_publish p, std::uint64_t seq) {
    natsMsg* raw = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const auto s = js_GetMsg(&raw, js.get(), options.stream.c_str(), seq, nullptr, &code);
    message_handle original(raw);
    if (s != NATS_OK) return p.done(unavailable_or(s, errc::not_found), receipt{});
    // The original may have come from another client: read it as a consumer would, so
    // that the receipt is the one its delivery carries.
    std::string malformed;
    const auto first = read_delivered(
        original.get(),
        {options.stream, seq,
         time_from_ns(natsMsg_GetTime(original.get())),
         postmark_bound()},
        malformed);
    if (first.fingerprint != p.fingerprint) return p.done(errc::conflict, receipt{});
    p.done(error_code{}, receipt{first.receipt_id, p.key, first.accepted_at, true});
  }

  void publish(envelope m, callback<error_code, receipt> done) {
    natsMsg* raw = nullptr;
    if (natsMsg_Create(&raw, options.subject.c_str(), nullptr, m.payload.data(), static_cast<int>(m.payload.size())) !=
        NATS_OK)
      return done(errc::backend_unavailable, receipt{});
    message_handle msg(raw);
    write_envelope(msg.get(), m);
    // Fail fast while disconnected (guarantee 6) instead of parking the message in
    // nats.c's reconnect buffer: its PubAck timeout could then fire while the publish
    // call still reads the message.
    if (natsConnection_Status(connection.get()) != NATS_CONN_STATUS_CONNECTED)
      return done(errc::backend_unavailable, receipt{});
    {
      std::lock_guard lock(mutex);
      if (closed) return done(errc::shutting_down, receipt{});
      if (pending.size() >= options.max_pending_publishes) return done(errc::backpressure, receipt{});
      pending.emplace(m.receipt_id, pending_publish{std::move(done), m.idempotency_key, m.fingerprint, m.accepted_at,
                                                    steady::now() + options.publish_timeout});
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = m.idempotency_key.c_str();
    po.MaxWait = options.publish_timeout.count();
    natsMsg* sending = msg.release();
    const auto s = js_PublishMsgAsync(js.get(), &sending, &po);
    if (s == NATS_OK) return;
    msg.reset(sending);  // still ours when the call failed
    std::unique_lock lock(mutex);
    auto found = pending.find(m.receipt_id);
    if (found == pending.end()) return;
    auto p = std::move(found->second);
    pending.erase(found);
    lock.unlock();
    p.done(unavailable_or(s, errc::backend_unavailable), receipt{});
  }

  // ---- consume ----

  std::vector<delivery> fetch(std::size_t max, std::chrono::milliseconds wait, error_code& ec) {
    std::lock_guard serial(fetch_mutex);
    const auto deadline = steady::now() + wait;
    std::vector<delivery> out;
    while (true) {
      {
        std::lock_guard lock(mutex);
        if (closed) {
          ec = std::make_error_code(std::errc::operation_canceled);
          return out;
        }
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
      // Short slices, so that close() is noticed quickly.
      const auto slice = std::clamp<std::int64_t>(left.count(), 5, 250);
      natsMsgList list{};
      jsErrCode code = static_cast<jsErrCode>(0);
      const auto s = natsSubscription_Fetch(&list, subscription.get(), static_cast<int>(max), slice, &code);
      if (s == NATS_OK) {
        take(list, out);
        natsMsgList_Destroy(&list);
        return out;
      }
      natsMsgList_Destroy(&list);
      if (s != NATS_TIMEOUT && s != NATS_NOT_FOUND) {
        ec = unavailable_or(s, errc::backend_unavailable);
        return out;
      }
      if (steady::now() >= deadline) return out;
    }
  }

  void take(natsMsgList& list, std::vector<delivery>& out) {
    const auto now = steady::now();
    const auto wall = clock::now();
    std::lock_guard lock(mutex);
    for (int i = 0; i < list.Count; ++i) {
      message_handle msg(list.Msgs[i]);
      list.Msgs[i] = nullptr;
      jsMsgMetaData* raw = nullptr;
      if (natsMsg_GetMetaData(&raw, msg.get()) != NATS_OK) continue;
      metadata_handle meta(raw);
      delivery d;
      const broker_facts facts{meta->Stream ? std::string_view(meta->Stream) : std::string_view(options.stream),
                               meta->Sequence.Stream,
                               time_from_ns(meta->Timestamp),
                               postmark_bound()};
      d.message = read_delivered(msg.get(), facts, d.malformed);
      d.message.attempts = static_cast<std::uint32_t>(meta->NumDelivered);
      if (first_seen.size() > 100000) first_seen.clear();
      const auto seen =
          first_seen.try_emplace(meta->Sequence.Stream, d.message.attempts == 1 ? wall : d.message.accepted_at);
      d.first_attempt_at = seen.first->second;
      d.token = std::to_string(meta->Sequence.Stream) + ":" + std::to_string(meta->NumDelivered);
      held[d.token] = held_message{std::move(msg), now + lease_for(d.message.attempts), meta->Sequence.Stream,
                                   d.message.attempts, d.first_attempt_at, d.message};
      out.push_back(std::move(d));
    }
  }

  // A message reaches the server while its publish is live: within publish_timeout of
  // its postmark, and a second more for one already on the wire. Stored later (a
  // server that stalled and then stored a publish that had timed out), its postmark is
  // not trusted and the store time is its accept time (guarantee 7).
  std::chrono::milliseconds postmark_bound() const { return options.publish_timeout + std::chrono::seconds(1); }

  // How long the server waits for an ack of delivery number `attempts`: its backoff
  // step when one is configured, else ack_wait.
  std::chrono::milliseconds lease_for(std::uint32_t attempts) const {
    const auto& b = options.redelivery_backoff;
    if (b.empty() || attempts == 0) return options.ack_wait;
    return b[std::min<std::size_t>(attempts - 1, b.size() - 1)];
  }

  // Takes the held message of `token` if its lease still holds.
  std::optional<held_message> release_lease(const std::string& token) {
    std::lock_guard lock(mutex);
    auto found = held.find(token);
    if (found == held.end()) return std::nullopt;
    auto h = std::move(found->second);
    held.erase(found);
    if (h.deadline <= steady::now()) return std::nullopt;
    return h;
  }

  void forget_first_seen(std::uint64_t sequence) {
    std::lock_guard lock(mutex);
    first_seen.erase(sequence);
  }

  error_code settle(std::vector<settlement>& decisions) {
    error_code result;
    bool acked = false;
    for (auto& d : decisions) {
      auto h = release_lease(d.token);
      if (!h) {
        result = errc::lease_expired;
        continue;
      }
      natsStatus s = NATS_OK;
      switch (d.action) {
        case settle_action::ack:
          // The ack protocol is a publish of "+ACK" to the delivery's reply subject;
          // done directly it is buffered, and one flush below sends them all
          // (natsMsg_Ack cost ~250 us each here).
          if (const char* reply = natsMsg_GetReply(h->msg.get()))
            s = natsConnection_Publish(connection.get(), reply, "+ACK", 4);
          else
            s = natsMsg_Ack(h->msg.get(), &js_options);
          acked = true;
          break;
        case settle_action::retry:
          s = d.delay.count() > 0 ? natsMsg_NakWithDelay(h->msg.get(), d.delay.count(), &js_options)
                                  : natsMsg_Nak(h->msg.get(), &js_options);
          break;
        case settle_action::dead_letter:
          if (auto ec = write_dead_letter(*h, d)) {
            result = ec;  // not terminated: it comes back and is tried again
            continue;
          }
          s = natsMsg_Term(h->msg.get(), &js_options);
          break;
      }
      if (s != NATS_OK)
        result = unavailable_or(s, errc::backend_unavailable);
      else if (d.action != settle_action::retry)
        forget_first_seen(h->sequence);
    }
    // Acks are fire-and-forget on the wire; a flush makes sure the server has them.
    if (acked) {
      const auto s = natsConnection_FlushTimeout(connection.get(), options.request_timeout.count());
      if (s != NATS_OK && !result) result = unavailable_or(s, errc::backend_unavailable);
    }
    return result;
  }

  error_code write_dead_letter(held_message& h, const settlement& d) {
    natsMsg* raw = nullptr;
    if (natsMsg_Create(&raw, options.dead_letter_subject.c_str(), nullptr, natsMsg_GetData(h.msg.get()),
                       natsMsg_GetDataLength(h.msg.get())) != NATS_OK)
      return errc::backend_unavailable;
    message_handle letter(raw);
    dead_letter dead;
    dead.message = h.message;
    write_envelope(letter.get(), dead.message);
    dead.reason = d.reason;
    dead.last_error = d.last_error;
    dead.attempts = h.attempts;
    dead.first_attempt_at = h.first_attempt_at;
    dead.last_attempt_at = dead.dead_lettered_at = clock::now();
    write_dead(letter.get(), dead, h.sequence);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    const auto msg_id = "dlq:" + h.message.receipt_id + ":" + std::to_string(h.sequence);
    po.MsgId = msg_id.c_str();
    jsPubAck* ack = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const auto s = js_PublishMsg(&ack, js.get(), letter.get(), &po, &code);
    pub_ack_handle owned(ack);
    return s == NATS_OK ? error_code{} : unavailable_or(s, errc::storage_error);
  }

  error_code extend(const std::vector<std::string>& tokens) {
    error_code result;
    std::lock_guard lock(mutex);
    const auto now = steady::now();
    for (const auto& token : tokens) {
      auto found = held.find(token);
      if (found == held.end() || found->second.deadline <= now) {
        result = errc::lease_expired;
        continue;
      }
      if (natsMsg_InProgress(found->second.msg.get(), &js_options) != NATS_OK) {
        result = errc::backend_unavailable;
        continue;
      }
      found->second.deadline = now + options.ack_wait;
    }
    return result;
  }

  // ---- stats and dead letters ----

  error_code stats(queue_stats& st) {
    jsErrCode code = static_cast<jsErrCode>(0);
    jsStreamInfo* s_raw = nullptr;
    jsStreamInfo* d_raw = nullptr;
    jsConsumerInfo* c_raw = nullptr;
    auto s = js_GetStreamInfo(&s_raw, js.get(), options.stream.c_str(), nullptr, &code);
    stream_info_handle main_info(s_raw);
    if (s != NATS_OK) return unavailable_or(s, errc::backend_unavailable);
    s = js_GetStreamInfo(&d_raw, js.get(), options.dead_letter_stream.c_str(), nullptr, &code);
    stream_info_handle dead_info(d_raw);
    if (s != NATS_OK) return unavailable_or(s, errc::backend_unavailable);
    s = js_GetConsumerInfo(&c_raw, js.get(), options.stream.c_str(), options.consumer.c_str(), nullptr, &code);
    consumer_info_handle consumer_info(c_raw);
    if (s != NATS_OK) return unavailable_or(s, errc::backend_unavailable);
    st.accepted = main_info->State.LastSeq;
    st.leased = static_cast<std::uint64_t>(consumer_info->NumAckPending);
    st.pending = consumer_info->NumPending + st.leased;
    st.retrying = static_cast<std::uint64_t>(consumer_info->NumRedelivered);
    st.dead_lettered = dead_info->State.Msgs;
    // JetStream keeps no count of acknowledged messages, so `processed` is what remains
    // of the stream's sequence numbers, which count a replayed dead letter again: neither
    // is a count of its own, and the balance is not claimed (guarantee 4).
    st.processed = st.accepted >= st.pending + st.dead_lettered ? st.accepted - st.pending - st.dead_lettered : 0;
    st.exact = {.accepted = false, .pending = true, .processed = false, .dead_lettered = true, .purged = false};
    return {};
  }

  // Every dead letter with its sequence in the dead-letter stream, by receipt id.
  error_code read_dead_letters(std::vector<std::pair<std::uint64_t, dead_letter>>& out) {
    jsStreamInfo* raw = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    auto s = js_GetStreamInfo(&raw, js.get(), options.dead_letter_stream.c_str(), nullptr, &code);
    stream_info_handle info(raw);
    if (s != NATS_OK) return unavailable_or(s, errc::backend_unavailable);
    if (info->State.Msgs == 0) return {};
    for (auto seq = info->State.FirstSeq; seq <= info->State.LastSeq; ++seq) {
      natsMsg* m_raw = nullptr;
      s = js_GetMsg(&m_raw, js.get(), options.dead_letter_stream.c_str(), seq, nullptr, &code);
      message_handle m(m_raw);
      if (s == NATS_NOT_FOUND) continue;  // deleted (replayed or purged)
      if (s != NATS_OK) return unavailable_or(s, errc::backend_unavailable);
      dead_letter l;
      l.message = read_envelope(m.get());
      read_dead(m.get(), l);
      l.message.attempts = l.attempts;
      out.emplace_back(seq, std::move(l));
    }
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.second.message.receipt_id < b.second.message.receipt_id; });
    return {};
  }

  error_code move_dead_letters(std::vector<std::string> ids, bool replay, std::size_t& moved) {
    std::vector<std::pair<std::uint64_t, dead_letter>> letters;
    if (auto ec = read_dead_letters(letters)) return ec;
    for (auto& [seq, l] : letters) {
      if (!ids.empty() && std::find(ids.begin(), ids.end(), l.message.receipt_id) == ids.end()) continue;
      jsErrCode code = static_cast<jsErrCode>(0);
      if (replay) {
        natsMsg* raw = nullptr;
        if (natsMsg_Create(&raw, options.subject.c_str(), nullptr, l.message.payload.data(),
                           static_cast<int>(l.message.payload.size())) != NATS_OK)
          return errc::backend_unavailable;
        message_handle m(raw);
        write_envelope(m.get(), l.message);
        jsPubOptions po;
        jsPubOptions_Init(&po);
        // Not the client's key: that one still names the original in the duplicate window.
        const auto msg_id = "replay:" + l.message.receipt_id + ":" + std::to_string(seq);
        po.MsgId = msg_id.c_str();
        jsPubAck* ack = nullptr;
        const auto s = js_PublishMsg(&ack, js.get(), m.get(), &po, &code);
        pub_ack_handle owned(ack);
        if (s != NATS_OK) return unavailable_or(s, errc::storage_error);
      }
      const auto s = js_DeleteMsg(js.get(), options.dead_letter_stream.c_str(), seq, nullptr, &code);
      if (s != NATS_OK && s != NATS_NOT_FOUND) return unavailable_or(s, errc::backend_unavailable);
      ++moved;
    }
    return {};
  }

  // ---- compaction: purge what is processed and older than the duplicate window ----

  void compact() {
    jsErrCode code = static_cast<jsErrCode>(0);
    jsConsumerInfo* c_raw = nullptr;
    if (js_GetConsumerInfo(&c_raw, js.get(), options.stream.c_str(), options.consumer.c_str(), nullptr, &code) !=
        NATS_OK)
      return;
    consumer_info_handle ci(c_raw);
    // Everything at or below the ack floor is acked (or terminated after its dead letter was written).
    const std::uint64_t floor = ci->AckFloor.Stream;
    jsStreamInfo* s_raw = nullptr;
    if (js_GetStreamInfo(&s_raw, js.get(), options.stream.c_str(), nullptr, &code) != NATS_OK) return;
    stream_info_handle si(s_raw);
    std::uint64_t lo = si->State.FirstSeq, hi = std::min<std::uint64_t>(floor, si->State.LastSeq);
    if (si->State.Msgs == 0 || lo == 0 || hi < lo) return;
    // The first sequence still inside the duplicate window, by bisection on store time.
    const auto cutoff = to_us(clock::now() - options.duplicate_window);
    std::uint64_t keep_from = hi + 1;
    while (lo <= hi) {
      const auto mid = lo + (hi - lo) / 2;
      natsMsg* m_raw = nullptr;
      const auto s = js_GetMsg(&m_raw, js.get(), options.stream.c_str(), mid, nullptr, &code);
      message_handle m(m_raw);
      if (s == NATS_NOT_FOUND) {  // a hole: look right of it
        lo = mid + 1;
        continue;
      }
      if (s != NATS_OK) return;
      // The server's store time, which every message has (one another client published
      // carries no accept time of ours), and which the duplicate window counts from.
      if (natsMsg_GetTime(m.get()) / 1000 < cutoff) {
        lo = mid + 1;
      } else {
        keep_from = mid;
        if (mid == 0) break;
        hi = mid - 1;
      }
    }
    if (keep_from <= si->State.FirstSeq) return;
    jsOptions po;
    jsOptions_Init(&po);
    po.Stream.Purge.Sequence = keep_from;  // up to, not including
    js_PurgeStream(js.get(), options.stream.c_str(), &po, &code);
  }

  void run_compactor() {
    std::unique_lock lock(mutex);
    while (!closed) {
      compaction_wake.wait_for(lock, options.compaction_interval, [&] { return closed; });
      if (closed) break;
      lock.unlock();
      compact();
      lock.lock();
    }
  }

  // ---- shutdown ----

  void shut() {
    std::unordered_map<std::string, pending_publish> abandoned;
    {
      std::lock_guard lock(mutex);
      if (closed) return;
      closed = true;
    }
    compaction_wake.notify_all();
  }
};

// ---- queue ----------------------------------------------------------------------

queue::queue(executor_type ex, queue_options options) : executor_(ex) {
  options.validate();
  engine_ = std::make_shared<engine>(std::move(options));
  auto& e = *engine_;
  e.id = registry<engine>::get().add(engine_);
  e.blocking = std::make_unique<boost::asio::thread_pool>(4);
  try {
    e.connect();
    e.ensure_stream(e.options.stream, e.options.subject, true);
    e.ensure_stream(e.options.dead_letter_stream, e.options.dead_letter_subject, false);
    e.ensure_consumer();
    e.subscribe();
  } catch (...) {
    registry<engine>::get().remove(e.id);
    e.blocking->join();
    throw;
  }
  e.compactor = std::thread([&e] { e.run_compactor(); });
}

queue::~queue() {
  auto& e = *engine_;
  close();
  if (e.compactor.joinable()) e.compactor.join();
  e.blocking->join();
  // Wait (bounded) for PubAcks still due, then fail whatever is left.
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = e.options.publish_timeout.count();
  js_PublishAsyncComplete(e.js.get(), &po);
  registry<engine>::get().remove(e.id);
  std::unordered_map<std::string, engine::pending_publish> left;
  {
    std::lock_guard lock(e.mutex);
    left.swap(e.pending);
    e.held.clear();
  }
  for (auto& [id, p] : left) p.done(errc::shutting_down, receipt{});
  natsConnection_Close(e.connection.get());
  // A PubAck callback may still hold the engine (it found it before the removal
  // above): let it finish, so that the connection is never destroyed from inside one
  // of its own callbacks.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (engine_.use_count() > 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

durable_queue::executor_type queue::get_executor() const {
  return executor_;
}

queue_features queue::features() const {
  return {.durable = engine_->options.file_storage,
          .native_dedup = true,
          .fifo = true,
          .delayed_retry = true,
          .lease_extension = true,
          .exact_stats = false,
          .lookup = false,
          .dedup_window = engine_->options.duplicate_window};
}

void queue::close() {
  engine_->shut();
}

void queue::do_publish(envelope message, callback<error_code, receipt> done) {
  if (const auto invalid = validate_envelope(message)) return done(invalid, receipt{});
  if (message.fingerprint.empty()) message.fingerprint = fingerprint(message.payload);
  if (message.receipt_id.empty()) message.receipt_id = make_receipt_id();
  // The postmark, in the microseconds the wire keeps: the receipt carries exactly what
  // every later reading of the message will.
  message.accepted_at = time_from_us(to_us(clock::now()));
  engine_->publish(std::move(message), std::move(done));
}

void queue::do_fetch(std::size_t max, duration wait, callback<error_code, std::vector<delivery>> done) {
  {
    std::lock_guard lock(engine_->mutex);
    if (engine_->closed) return done(errc::shutting_down, std::vector<delivery>{});
  }
  boost::asio::post(*engine_->blocking, [e = engine_, max, wait, done = std::move(done)]() mutable {
    error_code ec;
    auto out = max == 0 ? std::vector<delivery>{} : e->fetch(max, wait, ec);
    done(ec, std::move(out));
  });
}

void queue::do_settle(std::vector<settlement> decisions, callback<error_code> done) {
  boost::asio::post(*engine_->blocking,
                    [e = engine_, d = std::move(decisions), done = std::move(done)]() mutable { done(e->settle(d)); });
}

void queue::do_extend(std::vector<std::string> tokens, duration, callback<error_code> done) {
  boost::asio::post(*engine_->blocking,
                    [e = engine_, t = std::move(tokens), done = std::move(done)]() mutable { done(e->extend(t)); });
}

void queue::do_stats(callback<error_code, queue_stats> done) {
  boost::asio::post(*engine_->blocking, [e = engine_, done = std::move(done)]() mutable {
    queue_stats st;
    auto ec = e->stats(st);
    done(ec, st);
  });
}

void queue::do_dead_letters(std::string after, std::size_t limit, callback<error_code, std::vector<dead_letter>> done) {
  boost::asio::post(*engine_->blocking,
                    [e = engine_, after = std::move(after), limit, done = std::move(done)]() mutable {
                      std::vector<std::pair<std::uint64_t, dead_letter>> all;
                      auto ec = e->read_dead_letters(all);
                      std::vector<dead_letter> out;
                      for (auto& [seq, l] : all)
                        if (l.message.receipt_id > after && out.size() < limit) out.push_back(std::move(l));
                      done(ec, std::move(out));
                    });
}

void queue::do_replay(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) {
  boost::asio::post(*engine_->blocking, [e = engine_, ids = std::move(receipt_ids), done = std::move(done)]() mutable {
    std::size_t moved = 0;
    auto ec = e->move_dead_letters(std::move(ids), true, moved);
    done(ec, moved);
  });
}

void queue::do_purge(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) {
  boost::asio::post(*engine_->blocking, [e = engine_, ids = std::move(receipt_ids), done = std::move(done)]() mutable {
    std::size_t moved = 0;
    auto ec = e->move_dead_letters(std::move(ids), false, moved);
    done(ec, moved);
  });
}

}  // namespace ingest::nats
