#pragma once
// The exam catalogue: windows, allowed students, answer keys, grading.

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "attachments.hpp"

namespace exam {

using time_point = std::chrono::system_clock::time_point;

struct exam_info {
  std::string id;
  std::string title;
  std::map<std::string, std::string> answer_key;  // question id -> correct answer
  std::vector<std::string> choices;               // the answers a page offers for every question (empty: free text)
  time_point opens_at{};
  time_point deadline{};
  std::chrono::seconds grace{0};
  bool any_student = true;
  std::set<std::string> students;  // when not any_student
  attachment_rules attachments{};  // none allowed unless the exam says

  bool allows(std::string_view student) const;
  bool open_at(time_point t) const { return t >= opens_at; }
  // The deadline test of the contract (examples/README.md): accept time after deadline plus grace.
  bool late(time_point accepted_at) const { return accepted_at > deadline + grace; }
  // Share of correct answers, 0..100, rounded to two decimals.
  double grade(const std::map<std::string, std::string>& answers) const;
};

class catalog {
 public:
  // {"exams":[{"id","title","answer_key":{..},"choices":[..],"opens_at","deadline",
  //   "grace_seconds","students":"any" | ["s1",...],"attachments"?:{"max_files","max_bytes",
  //   "content_types"}}]}; throws std::runtime_error with the reason.
  static catalog from_json(std::string_view text);
  static catalog from_file(const std::string& path);
  // The built-in exam "demo": q1..q10 with choices A-D, open to any student from `now` for 24 hours,
  // up to 3 attachments of 10 MiB (PDF, PNG, JPEG, text, ZIP) where storage is configured.
  static catalog demo(time_point now);

  const exam_info* find(std::string_view id) const;
  std::size_t size() const { return exams_.size(); }
  auto begin() const { return exams_.begin(); }
  auto end() const { return exams_.end(); }

 private:
  std::map<std::string, exam_info, std::less<>> exams_;
};

// Ids in paths and tokens: 1-64 of [A-Za-z0-9._-].
bool valid_id(std::string_view id) noexcept;

}  // namespace exam
