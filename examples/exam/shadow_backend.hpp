#pragma once
// Dual write (direct_server --shadow-queue): the direct path answers and stays the
// source of truth; every submission it stored, or found stored (a retry then fills a
// copy that did not arrive), is copied to the queue in the background, tagged
// `exam-path: shadow` (ledger.hpp). A copy that fails never fails the request: it is
// counted, logged, and found later by `exam_worker reconcile`, which re-sends it.

#include <memory>

#include "ingest/shadow_producer.hpp"
#include "submit_backend.hpp"

namespace exam {

class shadow_backend final : public submit_backend {
 public:
  // Neither is owned; both must outlive this object.
  shadow_backend(submit_backend& direct, ingest::shadow_producer& shadow);

  void submit(const exam_info& exam, submission s, boost::asio::any_io_executor answer_on, submit_done done) override;
  bool ready() const override { return direct_.ready(); }
  bool takes_attachments() const override { return direct_.takes_attachments(); }
  // The direct path's metrics, and the copies': exam_shadow_total{outcome=...}.
  std::string metrics() const override;

 private:
  submit_backend& direct_;
  ingest::shadow_producer& shadow_;
};

}  // namespace exam
