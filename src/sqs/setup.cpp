// Options, and the opening of the queues: the engine's set-up and tear-down, the
// queues resolved or created, and created again when they vanish.

#include <boost/json/serialize.hpp>
#include <cstdlib>

#include "engine.hpp"
#include "core/url_params.hpp"
#include "ingest/aws/credentials.hpp"

namespace ingest::sqs {

// ---- options ------------------------------------------------------------------

void queue_options::validate() const {
  auto bad = [](const std::string& what) { throw error(errc::invalid_config, "sqs: " + what); };
  if (queue.empty()) bad("queue name is empty");
  if (dead_letter_queue.empty()) bad("dead_letter_queue name is empty");
  const bool fifo = queue.ends_with(".fifo");
  if (fifo != dead_letter_queue.ends_with(".fifo"))
    bad("the dead-letter queue must be of the same type as the queue (both .fifo or neither)");
  if (visibility_timeout <= milliseconds::zero() || visibility_timeout > std::chrono::hours(12))
    bad("visibility_timeout must be in (0, 12h]");
  if (max_pending_publishes == 0) bad("max_pending_publishes must be at least 1");
  if (max_send_batches == 0) bad("max_send_batches must be at least 1");
  if (max_batch_bytes < 1024) bad("max_batch_bytes must be at least 1024");
  if (publish_timeout <= milliseconds::zero()) bad("publish_timeout must be positive");
  if (receive_concurrency == 0) bad("receive_concurrency must be at least 1");
  if (max_connections < 2) bad("max_connections must be at least 2");
  if (request_timeout <= milliseconds::zero() || connect_timeout <= milliseconds::zero())
    bad("timeouts must be positive");
  if (fifo && message_group.empty() && !group_per_key) bad("a FIFO queue needs a message_group or group_per_key");
  aws::detail::endpoint::parse(endpoint);
}

queue_options queue_options::from_url(std::string_view url) {
  queue_options o;
  const auto u = aws::detail::split_service_url(url, "sqs");
  o.endpoint = u.endpoint;
  const auto path = u.path;
  const auto second = path.find('/');
  if (second == std::string_view::npos || second == 0 || second + 1 >= path.size())
    throw error(errc::invalid_config, "sqs: the URL path must be /account/queue");
  o.account = ingest::detail::percent_decode("sqs URL", path.substr(0, second));
  if (o.account == "-") o.account.clear();
  o.queue = ingest::detail::percent_decode("sqs URL", path.substr(second + 1));
  o.dead_letter_queue =
      o.queue.ends_with(".fifo") ? o.queue.substr(0, o.queue.size() - 5) + "-dlq.fifo" : o.queue + "-dlq";
  ingest::detail::url_query params("sqs URL", u.query);
  params.set("dlq", o.dead_letter_queue);
  params.set("region", o.region);
  params.set("create", o.create_queues);
  params.set("redrive", o.redrive_max_receives);
  params.set("visibility", o.visibility_timeout);
  params.set("group", o.message_group);
  params.set("group_per_key", o.group_per_key);
  params.set("publish_timeout", o.publish_timeout);
  params.set("max_connections", o.max_connections);
  params.set("receive_concurrency", o.receive_concurrency);
  params.set("tls_verify", o.tls_verify);
  params.set("tls_ca", o.tls_ca_file);
  params.finish();
  if (!u.tls && (!o.tls_ca_file.empty() || params.has("tls_verify")))
    throw error(errc::invalid_config, "sqs URL: tls_ca and tls_verify need sqs+https://");
  return o;
}

// ---- the engine -----------------------------------------------------------------

queue::engine::engine(queue_options options)
    : o(std::move(options)),
      fifo(o.queue.ends_with(".fifo")),
      work(asio::make_work_guard(io)),
      http(io, aws::detail::endpoint::parse(o.endpoint),
           aws::detail::client_options{o.max_connections, o.connect_timeout, o.tls_verify, o.tls_ca_file}),
      ep(aws::detail::endpoint::parse(o.endpoint)) {
  o.creds = aws::resolve_credentials(std::move(o.creds), ep.tls, "sqs");
  if (o.region.empty()) o.region = aws::default_region();
  visibility_s = whole_seconds(o.visibility_timeout);
  thread = std::thread([this] { io.run(); });
}

// Stops the I/O thread; what was in progress is dropped with the io_context.
queue::engine::~engine() {
  work.reset();
  io.stop();
  if (thread.joinable()) thread.join();
  http.shutdown();
}

// ---- set-up --------------------------------------------------------------------

// The queues vanished (an emulator restarted, an operator deleted them): with
// `create_queues`, create them again; publishes and fetches retry meanwhile.
void queue::engine::recreate() {
  if (recreating || !o.create_queues) return;
  recreating = true;
  call("CreateQueue", json::object{{"QueueName", o.dead_letter_queue}, {"Attributes", dlq_attributes}},
       o.request_timeout, [self = this](aws_reply) {
         self->call("CreateQueue", json::object{{"QueueName", self->o.queue}, {"Attributes", self->main_attributes}},
                    self->o.request_timeout, [self](aws_reply r) {
                      self->recreating = false;
                      if (!r.ec) self->note_error("queues created again");
                    });
       });
}

std::string queue::engine::resolve_queue(const std::string& name, json::object attributes) {
  aws_reply r;
  if (fifo) attributes["FifoQueue"] = "true";
  (name == o.queue ? main_attributes : dlq_attributes) = attributes;
  if (o.create_queues) {
    json::object req{{"QueueName", name}, {"Attributes", std::move(attributes)}};
    r = call_sync("CreateQueue", std::move(req));
    if (r.ec && r.message.find("QueueNameExists") != std::string::npos)
      throw error(errc::invalid_config, "sqs: queue " + name + " exists with other attributes (" + r.message + ")");
  } else {
    json::object req{{"QueueName", name}};
    if (!o.account.empty()) req["QueueOwnerAWSAccountId"] = o.account;
    r = call_sync("GetQueueUrl", std::move(req));
  }
  if (r.ec == errc::backend_unavailable)
    throw error(errc::backend_unavailable, "sqs: " + o.endpoint + " does not answer: " + r.message);
  if (r.ec) throw error(errc::invalid_config, "sqs: " + r.message);
  auto url = str(r.body.as_object(), "QueueUrl");
  if (url.empty()) throw error(errc::invalid_config, "sqs: no QueueUrl for " + name);
  return url;
}

void queue::engine::open() {
  dlq_url = resolve_queue(o.dead_letter_queue, {});
  json::object attrs;
  if (o.create_queues && o.redrive_max_receives > 0) {
    auto r = call_sync("GetQueueAttributes",
                       json::object{{"QueueUrl", dlq_url}, {"AttributeNames", json::array{"QueueArn"}}});
    if (r.ec)
      throw error(r.ec == errc::backend_unavailable ? errc::backend_unavailable : errc::invalid_config,
                  "sqs: " + r.message);
    const auto* a = r.body.as_object().if_contains("Attributes");
    const auto arn = a && a->is_object() ? str(a->as_object(), "QueueArn") : std::string();
    json::object policy{{"deadLetterTargetArn", arn}, {"maxReceiveCount", std::to_string(o.redrive_max_receives)}};
    attrs["RedrivePolicy"] = json::serialize(policy);
  }
  main_url = resolve_queue(o.queue, std::move(attrs));
}

}  // namespace ingest::sqs
