#pragma once
// The direct server's two ways off the direct path (examples/README.md, "Moving a live
// platform to the queue"): dual write (--shadow-queue) and, on top of it, the
// percentage rollout (--queue-percent, changed at run time on /v1/admin/rollout).

#include <boost/asio/io_context.hpp>
#include <memory>
#include <optional>
#include <string>

#include "app.hpp"
#include "ingest/producer.hpp"
#include "ingest/rollout.hpp"
#include "ingest/shadow_producer.hpp"
#include "queue_backend.hpp"
#include "rollout_backend.hpp"
#include "shadow_backend.hpp"

namespace exam {

struct migration_settings {
  std::string shadow_url{};                 // the queue; empty: the direct path alone
  std::optional<double> queue_percent{};    // set: the rollout runs, starting here
  std::string admin_token{};                // the rollout's control; empty: no control route
  std::string log_level = "warning";
};

class migration {
 public:
  // `direct` and `store` are not owned. With a rollout, `app` gets the queue's receipt
  // signer set up (any server then answers for a queued receipt).
  migration(boost::asio::io_context& io, const migration_settings& settings, submit_backend& direct,
            submission_reader& store, app_options& app);
  ~migration();

  // What the application submits to: the direct path, dual-written, or the rollout.
  submit_backend& front();
  // The rollout's admin route (rollout_admin.hpp); false for anything else.
  bool handle_admin(const ingest::http::request& req, ingest::http::responder& respond);
  // The lines the server prints at start.
  std::string banner() const;
  // At shutdown, after the direct path's requests were answered: the copies in flight
  // get their outcome (10 s at most before the rest is left to reconcile, then each
  // producer's publishes end within their 5 s publish timeout); the queue closes.
  void drain();

 private:
  migration_settings settings_;
  submit_backend& direct_;
  std::unique_ptr<ingest::durable_queue> queue_;
  std::unique_ptr<ingest::producer> copier_;    // the copies'
  std::unique_ptr<ingest::shadow_producer> shadow_;
  std::unique_ptr<ingest::producer> producer_;  // the queue path's (rollout only)
  std::unique_ptr<shadow_backend> dual_;
  std::unique_ptr<ingest::rollout> rollout_;
  std::unique_ptr<queue_backend> queued_;
  std::unique_ptr<rollout_backend> routed_;
};

}  // namespace exam
