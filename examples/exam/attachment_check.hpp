#pragma once
// The graders' check of a submission's files before it is graded: each object is in the
// storage with the size and SHA-256 the submission names. A file not there yet (the
// upload may still be arriving) is retried with backoff and, once the attempts run out,
// dead-lettered as `attachment_missing`; a file of another size or checksum is
// dead-lettered at once as `attachment_mismatch`; a storage that cannot be reached is
// retried (`storage_unavailable` when the attempts run out). Teachers see the reason.

#include <atomic>
#include <cstdint>
#include <memory>

#include "ingest/aws/s3.hpp"
#include "ingest/batching_consumer.hpp"

namespace exam {

struct attachment_check_counters {
  std::atomic<std::uint64_t> ok{0};
  std::atomic<std::uint64_t> missing{0};
  std::atomic<std::uint64_t> mismatch{0};
  std::atomic<std::uint64_t> unavailable{0};
};

class attachment_checker {
 public:
  // `storage` may be null: a submission with files then waits for a grader that has it.
  // Up to `parallel` files are checked at once.
  explicit attachment_checker(std::shared_ptr<ingest::aws::s3_bucket> storage, std::size_t parallel = 8);
  // Marks the items of `b` whose files are not right; the others stay as they were.
  void check(ingest::batch& b);
  const attachment_check_counters& counters() const { return counters_; }

 private:
  std::shared_ptr<ingest::aws::s3_bucket> storage_;
  std::size_t parallel_;
  attachment_check_counters counters_;
};

// `write`, after `checker` marked the items whose files are not right (null: no check).
ingest::batch_handler with_attachment_checks(std::shared_ptr<attachment_checker> checker, ingest::batch_handler write);

}  // namespace exam
