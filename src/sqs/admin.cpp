// The dead-letter queue's operations: a scan of the whole queue (SQS has no browse),
// then a listing, a replay into the main queue or a purge of the letters chosen.

#include <algorithm>

#include "engine.hpp"

namespace ingest::sqs {

// Receives everything in the dead-letter queue (hidden for a while), up to a bound.
void queue::engine::scan(scan_fn done) {
  if (scanning) {
    scan_queue.push_back([self = this, done = std::move(done)]() mutable { self->scan(std::move(done)); });
    return;
  }
  scanning = true;
  auto all = std::make_shared<std::vector<scanned>>();
  scan_more(all, 0, std::move(done));
}

void queue::engine::scan_finished() {
  scanning = false;
  if (!scan_queue.empty()) {
    auto next = std::move(scan_queue.front());
    scan_queue.pop_front();
    next();
  }
}

void queue::engine::scan_more(std::shared_ptr<std::vector<scanned>> all, int empty_rounds, scan_fn done) {
  call("ReceiveMessage", receive_request(dlq_url, 10, 0, 60), o.request_timeout,
       [self = this, all, empty_rounds, done = std::move(done)](aws_reply r) mutable {
         if (r.ec) {
           std::vector<std::string> handles;
           for (auto& s : *all) handles.push_back(s.handle);
           self->give_back(self->dlq_url, std::move(handles));
           self->scan_finished();
           return done(r.ec, {});
         }
         std::size_t n = 0;
         if (const auto* msgs = r.body.as_object().if_contains("Messages"); msgs && msgs->is_array())
           for (const auto& m : msgs->as_array()) {
             if (!m.is_object()) continue;
             ++n;
             all->push_back(self->to_letter(m.as_object()));
           }
         // SQS may answer a short poll with nothing while messages exist: twice empty = done.
         const int rounds = n == 0 ? empty_rounds + 1 : 0;
         if (rounds >= 2 || all->size() >= 100000) {
           self->scan_finished();
           return done(error_code{}, std::move(*all));
         }
         self->scan_more(all, rounds, std::move(done));
       });
}

queue::engine::scanned queue::engine::to_letter(const json::object& m) {
  scanned s;
  s.handle = str(m, "ReceiptHandle");
  s.body = str(m, "Body");
  if (const auto* a = m.if_contains("MessageAttributes")) s.attributes = *a;
  auto& l = s.letter;
  try {
    l.message = decode(m);
  } catch (const std::exception&) {
    l.message.receipt_id = str(m, "MessageId");
    l.message.payload = s.body;
  }
  if (!decode_dead(s.attributes, l)) {
    // Moved by the queue's RedrivePolicy: SQS keeps no reason or times.
    l.reason = "max_receives";
    l.attempts = o.redrive_max_receives ? o.redrive_max_receives : l.message.attempts;
    const auto* sys = m.if_contains("Attributes");
    const auto first =
        sys && sys->is_object() ? str(sys->as_object(), "ApproximateFirstReceiveTimestamp") : std::string();
    l.first_attempt_at = first.empty() ? l.message.accepted_at : from_ms_text(first);
    l.last_attempt_at = l.first_attempt_at;
    l.dead_lettered_at = l.first_attempt_at;
  }
  l.message.attempts = l.attempts;
  return s;
}

void queue::engine::list(std::string after, std::size_t limit, callback<error_code, std::vector<dead_letter>> done) {
  scan([self = this, after = std::move(after), limit, done = std::move(done)](error_code ec,
                                                                              std::vector<scanned> all) mutable {
    if (ec) return done(ec, {});
    std::vector<std::string> handles;
    std::vector<dead_letter> out;
    for (auto& s : all) {
      handles.push_back(s.handle);
      if (s.letter.message.receipt_id > after) out.push_back(std::move(s.letter));
    }
    std::sort(out.begin(), out.end(),
              [](const dead_letter& a, const dead_letter& b) { return a.message.receipt_id < b.message.receipt_id; });
    if (out.size() > limit) out.resize(limit);
    self->give_back(
        self->dlq_url, std::move(handles),
        [out = std::move(out), done = std::move(done)](error_code) mutable { done(error_code{}, std::move(out)); });
  });
}

// Replay (back into the queue, attempts start again) or purge the chosen letters.
void queue::engine::move_letters(std::vector<std::string> ids, bool replay, callback<error_code, std::size_t> done) {
  scan([self = this, ids = std::set<std::string>(ids.begin(), ids.end()), replay, done = std::move(done)](
           error_code ec, std::vector<scanned> all) mutable {
    if (ec) return done(ec, 0);
    std::vector<std::string> keep;
    auto chosen = std::make_shared<std::vector<scanned>>();
    for (auto& s : all) {
      if (ids.empty() || ids.count(s.letter.message.receipt_id))
        chosen->push_back(std::move(s));
      else
        keep.push_back(s.handle);
    }
    auto kept = std::make_shared<std::vector<std::string>>(std::move(keep));
    auto remove = [self, chosen, replay, kept, done = std::move(done)](std::vector<std::size_t> which,
                                                                       error_code first) mutable {
      std::vector<json::object> deletes;
      for (auto i : which) deletes.push_back(json::object{{"ReceiptHandle", (*chosen)[i].handle}});
      auto count = std::make_shared<std::size_t>(0);
      self->batch_call(
          "DeleteMessageBatch", self->dlq_url, std::move(deletes),
          [count](std::size_t, bool ok, const std::string&) {
            if (ok) ++*count;
          },
          [self, count, replay, first, kept, done = std::move(done)](error_code dec) mutable {
            if (!replay) self->purged += *count;
            // The letters not chosen become visible again before the answer.
            self->give_back(
                self->dlq_url, std::move(*kept),
                [count, first, dec, done = std::move(done)](error_code) mutable { done(first ? first : dec, *count); });
          });
    };
    if (!replay) {
      std::vector<std::size_t> all_of_them(chosen->size());
      for (std::size_t i = 0; i < chosen->size(); ++i) all_of_them[i] = i;
      return remove(std::move(all_of_them), error_code{});
    }
    std::vector<json::object> entries;
    const auto now = to_us(clock::now());
    for (const auto& s : *chosen) {
      json::object attrs;
      if (const auto* a = s.attributes.if_object())
        if (const auto* meta = a->if_contains(meta_attribute); meta && meta->is_object()) {
          json::object copy;
          for (const auto& [k, v] : meta->as_object())
            if (k == "DataType" || k == "StringValue" || k == "BinaryValue") copy[k] = v;
          attrs[meta_attribute] = std::move(copy);
        }
      json::object e{{"MessageBody", s.body}};
      if (!attrs.empty()) e["MessageAttributes"] = std::move(attrs);
      if (self->fifo) {
        e["MessageGroupId"] =
            self->o.group_per_key ? dedup_id(s.letter.message.idempotency_key) : self->o.message_group;
        e["MessageDeduplicationId"] = s.letter.message.receipt_id + "-r" + std::to_string(now);
      }
      entries.push_back(std::move(e));
    }
    auto sent = std::make_shared<std::vector<std::size_t>>();
    self->batch_call(
        "SendMessageBatch", self->main_url, std::move(entries),
        [sent](std::size_t i, bool ok, const std::string&) {
          if (ok) sent->push_back(i);
        },
        [self, chosen, sent, remove = std::move(remove)](error_code sec) mutable {
          std::vector<std::string> back;
          std::set<std::size_t> ok(sent->begin(), sent->end());
          for (std::size_t i = 0; i < chosen->size(); ++i)
            if (!ok.count(i)) back.push_back((*chosen)[i].handle);
          self->give_back(self->dlq_url, std::move(back));
          remove(std::vector<std::size_t>(sent->begin(), sent->end()), sec);
        });
  });
}

}  // namespace ingest::sqs
