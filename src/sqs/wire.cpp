#include "wire.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <limits>

#include "ingest/detail/wire_check.hpp"
#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"
#include "ingest/aws/sigv4.hpp"

namespace ingest::sqs::detail::wire {
namespace {

// The library's own attributes: keys, subjects, header values, reasons and errors may
// hold bytes that are not UTF-8 (the attribute is binary then); read them as written.
json::value parse_as_written(std::string_view text, boost::system::error_code& ec) {
  json::parse_options options;
  options.allow_invalid_utf8 = true;
  return json::parse(text, ec, {}, options);
}

}  // namespace

std::int64_t to_us(time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}
time_point from_ms_text(std::string_view text) {
  std::int64_t ms = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
  (void)end;
  if (ec == std::errc::result_out_of_range) ms = text.starts_with('-') ? std::numeric_limits<std::int64_t>::min()
                                                                      : std::numeric_limits<std::int64_t>::max();
  else if (ec != std::errc{}) ms = 0;
  constexpr std::int64_t limit = std::numeric_limits<std::int64_t>::max() / 1000;
  return time_from_us(std::clamp(ms, -limit, limit) * 1000);
}

std::string base64_encode(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string base64_decode(std::string_view in) {
  if (in.size() % 4 != 0) throw error(errc::storage_error, "sqs: malformed base64");
  std::string out(3 * in.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) throw error(errc::storage_error, "sqs: malformed base64");
  std::size_t pad = 0;
  if (!in.empty() && in.back() == '=') ++pad;
  if (in.size() > 1 && in[in.size() - 2] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

bool sqs_text(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    std::uint32_t cp;
    int len;
    if (*p < 0x80) {
      cp = *p;
      len = 1;
    } else if ((*p & 0xE0) == 0xC0) {
      cp = *p & 0x1F;
      len = 2;
    } else if ((*p & 0xF0) == 0xE0) {
      cp = *p & 0x0F;
      len = 3;
    } else if ((*p & 0xF8) == 0xF0) {
      cp = *p & 0x07;
      len = 4;
    } else {
      return false;
    }
    if (end - p < len) return false;
    for (int i = 1; i < len; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    static constexpr std::uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len]) return false;  // overlong
    const bool ok = cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
                    (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
    if (!ok) return false;
    p += len;
  }
  return true;
}

json::object attribute(const std::string& text) {
  json::object a;
  if (sqs_text(text)) {
    a["DataType"] = "String";
    a["StringValue"] = text;
  } else {
    a["DataType"] = "Binary";
    a["BinaryValue"] = base64_encode(text);
  }
  return a;
}

std::string attribute_text(const json::value& attrs, const char* name) {
  const auto* obj = attrs.if_object();
  if (!obj) return {};
  const auto* a = obj->if_contains(name);
  if (!a || !a->is_object()) return {};
  if (const auto* s = a->as_object().if_contains("StringValue"); s && s->is_string()) return std::string(s->as_string());
  if (const auto* b = a->as_object().if_contains("BinaryValue"); b && b->is_string())
    return base64_decode(std::string(b->as_string()));
  return {};
}

std::string str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}
std::int64_t num(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (!v) return 0;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->as_uint64());
  if (v->is_string()) return std::strtoll(v->as_string().c_str(), nullptr, 10);
  return 0;
}

encoded encode(const envelope& m) {
  json::object meta;
  meta["v"] = 1;
  meta["id"] = m.receipt_id;
  meta["key"] = m.idempotency_key;
  meta["subject"] = m.subject;
  meta["fp"] = m.fingerprint;
  meta["at"] = to_us(m.accepted_at);
  if (!m.headers.empty()) {
    json::array h;
    for (const auto& [n, v] : m.headers) h.push_back(json::array{json::string(n), json::string(v)});
    meta["h"] = std::move(h);
  }
  encoded e;
  if (sqs_text(m.payload) && !m.payload.empty()) {
    e.body = m.payload;
  } else {
    meta["enc"] = "base64";
    e.body = m.payload.empty() ? std::string("=") : base64_encode(m.payload);
  }
  e.meta = json::serialize(meta);
  return e;
}

namespace {

using ingest::detail::is_sha256_hex;
using ingest::detail::note_malformed;
using ingest::detail::plausible_accept_us;

// The fields of the metadata attribute, checked; what is missing or unreadable is
// left as the foreign defaults already in `m`.
void read_meta(const json::object& meta, const std::string& body, envelope& m, std::string& malformed,
               std::chrono::milliseconds postmark_bound) {
  if (const auto id = str(meta, "id"); !id.empty() && id.size() <= 255 && valid_header_value(id))
    m.receipt_id = id;
  else
    note_malformed(malformed, "ingest.id: missing, longer than 255 or with control characters");
  if (const auto key = str(meta, "key"); valid_idempotency_key(key))
    m.idempotency_key = key;
  else
    note_malformed(malformed, "ingest.key: not 1-255 printable ASCII characters");
  if (const auto subject = str(meta, "subject"); valid_header_value(subject))
    m.subject = subject;
  else
    note_malformed(malformed, "ingest.subject: control characters or spaces at an end");
  const auto* at = meta.if_contains("at");
  if (at && (at->is_int64() || at->is_uint64()) && plausible_accept_us(num(meta, "at"))) {
    // Sent later than the postmark's bound allows (an endpoint that stalled and then
    // took a send that had timed out): SQS's own sent time stands.
    const auto postmark = time_from_us(num(meta, "at"));
    if (postmark_bound.count() == 0 || m.accepted_at - postmark <= postmark_bound) m.accepted_at = postmark;
  } else
    note_malformed(malformed, "ingest.at: not microseconds since 1970-01-01 (a nanosecond value is 1000 times too large)");
  if (const auto* h = meta.if_contains("h"); h && h->is_array())
    for (const auto& pair : h->as_array()) {
      const auto* p = pair.if_array();
      if (p && p->size() == 2 && (*p)[0].is_string() && (*p)[1].is_string() &&
          valid_header_name((*p)[0].as_string()) && valid_header_value((*p)[1].as_string()))
        m.headers.emplace_back(std::string((*p)[0].as_string()), std::string((*p)[1].as_string()));
      else
        note_malformed(malformed, "ingest.h: a header that is not a valid [name, value] pair");
    }
  if (str(meta, "enc") == "base64") {
    try {
      m.payload = body == "=" ? std::string() : base64_decode(body);
    } catch (const error&) {
      note_malformed(malformed, "Body: ingest.enc says base64 but the body is not base64");
    }
  }
  m.fingerprint = fingerprint(m.payload);
  const auto claimed = str(meta, "fp");
  if (!is_sha256_hex(claimed))
    note_malformed(malformed, "ingest.fp: not 64 lower-case hex digits of SHA-256");
  else if (claimed != m.fingerprint)
    note_malformed(malformed, "ingest.fp: does not match the payload (changed or damaged on the way)");
}

}  // namespace

envelope decode(const json::object& msg, std::string& malformed, std::chrono::milliseconds postmark_bound) {
  envelope m;
  const auto body = str(msg, "Body");
  const auto* sys = msg.if_contains("Attributes");
  const json::object empty;
  const auto& system = sys && sys->is_object() ? sys->as_object() : empty;
  // What SQS itself knows, for a message another program sent: its id (a UUID), the
  // deduplication id of a FIFO queue, and when it was sent.
  m.receipt_id = str(msg, "MessageId");
  if (m.receipt_id.empty() || m.receipt_id.size() > 255 || !valid_header_value(m.receipt_id)) {
    note_malformed(malformed, "MessageId: empty or not text");
    m.receipt_id = "sqs-" + aws::sha256_hex(m.receipt_id).substr(0, 32);
  }
  const auto dedup = str(system, "MessageDeduplicationId");
  m.idempotency_key = valid_idempotency_key(dedup) ? dedup : m.receipt_id;
  if (!valid_idempotency_key(m.idempotency_key)) m.idempotency_key = "sqs:" + aws::sha256_hex(m.receipt_id);
  m.payload = body;
  m.accepted_at = from_ms_text(str(system, "SentTimestamp"));
  std::string meta_text;
  if (const auto* attrs = msg.if_contains("MessageAttributes")) {
    try {
      meta_text = attribute_text(*attrs, meta_attribute);
    } catch (const error&) {
      note_malformed(malformed, std::string("attribute ") + meta_attribute + ": binary value is not base64");
    }
  }
  if (!meta_text.empty()) {
    boost::system::error_code ec;
    const auto parsed = parse_as_written(meta_text, ec);
    if (ec || !parsed.is_object())
      note_malformed(malformed, std::string("attribute ") + meta_attribute + ": not a JSON object");
    else
      read_meta(parsed.as_object(), body, m, malformed, postmark_bound);
  }
  if (m.fingerprint.empty()) m.fingerprint = fingerprint(m.payload);
  m.attempts = static_cast<std::uint32_t>(std::max<std::int64_t>(1, num(system, "ApproximateReceiveCount")));
  return m;
}

envelope decode(const json::object& msg) {
  std::string malformed;
  auto m = decode(msg, malformed, std::chrono::milliseconds::zero());
  if (!malformed.empty()) throw error(errc::storage_error, "sqs: " + malformed);
  return m;
}

std::string dedup_id(std::string_view key) {
  // Deduplication ids: up to 128 of a-z A-Z 0-9 and punctuation; anything else is hashed.
  bool ok = !key.empty() && key.size() <= 128;
  for (char c : key) ok = ok && c > 0x20 && c < 0x7F;
  return ok ? std::string(key) : aws::sha256_hex(key);
}

std::string encode_dead(const dead_letter& l) {
  const json::object meta{{"reason", l.reason},
                          {"error", l.last_error},
                          {"attempts", l.attempts},
                          {"first", to_us(l.first_attempt_at)},
                          {"last", to_us(l.last_attempt_at)},
                          {"dead", to_us(l.dead_lettered_at)}};
  return json::serialize(meta);
}

bool decode_dead(const json::value& attrs, dead_letter& l) {
  std::string text;
  try {
    text = attribute_text(attrs, dead_attribute);
  } catch (const error&) {
    return false;
  }
  if (text.empty()) return false;
  boost::system::error_code ec;
  const auto dead = parse_as_written(text, ec);
  if (ec || !dead.is_object()) return false;
  const auto& d = dead.as_object();
  l.reason = str(d, "reason");
  l.last_error = str(d, "error");
  l.attempts = static_cast<std::uint32_t>(std::clamp<std::int64_t>(num(d, "attempts"), 0, UINT32_MAX));
  l.first_attempt_at = time_from_us(num(d, "first"));
  l.last_attempt_at = time_from_us(num(d, "last"));
  l.dead_lettered_at = time_from_us(num(d, "dead"));
  return true;
}

aws_reply read_reply(std::string_view action, unsigned status, std::string_view body) {
  aws_reply out;
  boost::system::error_code jec;
  out.body = body.empty() ? json::value(json::object()) : json::parse(body, jec);
  if (!jec && !out.body.is_object()) jec = make_error_code(json::error::syntax);
  if (status == 200 && !jec) return out;
  out.sent = true;
  std::string type, text;
  if (!jec) {
    type = str(out.body.as_object(), "__type");
    text = str(out.body.as_object(), "message");
    if (text.empty()) text = str(out.body.as_object(), "Message");
  }
  if (const auto hash = type.rfind('#'); hash != std::string::npos) type = type.substr(hash + 1);
  out.message = std::string(action) + ": HTTP " + std::to_string(status) + " " + type + (text.empty() ? "" : ": " + text);
  if (jec && status == 200) out.message += "unreadable reply";
  const bool throttled = type.find("Throttl") != std::string::npos || type == "RequestThrottled" ||
                         type.find("OverLimit") != std::string::npos || status == 429;
  if (status >= 500 || throttled || jec) out.ec = make_error_code(errc::backend_unavailable);
  else if (type.find("NonExistentQueue") != std::string::npos || type.find("QueueDoesNotExist") != std::string::npos)
    out.ec = make_error_code(errc::not_found);
  else out.ec = make_error_code(errc::invalid_config);
  out.body = json::object();
  return out;
}

std::vector<entry_result> batch_entries(const json::object& body, std::size_t first, std::size_t count) {
  std::vector<entry_result> out(count);
  auto each = [&](const char* list, entry_result::outcome what) {
    const auto* a = body.if_contains(list);
    if (!a || !a->is_array()) return;
    for (const auto& e : a->as_array()) {
      if (!e.is_object()) continue;
      const auto& entry = e.as_object();
      const auto id = str(entry, "Id");
      std::size_t i = 0;
      if (id.size() < 2) continue;
      const auto [end, ec] = std::from_chars(id.data() + 1, id.data() + id.size(), i);
      if (ec != std::errc{} || end != id.data() + id.size() || i < first || i - first >= count) continue;
      auto& r = out[i - first];
      if (r.what != entry_result::outcome::unanswered) continue;
      r.what = what;
      if (what == entry_result::outcome::failed) {
        const auto* sender = entry.if_contains("SenderFault");
        r.sender_fault = sender && sender->is_bool() && sender->as_bool();
        r.code = str(entry, "Code");
        r.message = str(entry, "Message");
      }
    }
  };
  each("Successful", entry_result::outcome::succeeded);
  each("Failed", entry_result::outcome::failed);
  return out;
}

}  // namespace ingest::sqs::detail::wire
