#pragma once
// The engine behind ingest::sqs::queue: the state it keeps and the steps of each
// operation. The constructor, `open`, `resolve_queue`, `call_sync` and the destructor
// run on the owner's thread; every other member function (`recreate` and `call`
// included) runs on the engine's own I/O thread, so only `closed`, `publishes_pending`
// and `last_error`, which the queue's callers read, are guarded. Each section's functions are defined in the file it
// names.

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "aws/http_client.hpp"
#include "ingest/error.hpp"
#include "ingest/sqs/queue.hpp"
#include "wire.hpp"

namespace ingest::sqs {

// Names every part of the engine uses (this header is included by those parts only).
namespace asio = boost::asio;
namespace json = boost::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using steady = std::chrono::steady_clock;
using namespace detail::wire;

inline boost::system::error_code code(errc e) {
  return make_error_code(e);
}

struct queue::engine {
  using reply_fn = ingest::detail::callback<void(aws_reply)>;

  // ---- set-up (setup.cpp) --------------------------------------------------------

  explicit engine(queue_options options);
  ~engine();

  static std::int64_t whole_seconds(milliseconds d) { return std::min<std::int64_t>(43200, (d.count() + 999) / 1000); }

  queue_options o;
  const bool fifo;
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work;
  aws::detail::http_client http;
  aws::detail::endpoint ep;
  std::thread thread;
  std::int64_t visibility_s = 30;
  std::string main_url, dlq_url;
  std::atomic<bool> closed{false};
  std::atomic<std::size_t> publishes_pending{0};
  mutable std::mutex error_mutex;
  std::string last_error;
  std::mt19937_64 rng{std::random_device{}()};

  json::object main_attributes, dlq_attributes;  // as created
  bool recreating = false;

  void recreate();
  std::string resolve_queue(const std::string& name, json::object attributes);
  void open();

  // ---- one AWS call (calls.cpp) --------------------------------------------------

  void note_error(const std::string& text);
  void call(const char* action, json::object request, milliseconds timeout, reply_fn done);
  aws_reply interpret(const std::string& action, boost::system::error_code ec, aws::detail::http_result r);
  aws_reply call_sync(const char* action, json::object request);

  // Runs `entries` through a batch action 10 at a time; `on_entry(id, ok, code)` per
  // entry, then `done(request_error)` once every request answered.
  struct batch_job;
  void batch_call(const char* action, const std::string& url, std::vector<json::object> entries,
                  std::function<void(std::size_t, bool, const std::string&)> on_entry,
                  ingest::detail::callback<void(error_code)> done);

  // ---- publish (publish.cpp) -----------------------------------------------------

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

  void forget_old_keys();
  void publish(envelope m, const receipt_signer* signer, callback<error_code, receipt> done);
  std::size_t send_slots() const { return fifo && !o.group_per_key ? 1 : o.max_send_batches; }
  void pump();
  void finish(const std::shared_ptr<outgoing>& out, error_code ec);
  void resend(const std::shared_ptr<outgoing>& out, error_code why);
  void send_batch(std::vector<std::shared_ptr<outgoing>> batch);
  void sent(std::vector<std::shared_ptr<outgoing>> batch, aws_reply r);

  // ---- leases, fetch and extend (fetch.cpp) --------------------------------------

  struct lease {
    envelope message;
    time_point first_attempt_at;
    steady::time_point expires;
  };
  std::unordered_map<std::string, lease> leases;         // by receipt handle
  std::unordered_map<std::string, std::string> holders;  // receipt id -> latest handle

  delivery take(const json::object& msg);
  void drop_lease(std::unordered_map<std::string, lease>::iterator it);
  void sweep_leases();

  struct fetch_op {
    std::size_t max;
    steady::time_point deadline;
    callback<error_code, std::vector<delivery>> done;
    std::vector<delivery> got;
    std::size_t outstanding = 0;
    bool finished = false;
  };
  std::set<std::shared_ptr<fetch_op>> fetches;

  void start_fetch(std::shared_ptr<fetch_op> op);
  void complete(const std::shared_ptr<fetch_op>& op, error_code ec);
  json::object receive_request(const std::string& url, std::size_t n, std::int64_t wait_s, std::int64_t visibility);
  void give_back(
      const std::string& url, std::vector<std::string> handles,
      ingest::detail::callback<void(error_code)> then = [](error_code) {});
  void poll(std::shared_ptr<fetch_op> op, bool first = true);
  void round_over(const std::shared_ptr<fetch_op>& op, error_code ec, std::size_t calls);
  void received(const std::shared_ptr<fetch_op>& op, const aws_reply& r);
  void fill(const std::shared_ptr<fetch_op>& op);
  void cancel_fetches();
  void extend(std::vector<std::string> tokens, milliseconds by, callback<error_code> done);

  // ---- settle (settle.cpp) -------------------------------------------------------

  std::uint64_t processed = 0, purged = 0;

  struct settle_job;
  void settle(std::vector<settlement> decisions, callback<error_code> done);
  void bury(std::vector<std::pair<lease, settlement>> items, ingest::detail::callback<void(error_code)> done);

  // ---- stats (stats.cpp) ---------------------------------------------------------

  void stats(callback<error_code, queue_stats> done);

  // ---- dead-letter queue operations (admin.cpp) ----------------------------------

  struct scanned {
    dead_letter letter;
    std::string handle;
    std::string body;
    json::value attributes;
  };
  using scan_fn = ingest::detail::callback<void(error_code, std::vector<scanned>)>;
  bool scanning = false;
  std::deque<ingest::detail::callback<void()>> scan_queue;  // one scan at a time

  void scan(scan_fn done);
  void scan_finished();
  void scan_more(std::shared_ptr<std::vector<scanned>> all, int empty_rounds, scan_fn done);
  scanned to_letter(const json::object& m);
  void list(std::string after, std::size_t limit, callback<error_code, std::vector<dead_letter>> done);
  void move_letters(std::vector<std::string> ids, bool replay, callback<error_code, std::size_t> done);
};

}  // namespace ingest::sqs
