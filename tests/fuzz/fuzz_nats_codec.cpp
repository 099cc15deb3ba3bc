// The NATS backend's envelope and dead-letter codec (message headers).

#include <algorithm>

#include "fuzz_support.hpp"
#include "nats/codec.hpp"

using namespace ingest;

namespace {

struct message_handle {
  natsMsg* msg = nullptr;
  ~message_handle() { natsMsg_Destroy(msg); }
};

header_list by_name(header_list h) {
  std::stable_sort(h.begin(), h.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  FUZZ_CHECK(nats_Open(-1) == NATS_OK);  // natsMsg needs the library's global state
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::reader in(data, size);
  const auto mode = in.byte() % 3;
  if (mode == 0) {  // any text survives escaping
    const auto text = in.rest();
    const auto escaped = nats::detail::escape_value(text);
    FUZZ_CHECK(!escaped.empty());
    FUZZ_CHECK(valid_header_value(escaped));
    FUZZ_CHECK(nats::detail::unescape_value(escaped) == text);
    return 0;
  }
  auto m = fuzz::make_envelope(in);
  message_handle h;
  FUZZ_CHECK(natsMsg_Create(&h.msg, "fuzz", nullptr, m.payload.data(), static_cast<int>(m.payload.size())) == NATS_OK);
  if (mode == 1) {  // what validate_envelope lets through comes back unchanged
    if (validate_envelope(m)) return 0;
    nats::detail::write_envelope(h.msg, m);
    const auto back = nats::detail::read_envelope(h.msg);
    fuzz::check_same_fields(back, m);
    FUZZ_CHECK(by_name(back.headers) == by_name(m.headers));
    dead_letter l;
    l.reason = m.subject;
    l.last_error = m.payload;
    l.attempts = static_cast<std::uint32_t>(m.payload.size());
    l.first_attempt_at = l.last_attempt_at = l.dead_lettered_at = m.accepted_at;
    nats::detail::write_dead(h.msg, l, 7);
    dead_letter read;
    nats::detail::read_dead(h.msg, read);
    FUZZ_CHECK(read.reason == l.reason);
    FUZZ_CHECK(read.last_error == l.last_error);
    FUZZ_CHECK(read.attempts == l.attempts);
    // Delivered, a well-formed message is read whole, with nothing malformed.
    fuzz::make_well_formed(m);
    message_handle sent;
    FUZZ_CHECK(natsMsg_Create(&sent.msg, "fuzz", nullptr, m.payload.data(), static_cast<int>(m.payload.size())) ==
               NATS_OK);
    nats::detail::write_envelope(sent.msg, m);
    std::string malformed;
    const auto delivered = nats::detail::read_delivered(sent.msg, {"S", 9, clock::now()}, malformed);
    FUZZ_CHECK(malformed.empty());
    fuzz::check_same_fields(delivered, m);
    FUZZ_CHECK(by_name(delivered.headers) == by_name(m.headers));
    // Published (fewer headers, the key in Nats-Msg-Id as JetStream's publish sets it),
    // it is read the same.
    message_handle published;
    FUZZ_CHECK(natsMsg_Create(&published.msg, "fuzz", nullptr, m.payload.data(), static_cast<int>(m.payload.size())) ==
               NATS_OK);
    nats::detail::write_published(published.msg, m);
    FUZZ_CHECK(natsMsgHeader_Set(published.msg, "Nats-Msg-Id", m.idempotency_key.c_str()) == NATS_OK);
    const auto read_back = nats::detail::read_delivered(published.msg, {"S", 9, clock::now()}, malformed);
    FUZZ_CHECK(malformed.empty());
    fuzz::check_same_fields(read_back, m);
    FUZZ_CHECK(by_name(read_back.headers) == by_name(m.headers));
    return 0;
  }
  // A message written by someone else, any header names and values: read, never a crash.
  if (!m.receipt_id.empty()) natsMsgHeader_Set(h.msg, nats::detail::h_accepted, m.receipt_id.c_str());
  if (!m.subject.empty()) natsMsgHeader_Set(h.msg, nats::detail::h_attempts, m.subject.c_str());
  for (const auto& [name, value] : m.headers)
    if (!name.empty()) natsMsgHeader_Add(h.msg, name.c_str(), value.c_str());
  const auto back = nats::detail::read_envelope(h.msg);
  dead_letter l;
  nats::detail::read_dead(h.msg, l);
  FUZZ_CHECK(back.payload == m.payload);
  // Delivered, it is malformed or not, but always publishable again (a dead letter, a
  // replay), with the payload's own fingerprint.
  std::string malformed;
  const auto delivered = nats::detail::read_delivered(h.msg, {"S", 9, clock::now()}, malformed);
  FUZZ_CHECK(!validate_envelope(delivered));
  FUZZ_CHECK(delivered.payload == m.payload);
  FUZZ_CHECK(delivered.fingerprint == fingerprint(m.payload));
  return 0;
}
