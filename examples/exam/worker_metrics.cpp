#include "worker_metrics.hpp"

#include <fmt/format.h>

#include "cli.hpp"
#include "ingest/http/response.hpp"

namespace exam {

std::string worker_metrics_text(const ingest::pipeline_metrics& m, const grading_counters& c) {
  return ingest::to_prometheus(m, "exam_worker_") +
         fmt::format(
             "# HELP exam_worker_graded_total Submissions this process graded (counted in the batch's transaction: a "
             "batch retried after a failed commit counts again).\n"
             "# TYPE exam_worker_graded_total counter\nexam_worker_graded_total {}\n"
             "# HELP exam_worker_copied_total queue_copies rows written by this process.\n"
             "# TYPE exam_worker_copied_total counter\nexam_worker_copied_total {}\n"
             "# HELP exam_worker_dead_letters_total Dead letters by the path the submission took: the exam "
             "server's queue, a direct server's queue path, or a direct write's copy.\n"
             "# TYPE exam_worker_dead_letters_total counter\n"
             "exam_worker_dead_letters_total{{path=\"exam_server\"}} {}\n"
             "exam_worker_dead_letters_total{{path=\"queue\"}} {}\n"
             "exam_worker_dead_letters_total{{path=\"shadow\"}} {}\n",
             c.graded.load(), c.copied.load(), c.dead_plain.load(), c.dead_queue_path.load(), c.dead_copies.load());
}

std::unique_ptr<ingest::http::server> serve_worker_metrics(boost::asio::io_context& io, const std::string& listen,
                                                           std::shared_ptr<const ingest::pipeline_metrics> m,
                                                           const grading_counters& c) {
  const auto [host, port] = parse_listen(listen);
  auto server = std::make_unique<ingest::http::server>(
      io, ingest::http::server_options{.host = host, .port = port, .server_name = "exam_worker"},
      [m = std::move(m), &c](auto req, const auto&, auto respond) {
        namespace bhttp = boost::beast::http;
        if (req.target() != "/metrics")
          return respond(ingest::http::error_response(req, ingest::http::status::not_found, "not_found",
                                                      "only /metrics is served here"));
        if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head) {
          auto r = ingest::http::error_response(req, ingest::http::status::method_not_allowed, "method_not_allowed",
                                                "GET or HEAD");
          r.set(bhttp::field::allow, "GET, HEAD");
          return respond(std::move(r));
        }
        auto r = ingest::http::json_response(req, ingest::http::status::ok, worker_metrics_text(*m, c));
        r.set(bhttp::field::content_type, "text/plain; version=0.0.4");
        respond(std::move(r));
      });
  server->start();
  return server;
}

}  // namespace exam
