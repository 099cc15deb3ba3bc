// Fetching deliveries and keeping their leases: the pull, what each delivery carries,
// the held messages and their deadlines, and lease extension.

#include <algorithm>

#include "codec.hpp"
#include "engine.hpp"

namespace ingest::nats {

using namespace detail;

// nats.c before 3.10 writes past the array a Fetch returns when the Fetch starts with
// messages already waiting on the subscription (answers to a pull request that outlived
// the Fetch which sent it, as after a reconnect to another cluster node), takes at least
// half its batch from them, and then receives more than it asked for (nats.c pull
// request #749; Debian 12 ships 3.4.1). A Fetch of one message cannot overrun, so what
// is waiting is taken one message per Fetch, and a Fetch of the whole batch starts only
// on an empty subscription. What this leaves: a burst of late answers landing between
// that check and the Fetch's own (microseconds apart). Slices of at least 20 ms keep the
// fetch's own requests from outliving it (nats.c asks the server to expire them 10 ms
// before it stops waiting), so late answers come only from a reconnect.
std::vector<delivery> queue::engine::fetch(std::size_t max, std::chrono::milliseconds wait, error_code& ec) {
  constexpr std::int64_t shortest = 20, longest = 250;  // ms; short, so that close() is noticed quickly
  std::lock_guard serial(fetch_mutex);
  const auto deadline = steady::now() + wait;
  std::vector<delivery> out;
  while (out.size() < max) {
    {
      std::lock_guard lock(mutex);
      if (closed) {
        if (out.empty()) ec = std::make_error_code(std::errc::operation_canceled);
        return out;
      }
    }
    int waiting = 0;
    natsSubscription_GetPending(subscription.get(), &waiting, nullptr);
    if (waiting == 0 && !out.empty()) return out;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
    // With deliveries in hand, no full slice is spent waiting for one more (what waits
    // may be only the server's status messages).
    const auto slice = out.empty() ? std::clamp<std::int64_t>(left.count(), shortest, longest) : shortest;
    const int batch = waiting > 0 ? 1 : static_cast<int>(max - out.size());
    natsMsgList list{};
    jsErrCode code = static_cast<jsErrCode>(0);
    const auto s = natsSubscription_Fetch(&list, subscription.get(), batch, slice, &code);
    if (s == NATS_OK) {
      take(list, out);
      natsMsgList_Destroy(&list);
      if (waiting == 0) return out;
      continue;
    }
    natsMsgList_Destroy(&list);
    if (s != NATS_TIMEOUT && s != NATS_NOT_FOUND) {
      if (out.empty()) ec = unavailable_or(s, errc::backend_unavailable);
      return out;
    }
    if (!out.empty() || steady::now() >= deadline) return out;
  }
  return out;
}

void queue::engine::take(natsMsgList& list, std::vector<delivery>& out) {
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
                             meta->Sequence.Stream, time_from_ns(meta->Timestamp), postmark_bound()};
    d.message = read_delivered(msg.get(), facts, d.malformed);
    d.message.attempts = static_cast<std::uint32_t>(meta->NumDelivered);
    if (first_seen.size() > 100000) first_seen.clear();
    const auto seen =
        first_seen.try_emplace(meta->Sequence.Stream, d.message.attempts == 1 ? wall : d.message.accepted_at);
    d.first_attempt_at = seen.first->second;
    d.token = std::to_string(meta->Sequence.Stream) + ":" + std::to_string(meta->NumDelivered);
    held[d.token] = held_message{std::move(msg),        now + lease_for(d.message.attempts),
                                 meta->Sequence.Stream, d.message.attempts,
                                 d.first_attempt_at,    d.message};
    out.push_back(std::move(d));
  }
}

// How long the server waits for an ack of delivery number `attempts`: its backoff
// step when one is configured, else ack_wait.
std::chrono::milliseconds queue::engine::lease_for(std::uint32_t attempts) const {
  const auto& b = options.redelivery_backoff;
  if (b.empty() || attempts == 0) return options.ack_wait;
  return b[std::min<std::size_t>(attempts - 1, b.size() - 1)];
}

// Takes the held message of `token` if its lease still holds.
std::optional<queue::engine::held_message> queue::engine::release_lease(const std::string& token) {
  std::lock_guard lock(mutex);
  auto found = held.find(token);
  if (found == held.end()) return std::nullopt;
  auto h = std::move(found->second);
  held.erase(found);
  if (h.deadline <= steady::now()) return std::nullopt;
  return h;
}

void queue::engine::forget_first_seen(std::uint64_t sequence) {
  std::lock_guard lock(mutex);
  first_seen.erase(sequence);
}

error_code queue::engine::extend(const std::vector<std::string>& tokens) {
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

}  // namespace ingest::nats
