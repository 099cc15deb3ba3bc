#include "codec.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <limits>
#include <optional>

#include "ingest/detail/wire_check.hpp"
#include "ingest/fingerprint.hpp"

namespace ingest::nats::detail {
namespace {

// An empty value makes the next header line part of it on the wire; "%E" stands for
// it (escape_value never writes a lone "%E" otherwise: it escapes '%' itself).
constexpr std::string_view empty_value = "%E";

bool library_header(std::string_view name) {
  return name.rfind("Ingest-", 0) == 0 || name.rfind("Nats-", 0) == 0;
}

// Whether escape_value would change `text` (most values: no, and they go as they are).
bool needs_escape(std::string_view text) {
  if (text.empty()) return true;
  const auto edge = [](char c) { return c == ' ' || c == '\t'; };
  if (edge(text.front()) || edge(text.back())) return true;
  return std::any_of(text.begin(), text.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c < 0x20 || c == 0x7F || c == '%';
  });
}

void set(natsMsg* m, const char* name, const std::string& value) {
  natsMsgHeader_Set(m, name, needs_escape(value) ? escape_value(value).c_str() : value.c_str());
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// %XX for '%', control characters, a space or tab at either end, and `also`.
void percent_encode(std::string& out, std::string_view text, std::string_view also) {
  static constexpr char hex[] = "0123456789ABCDEF";
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const bool edge = (i == 0 || i + 1 == text.size()) && (c == ' ' || c == '\t');
    if (c < 0x20 || c == 0x7F || c == '%' || edge || also.find(static_cast<char>(c)) != std::string_view::npos) {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0x0F];
    } else {
      out += static_cast<char>(c);
    }
  }
}

