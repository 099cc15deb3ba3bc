// Publishing: the asynchronous publish, its PubAck (resent after a lost connection
// while time allows) and the answer to a duplicate.

#include <algorithm>
#include <boost/asio/post.hpp>
#include <optional>

#include "codec.hpp"
#include "engine.hpp"
#include "ingest/fingerprint.hpp"

namespace ingest::nats {

using namespace detail;

void queue::engine::on_pub_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) noexcept {
  message_handle owned(msg);
  auto self = registry<engine>::get().find(reinterpret_cast<std::uintptr_t>(closure));
  if (!self) return;
  try {
    self->pub_ack(owned, pa, pae);
  } catch (...) {
    // Nothing may unwind into nats.c. No PubAck comes again for this message: its
    // publish is answered here, or it would wait until close.
    self->fail_pending(msg, errc::backend_unavailable);
  }
}

void queue::engine::fail_pending(const natsMsg* id, error_code ec) noexcept {
  try {
    std::optional<pending_publish> p;
    {
      std::lock_guard lock(mutex);
      auto found = pending.find(id);
      if (found == pending.end()) return;
      p.emplace(std::move(found->second));
      pending.erase(found);
    }
    p->done(ec, receipt{});
  } catch (...) {
  }
}

void queue::engine::pub_ack(message_handle& msg, jsPubAck* pa, jsPubAckErr* pae) {
  const natsMsg* id = msg.get();
  std::unique_lock lock(mutex);
  auto found = pending.find(id);
  if (found == pending.end()) return;
  if (pa && !pa->Duplicate) {
    auto p = std::move(found->second);
    pending.erase(found);
    lock.unlock();
    p.done(error_code{}, receipt{std::move(p.receipt_id), std::move(p.key), p.accepted_at, false});
    return;
  }
  if (pa && pa->Duplicate) {
    auto p = std::move(found->second);
    pending.erase(found);
    lock.unlock();
    // Reading the original is a request, and hashing the payload takes time: neither
    // on nats.c's callback thread.
    boost::asio::post(
        *blocking, [self = shared_from_this(), p = std::move(p), seq = pa->Sequence, sent = std::move(msg)]() mutable {
          const std::string_view payload(natsMsg_GetData(sent.get()),
                                         static_cast<std::size_t>(natsMsg_GetDataLength(sent.get())));
          self->answer_duplicate(std::move(p), seq, ingest::fingerprint(payload));
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

void queue::engine::answer_duplicate(pending_publish p, std::uint64_t seq, const std::string& fingerprint) {
  natsMsg* raw = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const auto s = js_GetMsg(&raw, js.get(), options.stream.c_str(), seq, nullptr, &code);
  message_handle original(raw);
  if (s != NATS_OK) return p.done(unavailable_or(s, errc::not_found), receipt{});
  // The original may have come from another client: read it as a consumer would, so
  // that the receipt is the one its delivery carries.
  std::string malformed;
  const auto first =
      read_delivered(original.get(),
                     {options.stream, seq, time_from_ns(natsMsg_GetTime(original.get())), postmark_bound()}, malformed);
  if (first.fingerprint != fingerprint) return p.done(errc::conflict, receipt{});
  p.done(error_code{}, receipt{first.receipt_id, std::move(p.key), first.accepted_at, true});
}

void queue::engine::publish(envelope m, callback<error_code, receipt> done) {
  natsMsg* raw = nullptr;
  if (natsMsg_Create(&raw, options.subject.c_str(), nullptr, m.payload.data(), static_cast<int>(m.payload.size())) !=
      NATS_OK)
    return done(errc::backend_unavailable, receipt{});
  message_handle msg(raw);
  write_published(msg.get(), m);
  // Fail fast while disconnected (guarantee 6) instead of parking the message in
  // nats.c's reconnect buffer: its PubAck timeout could then fire while the publish
  // call still reads the message.
  if (natsConnection_Status(connection.get()) != NATS_CONN_STATUS_CONNECTED)
    return done(errc::backend_unavailable, receipt{});
  std::optional<pending_publish> stale;
  {
    std::lock_guard lock(mutex);
    if (closed) return done(errc::shutting_down, receipt{});
    if (pending.size() >= options.max_pending_publishes) return done(errc::backpressure, receipt{});
    pending_publish entry{std::move(done), std::move(m.receipt_id), m.idempotency_key, m.accepted_at,
                          steady::now() + options.publish_timeout};
    auto [at, added] = pending.try_emplace(msg.get(), std::move(entry));  // `entry` kept when not added
    if (!added) {
      // The key is the message's address: an entry already there belongs to a message
      // nats.c has freed without a PubAck, so none will come for it. Its outcome is
      // unknown (a retry with its key answers it); the new publish takes the place.
      stale.emplace(std::move(at->second));
      at->second = std::move(entry);
    }
  }
  if (stale) stale->done(errc::publish_timeout, receipt{});
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = m.idempotency_key.c_str();
  po.MaxWait = options.publish_timeout.count();
  const natsMsg* id = msg.get();
  natsMsg* sending = msg.release();
  const auto s = js_PublishMsgAsync(js.get(), &sending, &po);
  if (s == NATS_OK) return;
  msg.reset(sending);  // still ours when the call failed
  fail_pending(id, unavailable_or(s, errc::backend_unavailable));
}

}  // namespace ingest::nats
