// The NATS queue over several streams (partitions), against a real nats-server.

#include <doctest/doctest.h>

#include <map>

#include "ingest/error.hpp"
#include "ingest/nats/queue.hpp"
#include "ingest/partitioned_queue.hpp"
#include "ingest/testing/queue_helpers.hpp"
#include "support/nats_client.hpp"
#include "support/nats_server.hpp"
#include "support/nats_shared.hpp"
#include "support/test_support.hpp"

namespace ingest::test {

namespace {

nats::queue_options partitioned(const std::string& name, int n) {
  auto o = queue_options_for(shared_server().url(), name, 30s);
  o.partitions = n;
  return o;
}

bool stream_exists(const std::string& name) {
  jsCtx* js = nullptr;
  natsConnection* conn = nullptr;
  REQUIRE(natsConnection_ConnectTo(&conn, shared_server().url().c_str()) == NATS_OK);
  REQUIRE(natsConnection_JetStream(&js, conn, nullptr) == NATS_OK);
  jsStreamInfo* info = nullptr;
  const auto s = js_GetStreamInfo(&info, js, name.c_str(), nullptr, nullptr);
  if (info) jsStreamInfo_Destroy(info);
  jsCtx_Destroy(js);
  natsConnection_Destroy(conn);
  return s == NATS_OK;
}

void check_refused(const nats::queue_options& o, const char* why) {
  io_thread io;
  try {
    auto q = nats::open_queue(io.executor(), o);
    FAIL("opened over another layout: " << std::string(why));
  } catch (const ingest::error& e) {
    CHECK(e.code() == errc::invalid_config);
    CHECK_MESSAGE(std::string(e.what()).find(why) != std::string::npos, e.what());
  }
}

}  // namespace

TEST_CASE("nats partitions: each key is stored in the stream of its partition") {
  io_thread io;
  const auto name = unique_name("ROUTE");
  auto q = nats::open_queue(io.executor(), partitioned(name, 3));
  std::map<int, std::uint64_t> expected;
  for (int i = 0; i < 90; ++i) {
    const auto key = "exam/student-" + std::to_string(i);
    REQUIRE_FALSE(publish(*q, message(key)).first);
    REQUIRE(publish(*q, message(key)).second.duplicate);
    ++expected[static_cast<int>(partition_of(key, 3))];
  }
  nats_client reader(shared_server().url());
  for (int p = 0; p < 3; ++p) {
    CHECK(reader.state(name + "-" + std::to_string(p)).messages == expected[p]);
    CHECK(expected[p] > 0);
  }
  CHECK_FALSE(stream_exists(name));
}

TEST_CASE("nats partitions: a layout for another number of partitions is refused, and nothing is created") {
  const auto name = unique_name("LAYOUT");
  {
    io_thread io;
    auto q = nats::open_queue(io.executor(), partitioned(name, 2));
  }
  check_refused(partitioned(name, 3), "where 3 partitions are asked for");
  check_refused(partitioned(name, 1), "was opened with partitions");
  CHECK_FALSE(stream_exists(name));
  CHECK_FALSE(stream_exists(name + "-2"));
  {
    io_thread io;  // the same number opens again
    auto q = nats::open_queue(io.executor(), partitioned(name, 2));
    CHECK(dynamic_cast<partitioned_queue*>(q.get())->partition_count() == 2);
  }

  const auto plain = unique_name("PLAIN");
  {
    io_thread io;
    auto q = nats::open_queue(io.executor(), partitioned(plain, 1));
  }
  check_refused(partitioned(plain, 2), "was opened without partitions");
  CHECK_FALSE(stream_exists(plain + "-0"));
}

TEST_CASE("nats partitions: a partition is opened through open_queue only") {
  io_thread io;
  try {
    nats::queue q(io.executor(), partitioned(unique_name("DIRECT"), 2));
    FAIL("opened one stream of a partitioned queue as the whole queue");
  } catch (const ingest::error& e) {
    CHECK(e.code() == errc::invalid_config);
  }
}

TEST_CASE("nats partitions: options from a URL, and each partition's names") {
  auto o = nats::queue_options::from_url("nats://127.0.0.1:4222?stream=EXAMS&subject=exams.in&partitions=4");
  CHECK(o.partitions == 4);
  CHECK(o.partition == -1);
  const auto p = o.for_partition(3);
  CHECK(p.stream == "EXAMS-3");
  CHECK(p.subject == "exams.in.3");
  CHECK(p.dead_letter_stream == "INGEST_DLQ-3");
  CHECK(p.dead_letter_subject == "ingest.dead.3");
  CHECK(p.consumer == o.consumer);
  CHECK(p.partition == 3);
  CHECK_THROWS_AS(o.for_partition(4), ingest::error);
  CHECK_THROWS_AS(nats::queue_options::from_url("nats://127.0.0.1:4222?partitions=0"), ingest::error);
  CHECK_THROWS_AS(nats::queue_options::from_url("nats://127.0.0.1:4222?partitions=65"), ingest::error);
}

}  // namespace ingest::test
