#include "attachments.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <set>
#include <stdexcept>


namespace exam {

namespace {

std::string hex(const unsigned char* data, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(digits[data[i] >> 4]);
    out.push_back(digits[data[i] & 0xF]);
  }
  return out;
}

bool is_hex(std::string_view text, std::size_t length) {
  return text.size() == length &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// A whole number of bytes, 1 to 2^53 (what JSON carries exactly).
bool size_of(const boost::json::value& v, std::uint64_t& out) {
  if (v.is_uint64()) out = v.as_uint64();
  else if (v.is_int64() && v.as_int64() > 0) out = static_cast<std::uint64_t>(v.as_int64());
  else return false;
  return out > 0 && out <= (1ull << 53);
}

// A file name for people: 1-255 bytes, no control characters, no path.
bool valid_filename(std::string_view name) {
  return !name.empty() && name.size() <= 255 && std::none_of(name.begin(), name.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7F || c == '/' || c == '\\';
  });
}

}  // namespace

bool is_sha256_hex(std::string_view text) { return is_hex(text, 64); }

bool attachment_rules::takes_type(std::string_view type) const {
  return std::find(content_types.begin(), content_types.end(), type) != content_types.end();
}

std::string parse_upload_request(std::string_view body, upload_request& out) {
  boost::system::error_code ec;
  const auto v = boost::json::parse(body, ec);
  if (ec || !v.is_object())
    return "body must be {\"filename\", \"content_type\", \"size\", \"sha256\"}";
  const auto& o = v.as_object();
  const auto* filename = o.if_contains("filename");
  const auto* type = o.if_contains("content_type");
  const auto* size = o.if_contains("size");
  const auto* sha = o.if_contains("sha256");
  if (!filename || !filename->is_string() || !valid_filename(filename->as_string()))
    return "filename: 1-255 bytes, no control characters or slashes";
  if (!type || !type->is_string() || type->as_string().empty()) return "content_type: a media type is required";
  if (!size || !size_of(*size, out.size)) return "size: the file's length in bytes, at least 1";
  if (!sha || !sha->is_string() || !is_sha256_hex(sha->as_string()))
    return "sha256: the file's SHA-256 as 64 lower-case hex digits";
  out.filename = std::string(filename->as_string());
  out.content_type = std::string(type->as_string());
  out.sha256 = std::string(sha->as_string());
  return {};
}

upload_keys::upload_keys(std::string_view secret) : mac_(std::string("exam-attachments\n") + std::string(secret)) {}

std::string upload_keys::exam_prefix(std::string_view exam_id) { return "exams/" + std::string(exam_id) + '/'; }

std::string upload_keys::tag(std::string_view exam_id, std::string_view student_id, std::string_view nonce,
                             std::uint64_t size, std::string_view sha256) const {
  std::string data;
  data.append(exam_id).append("\n").append(student_id).append("\n").append(nonce).append("\n");
  data.append(std::to_string(size)).append("\n").append(sha256);
  const auto mac = mac_.mac(data);
  return hex(mac.data(), 16);
}

std::string upload_keys::issue(std::string_view exam_id, std::string_view student_id, std::uint64_t size,
                               std::string_view sha256) const {
  unsigned char nonce_bytes[16];
  if (RAND_bytes(nonce_bytes, sizeof nonce_bytes) != 1) throw std::runtime_error("no random bytes for an upload key");
  const std::string nonce = hex(nonce_bytes, sizeof nonce_bytes);
  return exam_prefix(exam_id) + std::string(student_id) + '/' + nonce + '-' +
         tag(exam_id, student_id, nonce, size, sha256);
}

bool upload_keys::issued(const attachment& a, std::string_view exam_id, std::string_view student_id) const {
  const std::string prefix = exam_prefix(exam_id) + std::string(student_id) + '/';
  if (!a.key.starts_with(prefix)) return false;
  const std::string_view rest = std::string_view(a.key).substr(prefix.size());
  if (rest.size() != 65 || rest[32] != '-' || !is_hex(rest.substr(0, 32), 32)) return false;
  const std::string expected = tag(exam_id, student_id, rest.substr(0, 32), a.size, a.sha256);
  return CRYPTO_memcmp(expected.data(), rest.data() + 33, 32) == 0;
}

std::string parse_attachments(const boost::json::value* member, std::vector<attachment>& out) {
  out.clear();
  if (!member || member->is_null()) return {};
  if (!member->is_array()) return "attachments must be a list of {\"key\", \"sha256\", \"size\"}";
  for (const auto& item : member->as_array()) {
    const auto* o = item.if_object();
    const auto* key = o ? o->if_contains("key") : nullptr;
    const auto* sha = o ? o->if_contains("sha256") : nullptr;
    const auto* size = o ? o->if_contains("size") : nullptr;
    const auto* filename = o ? o->if_contains("filename") : nullptr;
    attachment a;
    if (!key || !key->is_string() || key->as_string().empty() || key->as_string().size() > 512)
      return "attachments[].key: the object key the upload route gave";
    if (!sha || !sha->is_string() || !is_sha256_hex(sha->as_string()))
      return "attachments[].sha256: 64 lower-case hex digits";
    if (!size || !size_of(*size, a.size)) return "attachments[].size: the file's length in bytes";
    if (filename && !(filename->is_string() && valid_filename(filename->as_string())))
      return "attachments[].filename: 1-255 bytes, no control characters or slashes";
    a.key = std::string(key->as_string());
    a.sha256 = std::string(sha->as_string());
    if (filename) a.filename = std::string(filename->as_string());
    out.push_back(std::move(a));
  }
  return {};
}

std::string check_attachments(const std::vector<attachment>& list, const attachment_rules& rules,
                              const upload_keys& keys, std::string_view exam_id, std::string_view student_id) {
  if (list.empty()) return {};
  if (!rules.allowed()) return "this exam takes no attachments";
  if (list.size() > rules.max_files) return "at most " + std::to_string(rules.max_files) + " attachments";
  std::set<std::string_view> seen;
  for (const auto& a : list) {
    if (!seen.insert(a.key).second) return "attachment " + a.key + " is named twice";
    if (a.size > rules.max_bytes)
      return "attachment " + a.key + " is over the exam's limit of " + std::to_string(rules.max_bytes) + " bytes";
    if (!keys.issued(a, exam_id, student_id))
      return "attachment " + a.key + " was not uploaded for this exam by this student with this size and checksum";
  }
  return {};
}

boost::json::array attachments_to_json(const std::vector<attachment>& list) {
  boost::json::array out;
  for (const auto& a : list) {
    boost::json::object o;
    o["key"] = a.key;
    o["sha256"] = a.sha256;
    o["size"] = a.size;
    if (!a.filename.empty()) o["filename"] = a.filename;
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace exam
