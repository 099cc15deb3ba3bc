#pragma once
// exam_worker's own /metrics (--metrics HOST:PORT): the consumer's pipeline metrics
// and the graders' counters, dead letters by the path each submission took. A direct
// server's queue path (--queue-percent) is graded here, so its dead-letter rate is
// read here, not on the server.

#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>

#include "grading.hpp"
#include "ingest/http/server.hpp"
#include "ingest/metrics.hpp"

namespace exam {

// The Prometheus text: `exam_worker_*` pipeline metrics, graded and copied rows, and
// `exam_worker_dead_letters_total{path="exam_server"|"queue"|"shadow"}`.
std::string worker_metrics_text(const ingest::pipeline_metrics& m, const grading_counters& c);

// An HTTP server on `listen` (HOST:PORT; port 0: any free one) answering GET /metrics
// with worker_metrics_text and 404 elsewhere; started.
std::unique_ptr<ingest::http::server> serve_worker_metrics(boost::asio::io_context& io, const std::string& listen,
                                                           std::shared_ptr<const ingest::pipeline_metrics> m,
                                                           const grading_counters& c);

}  // namespace exam
