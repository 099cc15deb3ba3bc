// GET /v1/submissions/{id}/events: the status of a submission as server-sent events,
// one event per change (the same JSON as the GET), ending once it is graded.
#include <boost/beast/http/field.hpp>

#include "app.hpp"

namespace exam {

namespace bhttp = boost::beast::http;
using ingest::http::status;

void app::read_status(const std::string& receipt_id, const std::string& authorization,
                      std::function<void(ingest::http::response)> done) {
  request r{bhttp::verb::get, "/v1/submissions/" + receipt_id, 11};
  r.set(bhttp::field::authorization, authorization);
  const ingest::http::reply_to to(r);
  responder rs([done = std::move(done)](ingest::http::response answer) { done(std::move(answer)); });
  try {
    get_submission(receipt_id, std::move(r), rs);
  } catch (const std::exception& e) {
    if (rs) answer_exception(to, rs, e);
  }
}

void app::follow_submission(const std::string& receipt_id, request req, responder& respond) {
  auto who = authenticate(req, respond);
  if (!who) return;
  const auto reserved = streams_->reserve(who->sub);
  const auto place = reserved.first;
  const auto refused = reserved.second;
  // Refused streams fall back to polling the GET (the page does).
  if (refused == status_streams::refusal::too_many)
    return fail(req, respond, status::service_unavailable, "too_many_streams",
                "too many status streams open; poll GET /v1/submissions/{id}", std::chrono::seconds(5));
  if (refused == status_streams::refusal::too_many_for_principal)
    return fail(req, respond, status::too_many_requests, "too_many_streams",
                "too many status streams open for this account", std::chrono::seconds(5));
  auto job = std::make_shared<std::pair<request, responder>>(std::move(req), std::move(respond));
  std::string authorization(job->first[bhttp::field::authorization]);
  auto streams = streams_;
  read_status(receipt_id, authorization,
              [job, streams, place, receipt_id, authorization](ingest::http::response first) {
                auto& rs = job->second;
                if (first.result() != status::ok) {  // 404, 503...: answered as the GET is
                  streams->release(place);
                  return rs(std::move(first));
                }
                ingest::http::response head{status::ok, job->first.version()};
                head.set(bhttp::field::content_type, "text/event-stream");
                head.set(bhttp::field::cache_control, "no-cache, no-transform");
                head.set("X-Accel-Buffering", "no");  // nginx: pass the events on at once
                std::weak_ptr<status_streams> weak = streams;
                auto stream = rs.open_stream(std::move(head), [weak, place] {
                  if (auto s = weak.lock()) s->ended(place);
                });
                const std::string& body = first.body();
                // A client that lost the stream comes back after 3 s (EventSource's rule).
                stream->write("retry: 3000\n" + status_streams::event("status", body));
                if (status_streams::final_status(body)) {
                  stream->close();
                  return streams->release(place);
                }
                streams->follow(place, receipt_id, authorization, std::move(stream), body);
              });
}

}  // namespace exam
