#pragma once
// Moving authority from the direct path to the queue, a share of students at a time
// (direct_server --queue-percent N): each submission goes to the path its student's
// hash picks (ingest::rollout), and a retry of a key keeps its first path. The direct
// path stays dual-written (shadow_backend.hpp); the queue path's messages are tagged
// for the graders' queue_copies (ledger.hpp). Status of a queued receipt, replays and
// dead letters are the queue path's.

#include "ingest/rollout.hpp"
#include "queue_backend.hpp"
#include "shadow_backend.hpp"

namespace exam {

class rollout_backend final : public submit_backend {
 public:
  // None is owned; all must outlive this object.
  rollout_backend(ingest::rollout& rollout, shadow_backend& direct, queue_backend& queue);

  void submit(const exam_info& exam, submission s, boost::asio::any_io_executor answer_on, submit_done done) override;
  void find_unprocessed(const std::string& receipt_id,
                        std::function<void(ingest::error_code, std::optional<unprocessed>)> done) override {
    queue_.find_unprocessed(receipt_id, std::move(done));
  }
  void replay_dead_letter(const std::string& receipt_id,
                          std::function<void(ingest::error_code, std::size_t)> done) override {
    queue_.replay_dead_letter(receipt_id, std::move(done));
  }
  void dead_letters(const std::string& after, std::size_t limit,
                    std::function<void(ingest::error_code, std::vector<ingest::dead_letter>)> done) override {
    queue_.dead_letters(after, limit, std::move(done));
  }
  std::optional<ingest::queue_stats> queue_counts() const override { return queue_.queue_counts(); }
  bool has_queue() const override { return true; }
  // A submission naming files is refused on both paths, as the direct server always
  // refused them (the route decides a path only after the body is taken).
  bool takes_attachments() const override { return false; }
  bool ready() const override { return direct_.ready(); }
  // Both paths' metrics, and the rollout's (ingest_rollout_*).
  std::string metrics() const override;

 private:
  ingest::rollout& rollout_;
  shadow_backend& direct_;
  queue_backend& queue_;
};

}  // namespace exam
