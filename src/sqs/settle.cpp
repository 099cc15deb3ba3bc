// Settling deliveries: acks deleted, retries made visible again after their delay,
// and dead letters written to the dead-letter queue before the original is deleted.

#include "engine.hpp"

namespace ingest::sqs {

struct queue::engine::settle_job {
  std::size_t parts = 0;
  error_code ec;
  callback<error_code> done;
  void part_done(error_code e) {
    if (e && (!ec || ec == errc::lease_expired)) ec = e;
    if (--parts == 0) done(ec);
  }
};

void queue::engine::settle(std::vector<settlement> decisions, callback<error_code> done) {
  sweep_leases();
  auto job = std::make_shared<settle_job>();
  job->done = std::move(done);
  job->parts = 1;  // this function's own part, released at the end
  bool expired = false;
  const auto now = steady::now();
  std::vector<json::object> deletes, delays;
  std::vector<std::pair<lease, settlement>> dead;
  for (auto& s : decisions) {
    auto it = leases.find(s.token);
    if (it == leases.end()) {
      expired = true;
      continue;
    }
    const bool late = now > it->second.expires;
    expired = expired || late;
    switch (s.action) {
      case settle_action::ack:
        // Sent even when late: harmless, and effective if nobody received it since.
        deletes.push_back(json::object{{"ReceiptHandle", s.token}});
        if (late) deletes.back()["late"] = true;
        break;
      case settle_action::retry:
        delays.push_back(json::object{{"ReceiptHandle", s.token}, {"VisibilityTimeout", whole_seconds(s.delay)}});
        break;
      case settle_action::dead_letter:
        if (!late) dead.emplace_back(it->second, s);
        break;
    }
    drop_lease(it);
  }
  if (expired) job->ec = code(errc::lease_expired);
  if (!deletes.empty()) {
    ++job->parts;
    auto late = std::make_shared<std::vector<bool>>();
    for (auto& d : deletes) {
      late->push_back(d.contains("late"));
      d.erase("late");
    }
    batch_call(
        "DeleteMessageBatch", main_url, std::move(deletes),
        [self = this, late, job](std::size_t i, bool ok, const std::string& c) {
          if (ok && !(*late)[i]) ++self->processed;
          if (!ok && c == "ReceiptHandleIsInvalid" && !job->ec) job->ec = code(errc::lease_expired);
        },
        [job](error_code e) { job->part_done(e); });
  }
  if (!delays.empty()) {
    ++job->parts;
    batch_call(
        "ChangeMessageVisibilityBatch", main_url, std::move(delays),
        [job](std::size_t, bool ok, const std::string& c) {
          if (!ok && !job->ec)
            job->ec = code(c == "ReceiptHandleIsInvalid" ? errc::lease_expired : errc::backend_unavailable);
        },
        [job](error_code e) { job->part_done(e); });
  }
  if (!dead.empty()) {
    ++job->parts;
    bury(std::move(dead), [job](error_code e) { job->part_done(e); });
  }
  job->part_done(error_code{});
}

// Written to the dead-letter queue first; the original is deleted only for the
// entries SQS accepted there.
void queue::engine::bury(std::vector<std::pair<lease, settlement>> items,
                         ingest::detail::callback<void(error_code)> done) {
  const auto now = clock::now();
  std::vector<json::object> entries;
  for (auto& [l, s] : items) {
    const auto data = encode(l.message);
    dead_letter dead;
    dead.reason = s.reason;
    dead.last_error = s.last_error;
    dead.attempts = l.message.attempts;
    dead.first_attempt_at = l.first_attempt_at;
    dead.last_attempt_at = now;
    dead.dead_lettered_at = now;
    json::object e{{"MessageBody", data.body}};
    e["MessageAttributes"] =
        json::object{{meta_attribute, attribute(data.meta)}, {dead_attribute, attribute(encode_dead(dead))}};
    if (fifo) {
      e["MessageGroupId"] = o.group_per_key ? dedup_id(l.message.idempotency_key) : o.message_group;
      e["MessageDeduplicationId"] = l.message.receipt_id + "-" + std::to_string(to_us(now));
    }
    entries.push_back(std::move(e));
  }
  auto shared_items = std::make_shared<std::vector<std::pair<lease, settlement>>>(std::move(items));
  auto accepted = std::make_shared<std::vector<std::size_t>>();
  batch_call(
      "SendMessageBatch", dlq_url, std::move(entries),
      [accepted](std::size_t i, bool ok, const std::string&) {
        if (ok) accepted->push_back(i);
      },
      [self = this, shared_items, accepted, done = std::move(done)](error_code ec) mutable {
        std::vector<json::object> deletes;
        for (auto i : *accepted) deletes.push_back(json::object{{"ReceiptHandle", (*shared_items)[i].second.token}});
        if (!ec && accepted->size() != shared_items->size()) ec = code(errc::backend_unavailable);
        self->batch_call(
            "DeleteMessageBatch", self->main_url, std::move(deletes), [](std::size_t, bool, const std::string&) {},
            [ec, done = std::move(done)](error_code dec) mutable { done(ec ? ec : dec); });
      });
}

}  // namespace ingest::sqs
