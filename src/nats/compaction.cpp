// Compaction: purge what is processed and older than the duplicate window, on the
// compactor thread every compaction_interval.

#include <algorithm>

#include "codec.hpp"
#include "engine.hpp"

namespace ingest::nats {

using namespace detail;

void queue::engine::compact() {
  jsErrCode code = static_cast<jsErrCode>(0);
  jsConsumerInfo* c_raw = nullptr;
  if (js_GetConsumerInfo(&c_raw, js.get(), options.stream.c_str(), options.consumer.c_str(), nullptr, &code) != NATS_OK)
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

void queue::engine::run_compactor() {
  std::unique_lock lock(mutex);
  while (!closed) {
    compaction_wake.wait_for(lock, options.compaction_interval, [&] { return closed; });
    if (closed) break;
    lock.unlock();
    compact();
    lock.lock();
  }
}

}  // namespace ingest::nats
