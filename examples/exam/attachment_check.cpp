#include "attachment_check.hpp"

#include <optional>
#include <thread>
#include <vector>

#include "ingest/aws/sigv4.hpp"
#include "ingest/error.hpp"
#include "submission.hpp"

namespace exam {

namespace {

enum class verdict { ok, missing, mismatch, unavailable };

struct finding {
  verdict what = verdict::ok;
  std::string text{};
};

finding check_one(ingest::aws::s3_bucket& storage, const attachment& a) {
  try {
    const auto info = storage.head(a.key);
    if (!info) return {verdict::missing, "attachment " + a.key + " is not in the storage (yet)"};
    if (info->size != a.size)
      return {verdict::mismatch, "attachment " + a.key + " has " + std::to_string(info->size) +
                                     " bytes; the submission says " + std::to_string(a.size)};
    // A store that keeps the checksum says it; otherwise the bytes are hashed here.
    if (!info->checksum_sha256.empty()) {
      if (info->checksum_sha256 != ingest::aws::sha256_hex_to_base64(a.sha256))
        return {verdict::mismatch, "attachment " + a.key + ": the stored SHA-256 is not the submission's"};
      return {};
    }
    std::optional<std::string> bytes;
    try {
      bytes = storage.get(a.key, a.size);
    } catch (const ingest::error& e) {
      // Grown since the HEAD (the URL allows exactly the size; a second upload did not).
      if (e.code() == ingest::errc::payload_too_large)
        return {verdict::mismatch, "attachment " + a.key + " is larger than the submission says"};
      throw;
    }
    if (!bytes) return {verdict::missing, "attachment " + a.key + " is not in the storage (yet)"};
    if (ingest::aws::sha256_hex(*bytes) != a.sha256)
      return {verdict::mismatch, "attachment " + a.key + ": its SHA-256 is not the submission's"};
    return {};
  } catch (const std::exception& e) {
    return {verdict::unavailable, std::string("storage: ") + e.what()};
  }
}

// The first file that is not right decides (a mismatch before anything else).
finding check_all(ingest::aws::s3_bucket* storage, const std::vector<attachment>& files) {
  if (!storage) return {verdict::unavailable, "this grader has no storage configured for attachments (--storage)"};
  finding worst;
  for (const auto& a : files) {
    auto f = check_one(*storage, a);
    if (f.what == verdict::mismatch) return f;
    if (f.what != verdict::ok && worst.what == verdict::ok) worst = std::move(f);
  }
  return worst;
}

}  // namespace

attachment_checker::attachment_checker(std::shared_ptr<ingest::aws::s3_bucket> storage, std::size_t parallel)
    : storage_(std::move(storage)), parallel_(parallel == 0 ? 1 : parallel) {}

void attachment_checker::check(ingest::batch& b) {
  struct job {
    std::size_t item;
    std::vector<attachment> files;
    finding result{};
  };
  std::vector<job> jobs;
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (b.outcome(i) != ingest::item_outcome::ok) continue;
    // An unreadable payload is the writer's to dead-letter, with its own reason.
    auto s = submission::from_json(b[i].message.payload);
    if (s && !s->attachments.empty()) jobs.push_back({i, std::move(s->attachments)});
  }
  if (jobs.empty()) return;
  const std::size_t threads = std::min(parallel_, jobs.size());
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t j; (j = next.fetch_add(1)) < jobs.size();) jobs[j].result = check_all(storage_.get(), jobs[j].files);
  };
  {
    // Joined however this block is left (a thread that cannot be started, say).
    std::vector<std::jthread> pool;
    for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
  }
  for (auto& j : jobs) {
    switch (j.result.what) {
      case verdict::ok:
        ++counters_.ok;
        break;
      case verdict::missing:
        ++counters_.missing;
        b.retry(j.item, std::move(j.result.text), "attachment_missing");
        break;
      case verdict::mismatch:
        ++counters_.mismatch;
        b.fail(j.item, std::move(j.result.text), "attachment_mismatch");
        break;
      case verdict::unavailable:
        ++counters_.unavailable;
        b.retry(j.item, std::move(j.result.text), "storage_unavailable");
        break;
    }
  }
}

ingest::batch_handler with_attachment_checks(std::shared_ptr<attachment_checker> checker, ingest::batch_handler write) {
  if (!checker) return write;
  return [checker = std::move(checker), write = std::move(write)](ingest::batch& b) {
    checker->check(b);
    write(b);
  };
}

}  // namespace exam
