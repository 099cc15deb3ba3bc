#pragma once
// Attachments: files a submission names by object key and SHA-256. The bytes go from the
// browser straight to S3-compatible storage through a presigned URL; the accept path
// checks only the reference (its shape, that this server issued the key to this student
// for this size and checksum, the exam's limits) and never touches the storage. The
// graders check the object itself before grading (attachment_check.hpp).

#include <boost/json/fwd.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/detail/hmac.hpp"

namespace exam {

struct attachment {
  std::string key;       // the object key the upload route issued
  std::string sha256;    // 64 lower-case hex digits
  std::uint64_t size = 0;
  std::string filename;  // as the student named it (for downloads; may be empty)

  bool operator==(const attachment&) const = default;
};

// An exam's limits ("attachments" in exams.json); max_files 0: none allowed.
struct attachment_rules {
  std::size_t max_files = 0;
  std::uint64_t max_bytes = 10 * 1024 * 1024;
  std::vector<std::string> content_types{"application/pdf", "image/png", "image/jpeg", "text/plain", "application/zip"};

  bool allowed() const { return max_files > 0; }
  bool takes_type(std::string_view type) const;
};

// The body of POST /v1/exams/{id}/uploads:
// {"filename":"essay.pdf","content_type":"application/pdf","size":1234,"sha256":"<hex>"}.
struct upload_request {
  std::string filename;
  std::string content_type;
  std::uint64_t size = 0;
  std::string sha256;
};
// The reason the body is refused (400), or empty with `out` filled.
std::string parse_upload_request(std::string_view body, upload_request& out);

// Object keys `exams/<exam>/<student>/<nonce>-<tag>`: the nonce is random, the tag an
// HMAC of exam, student, nonce, size and checksum, so that any server holding the
// secret can tell a key it issued for exactly that file without asking the storage.
class upload_keys {
 public:
  explicit upload_keys(std::string_view secret);
  std::string issue(std::string_view exam_id, std::string_view student_id, std::uint64_t size,
                    std::string_view sha256) const;
  bool issued(const attachment& a, std::string_view exam_id, std::string_view student_id) const;
  // The prefix every key of the exam starts with (a teacher's downloads stay in it).
  static std::string exam_prefix(std::string_view exam_id);

 private:
  std::string tag(std::string_view exam_id, std::string_view student_id, std::string_view nonce, std::uint64_t size,
                  std::string_view sha256) const;
  ingest::detail::hmac_sha256 mac_;
};

// The "attachments" member of a submission body (null: none): [{"key","sha256","size",
// "filename"?}, ...]. The reason it is refused, or empty with `out` filled.
std::string parse_attachments(const boost::json::value* member, std::vector<attachment>& out);
// Against the exam's limits and the keys: the reason they are refused, or empty.
std::string check_attachments(const std::vector<attachment>& list, const attachment_rules& rules,
                              const upload_keys& keys, std::string_view exam_id, std::string_view student_id);

boost::json::array attachments_to_json(const std::vector<attachment>& list);
bool is_sha256_hex(std::string_view text);

}  // namespace exam
