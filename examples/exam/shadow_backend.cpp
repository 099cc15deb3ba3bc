#include "shadow_backend.hpp"

#include <fmt/format.h>

#include "ledger.hpp"

namespace exam {

shadow_backend::shadow_backend(submit_backend& direct, ingest::shadow_producer& shadow)
    : direct_(direct), shadow_(shadow) {}

void shadow_backend::submit(const exam_info& exam, submission s, boost::asio::any_io_executor answer_on,
                            submit_done done) {
  auto copy = std::make_shared<submission>(s);
  direct_.submit(exam, std::move(s), std::move(answer_on),
                 [this, copy, done = std::move(done)](submit_outcome outcome) mutable {
                   using kind = submit_outcome::kind;
                   // Handed over before the answer (the publish does not wait for the
                   // queue), so that an answered request always has its copy on the way.
                   if (outcome.what == kind::stored || outcome.what == kind::repeat) {
                     try {
                       shadow_.publish(shadow_message(*copy, outcome.receipt_id, outcome.accepted_at));
                     } catch (const std::exception&) {
                       // Out of memory building the copy: reconcile finds it missing.
                     }
                   }
                   done(std::move(outcome));
                 });
}

std::string shadow_backend::metrics() const {
  const auto st = shadow_.stats();
  return direct_.metrics() +
         fmt::format(
             "# HELP exam_shadow_total Copies of direct writes published to the queue, by outcome.\n"
             "# TYPE exam_shadow_total counter\n"
             "exam_shadow_total{{outcome=\"sent\"}} {}\nexam_shadow_total{{outcome=\"repeat\"}} {}\n"
             "exam_shadow_total{{outcome=\"failed\"}} {}\nexam_shadow_total{{outcome=\"conflict\"}} {}\n"
             "exam_shadow_total{{outcome=\"skipped\"}} {}\n"
             "# TYPE exam_shadow_pending gauge\nexam_shadow_pending {}\n",
             st.sent, st.repeats, st.failed, st.conflicts, st.skipped, st.pending);
}

}  // namespace exam
