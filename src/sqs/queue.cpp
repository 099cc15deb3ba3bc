#include "ingest/sqs/queue.hpp"

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cmath>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include "http_client.hpp"
#include "wire.hpp"
#include "ingest/detail/url_params.hpp"
#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"

namespace ingest::sqs {

namespace asio = boost::asio;
namespace json = boost::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using steady = std::chrono::steady_clock;

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
  detail::endpoint::parse(endpoint);
}

queue_options queue_options::from_url(std::string_view url) {
  queue_options o;
  std::string_view rest;
  std::string scheme;
  if (url.starts_with("sqs+http://")) {
    scheme = "http://";
    rest = url.substr(11);
  } else if (url.starts_with("sqs+https://")) {
    scheme = "https://";
    rest = url.substr(12);
  } else {
    throw error(errc::invalid_config, "sqs: a queue URL starts with sqs+http:// or sqs+https://");
  }
  std::string_view query;
  if (const auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) throw error(errc::invalid_config, "sqs: the URL needs /account/queue");
  o.endpoint = scheme + std::string(rest.substr(0, slash));
  auto path = rest.substr(slash + 1);
  const auto second = path.find('/');
  if (second == std::string_view::npos || second == 0 || second + 1 >= path.size())
    throw error(errc::invalid_config, "sqs: the URL path must be /account/queue");
  o.account = ingest::detail::percent_decode("sqs URL", path.substr(0, second));
  if (o.account == "-") o.account.clear();
  o.queue = ingest::detail::percent_decode("sqs URL", path.substr(second + 1));
  o.dead_letter_queue = o.queue.ends_with(".fifo") ? o.queue.substr(0, o.queue.size() - 5) + "-dlq.fifo"
                                                   : o.queue + "-dlq";
  ingest::detail::url_query params("sqs URL", query);
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
  if (scheme == "http://" && (!o.tls_ca_file.empty() || params.has("tls_verify")))
    throw error(errc::invalid_config, "sqs URL: tls_ca and tls_verify need sqs+https://");
  return o;
}

// ---- encoding -------------------------------------------------------------------

namespace {

using namespace detail::wire;

boost::system::error_code code(errc e) { return make_error_code(e); }

}  // namespace

// ---- the engine -----------------------------------------------------------------

struct queue::engine {
  using reply_fn = ingest::detail::callback<void(aws_reply)>;

  explicit engine(queue_options options)
      : o(std::move(options)),
        fifo(o.queue.ends_with(".fifo")),
        work(asio::make_work_guard(io)),
        http(io, detail::endpoint::parse(o.endpoint),
             detail::client_options{o.max_connections, o.connect_timeout, o.tls_verify, o.tls_ca_file}),
        ep(detail::endpoint::parse(o.endpoint)) {
    if (o.creds.access_key_id.empty()) o.creds = credentials::from_default_chain();
    if (o.creds.access_key_id.empty() || o.creds.secret_access_key.empty()) {
      if (ep.tls)
        throw error(errc::invalid_config,
                    "sqs: no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with "
                    "~/.aws/credentials; instance roles, web identity and SSO are not read: export them)");
      o.creds = credentials{"test", "test", {}};
    }
    if (o.region.empty()) {
      for (const char* name : {"AWS_REGION", "AWS_DEFAULT_REGION"})
        if (const char* v = std::getenv(name); v && *v && o.region.empty()) o.region = v;
      if (o.region.empty()) o.region = region_from_shared_config();
      if (o.region.empty()) o.region = "us-east-1";
    }
    visibility_s = whole_seconds(o.visibility_timeout);
    thread = std::thread([this] { io.run(); });
  }

  // Stops the I/O thread; what was in progress is dropped with the io_context.
  ~engine() {
    work.reset();
    io.stop();
    if (thread.joinable()) thread.join();
    http.shutdown();
  }

  static std::int64_t whole_seconds(milliseconds d) {
    return std::min<std::int64_t>(43200, (d.count() + 999) / 1000);
  }

  queue_options o;
  const bool fifo;
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work;
  detail::http_client http;
  detail::endpoint ep;
  std::thread thread;
  std::int64_t visibility_s = 30;
  std::string main_url, dlq_url;
  std::atomic<bool> closed{false};
  std::atomic<std::size_t> publishes_pending{0};
  mutable std::mutex error_mutex;
  std::string last_error;
  std::mt19937_64 rng{std::random_device{}()};

  void note_error(const std::string& text) {
    std::lock_guard lock(error_mutex);
    last_error = text;
  }

  // ---- one AWS call ------------------------------------------------------------

  void call(const char* action, json::object request, milliseconds timeout, reply_fn done) {
    std::string body = json::serialize(request);
    const std::string date = amz_date_now();
    signing_input in;
    in.headers = {{"host", ep.host_header()},
                  {"content-type", "application/x-amz-json-1.0"},
                  {"x-amz-date", date},
                  {"x-amz-target", std::string("AmazonSQS.") + action}};
    if (!o.creds.session_token.empty()) in.headers.emplace_back("x-amz-security-token", o.creds.session_token);
    in.payload_sha256 = sha256_hex(body);
    const auto sig = sign_v4(in, o.creds, o.region, "sqs", date);
    detail::http_fields fields;
    for (std::size_t i = 1; i < in.headers.size(); ++i) fields.push_back(in.headers[i]);
    fields.emplace_back("authorization", sig.authorization);
    http.post("/", std::move(fields), std::move(body), timeout,
              [self = this, action = std::string(action), done = std::move(done)](
                  boost::system::error_code ec, detail::http_result r) mutable {
                done(self->interpret(action, ec, std::move(r)));
              });
  }

