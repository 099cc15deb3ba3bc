// Settling deliveries: ack, retry (Nak, with its delay) or dead letter, the dead
// letter written to its stream before the original is terminated.

#include "codec.hpp"
#include "engine.hpp"

namespace ingest::nats {

using namespace detail;

error_code queue::engine::settle(std::vector<settlement>& decisions) {
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

error_code queue::engine::write_dead_letter(held_message& h, const settlement& d) {
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

}  // namespace ingest::nats