// Every %XX back to its byte; any other '%' stays as it is.
std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex_digit(text[i + 1]) >= 0 && hex_digit(text[i + 2]) >= 0) {
      out += static_cast<char>(hex_digit(text[i + 1]) * 16 + hex_digit(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

}  // namespace

std::int64_t to_us(time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

std::string header(natsMsg* m, const char* name) {
  const char* value = nullptr;
  return natsMsgHeader_Get(m, name, &value) == NATS_OK && value ? unescape_value(value) : std::string();
}

std::int64_t header_int(natsMsg* m, const char* name) {
  const auto text = header(m, name);
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc{} && end == text.data() + text.size() ? v : 0;
}

namespace {

void write_fields(natsMsg* msg, const envelope& m, bool with_key, bool with_fingerprint) {
  set(msg, h_receipt, m.receipt_id);
  if (with_key) set(msg, h_key, m.idempotency_key);
  if (with_fingerprint) set(msg, h_fingerprint, m.fingerprint);
  set(msg, h_accepted, std::to_string(to_us(m.accepted_at)));
  set(msg, h_subject, m.subject);
  if (!m.headers.empty()) natsMsgHeader_Set(msg, h_headers, encode_headers(m.headers).c_str());
}

}  // namespace

void write_envelope(natsMsg* msg, const envelope& m) {
  write_fields(msg, m, true, true);
}

void write_published(natsMsg* msg, const envelope& m) {
  write_fields(msg, m, needs_escape(m.idempotency_key), false);
}

envelope read_envelope(natsMsg* msg) {
  envelope m;
  m.receipt_id = header(msg, h_receipt);
  m.idempotency_key = header(msg, h_key);
  m.fingerprint = header(msg, h_fingerprint);
  m.subject = header(msg, h_subject);
  m.accepted_at = time_from_us(header_int(msg, h_accepted));
  if (const int n = natsMsg_GetDataLength(msg); n > 0) m.payload.assign(natsMsg_GetData(msg), static_cast<std::size_t>(n));
  if (const char* all = nullptr; natsMsgHeader_Get(msg, h_headers, &all) == NATS_OK && all) {
    m.headers = decode_headers(all);
    return m;
  }
  const char** keys = nullptr;
  int count = 0;
  if (natsMsgHeader_Keys(msg, &keys, &count) != NATS_OK) return m;
  for (int i = 0; i < count; ++i) {
    if (library_header(keys[i])) continue;
    const char** values = nullptr;
    int n = 0;
    if (natsMsgHeader_Values(msg, keys[i], &values, &n) == NATS_OK) {
      for (int j = 0; j < n; ++j) m.headers.emplace_back(keys[i], unescape_value(values[j]));
      free(values);
    }
  }
  free(keys);
  return m;
}

namespace {

// A header's raw value, if the message has it.
std::optional<std::string> raw_header(natsMsg* m, const char* name) {
  const char* value = nullptr;
  if (natsMsgHeader_Get(m, name, &value) != NATS_OK || !value) return std::nullopt;
  return std::string(value);
}

using ingest::detail::is_sha256_hex;
using ingest::detail::note_malformed;
using ingest::detail::plausible_accept_us;

void read_application_headers(natsMsg* msg, envelope& m, std::string& malformed) {
  if (auto all = raw_header(msg, h_headers)) {
    for (auto& [name, value] : decode_headers(*all)) {
      if (valid_header_name(name) && valid_header_value(value))
        m.headers.emplace_back(std::move(name), std::move(value));
      else
        note_malformed(malformed, std::string(h_headers) + ": a header that is not a valid name and value");
    }
    return;
  }
  const char** keys = nullptr;
  int count = 0;
  if (natsMsgHeader_Keys(msg, &keys, &count) != NATS_OK) return;
  for (int i = 0; i < count; ++i) {
    if (library_header(keys[i])) continue;
    const char** values = nullptr;
    int n = 0;
    if (natsMsgHeader_Values(msg, keys[i], &values, &n) != NATS_OK) continue;
    for (int j = 0; j < n; ++j) {
      if (valid_header_name(keys[i]) && valid_header_value(values[j]))
        m.headers.emplace_back(keys[i], values[j]);
      else
        note_malformed(malformed, std::string("header ") + keys[i] + ": not a valid application header name and value");
    }
    free(values);
  }
  free(keys);
}

}  // namespace

envelope read_delivered(natsMsg* msg, const broker_facts& facts, std::string& malformed) {
  envelope m;
  if (const int n = natsMsg_GetDataLength(msg); n > 0) m.payload.assign(natsMsg_GetData(msg), static_cast<std::size_t>(n));
  const auto derived_key = "nats:" + std::string(facts.stream) + ":" + std::to_string(facts.sequence);
  if (auto key = raw_header(msg, h_key)) {
    m.idempotency_key = unescape_value(*key);
    if (!valid_idempotency_key(m.idempotency_key)) {
      note_malformed(malformed, std::string(h_key) + ": not 1-255 printable ASCII characters");
      m.idempotency_key = derived_key;
    }
  } else if (auto id = raw_header(msg, "Nats-Msg-Id")) {
    m.idempotency_key = *id;
    if (!valid_idempotency_key(m.idempotency_key)) {
      note_malformed(malformed, "Nats-Msg-Id: not 1-255 printable ASCII characters");
      m.idempotency_key = derived_key;
    }
  } else {
    m.idempotency_key = derived_key;
  }
  const auto derived_id = derived_receipt_id(facts.stored_at, facts.stream, facts.sequence);
  if (auto id = raw_header(msg, h_receipt)) {
    m.receipt_id = unescape_value(*id);
    if (m.receipt_id.empty() || m.receipt_id.size() > 255 || !valid_header_value(m.receipt_id)) {
      note_malformed(malformed, std::string(h_receipt) + ": empty, longer than 255 or with control characters");
      m.receipt_id = derived_id;
    }
  } else {
    m.receipt_id = derived_id;
  }
  m.accepted_at = facts.stored_at;
  if (auto at = raw_header(msg, h_accepted)) {
    const auto text = unescape_value(*at);
    std::int64_t us = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), us);
    if (ec != std::errc{} || end != text.data() + text.size() || !plausible_accept_us(us))
      note_malformed(malformed, std::string(h_accepted) + ": '" + text.substr(0, 40) +
                          "' is not microseconds since 1970-01-01 (a nanosecond value is 1000 times too large)");
    else if (facts.postmark_bound.count() == 0 || facts.stored_at - time_from_us(us) <= facts.postmark_bound)
      m.accepted_at = time_from_us(us);
    // else: stored later than the postmark's bound allows; the store time stands.
  }
  const auto actual = fingerprint(m.payload);
  m.fingerprint = actual;
  if (auto fp = raw_header(msg, h_fingerprint)) {
    const auto claimed = unescape_value(*fp);
    if (!is_sha256_hex(claimed))
      note_malformed(malformed, std::string(h_fingerprint) + ": not 64 lower-case hex digits of SHA-256");
    else if (claimed != actual)
      note_malformed(malformed, std::string(h_fingerprint) + ": does not match the payload (changed or damaged on the way)");
  }
  if (auto subject = raw_header(msg, h_subject)) {
    m.subject = unescape_value(*subject);
    if (!valid_header_value(m.subject)) {
      note_malformed(malformed, std::string(h_subject) + ": control characters or spaces at an end");
      m.subject.clear();
    }
  } else if (const char* s = natsMsg_GetSubject(msg)) {
    m.subject = s;
  }
  read_application_headers(msg, m, malformed);
  return m;
}

std::string escape_value(std::string_view text) {
  if (text.empty()) return std::string(empty_value);
  std::string out;
  out.reserve(text.size());
  percent_encode(out, text, {});
  return out;
}

std::string unescape_value(std::string_view text) {
  return text == empty_value ? std::string() : percent_decode(text);
}

std::string encode_headers(const header_list& headers) {
  std::string out;
  for (const auto& [name, value] : headers) {
    if (!out.empty()) out += '&';
    percent_encode(out, name, "&=");
    out += '=';
    percent_encode(out, value, "&=");
  }
  return out;
}

header_list decode_headers(std::string_view text) {
  header_list out;
  while (!text.empty()) {
    const auto end = std::min(text.find('&'), text.size());
    const auto pair = text.substr(0, end);
    const auto eq = std::min(pair.find('='), pair.size());
    out.emplace_back(percent_decode(pair.substr(0, eq)), percent_decode(pair.substr(std::min(eq + 1, pair.size()))));
    text.remove_prefix(std::min(end + 1, text.size()));
  }
  return out;
}

void write_dead(natsMsg* letter, const dead_letter& l, std::uint64_t sequence) {
  set(letter, h_sequence, std::to_string(sequence));
  set(letter, h_reason, l.reason);
  set(letter, h_error, l.last_error);
  set(letter, h_attempts, std::to_string(l.attempts));
  set(letter, h_first, std::to_string(to_us(l.first_attempt_at)));
  set(letter, h_last, std::to_string(to_us(l.last_attempt_at)));
  set(letter, h_dead, std::to_string(to_us(l.dead_lettered_at)));
}

void read_dead(natsMsg* letter, dead_letter& l) {
  l.reason = header(letter, h_reason);
  l.last_error = header(letter, h_error);
  l.attempts = static_cast<std::uint32_t>(
      std::clamp<std::int64_t>(header_int(letter, h_attempts), 0, std::numeric_limits<std::uint32_t>::max()));
  l.first_attempt_at = time_from_us(header_int(letter, h_first));
  l.last_attempt_at = time_from_us(header_int(letter, h_last));
  l.dead_lettered_at = time_from_us(header_int(letter, h_dead));
}

}  // namespace ingest::nats::detail
