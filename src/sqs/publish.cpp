// Publishing: the repeated-key check, coalescing into SendMessageBatch requests within
// the publish deadline, and each entry's outcome (finished, or sent again with backoff).

#include <boost/asio/steady_timer.hpp>

#include "engine.hpp"

namespace ingest::sqs {

void queue::engine::forget_old_keys() {
  const auto now = steady::now();
  while (!key_order.empty() &&
         (now - key_order.front().first > o.remember_keys || key_order.size() > o.remember_keys_max)) {
    auto it = keys.find(key_order.front().second);
    if (it != keys.end() && it->second.at == key_order.front().first) keys.erase(it);
    key_order.pop_front();
  }
}

void queue::engine::publish(envelope m, const receipt_signer* signer, callback<error_code, receipt> done) {
  forget_old_keys();
  if (auto k = keys.find(m.idempotency_key); k != keys.end()) {
    --publishes_pending;
    if (k->second.fingerprint != m.fingerprint) return done(code(errc::conflict), receipt{});
    auto r = k->second.r;
    r.duplicate = true;
    return done(error_code{}, std::move(r));
  }
  if (auto s = sending_keys.find(m.idempotency_key); s != sending_keys.end()) {
    --publishes_pending;
    return done(code(s->second == m.fingerprint ? errc::in_flight : errc::conflict), receipt{});
  }
  // Stamped once, before the first send: a resend carries the same time.
  m.accepted_at = time_from_us(to_us(clock::now()));  // as the wire keeps it
  sign_receipt(signer, m);
  auto out = std::make_shared<outgoing>();
  out->data = encode(m);
  if (out->data.size() > o.max_batch_bytes) {
    --publishes_pending;
    return done(code(errc::payload_too_large), receipt{});
  }
  sending_keys.emplace(m.idempotency_key, m.fingerprint);
  out->message = std::move(m);
  out->done = std::move(done);
  out->deadline = steady::now() + o.publish_timeout;
  to_send.push_back(std::move(out));
  pump();
}

void queue::engine::pump() {
  while (!to_send.empty() && batches_in_flight < send_slots()) {
    std::vector<std::shared_ptr<outgoing>> batch;
    std::size_t bytes = 0;
    const auto now = steady::now();
    while (!to_send.empty() && batch.size() < 10 && bytes + to_send.front()->data.size() <= o.max_batch_bytes) {
      auto out = std::move(to_send.front());
      to_send.pop_front();
      // Past its deadline a send would carry a postmark older than the bound the
      // consumer trusts (guarantee 7): it is not sent at all.
      if (now >= out->deadline) {
        finish(out, code(out->maybe_sent ? errc::publish_timeout : errc::backend_unavailable));
        continue;
      }
      bytes += out->data.size();
      batch.push_back(std::move(out));
    }
    if (batch.empty()) continue;
    ++batches_in_flight;
    send_batch(std::move(batch));
  }
}

void queue::engine::finish(const std::shared_ptr<outgoing>& out, error_code ec) {
  sending_keys.erase(out->message.idempotency_key);
  --publishes_pending;
  // A success that comes after the deadline cannot vouch for its postmark: the
  // message is stored, and the consumer reads SQS's sent time for it instead.
  if (!ec && steady::now() > out->deadline) ec = code(errc::publish_timeout);
  if (ec) return out->done(ec, receipt{});
  receipt r{out->message.receipt_id, out->message.idempotency_key, out->message.accepted_at, false};
  const auto now = steady::now();
  keys.insert_or_assign(out->message.idempotency_key, remembered{r, out->message.fingerprint, now});
  key_order.emplace_back(now, out->message.idempotency_key);
  out->done(error_code{}, std::move(r));
}

// Again later, with backoff, while the publish deadline allows it.
void queue::engine::resend(const std::shared_ptr<outgoing>& out, error_code why) {
  ++out->tries;
  const auto cap = std::min<std::int64_t>(1000, 25LL << std::min(out->tries, 6));
  const milliseconds delay(std::uniform_int_distribution<std::int64_t>(cap / 2, cap)(rng));
  if (closed || steady::now() + delay >= out->deadline)
    return finish(out, out->maybe_sent ? code(errc::publish_timeout) : why);
  auto timer = std::make_shared<asio::steady_timer>(io, delay);
  timer->async_wait([self = this, out, timer](boost::system::error_code) {
    self->to_send.push_front(out);
    self->pump();
  });
}

void queue::engine::send_batch(std::vector<std::shared_ptr<outgoing>> batch) {
  json::array entries;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto& m = batch[i]->message;
    json::object e{{"Id", "e" + std::to_string(i)}, {"MessageBody", batch[i]->data.body}};
    e["MessageAttributes"] = json::object{{meta_attribute, attribute(batch[i]->data.meta)}};
    if (fifo) {
      e["MessageGroupId"] = o.group_per_key ? dedup_id(m.idempotency_key) : o.message_group;
      e["MessageDeduplicationId"] = dedup_id(m.idempotency_key);
    }
    entries.push_back(std::move(e));
  }
  // No longer than the earliest deadline in the batch: a send still running past it
  // would be taken with a postmark the consumer no longer trusts.
  auto budget = o.request_timeout;
  for (const auto& out : batch)
    budget = std::min(budget, std::chrono::duration_cast<milliseconds>(out->deadline - steady::now()));
  budget = std::max(budget, milliseconds(1));
  call("SendMessageBatch", json::object{{"QueueUrl", main_url}, {"Entries", std::move(entries)}}, budget,
       [self = this, batch = std::move(batch)](aws_reply r) mutable {
         --self->batches_in_flight;
         self->sent(std::move(batch), std::move(r));
         self->pump();
       });
}

void queue::engine::sent(std::vector<std::shared_ptr<outgoing>> batch, aws_reply r) {
  if (r.ec == errc::not_found && o.create_queues) {
    recreate();
    for (auto& out : batch) resend(out, code(errc::backend_unavailable));
    return;
  }
  if (r.ec) {
    for (auto& out : batch) {
      out->maybe_sent = out->maybe_sent || r.sent;
      // Not reachable at all: fail now (503), do not hang. Throttling, 5xx or an
      // unknown outcome: again with the same receipt id until the deadline.
      if (r.ec == errc::backend_unavailable && r.sent)
        resend(out, r.ec);
      else
        finish(out, r.ec);
    }
    return;
  }
  const auto results = batch_entries(r.body.as_object(), 0, batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto& e = results[i];
    if (e.what == entry_result::outcome::succeeded) {
      finish(batch[i], error_code{});
    } else if (e.what == entry_result::outcome::failed) {
      note_error("SendMessageBatch entry: " + e.code + ": " + e.message);
      if (!e.sender_fault)
        resend(batch[i], code(errc::backend_unavailable));
      else if (e.code.find("TooLong") != std::string::npos || e.message.find("shorter") != std::string::npos)
        finish(batch[i], code(errc::payload_too_large));
      else
        finish(batch[i], code(errc::invalid_config));
    }
  }
  // Neither accepted nor refused: the outcome is unknown, send again.
  for (std::size_t i = 0; i < batch.size(); ++i)
    if (results[i].what == entry_result::outcome::unanswered) {
      batch[i]->maybe_sent = true;
      resend(batch[i], code(errc::backend_unavailable));
    }
}

}  // namespace ingest::sqs
