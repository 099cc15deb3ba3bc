#include "migration.hpp"

#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <fmt/format.h>

#include "queue_url.hpp"
#include "rollout_admin.hpp"

namespace exam {

migration::migration(boost::asio::io_context& io, const migration_settings& settings, submit_backend& direct,
                     submission_reader& store, app_options& app)
    : settings_(settings), direct_(direct) {
  if (settings.shadow_url.empty()) {
    if (settings.queue_percent) throw std::invalid_argument("--queue-percent needs --shadow-queue (the queue path)");
    return;
  }
  auto log = ingest::json_lines_logger(stderr, ingest::parse_log_level(settings.log_level));
  queue_ = open_queue(settings.shadow_url, io.get_executor());
  // The copies have a producer of their own: a slow queue filling it with copies never
  // takes the queue path's publishes' slots.
  copier_ = std::make_unique<ingest::producer>(
      *queue_, ingest::producer_options{.max_in_flight = 4096, .default_subject = "exam", .log = log});
  shadow_ = std::make_unique<ingest::shadow_producer>(*copier_, ingest::shadow_options{.log = log});
  dual_ = std::make_unique<shadow_backend>(direct, *shadow_);
  if (!settings.queue_percent) return;
  rollout_ = std::make_unique<ingest::rollout>(ingest::rollout_options{.queue_percent = *settings.queue_percent});
  producer_ = std::make_unique<ingest::producer>(
      *queue_, ingest::producer_options{.max_in_flight = 4096, .default_subject = "exam", .log = log});
  // The queue path answers for its receipts on any server, as exam_server does.
  queue_->sign_receipts(app.receipts);
  app.graded_cache = 0;  // a row may still be replaced by an earlier-accepted copy on a broker
  queued_ = std::make_unique<queue_backend>(*queue_, *producer_, store, rollout_->metrics(ingest::write_path::queue),
                                            queue_backend_options{.beside_direct = true});
  queued_->start();
  routed_ = std::make_unique<rollout_backend>(*rollout_, *dual_, *queued_);
}

migration::~migration() = default;

submit_backend& migration::front() {
  if (routed_) return *routed_;
  if (dual_) return *dual_;
  return direct_;
}

bool migration::handle_admin(const ingest::http::request& req, ingest::http::responder& respond) {
  return rollout_ && handle_rollout_admin(req, *rollout_, settings_.admin_token, respond);
}

std::string migration::banner() const {
  if (!queue_) return {};
  std::string out = "shadow queue: " + redact_url(settings_.shadow_url) + "\n";
  if (rollout_)
    out += fmt::format("rollout: {:.2f} % of students on the queue path{}\n", rollout_->queue_percent(),
                       settings_.admin_token.empty() ? " (fixed: no --admin-token)" : ", PUT /v1/admin/rollout moves it");
  return out;
}

void migration::drain() {
  if (!queue_) return;
  auto copies = shadow_->async_drain(boost::asio::use_future);
  if (copies.wait_for(std::chrono::seconds(10)) != std::future_status::ready)
    std::fprintf(stderr, "direct_server: copies still pending after 10 s; exam_worker reconcile finds them\n");
  copier_->async_drain(boost::asio::use_future).wait();
  if (producer_) producer_->async_drain(boost::asio::use_future).wait();  // the queue path's publishes
  const auto st = shadow_->stats();
  std::fprintf(stderr, "direct_server: copies sent %llu, repeats %llu, gaps %llu\n",
               static_cast<unsigned long long>(st.sent), static_cast<unsigned long long>(st.repeats),
               static_cast<unsigned long long>(st.failed + st.conflicts + st.skipped));
  if (queued_) queued_->stop();
  queue_->close();
}

}  // namespace exam
