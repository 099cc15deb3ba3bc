// The dead letters: reading them from the dead-letter stream, listing them, and
// replaying or purging them.

#include <algorithm>

#include "codec.hpp"
#include "engine.hpp"

namespace ingest::nats {

using namespace detail;

// Every dead letter with its sequence in the dead-letter stream, by receipt id.
error_code queue::engine::read_dead_letters(std::vector<std::pair<std::uint64_t, dead_letter>>& out) {
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

// The dead letters after receipt id `after`, `limit` at most.
error_code queue::engine::list_dead_letters(const std::string& after, std::size_t limit,
                                            std::vector<dead_letter>& out) {
  std::vector<std::pair<std::uint64_t, dead_letter>> all;
  auto ec = read_dead_letters(all);
  for (auto& [seq, l] : all)
    if (l.message.receipt_id > after && out.size() < limit) out.push_back(std::move(l));
  return ec;
}

error_code queue::engine::move_dead_letters(std::vector<std::string> ids, bool replay, std::size_t& moved) {
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

}  // namespace ingest::nats
