// The NATS queue over several streams (partitions), against a real nats-server.

#include <doctest/doctest.h>

#include <fstream>
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

// A stream made by another program, named as a partition of `base` might be.
void add_foreign_stream(const std::string& url, const std::string& name, const std::string& description = "") {
  natsConnection* conn = nullptr;
  jsCtx* js = nullptr;
  REQUIRE(natsConnection_ConnectTo(&conn, url.c_str()) == NATS_OK);
  REQUIRE(natsConnection_JetStream(&js, conn, nullptr) == NATS_OK);
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name.c_str();
  const auto subject = "foreign." + name;
  const char* subjects[] = {subject.c_str()};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  if (!description.empty()) cfg.Description = description.c_str();
  jsStreamInfo* info = nullptr;
  CHECK(js_AddStream(&info, js, &cfg, nullptr, nullptr) == NATS_OK);
  if (info) jsStreamInfo_Destroy(info);
  jsCtx_Destroy(js);
  natsConnection_Destroy(conn);
}

void check_refused(const nats::queue_options& o, const std::string& why) {
  io_thread io;
  try {
    auto q = nats::open_queue(io.executor(), o);
    FAIL("opened over another layout: " << why);
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

TEST_CASE("nats partitions: every stream named as a partition is seen, and only those") {
  const auto name = unique_name("WIDE");
  // Beyond the partitions asked for, left by a layout of 8.
  add_foreign_stream(shared_server().url(), name + "-5", "ingest queue partition 5 of 8");
  check_refused(partitioned(name, 2), "stream " + std::string(name) + "-5 exists");
  check_refused(partitioned(name, 1), "was opened with partitions");
  CHECK_FALSE(stream_exists(name + "-0"));

  // Not a partition's name, though described as one: another program's streams.
  const auto other = unique_name("YEAR");
  add_foreign_stream(shared_server().url(), other + "-2024", "ingest queue partition 2024 of 3000");
  add_foreign_stream(shared_server().url(), other + "-07", "ingest queue partition 7 of 8");
  add_foreign_stream(shared_server().url(), other + "-3");  // named as one, not made as one
  io_thread io;
  CHECK_NOTHROW(nats::open_queue(io.executor(), partitioned(other, 2)));
  const auto plain = unique_name("YEARPLAIN");
  add_foreign_stream(shared_server().url(), plain + "-64", "ingest queue partition 64 of 65");
  add_foreign_stream(shared_server().url(), plain + "-0");
  CHECK_NOTHROW(nats::open_queue(io.executor(), partitioned(plain, 1)));
}

TEST_CASE("nats partitions: an account that may not list streams is checked stream by stream") {
  REQUIRE(nats_server::available());
  temp_dir dir;
  const auto conf = dir.path() / "auth.conf";
  {
    std::ofstream out(conf);
    out << "authorization { users = [ {user: limited, password: secret, permissions: { publish: { allow: \">\", "
           "deny: [\"$JS.API.STREAM.NAMES\", \"$JS.API.STREAM.LIST\"] } } } ] }\n";
  }
  nats_server server(dir.path() / "n", "limited", {"-c", conf.string()});
  const auto name = unique_name("LIMITED");
  auto options = [&](int n) {
    auto o = queue_options_for(server.url(), name, 30s);
    o.user = "limited";
    o.password = "secret";
    o.request_timeout = 1s;  // a denied request is answered by its timeout
    o.partitions = n;
    return o;
  };
  {
    io_thread io;
    auto q = nats::open_queue(io.executor(), options(2));
    REQUIRE_FALSE(publish(*q, message("k")).first);
  }
  check_refused(options(3), "where 3 partitions are asked for");
  check_refused(options(1), "was opened with partitions");
  io_thread io;
  CHECK_NOTHROW(nats::open_queue(io.executor(), options(2)));
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
