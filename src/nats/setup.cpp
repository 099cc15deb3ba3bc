// Setting the engine up (the connection, the streams and the consumer, checked against
// the options) and shutting it down.

#include <algorithm>
#include <boost/asio/thread_pool.hpp>

#include "engine.hpp"

namespace ingest::nats {

using namespace detail;

namespace {

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

void check(natsStatus s, int code, std::string_view what) {
  if (s != NATS_OK)
    throw error(unavailable_or(s, errc::invalid_config), describe(s, static_cast<jsErrCode>(code), what));
}

}  // namespace

void queue::engine::open() {
  id = registry<engine>::get().add(weak_from_this());
  blocking = std::make_unique<boost::asio::thread_pool>(4);
  try {
    connect();
    check_layout();
    ensure_stream(options.stream, options.subject, true);
    check_layout();  // again: another process may have started with another layout
    ensure_stream(options.dead_letter_stream, options.dead_letter_subject, false);
    ensure_consumer();
    subscribe();
  } catch (...) {
    registry<engine>::get().remove(id);
    blocking->join();
    throw;
  }
  compactor = std::thread([this] { run_compactor(); });
}

void queue::engine::connect() {
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

void queue::engine::ensure_stream(const std::string& name, const std::string& subj, bool main) {
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
    const auto description = partition_description(options.partition, options.partitions);
    if (main && options.partition >= 0) cfg.Description = description.c_str();
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
  if (main && options.partition >= 0)
    expect(c->Description && partition_description(options.partition, options.partitions) == c->Description,
           "not " + partition_description(options.partition, options.partitions));
  if (main) {
    expect(c->Discard == js_DiscardNew, "discard policy is not DiscardNew (a full stream would delete accepted work)");
    expect(c->MaxMsgs == (options.max_messages > 0 ? options.max_messages : -1), "max messages differ");
    expect(c->MaxBytes == (options.max_bytes > 0 ? options.max_bytes : -1), "max bytes differ");
  }
  if (!mismatch.empty())
    throw error(errc::invalid_config, "stream " + name + " exists with another configuration: " + mismatch +
                                          "; it is not changed automatically");
}

void queue::engine::ensure_consumer() {
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
  if (c->BackOffLen != static_cast<int>(options.redelivery_backoff.size())) mismatch += "redelivery backoff differs; ";
  if (!mismatch.empty())
    throw error(errc::invalid_config, "consumer " + options.consumer + " exists with another configuration: " +
                                          mismatch + "it is not changed automatically");
}

void queue::engine::subscribe() {
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

void queue::engine::shut() {
  {
    std::lock_guard lock(mutex);
    if (closed) return;
    closed = true;
  }
  compaction_wake.notify_all();
}

// After shut(): joins the queue's threads, then fails what is still pending and closes
// the connection.
void queue::engine::stop() {
  if (compactor.joinable()) compactor.join();
  blocking->join();
  // Wait (bounded) for PubAcks still due, then fail whatever is left.
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = options.publish_timeout.count();
  js_PublishAsyncComplete(js.get(), &po);
  registry<engine>::get().remove(id);
  std::unordered_map<const natsMsg*, pending_publish> left;
  {
    std::lock_guard lock(mutex);
    left.swap(pending);
    held.clear();
  }
  for (auto& [msg, p] : left) p.done(errc::shutting_down, receipt{});
  natsConnection_Close(connection.get());
}

}  // namespace ingest::nats
