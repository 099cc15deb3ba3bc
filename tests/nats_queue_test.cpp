#include "ingest/nats/queue.hpp"

#include <doctest/doctest.h>

#include <atomic>

#include "conformance/queue_conformance.hpp"
#include "ingest/error.hpp"
#include "support/nats_server.hpp"

namespace ingest::test {

namespace {

// One nats-server for the whole binary; every backend instance gets its own streams.
nats_server& shared_server() {
  static temp_dir dir;
  static nats_server server(dir.path() / "shared");
  return server;
}

nats::queue_options options_for(const std::string& url, const std::string& name, std::chrono::milliseconds ack_wait) {
  nats::queue_options o;
  o.servers = {url};
  o.stream = name;
  o.subject = "ingest." + name;
  o.dead_letter_stream = name + "_DLQ";
  o.dead_letter_subject = "ingest." + name + ".dead";
  o.consumer = name + "_workers";
  o.ack_wait = ack_wait;
  return o;
}

std::string unique_name(const char* prefix) {
  static std::atomic<int> n{0};
  return std::string(prefix) + std::to_string(::getpid()) + "_" + std::to_string(n++);
}

}  // namespace

struct nats_backend {
  static constexpr const char* name = "nats";
  explicit nats_backend(boost::asio::any_io_executor ex) : ex_(ex), stream_(unique_name("CONF")) {}
  std::unique_ptr<durable_queue> open(std::chrono::milliseconds visibility) {
    return std::make_unique<nats::queue>(ex_, options_for(shared_server().url(), stream_, visibility));
  }
  boost::asio::any_io_executor ex_;
  std::string stream_;
};

TEST_CASE_TEMPLATE_APPLY(ingest_queue_conformance, std::tuple<nats_backend>);

TEST_CASE("nats: an existing stream with another configuration is an error, not a silent change") {
  io_thread io;
  const auto name = unique_name("MISMATCH");
  auto o = options_for(shared_server().url(), name, 30s);
  { nats::queue first(io.executor(), o); }
  o.duplicate_window = 5min;
  try {
    nats::queue second(io.executor(), o);
    FAIL("accepted a mismatching stream");
  } catch (const ingest::error& e) {
    CHECK(e.code() == errc::invalid_config);
    CHECK(std::string(e.what()).find("duplicate window") != std::string::npos);
  }
}

TEST_CASE("nats: a full stream refuses new work (DiscardNew) and keeps what it has") {
  io_thread io;
  auto o = options_for(shared_server().url(), unique_name("FULL"), 30s);
  o.max_messages = 3;
  nats::queue q(io.executor(), o);
  for (int i = 0; i < 3; ++i) REQUIRE_FALSE(publish(q, message("f" + std::to_string(i))).first);
  auto [ec, r] = publish(q, message("f3"));
  CHECK(ec == errc::queue_full);
  CHECK(r.id.empty());
  auto [fec, got] = fetch(q, 10, 1s);
  CHECK(got.size() == 3);
}

TEST_CASE("nats: no server means an error at once, not a hang") {
  io_thread io;
  auto o = options_for("nats://127.0.0.1:" + std::to_string(free_port()), "NOSERVER", 30s);
  o.request_timeout = 500ms;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    nats::queue q(io.executor(), o);
    FAIL("connected to nothing");
  } catch (const ingest::error& e) {
    CHECK(e.code() == errc::backend_unavailable);
  }
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
}

TEST_CASE("nats options from a URL") {
  auto o = nats::queue_options::from_url(
      "nats://alice:secret@127.0.0.1:4222,127.0.0.1:4223?stream=EXAMS&replicas=3&duplicate_window=10m&ack_wait=45s");
  CHECK(o.servers == std::vector<std::string>{"nats://127.0.0.1:4222", "nats://127.0.0.1:4223"});
  CHECK(o.user == "alice");
  CHECK(o.password == "secret");
  CHECK(o.stream == "EXAMS");
  CHECK(o.replicas == 3);
  CHECK(o.duplicate_window == std::chrono::minutes(10));
  CHECK(o.ack_wait == std::chrono::seconds(45));
  auto t = nats::queue_options::from_url("tls://tok3n@nats.example:4443?storage=memory");
  CHECK(t.tls);
  CHECK(t.token == "tok3n");
  CHECK_FALSE(t.file_storage);
  CHECK_THROWS_AS(nats::queue_options::from_url("http://x"), ingest::error);
  CHECK_THROWS_AS(nats::queue_options::from_url("nats://h:1?replicas=9"), ingest::error);
  CHECK_THROWS_AS(nats::queue_options::from_url("nats://h:1?colour=red"), ingest::error);
}

}  // namespace ingest::test
