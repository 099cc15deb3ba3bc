// A fetch that starts with deliveries already waiting on the queue's subscription:
// answers to a pull request that outlived the fetch which sent it (typically after a
// reconnect to another node of a cluster) arrive while no fetch runs. nats.c before
// 3.10 wrote past the array it returns when such a fetch then received more than its
// batch (nats.c pull request #749); Debian 12 ships 3.4.1. The queue must hand out at
// most `max` deliveries per fetch, each message once, and never corrupt its heap.

#include <doctest/doctest.h>
#include <nats/nats.h>

#include <atomic>
#include <map>
#include <string>
#include <thread>

#include "ingest/nats/queue.hpp"
#include "ingest/testing/queue_helpers.hpp"
#include "support/nats_client.hpp"
#include "support/nats_server.hpp"
#include "support/test_support.hpp"

namespace ingest::test {
namespace {

using namespace std::chrono_literals;

// The inbox of the queue's pull subscription, read from one of its own pull requests
// (a plain subscriber on the consumer's request subject receives a copy).
std::string queue_inbox(nats::queue& q, nats_client& other, const std::string& next_subject) {
  natsSubscription* watch = nullptr;
  REQUIRE(natsConnection_SubscribeSync(&watch, other.connection(), next_subject.c_str()) == NATS_OK);
  REQUIRE(natsConnection_Flush(other.connection()) == NATS_OK);
  fetch(q, 1, 50ms);  // nothing to fetch: one request, then the fetch times out
  natsMsg* request = nullptr;
  const auto s = natsSubscription_NextMsg(&request, watch, 5000);
  std::string inbox = s == NATS_OK && natsMsg_GetReply(request) ? natsMsg_GetReply(request) : "";
  natsMsg_Destroy(request);
  natsSubscription_Destroy(watch);
  REQUIRE_FALSE(inbox.empty());
  return inbox;
}

// The stream sequence of a delivery token ("sequence:attempt").
std::string sequence_of(const delivery& d) {
  return d.token.substr(0, d.token.find(':'));
}

}  // namespace

TEST_CASE("nats: deliveries waiting on the subscription when a fetch starts, and more arriving, stay within max") {
  temp_dir dir;
  nats_server server(dir.path() / "backlog");
  io_thread io;
  const auto o = queue_options_for(server.url(), "BACKLOG");
  nats::queue q(io.executor(), o);
  nats_client other(server.url());
  const std::string next = "$JS.API.CONSUMER.MSG.NEXT." + o.stream + "." + o.consumer;
  const auto inbox = queue_inbox(q, other, next);
  std::this_thread::sleep_for(200ms);  // that request's expiry passes (its 408 waits on the inbox too)

  constexpr int waiting = 30, available = 200;
  constexpr std::size_t max = 40;
  auto publish = [&](int from, int n) {
    for (int i = from; i < from + n; ++i)
      REQUIRE(other.publish(o.subject, "{\"n\":" + std::to_string(i) + "}", {{"Nats-Msg-Id", std::to_string(i)}}));
  };
  publish(0, waiting);
  // A request nobody's fetch sent, answered into the queue's inbox while no fetch runs.
  other.pull(next, inbox, waiting, 0);
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (other.ack_pending(o.stream, o.consumer) < waiting && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(10ms);
  REQUIRE(other.ack_pending(o.stream, o.consumer) == waiting);
  publish(waiting, available);
  // The fetch takes the 30 waiting and asks for more; while it waits for its slice to
  // end, the answer to another late request arrives.
  std::atomic<bool> pulled{false};
  std::thread late([&] {
    std::this_thread::sleep_for(60ms);
    try {
      other.pull(next, inbox, 100, 0);
      pulled = true;
    } catch (...) {  // the failed REQUIRE is reported; the test goes on to its CHECK
    }
  });
  auto [ec, got] = fetch(q, max, 2s);
  late.join();
  REQUIRE(pulled);
  CHECK_FALSE(ec);
  CHECK(got.size() <= max);

  // Every message comes out exactly once, in fetches of at most `max`.
  std::map<std::string, int> seen;
  auto count = [&](const std::vector<delivery>& ds) {
    CHECK(ds.size() <= max);
    for (const auto& d : ds) ++seen[sequence_of(d)];
    CHECK_FALSE(ack(q, ds));
  };
  count(got);
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (seen.size() < waiting + available && std::chrono::steady_clock::now() < deadline) count(fetch(q, max, 500ms).second);
  CHECK(seen.size() == waiting + available);
  for (const auto& [sequence, times] : seen) CHECK_MESSAGE(times == 1, "stream sequence " << sequence);
}

}  // namespace ingest::test
