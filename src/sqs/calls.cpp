// Requests to SQS: one signed AWS call, its reply read, and batch actions run 10
// entries at a time.

#include <boost/asio/post.hpp>
#include <boost/json/serialize.hpp>
#include <future>

#include "engine.hpp"
#include "ingest/aws/sigv4.hpp"

namespace ingest::sqs {

struct queue::engine::batch_job {
  std::size_t outstanding = 0;
  error_code first_error;
  ingest::detail::callback<void(error_code)> done;
};

void queue::engine::note_error(const std::string& text) {
  std::lock_guard lock(error_mutex);
  last_error = text;
}

// ---- one AWS call ------------------------------------------------------------

void queue::engine::call(const char* action, json::object request, milliseconds timeout, reply_fn done) {
  std::string body = json::serialize(request);
  const std::string date = aws::amz_date_now();
  aws::signing_input in;
  in.headers = {{"host", ep.host_header()},
                {"content-type", "application/x-amz-json-1.0"},
                {"x-amz-date", date},
                {"x-amz-target", std::string("AmazonSQS.") + action}};
  if (!o.creds.session_token.empty()) in.headers.emplace_back("x-amz-security-token", o.creds.session_token);
  in.payload_sha256 = aws::sha256_hex(body);
  const auto sig = aws::sign_v4(in, o.creds, o.region, "sqs", date);
  aws::detail::http_fields fields;
  for (std::size_t i = 1; i < in.headers.size(); ++i) fields.push_back(in.headers[i]);
  fields.emplace_back("authorization", sig.authorization);
  http.post("/", std::move(fields), std::move(body), timeout,
            [self = this, action = std::string(action), done = std::move(done)](boost::system::error_code ec,
                                                                                aws::detail::http_result r) mutable {
              done(self->interpret(action, ec, std::move(r)));
            });
}

aws_reply queue::engine::interpret(const std::string& action, boost::system::error_code ec, aws::detail::http_result r) {
  aws_reply out;
  if (ec) {
    // Refused or unresolvable: nothing was sent. Anything else may have reached SQS.
    out.sent = !(ec == asio::error::connection_refused || ec == asio::error::host_not_found ||
                 ec == asio::error::host_not_found_try_again || ec == asio::error::network_unreachable ||
                 ec == asio::error::operation_aborted);
    out.ec = code(errc::backend_unavailable);
    out.message = action + ": " + ec.message();
    note_error(out.message);
    return out;
  }
  out = read_reply(action, r.status, r.body);
  if (out.ec) note_error(out.message);
  return out;
}

/// Blocking call for set-up, from a thread other than the I/O thread.
aws_reply queue::engine::call_sync(const char* action, json::object request) {
  std::promise<aws_reply> p;
  auto f = p.get_future();
  asio::post(io, [&, action, request = std::move(request)]() mutable {
    call(action, std::move(request), o.request_timeout, [&p](aws_reply r) { p.set_value(std::move(r)); });
  });
  return f.get();
}

// ---- batch actions -------------------------------------------------------------

void queue::engine::batch_call(const char* action, const std::string& url, std::vector<json::object> entries,
                               std::function<void(std::size_t, bool, const std::string&)> on_entry,
                               ingest::detail::callback<void(error_code)> done) {
  if (entries.empty()) return done(error_code{});
  auto job = std::make_shared<batch_job>();
  job->done = std::move(done);
  job->outstanding = (entries.size() + 9) / 10;
  auto shared_entry = std::make_shared<std::function<void(std::size_t, bool, const std::string&)>>(std::move(on_entry));
  for (std::size_t start = 0; start < entries.size(); start += 10) {
    json::array chunk;
    const std::size_t end = std::min(entries.size(), start + 10);
    for (std::size_t i = start; i < end; ++i) {
      entries[i]["Id"] = "b" + std::to_string(i);
      chunk.push_back(std::move(entries[i]));
    }
    call(action, json::object{{"QueueUrl", url}, {"Entries", std::move(chunk)}}, o.request_timeout,
         [self = this, job, shared_entry, start, end](aws_reply r) {
           if (r.ec) {
             if (!job->first_error) job->first_error = r.ec;
             for (std::size_t i = start; i < end; ++i) (*shared_entry)(i, false, "request failed");
           } else {
             const auto results = batch_entries(r.body.as_object(), start, end - start);
             for (std::size_t i = start; i < end; ++i) {
               const auto& e = results[i - start];
               if (e.what == entry_result::outcome::succeeded) {
                 (*shared_entry)(i, true, std::string());
               } else if (e.what == entry_result::outcome::failed) {
                 self->note_error("batch entry: " + e.code + ": " + e.message);
                 (*shared_entry)(i, false, e.code);
               } else {
                 if (!job->first_error) job->first_error = code(errc::backend_unavailable);
                 (*shared_entry)(i, false, "no answer for entry");
               }
             }
           }
           if (--job->outstanding == 0) job->done(job->first_error);
         });
  }
}

}  // namespace ingest::sqs
