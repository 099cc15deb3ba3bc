#pragma once
// A plain nats.c JetStream client for the tests, as another program would use it:
// publish into a stream, read its state and its messages as the server keeps them.

#include <doctest/doctest.h>
#include <nats/nats.h>

#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ingest/envelope.hpp"

namespace ingest::test {

class nats_client {
 public:
  explicit nats_client(const std::string& url) {
    REQUIRE(natsConnection_ConnectTo(&nc_, url.c_str()) == NATS_OK);
    REQUIRE(natsConnection_JetStream(&js_, nc_, nullptr) == NATS_OK);
  }
  ~nats_client() {
    jsCtx_Destroy(js_);
    natsConnection_Destroy(nc_);
  }
  nats_client(const nats_client&) = delete;
  nats_client& operator=(const nats_client&) = delete;

  // Publishes and waits for the PubAck; true when the stream stored it (not a duplicate).
  bool publish(const std::string& subject, const std::string& data,
               const std::vector<std::pair<std::string, std::string>>& headers) {
    natsMsg* m = nullptr;
    REQUIRE(natsMsg_Create(&m, subject.c_str(), nullptr, data.data(), static_cast<int>(data.size())) == NATS_OK);
    for (const auto& [k, v] : headers) natsMsgHeader_Add(m, k.c_str(), v.c_str());
    jsPubAck* ack = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const auto s = js_PublishMsg(&ack, js_, m, nullptr, &code);
    natsMsg_Destroy(m);
    REQUIRE(s == NATS_OK);
    const bool stored = !ack->Duplicate;
    jsPubAck_Destroy(ack);
    return stored;
  }

  // First and last sequence, and how many messages the stream holds.
  struct stream_state {
    std::uint64_t first = 0, last = 0, messages = 0;
  };
  stream_state state(const std::string& stream) {
    jsStreamInfo* info = nullptr;
    REQUIRE(js_GetStreamInfo(&info, js_, stream.c_str(), nullptr, nullptr) == NATS_OK);
    const stream_state out{info->State.FirstSeq, info->State.LastSeq, info->State.Msgs};
    jsStreamInfo_Destroy(info);
    return out;
  }

  // Delivered by consumer `consumer` and not yet acked.
  std::int64_t ack_pending(const std::string& stream, const std::string& consumer) {
    jsConsumerInfo* info = nullptr;
    REQUIRE(js_GetConsumerInfo(&info, js_, stream.c_str(), consumer.c_str(), nullptr, nullptr) == NATS_OK);
    const auto n = info->NumAckPending;
    jsConsumerInfo_Destroy(info);
    return n;
  }

  // A pull request for `batch` messages, as any client sends it, with the answers going
  // to `inbox`; `expires_ns` 0: the server's default.
  void pull(const std::string& next_subject, const std::string& inbox, int batch, std::int64_t expires_ns) {
    std::string body = "{\"batch\":" + std::to_string(batch);
    if (expires_ns > 0) body += ",\"expires\":" + std::to_string(expires_ns);
    body += "}";
    REQUIRE(natsConnection_PublishRequest(nc_, next_subject.c_str(), inbox.c_str(), body.data(),
                                          static_cast<int>(body.size())) == NATS_OK);
    REQUIRE(natsConnection_Flush(nc_) == NATS_OK);
  }

  natsConnection* connection() const { return nc_; }

  // The server's store time of message `seq` and the postmark the library wrote on it
  // (Ingest-Accepted-At); false when there is no such message or no postmark.
  bool times(const std::string& stream, std::uint64_t seq, time_point& stored_at, time_point& postmark) {
    natsMsg* m = nullptr;
    if (js_GetMsg(&m, js_, stream.c_str(), seq, nullptr, nullptr) != NATS_OK) return false;
    const char* text = nullptr;
    const bool found = natsMsgHeader_Get(m, "Ingest-Accepted-At", &text) == NATS_OK && text;
    stored_at = time_point(std::chrono::duration_cast<clock::duration>(std::chrono::nanoseconds(natsMsg_GetTime(m))));
    if (found) postmark = time_from_us(std::strtoll(text, nullptr, 10));
    natsMsg_Destroy(m);
    return found;
  }

  // The headers of message `seq` as stored (values as they are on the wire); empty when
  // there is no such message.
  std::map<std::string, std::string> stored_headers(const std::string& stream, std::uint64_t seq) {
    std::map<std::string, std::string> out;
    natsMsg* m = nullptr;
    if (js_GetMsg(&m, js_, stream.c_str(), seq, nullptr, nullptr) != NATS_OK) return out;
    const char** keys = nullptr;
    int count = 0;
    if (natsMsgHeader_Keys(m, &keys, &count) == NATS_OK) {
      for (int i = 0; i < count; ++i)
        if (const char* v = nullptr; natsMsgHeader_Get(m, keys[i], &v) == NATS_OK && v) out.emplace(keys[i], v);
      free(keys);
    }
    natsMsg_Destroy(m);
    return out;
  }

 private:
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

}  // namespace ingest::test
