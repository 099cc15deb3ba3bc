// Stats: SQS's approximate counts of both queues, and what this object counted itself.

#include "engine.hpp"

namespace ingest::sqs {

void queue::engine::stats(callback<error_code, queue_stats> done) {
  auto names = json::array{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                           "ApproximateNumberOfMessagesDelayed"};
  call("GetQueueAttributes", json::object{{"QueueUrl", main_url}, {"AttributeNames", names}}, o.request_timeout,
       [self = this, names, done = std::move(done)](aws_reply main) mutable {
         if (main.ec) return done(main.ec, queue_stats{});
         self->call("GetQueueAttributes", json::object{{"QueueUrl", self->dlq_url}, {"AttributeNames", names}},
                    self->o.request_timeout,
                    [self, main = std::move(main), done = std::move(done)](aws_reply dlq) mutable {
                      if (dlq.ec) return done(dlq.ec, queue_stats{});
                      auto count = [](const aws_reply& r, const char* name) -> std::uint64_t {
                        const auto* a = r.body.as_object().if_contains("Attributes");
                        return a && a->is_object() ? static_cast<std::uint64_t>(num(a->as_object(), name)) : 0;
                      };
                      queue_stats st;
                      st.leased = count(main, "ApproximateNumberOfMessagesNotVisible");
                      st.pending = count(main, "ApproximateNumberOfMessages") + st.leased +
                                   count(main, "ApproximateNumberOfMessagesDelayed");
                      st.dead_lettered = count(dlq, "ApproximateNumberOfMessages") +
                                         count(dlq, "ApproximateNumberOfMessagesNotVisible") +
                                         count(dlq, "ApproximateNumberOfMessagesDelayed");
                      for (const auto& [handle, l] : self->leases)
                        if (l.message.attempts > 1) ++st.retrying;
                      st.processed = self->processed;
                      st.purged = self->purged;
                      st.accepted = st.pending + st.processed + st.dead_lettered + st.purged;
                      done(error_code{}, st);
                    });
       });
}

}  // namespace ingest::sqs