  aws_reply interpret(const std::string& action, boost::system::error_code ec, detail::http_result r) {
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
  aws_reply call_sync(const char* action, json::object request) {
    std::promise<aws_reply> p;
    auto f = p.get_future();
    asio::post(io, [&, action, request = std::move(request)]() mutable {
      call(action, std::move(request), o.request_timeout, [&p](aws_reply r) { p.set_value(std::move(r)); });
    });
    return f.get();
  }

  // ---- set-up --------------------------------------------------------------------

  json::object main_attributes, dlq_attributes;  // as created
  bool recreating = false;

  // The queues vanished (an emulator restarted, an operator deleted them): with
  // `create_queues`, create them again; publishes and fetches retry meanwhile.
  void recreate() {
    if (recreating || !o.create_queues) return;
    recreating = true;
    call("CreateQueue", json::object{{"QueueName", o.dead_letter_queue}, {"Attributes", dlq_attributes}},
         o.request_timeout, [self = this](aws_reply) {
           self->call("CreateQueue",
                      json::object{{"QueueName", self->o.queue}, {"Attributes", self->main_attributes}},
                      self->o.request_timeout, [self](aws_reply r) {
                        self->recreating = false;
                        if (!r.ec) self->note_error("queues created again");
                      });
         });
  }

  std::string resolve_queue(const std::string& name, json::object attributes) {
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

  void open() {
    dlq_url = resolve_queue(o.dead_letter_queue, {});
    json::object attrs;
    if (o.create_queues && o.redrive_max_receives > 0) {
      auto r = call_sync("GetQueueAttributes", json::object{{"QueueUrl", dlq_url},
                                                            {"AttributeNames", json::array{"QueueArn"}}});
      if (r.ec) throw error(r.ec == errc::backend_unavailable ? errc::backend_unavailable : errc::invalid_config,
                            "sqs: " + r.message);
      const auto* a = r.body.as_object().if_contains("Attributes");
      const auto arn = a && a->is_object() ? str(a->as_object(), "QueueArn") : std::string();
      json::object policy{{"deadLetterTargetArn", arn}, {"maxReceiveCount", std::to_string(o.redrive_max_receives)}};
      attrs["RedrivePolicy"] = json::serialize(policy);
    }
    main_url = resolve_queue(o.queue, std::move(attrs));
  }

  // ---- publish -------------------------------------------------------------------

  struct outgoing {
    envelope message;
    encoded data;
    callback<error_code, receipt> done;
    steady::time_point deadline;
    int tries = 0;
    bool maybe_sent = false;
  };
  struct remembered {
    receipt r;
    std::string fingerprint;
    steady::time_point at;
  };
  std::deque<std::shared_ptr<outgoing>> to_send;
  std::size_t batches_in_flight = 0;
  std::unordered_map<std::string, remembered> keys;
  std::deque<std::pair<steady::time_point, std::string>> key_order;
  std::unordered_map<std::string, std::string> sending_keys;  // key -> fingerprint

  void forget_old_keys() {
    const auto now = steady::now();
    while (!key_order.empty() &&
           (now - key_order.front().first > o.remember_keys || key_order.size() > o.remember_keys_max)) {
      auto it = keys.find(key_order.front().second);
      if (it != keys.end() && it->second.at == key_order.front().first) keys.erase(it);
      key_order.pop_front();
    }
  }

  void publish(envelope m, callback<error_code, receipt> done) {
    forget_old_keys();
    if (m.fingerprint.empty()) m.fingerprint = fingerprint(m.payload);
    if (auto k = keys.find(m.idempotency_key); k != keys.end()) {
      --publishes_pending;
      if (k->second.fingerprint != m.fingerprint) return done(code(errc::conflict), receipt{});
      auto r = k->second.r;
      r.duplicate = true;
      return done(error_code{}, std::move(r));
    }
    if (auto s = sending_keys.find(m.idempotency_key); s != sending_keys.end()) {
      --publishes_pending;
      return done(code(s->second == m.fingerprint ? errc::in_flight : errc::conflict), receipt{});
    }
    if (m.receipt_id.empty()) m.receipt_id = make_receipt_id();
    // Stamped once, before the first send: a resend carries the same time.
    m.accepted_at = time_from_us(to_us(clock::now()));  // as the wire keeps it
    auto out = std::make_shared<outgoing>();
    out->data = encode(m);
    if (out->data.size() > o.max_batch_bytes) {
      --publishes_pending;
      return done(code(errc::payload_too_large), receipt{});
    }
    sending_keys.emplace(m.idempotency_key, m.fingerprint);
    out->message = std::move(m);
    out->done = std::move(done);
    out->deadline = steady::now() + o.publish_timeout;
    to_send.push_back(std::move(out));
    pump();
  }

  std::size_t send_slots() const { return fifo && !o.group_per_key ? 1 : o.max_send_batches; }

  void pump() {
    while (!to_send.empty() && batches_in_flight < send_slots()) {
      std::vector<std::shared_ptr<outgoing>> batch;
      std::size_t bytes = 0;
      const auto now = steady::now();
      while (!to_send.empty() && batch.size() < 10 && bytes + to_send.front()->data.size() <= o.max_batch_bytes) {
        auto out = std::move(to_send.front());
        to_send.pop_front();
        // Past its deadline a send would carry a postmark older than the bound the
        // consumer trusts (guarantee 7): it is not sent at all.
        if (now >= out->deadline) {
          finish(out, code(out->maybe_sent ? errc::publish_timeout : errc::backend_unavailable));
          continue;
        }
        bytes += out->data.size();
        batch.push_back(std::move(out));
      }
      if (batch.empty()) continue;
      ++batches_in_flight;
      send_batch(std::move(batch));
    }
  }

  void finish(const std::shared_ptr<outgoing>& out, error_code ec) {
    sending_keys.erase(out->message.idempotency_key);
    --publishes_pending;
    // A success that comes after the deadline cannot vouch for its postmark: the
    // message is stored, and the consumer reads SQS's sent time for it instead.
    if (!ec && steady::now() > out->deadline) ec = code(errc::publish_timeout);
    if (ec) return out->done(ec, receipt{});
    receipt r{out->message.receipt_id, out->message.idempotency_key, out->message.accepted_at, false};
    const auto now = steady::now();
    keys.insert_or_assign(out->message.idempotency_key, remembered{r, out->message.fingerprint, now});
    key_order.emplace_back(now, out->message.idempotency_key);
    out->done(error_code{}, std::move(r));
  }

  // Again later, with backoff, while the publish deadline allows it.
  void resend(const std::shared_ptr<outgoing>& out, error_code why) {
    ++out->tries;
    const auto cap = std::min<std::int64_t>(1000, 25LL << std::min(out->tries, 6));
    const milliseconds delay(std::uniform_int_distribution<std::int64_t>(cap / 2, cap)(rng));
    if (closed || steady::now() + delay >= out->deadline)
      return finish(out, out->maybe_sent ? code(errc::publish_timeout) : why);
    auto timer = std::make_shared<asio::steady_timer>(io, delay);
    timer->async_wait([self = this, out, timer](boost::system::error_code) {
      self->to_send.push_front(out);
      self->pump();
    });
  }

  void send_batch(std::vector<std::shared_ptr<outgoing>> batch) {
    json::array entries;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& m = batch[i]->message;
      json::object e{{"Id", "e" + std::to_string(i)}, {"MessageBody", batch[i]->data.body}};
      e["MessageAttributes"] = json::object{{meta_attribute, attribute(batch[i]->data.meta)}};
      if (fifo) {
        e["MessageGroupId"] = o.group_per_key ? dedup_id(m.idempotency_key) : o.message_group;
        e["MessageDeduplicationId"] = dedup_id(m.idempotency_key);
      }
      entries.push_back(std::move(e));
    }
    // No longer than the earliest deadline in the batch: a send still running past it
    // would be taken with a postmark the consumer no longer trusts.
    auto budget = o.request_timeout;
    for (const auto& out : batch)
      budget = std::min(budget, std::chrono::duration_cast<milliseconds>(out->deadline - steady::now()));
    budget = std::max(budget, milliseconds(1));
    call("SendMessageBatch", json::object{{"QueueUrl", main_url}, {"Entries", std::move(entries)}}, budget,
         [self = this, batch = std::move(batch)](aws_reply r) mutable {
           --self->batches_in_flight;
           self->sent(std::move(batch), std::move(r));
           self->pump();
         });
  }

  void sent(std::vector<std::shared_ptr<outgoing>> batch, aws_reply r) {
    if (r.ec == errc::not_found && o.create_queues) {
      recreate();
      for (auto& out : batch) resend(out, code(errc::backend_unavailable));
      return;
    }
    if (r.ec) {
      for (auto& out : batch) {
        out->maybe_sent = out->maybe_sent || r.sent;
        // Not reachable at all: fail now (503), do not hang. Throttling, 5xx or an
        // unknown outcome: again with the same receipt id until the deadline.
        if (r.ec == errc::backend_unavailable && r.sent) resend(out, r.ec);
        else finish(out, r.ec);
      }
      return;
    }
    const auto results = batch_entries(r.body.as_object(), 0, batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& e = results[i];
      if (e.what == entry_result::outcome::succeeded) {
        finish(batch[i], error_code{});
      } else if (e.what == entry_result::outcome::failed) {
        note_error("SendMessageBatch entry: " + e.code + ": " + e.message);
        if (!e.sender_fault) resend(batch[i], code(errc::backend_unavailable));
        else if (e.code.find("TooLong") != std::string::npos || e.message.find("shorter") != std::string::npos)
          finish(batch[i], code(errc::payload_too_large));
        else
          finish(batch[i], code(errc::invalid_config));
      }
    }
    // Neither accepted nor refused: the outcome is unknown, send again.
    for (std::size_t i = 0; i < batch.size(); ++i)
      if (results[i].what == entry_result::outcome::unanswered) {
        batch[i]->maybe_sent = true;
        resend(batch[i], code(errc::backend_unavailable));
      }
  }

  // ---- leases --------------------------------------------------------------------

  struct lease {
    envelope message;
    time_point first_attempt_at;
    steady::time_point expires;
  };
  std::unordered_map<std::string, lease> leases;          // by receipt handle
  std::unordered_map<std::string, std::string> holders;   // receipt id -> latest handle

  delivery take(const json::object& msg) {
    delivery d;
    // A send reaches SQS while it is live (publish_timeout), plus a second for one on
    // the wire; sent later, SQS's own time is the accept time (guarantee 7).
    d.message = decode(msg, d.malformed, o.publish_timeout + std::chrono::seconds(1));
    d.token = str(msg, "ReceiptHandle");
    const auto* sys = msg.if_contains("Attributes");
    const auto first = sys && sys->is_object() ? str(sys->as_object(), "ApproximateFirstReceiveTimestamp") : std::string();
    d.first_attempt_at = first.empty() ? clock::now() : from_ms_text(first);
    // An older lease on the same message is void now.
    if (auto h = holders.find(d.message.receipt_id); h != holders.end()) leases.erase(h->second);
    holders[d.message.receipt_id] = d.token;
    leases[d.token] = lease{d.message, d.first_attempt_at, steady::now() + seconds(visibility_s)};
    return d;
  }

  void drop_lease(std::unordered_map<std::string, lease>::iterator it) {
    if (auto h = holders.find(it->second.message.receipt_id); h != holders.end() && h->second == it->first)
      holders.erase(h);
    leases.erase(it);
  }

  // Leases nobody settled (a consumer that gave up on them) are forgotten once long expired.
  void sweep_leases() {
    const auto now = steady::now();
    for (auto it = leases.begin(); it != leases.end();) {
      if (now - it->second.expires > std::chrono::minutes(1)) {
        auto victim = it++;
        drop_lease(victim);
      } else {
        ++it;
      }
    }
  }

  // ---- fetch ---------------------------------------------------------------------

  struct fetch_op {
    std::size_t max;
    steady::time_point deadline;
    callback<error_code, std::vector<delivery>> done;
    std::vector<delivery> got;
    std::size_t outstanding = 0;
    bool finished = false;
  };
  std::set<std::shared_ptr<fetch_op>> fetches;

  void start_fetch(std::shared_ptr<fetch_op> op) {
    fetches.insert(op);
    poll(std::move(op));
  }

  void complete(const std::shared_ptr<fetch_op>& op, error_code ec) {
    if (op->finished) return;
    op->finished = true;
    fetches.erase(op);
    op->done(ec, std::move(op->got));
  }

  json::object receive_request(const std::string& url, std::size_t n, std::int64_t wait_s, std::int64_t visibility) {
    return json::object{{"QueueUrl", url},
                        {"MaxNumberOfMessages", static_cast<std::int64_t>(std::min<std::size_t>(n, 10))},
                        {"WaitTimeSeconds", wait_s},
                        {"VisibilityTimeout", visibility},
                        {"MessageAttributeNames", json::array{"All"}},
                        {"MessageSystemAttributeNames",
                         json::array{"ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp", "SentTimestamp",
                                     "MessageDeduplicationId"}}};
  }

  // Makes received messages visible again at once (a fetch that is already over, a
  // dead-letter scan); `then` runs once SQS answered.
  void give_back(const std::string& url, std::vector<std::string> handles,
                 ingest::detail::callback<void(error_code)> then = [](error_code) {}) {
    std::vector<json::object> entries;
    for (auto& h : handles) entries.push_back(json::object{{"ReceiptHandle", std::move(h)}, {"VisibilityTimeout", 0}});
    batch_call("ChangeMessageVisibilityBatch", url, std::move(entries), [](std::size_t, bool, const std::string&) {},
               std::move(then));
  }

  // A round of receives: one long poll waiting up to the fetch's deadline and, the
  // first time, short polls beside it for the rest of `max` (a backlog fills the batch
  // at once). A round that found messages completes the fetch, after short polls that
  // fill it when only the long poll brought something; an empty round polls again
  // until the deadline.
  void poll(std::shared_ptr<fetch_op> op, bool first = true) {
    if (op->finished) return;
    const auto remaining = std::chrono::duration_cast<milliseconds>(op->deadline - steady::now());
    const std::int64_t wait_s = remaining >= seconds(1) ? std::min<std::int64_t>(20, remaining.count() / 1000) : 0;
    const std::size_t calls = first ? std::min(o.receive_concurrency, (op->max + 9) / 10) : 1;
    auto error = std::make_shared<error_code>();
    for (std::size_t i = 0; i < calls; ++i) {
      ++op->outstanding;
      const std::int64_t wait = i == 0 ? wait_s : 0;
      call("ReceiveMessage", receive_request(main_url, std::min<std::size_t>(10, op->max - i * 10), wait, visibility_s),
           o.request_timeout + seconds(wait), [self = this, op, error, calls](aws_reply r) mutable {
             --op->outstanding;
             self->received(op, r);
             if (r.ec) *error = r.ec;
             if (op->finished || op->outstanding > 0) return;
             self->round_over(op, *error, calls);
           });
    }
  }

  void round_over(const std::shared_ptr<fetch_op>& op, error_code ec, std::size_t calls) {
    if (ec == errc::not_found) recreate();
    if (!op->got.empty()) {
      if (calls == 1 && op->got.size() < op->max) return fill(op);
      return complete(op, error_code{});
    }
    if (ec) return complete(op, ec);
    const auto left = op->deadline - steady::now();
    if (left <= milliseconds::zero()) return complete(op, error_code{});
    if (left >= seconds(1)) return poll(op, false);
    // Under a second left: SQS waits in whole seconds, so short polls.
    auto timer = std::make_shared<asio::steady_timer>(io, std::min<steady::duration>(left, milliseconds(50)));
    timer->async_wait([self = this, op, timer](boost::system::error_code) {
      if (steady::now() >= op->deadline) return self->complete(op, error_code{});
      self->poll(op, false);
    });
  }

  void received(const std::shared_ptr<fetch_op>& op, const aws_reply& r) {
    if (r.ec || !r.body.is_object()) return;
    const auto* msgs = r.body.as_object().if_contains("Messages");
    if (!msgs || !msgs->is_array()) return;
    std::vector<std::string> extra;
    for (const auto& m : msgs->as_array()) {
      if (!m.is_object()) continue;
      if (op->finished || op->got.size() >= op->max) {
        extra.push_back(str(m.as_object(), "ReceiptHandle"));
        continue;
      }
      try {
        op->got.push_back(take(m.as_object()));
      } catch (const std::exception& e) {
        note_error(std::string("ReceiveMessage: ") + e.what());
        extra.push_back(str(m.as_object(), "ReceiptHandle"));
      }
    }
    if (!extra.empty()) give_back(main_url, std::move(extra));
  }

  void fill(const std::shared_ptr<fetch_op>& op) {
    const std::size_t missing = op->max - std::min(op->max, op->got.size());
    const std::size_t calls = std::min(o.receive_concurrency, (missing + 9) / 10);
    if (calls == 0) return complete(op, error_code{});
    for (std::size_t i = 0; i < calls; ++i) {
      ++op->outstanding;
      call("ReceiveMessage", receive_request(main_url, std::min<std::size_t>(10, missing - i * 10), 0, visibility_s),
           o.request_timeout, [self = this, op](aws_reply r) {
             --op->outstanding;
             self->received(op, r);
             if (op->outstanding == 0) self->complete(op, error_code{});
           });
    }
  }

  void cancel_fetches() {
    auto all = fetches;
    for (const auto& op : all) complete(op, make_error_code(std::errc::operation_canceled));
  }

  // ---- settle / extend -----------------------------------------------------------

  // Runs `entries` through a batch action 10 at a time; `on_entry(id, ok, code)` per
  // entry, then `done(request_error)` once every request answered.
  struct batch_job {
    std::size_t outstanding = 0;
    error_code first_error;
    ingest::detail::callback<void(error_code)> done;
  };

  void batch_call(const char* action, const std::string& url, std::vector<json::object> entries,
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

  std::uint64_t processed = 0, purged = 0;

  struct settle_job {
    std::size_t parts = 0;
    error_code ec;
    callback<error_code> done;
    void part_done(error_code e) {
      if (e && (!ec || ec == errc::lease_expired)) ec = e;
      if (--parts == 0) done(ec);
    }
  };

  void settle(std::vector<settlement> decisions, callback<error_code> done) {
    sweep_leases();
    auto job = std::make_shared<settle_job>();
    job->done = std::move(done);
    job->parts = 1;  // this function's own part, released at the end
    bool expired = false;
    const auto now = steady::now();
    std::vector<json::object> deletes, delays;
    std::vector<std::pair<lease, settlement>> dead;
    for (auto& s : decisions) {
      auto it = leases.find(s.token);
      if (it == leases.end()) {
        expired = true;
        continue;
      }
      const bool late = now > it->second.expires;
      expired = expired || late;
      switch (s.action) {
        case settle_action::ack:
          // Sent even when late: harmless, and effective if nobody received it since.
          deletes.push_back(json::object{{"ReceiptHandle", s.token}});
          if (late) deletes.back()["late"] = true;
          break;
        case settle_action::retry:
          delays.push_back(json::object{{"ReceiptHandle", s.token}, {"VisibilityTimeout", whole_seconds(s.delay)}});
          break;
        case settle_action::dead_letter:
          if (!late) dead.emplace_back(it->second, s);
          break;
      }
      drop_lease(it);
    }
    if (expired) job->ec = code(errc::lease_expired);
    if (!deletes.empty()) {
      ++job->parts;
      auto late = std::make_shared<std::vector<bool>>();
      for (auto& d : deletes) {
        late->push_back(d.contains("late"));
        d.erase("late");
      }
      batch_call("DeleteMessageBatch", main_url, std::move(deletes),
                 [self = this, late, job](std::size_t i, bool ok, const std::string& c) {
                   if (ok && !(*late)[i]) ++self->processed;
                   if (!ok && c == "ReceiptHandleIsInvalid" && !job->ec) job->ec = code(errc::lease_expired);
                 },
                 [job](error_code e) { job->part_done(e); });
    }
    if (!delays.empty()) {
      ++job->parts;
      batch_call("ChangeMessageVisibilityBatch", main_url, std::move(delays),
                 [job](std::size_t, bool ok, const std::string& c) {
                   if (!ok && !job->ec) job->ec = code(c == "ReceiptHandleIsInvalid" ? errc::lease_expired : errc::backend_unavailable);
                 },
                 [job](error_code e) { job->part_done(e); });
    }
    if (!dead.empty()) {
      ++job->parts;
      bury(std::move(dead), [job](error_code e) { job->part_done(e); });
    }
    job->part_done(error_code{});
  }

  // Written to the dead-letter queue first; the original is deleted only for the
  // entries SQS accepted there.
  void bury(std::vector<std::pair<lease, settlement>> items, ingest::detail::callback<void(error_code)> done) {
    const auto now = clock::now();
    std::vector<json::object> entries;
    for (auto& [l, s] : items) {
      const auto data = encode(l.message);
      dead_letter dead;
      dead.reason = s.reason;
      dead.last_error = s.last_error;
      dead.attempts = l.message.attempts;
      dead.first_attempt_at = l.first_attempt_at;
      dead.last_attempt_at = now;
      dead.dead_lettered_at = now;
      json::object e{{"MessageBody", data.body}};
      e["MessageAttributes"] =
          json::object{{meta_attribute, attribute(data.meta)}, {dead_attribute, attribute(encode_dead(dead))}};
      if (fifo) {
        e["MessageGroupId"] = o.group_per_key ? dedup_id(l.message.idempotency_key) : o.message_group;
        e["MessageDeduplicationId"] = l.message.receipt_id + "-" + std::to_string(to_us(now));
      }
      entries.push_back(std::move(e));
    }
    auto shared_items = std::make_shared<std::vector<std::pair<lease, settlement>>>(std::move(items));
    auto accepted = std::make_shared<std::vector<std::size_t>>();
    batch_call("SendMessageBatch", dlq_url, std::move(entries),
               [accepted](std::size_t i, bool ok, const std::string&) {
                 if (ok) accepted->push_back(i);
               },
               [self = this, shared_items, accepted, done = std::move(done)](error_code ec) mutable {
                 std::vector<json::object> deletes;
                 for (auto i : *accepted) deletes.push_back(json::object{{"ReceiptHandle", (*shared_items)[i].second.token}});
                 if (!ec && accepted->size() != shared_items->size()) ec = code(errc::backend_unavailable);
                 self->batch_call("DeleteMessageBatch", self->main_url, std::move(deletes),
                                  [](std::size_t, bool, const std::string&) {},
                                  [ec, done = std::move(done)](error_code dec) mutable { done(ec ? ec : dec); });
               });
  }

  void extend(std::vector<std::string> tokens, milliseconds by, callback<error_code> done) {
    auto result = std::make_shared<error_code>();
    std::vector<json::object> entries;
    const auto now = steady::now();
    for (auto& t : tokens) {
      auto it = leases.find(t);
      if (it == leases.end() || now > it->second.expires) {
        *result = code(errc::lease_expired);
        continue;
      }
      it->second.expires = now + seconds(whole_seconds(by));
      entries.push_back(json::object{{"ReceiptHandle", t}, {"VisibilityTimeout", whole_seconds(by)}});
    }
    batch_call("ChangeMessageVisibilityBatch", main_url, std::move(entries),
               [result](std::size_t, bool ok, const std::string&) {
                 if (!ok && !*result) *result = code(errc::lease_expired);
               },
               [result, done = std::move(done)](error_code ec) mutable { done(ec ? ec : *result); });
  }

  // ---- stats ---------------------------------------------------------------------

  void stats(callback<error_code, queue_stats> done) {
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

  // ---- dead-letter queue operations ----------------------------------------------

  struct scanned {
    dead_letter letter;
    std::string handle;
    std::string body;
    json::value attributes;
  };
  using scan_fn = ingest::detail::callback<void(error_code, std::vector<scanned>)>;
  bool scanning = false;
  std::deque<ingest::detail::callback<void()>> scan_queue;  // one scan at a time

  // Receives everything in the dead-letter queue (hidden for a while), up to a bound.
  void scan(scan_fn done) {
    if (scanning) {
      scan_queue.push_back([self = this, done = std::move(done)]() mutable { self->scan(std::move(done)); });
      return;
    }
    scanning = true;
    auto all = std::make_shared<std::vector<scanned>>();
    scan_more(all, 0, std::move(done));
  }

  void scan_finished() {
    scanning = false;
    if (!scan_queue.empty()) {
      auto next = std::move(scan_queue.front());
      scan_queue.pop_front();
      next();
    }
  }

  void scan_more(std::shared_ptr<std::vector<scanned>> all, int empty_rounds, scan_fn done) {
    call("ReceiveMessage", receive_request(dlq_url, 10, 0, 60), o.request_timeout,
         [self = this, all, empty_rounds, done = std::move(done)](aws_reply r) mutable {
           if (r.ec) {
             std::vector<std::string> handles;
             for (auto& s : *all) handles.push_back(s.handle);
             self->give_back(self->dlq_url, std::move(handles));
             self->scan_finished();
             return done(r.ec, {});
           }
           std::size_t n = 0;
           if (const auto* msgs = r.body.as_object().if_contains("Messages"); msgs && msgs->is_array())
             for (const auto& m : msgs->as_array()) {
               if (!m.is_object()) continue;
               ++n;
               all->push_back(self->to_letter(m.as_object()));
             }
           // SQS may answer a short poll with nothing while messages exist: twice empty = done.
           const int rounds = n == 0 ? empty_rounds + 1 : 0;
           if (rounds >= 2 || all->size() >= 100000) {
             self->scan_finished();
             return done(error_code{}, std::move(*all));
           }
           self->scan_more(all, rounds, std::move(done));
         });
  }

  scanned to_letter(const json::object& m) {
    scanned s;
    s.handle = str(m, "ReceiptHandle");
    s.body = str(m, "Body");
    if (const auto* a = m.if_contains("MessageAttributes")) s.attributes = *a;
    auto& l = s.letter;
    try {
      l.message = decode(m);
    } catch (const std::exception&) {
      l.message.receipt_id = str(m, "MessageId");
      l.message.payload = s.body;
    }
    if (!decode_dead(s.attributes, l)) {
      // Moved by the queue's RedrivePolicy: SQS keeps no reason or times.
      l.reason = "max_receives";
      l.attempts = o.redrive_max_receives ? o.redrive_max_receives : l.message.attempts;
      const auto* sys = m.if_contains("Attributes");
      const auto first = sys && sys->is_object() ? str(sys->as_object(), "ApproximateFirstReceiveTimestamp") : std::string();
      l.first_attempt_at = first.empty() ? l.message.accepted_at : from_ms_text(first);
      l.last_attempt_at = l.first_attempt_at;
      l.dead_lettered_at = l.first_attempt_at;
    }
    l.message.attempts = l.attempts;
    return s;
  }

  void list(std::string after, std::size_t limit, callback<error_code, std::vector<dead_letter>> done) {
    scan([self = this, after = std::move(after), limit, done = std::move(done)](
             error_code ec, std::vector<scanned> all) mutable {
      if (ec) return done(ec, {});
      std::vector<std::string> handles;
      std::vector<dead_letter> out;
      for (auto& s : all) {
        handles.push_back(s.handle);
        if (s.letter.message.receipt_id > after) out.push_back(std::move(s.letter));
      }
      std::sort(out.begin(), out.end(),
                [](const dead_letter& a, const dead_letter& b) { return a.message.receipt_id < b.message.receipt_id; });
      if (out.size() > limit) out.resize(limit);
      self->give_back(self->dlq_url, std::move(handles),
                      [out = std::move(out), done = std::move(done)](error_code) mutable {
                        done(error_code{}, std::move(out));
                      });
    });
  }

  // Replay (back into the queue, attempts start again) or purge the chosen letters.
  void move_letters(std::vector<std::string> ids, bool replay, callback<error_code, std::size_t> done) {
    scan([self = this, ids = std::set<std::string>(ids.begin(), ids.end()), replay,
          done = std::move(done)](error_code ec, std::vector<scanned> all) mutable {
      if (ec) return done(ec, 0);
      std::vector<std::string> keep;
      auto chosen = std::make_shared<std::vector<scanned>>();
      for (auto& s : all) {
        if (ids.empty() || ids.count(s.letter.message.receipt_id)) chosen->push_back(std::move(s));
        else keep.push_back(s.handle);
      }
      auto kept = std::make_shared<std::vector<std::string>>(std::move(keep));
      auto remove = [self, chosen, replay, kept, done = std::move(done)](std::vector<std::size_t> which, error_code first) mutable {
        std::vector<json::object> deletes;
        for (auto i : which) deletes.push_back(json::object{{"ReceiptHandle", (*chosen)[i].handle}});
        auto count = std::make_shared<std::size_t>(0);
        self->batch_call("DeleteMessageBatch", self->dlq_url, std::move(deletes),
                         [count](std::size_t, bool ok, const std::string&) {
                           if (ok) ++*count;
                         },
                         [self, count, replay, first, kept, done = std::move(done)](error_code dec) mutable {
                           if (!replay) self->purged += *count;
                           // The letters not chosen become visible again before the answer.
                           self->give_back(self->dlq_url, std::move(*kept),
                                           [count, first, dec, done = std::move(done)](error_code) mutable {
                                             done(first ? first : dec, *count);
                                           });
                         });
      };
      if (!replay) {
        std::vector<std::size_t> all_of_them(chosen->size());
        for (std::size_t i = 0; i < chosen->size(); ++i) all_of_them[i] = i;
        return remove(std::move(all_of_them), error_code{});
      }
      std::vector<json::object> entries;
      const auto now = to_us(clock::now());
      for (const auto& s : *chosen) {
        json::object attrs;
        if (const auto* a = s.attributes.if_object())
          if (const auto* meta = a->if_contains(meta_attribute); meta && meta->is_object()) {
            json::object copy;
            for (const auto& [k, v] : meta->as_object())
              if (k == "DataType" || k == "StringValue" || k == "BinaryValue") copy[k] = v;
            attrs[meta_attribute] = std::move(copy);
          }
        json::object e{{"MessageBody", s.body}};
        if (!attrs.empty()) e["MessageAttributes"] = std::move(attrs);
        if (self->fifo) {
          e["MessageGroupId"] = self->o.group_per_key ? dedup_id(s.letter.message.idempotency_key) : self->o.message_group;
          e["MessageDeduplicationId"] = s.letter.message.receipt_id + "-r" + std::to_string(now);
        }
        entries.push_back(std::move(e));
      }
      auto sent = std::make_shared<std::vector<std::size_t>>();
      self->batch_call("SendMessageBatch", self->main_url, std::move(entries),
                       [sent](std::size_t i, bool ok, const std::string&) {
                         if (ok) sent->push_back(i);
                       },
                       [self, chosen, sent, remove = std::move(remove)](error_code sec) mutable {
                         std::vector<std::string> back;
                         std::set<std::size_t> ok(sent->begin(), sent->end());
                         for (std::size_t i = 0; i < chosen->size(); ++i)
                           if (!ok.count(i)) back.push_back((*chosen)[i].handle);
                         self->give_back(self->dlq_url, std::move(back));
                         remove(std::vector<std::size_t>(sent->begin(), sent->end()), sec);
                       });
    });
  }
};

// ---- the queue ------------------------------------------------------------------

queue::queue(executor_type ex, queue_options options) : executor_(std::move(ex)) {
  options.validate();
  engine_ = std::make_unique<engine>(std::move(options));
  engine_->open();
}

queue::~queue() { close(); }

queue::executor_type queue::get_executor() const { return executor_; }

queue_features queue::features() const {
  queue_features f;
  f.durable = true;
  f.native_dedup = engine_->fifo;
  f.fifo = engine_->fifo && !engine_->o.group_per_key;
  f.delayed_retry = true;
  f.lease_extension = true;
  f.exact_stats = false;
  f.lookup = false;
  f.dedup_window = milliseconds::zero();
  return f;
}

void queue::close() {
  if (engine_->closed.exchange(true)) return;
  asio::post(engine_->io, [e = engine_.get()] { e->cancel_fetches(); });
}

std::string queue::queue_url() const { return engine_->main_url; }
std::string queue::dead_letter_queue_url() const { return engine_->dlq_url; }
std::string queue::last_error() const {
  std::lock_guard lock(engine_->error_mutex);
  return engine_->last_error;
}

void queue::do_publish(envelope message, callback<error_code, receipt> done) {
  if (engine_->closed) return done(code(errc::shutting_down), receipt{});
  if (const auto invalid = validate_envelope(message)) return done(invalid, receipt{});
  if (engine_->publishes_pending.fetch_add(1) >= engine_->o.max_pending_publishes) {
    --engine_->publishes_pending;
    return done(code(errc::backpressure), receipt{});
  }
  asio::post(engine_->io, [e = engine_.get(), m = std::move(message), done = std::move(done)]() mutable {
    e->publish(std::move(m), std::move(done));
  });
}

void queue::do_fetch(std::size_t max, duration wait, callback<error_code, std::vector<delivery>> done) {
  if (engine_->closed) return done(code(errc::shutting_down), {});
  auto op = std::make_shared<engine::fetch_op>();
  op->max = std::max<std::size_t>(1, max);
  op->deadline = steady::now() + wait;
  op->done = std::move(done);
  asio::post(engine_->io, [e = engine_.get(), op]() mutable {
    if (e->closed) return e->complete(op, code(errc::shutting_down));
    e->start_fetch(std::move(op));
  });
}

void queue::do_settle(std::vector<settlement> decisions, callback<error_code> done) {
  asio::post(engine_->io, [e = engine_.get(), d = std::move(decisions), done = std::move(done)]() mutable {
    e->settle(std::move(d), std::move(done));
  });
}

void queue::do_extend(std::vector<std::string> tokens, duration by, callback<error_code> done) {
  asio::post(engine_->io, [e = engine_.get(), t = std::move(tokens), by, done = std::move(done)]() mutable {
    e->extend(std::move(t), by, std::move(done));
  });
}

void queue::do_stats(callback<error_code, queue_stats> done) {
  asio::post(engine_->io, [e = engine_.get(), done = std::move(done)]() mutable { e->stats(std::move(done)); });
}

void queue::do_dead_letters(std::string after, std::size_t limit, callback<error_code, std::vector<dead_letter>> done) {
  asio::post(engine_->io, [e = engine_.get(), after = std::move(after), limit, done = std::move(done)]() mutable {
    e->list(std::move(after), limit, std::move(done));
  });
}

void queue::do_replay(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) {
  asio::post(engine_->io, [e = engine_.get(), ids = std::move(receipt_ids), done = std::move(done)]() mutable {
    e->move_letters(std::move(ids), true, std::move(done));
  });
}

void queue::do_purge(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) {
  asio::post(engine_->io, [e = engine_.get(), ids = std::move(receipt_ids), done = std::move(done)]() mutable {
    e->move_letters(std::move(ids), false, std::move(done));
  });
}

}  // namespace ingest::sqs
