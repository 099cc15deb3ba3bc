// Receiving: the leases handed out, fetches (a long poll with short polls beside it),
// messages given back, and leases extended through their visibility timeout.

#include <boost/asio/steady_timer.hpp>

#include "engine.hpp"

namespace ingest::sqs {

// ---- leases --------------------------------------------------------------------

delivery queue::engine::take(const json::object& msg) {
  delivery d;
  // A send reaches SQS while it is live (publish_timeout), plus a second for one on
  // the wire; sent later, SQS's own time is the accept time (guarantee 7).
  d.message = decode(msg, d.malformed, o.publish_timeout + std::chrono::seconds(1));
  d.token = str(msg, "ReceiptHandle");
  const auto* sys = msg.if_contains("Attributes");
  const auto first =
      sys && sys->is_object() ? str(sys->as_object(), "ApproximateFirstReceiveTimestamp") : std::string();
  d.first_attempt_at = first.empty() ? clock::now() : from_ms_text(first);
  // An older lease on the same message is void now.
  if (auto h = holders.find(d.message.receipt_id); h != holders.end()) leases.erase(h->second);
  holders[d.message.receipt_id] = d.token;
  leases[d.token] = lease{d.message, d.first_attempt_at, steady::now() + seconds(visibility_s)};
  return d;
}

void queue::engine::drop_lease(std::unordered_map<std::string, lease>::iterator it) {
  if (auto h = holders.find(it->second.message.receipt_id); h != holders.end() && h->second == it->first)
    holders.erase(h);
  leases.erase(it);
}

// Leases nobody settled (a consumer that gave up on them) are forgotten once long expired.
void queue::engine::sweep_leases() {
  const auto now = steady::now();
  for (auto it = leases.begin(); it != leases.end();) {
    if (now - it->second.expires > std::chrono::minutes(1)) {
      auto victim = it++;
      drop_lease(victim);
    } else {
      ++it;
    }
  }
}

// ---- fetch ---------------------------------------------------------------------

void queue::engine::start_fetch(std::shared_ptr<fetch_op> op) {
  fetches.insert(op);
  poll(std::move(op));
}

void queue::engine::complete(const std::shared_ptr<fetch_op>& op, error_code ec) {
  if (op->finished) return;
  op->finished = true;
  fetches.erase(op);
  op->done(ec, std::move(op->got));
}

json::object queue::engine::receive_request(const std::string& url, std::size_t n, std::int64_t wait_s,
                                            std::int64_t visibility) {
  return json::object{
      {"QueueUrl", url},
      {"MaxNumberOfMessages", static_cast<std::int64_t>(std::min<std::size_t>(n, 10))},
      {"WaitTimeSeconds", wait_s},
      {"VisibilityTimeout", visibility},
      {"MessageAttributeNames", json::array{"All"}},
      {"MessageSystemAttributeNames", json::array{"ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp",
                                                  "SentTimestamp", "MessageDeduplicationId"}}};
}

// Makes received messages visible again at once (a fetch that is already over, a
// dead-letter scan); `then` runs once SQS answered.
void queue::engine::give_back(const std::string& url, std::vector<std::string> handles,
                              ingest::detail::callback<void(error_code)> then) {
  std::vector<json::object> entries;
  for (auto& h : handles) entries.push_back(json::object{{"ReceiptHandle", std::move(h)}, {"VisibilityTimeout", 0}});
  batch_call(
      "ChangeMessageVisibilityBatch", url, std::move(entries), [](std::size_t, bool, const std::string&) {},
      std::move(then));
}

// A round of receives: one long poll waiting up to the fetch's deadline and, the
// first time, short polls beside it for the rest of `max` (a backlog fills the batch
// at once). A round that found messages completes the fetch, after short polls that
// fill it when only the long poll brought something; an empty round polls again
// until the deadline.
void queue::engine::poll(std::shared_ptr<fetch_op> op, bool first) {
  if (op->finished) return;
  const auto remaining = std::chrono::duration_cast<milliseconds>(op->deadline - steady::now());
  const std::int64_t wait_s = remaining >= seconds(1) ? std::min<std::int64_t>(20, remaining.count() / 1000) : 0;
  const std::size_t calls = first ? std::min(o.receive_concurrency, (op->max + 9) / 10) : 1;
  auto error = std::make_shared<error_code>();
  for (std::size_t i = 0; i < calls; ++i) {
    ++op->outstanding;
    const std::int64_t wait = i == 0 ? wait_s : 0;
    call("ReceiveMessage", receive_request(main_url, std::min<std::size_t>(10, op->max - i * 10), wait, visibility_s),
         o.request_timeout + seconds(wait), [self = this, op, error, calls](aws_reply r) mutable {
           --op->outstanding;
           self->received(op, r);
           if (r.ec) *error = r.ec;
           if (op->finished || op->outstanding > 0) return;
           self->round_over(op, *error, calls);
         });
  }
}

void queue::engine::round_over(const std::shared_ptr<fetch_op>& op, error_code ec, std::size_t calls) {
  if (ec == errc::not_found) recreate();
  if (!op->got.empty()) {
    if (calls == 1 && op->got.size() < op->max) return fill(op);
    return complete(op, error_code{});
  }
  if (ec) return complete(op, ec);
  const auto left = op->deadline - steady::now();
  if (left <= milliseconds::zero()) return complete(op, error_code{});
  if (left >= seconds(1)) return poll(op, false);
  // Under a second left: SQS waits in whole seconds, so short polls.
  auto timer = std::make_shared<asio::steady_timer>(io, std::min<steady::duration>(left, milliseconds(50)));
  timer->async_wait([self = this, op, timer](boost::system::error_code) {
    if (steady::now() >= op->deadline) return self->complete(op, error_code{});
    self->poll(op, false);
  });
}

void queue::engine::received(const std::shared_ptr<fetch_op>& op, const aws_reply& r) {
  if (r.ec || !r.body.is_object()) return;
  const auto* msgs = r.body.as_object().if_contains("Messages");
  if (!msgs || !msgs->is_array()) return;
  std::vector<std::string> extra;
  for (const auto& m : msgs->as_array()) {
    if (!m.is_object()) continue;
    if (op->finished || op->got.size() >= op->max) {
      extra.push_back(str(m.as_object(), "ReceiptHandle"));
      continue;
    }
    try {
      op->got.push_back(take(m.as_object()));
    } catch (const std::exception& e) {
      note_error(std::string("ReceiveMessage: ") + e.what());
      extra.push_back(str(m.as_object(), "ReceiptHandle"));
    }
  }
  if (!extra.empty()) give_back(main_url, std::move(extra));
}

void queue::engine::fill(const std::shared_ptr<fetch_op>& op) {
  const std::size_t missing = op->max - std::min(op->max, op->got.size());
  const std::size_t calls = std::min(o.receive_concurrency, (missing + 9) / 10);
  if (calls == 0) return complete(op, error_code{});
  for (std::size_t i = 0; i < calls; ++i) {
    ++op->outstanding;
    call("ReceiveMessage", receive_request(main_url, std::min<std::size_t>(10, missing - i * 10), 0, visibility_s),
         o.request_timeout, [self = this, op](aws_reply r) {
           --op->outstanding;
           self->received(op, r);
           if (op->outstanding == 0) self->complete(op, error_code{});
         });
  }
}

void queue::engine::cancel_fetches() {
  auto all = fetches;
  for (const auto& op : all) complete(op, make_error_code(std::errc::operation_canceled));
}

// ---- extend --------------------------------------------------------------------

void queue::engine::extend(std::vector<std::string> tokens, milliseconds by, callback<error_code> done) {
  auto result = std::make_shared<error_code>();
  std::vector<json::object> entries;
  const auto now = steady::now();
  for (auto& t : tokens) {
    auto it = leases.find(t);
    if (it == leases.end() || now > it->second.expires) {
      *result = code(errc::lease_expired);
      continue;
    }
    it->second.expires = now + seconds(whole_seconds(by));
    entries.push_back(json::object{{"ReceiptHandle", t}, {"VisibilityTimeout", whole_seconds(by)}});
  }
  batch_call(
      "ChangeMessageVisibilityBatch", main_url, std::move(entries),
      [result](std::size_t, bool ok, const std::string&) {
        if (!ok && !*result) *result = code(errc::lease_expired);
      },
      [result, done = std::move(done)](error_code ec) mutable { done(ec ? ec : *result); });
}

}  // namespace ingest::sqs
