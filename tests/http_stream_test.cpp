// responder::open_stream: a response written in pieces (server-sent events). The head
// first, then the pieces in order; no deadline while idle; the end seen once whatever
// ends it (the client leaving, close(), a client that does not read, stop()); HEAD and
// a responder without a connection.

#include <doctest/doctest.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <mutex>
#include <thread>

#include "ingest/http/response.hpp"
#include "ingest/http/server.hpp"
#include "support/http_client.hpp"
#include "support/test_support.hpp"

using namespace ingest;
using namespace ingest::test;
using namespace std::chrono_literals;

namespace {

// Every request opens a stream; the test holds it.
struct stream_fixture {
  io_thread io{2};
  std::mutex mutex;
  std::vector<std::shared_ptr<http::body_stream>> streams;
  std::atomic<int> ended{0};
  http::server server;

  explicit stream_fixture(http::server_options o = {})
      : server(io.context(), o, [this](http::request req, const http::request_info&, http::responder respond) {
          http::response head{http::status::ok, req.version()};
          head.set(boost::beast::http::field::content_type, "text/event-stream");
          head.body() = "dropped";
          auto s = respond.open_stream(std::move(head), [this] { ++ended; });
          std::lock_guard lock(mutex);
          streams.push_back(std::move(s));
        }) {
    server.start();
  }
  ~stream_fixture() { server.stop(); }
  std::shared_ptr<http::body_stream> stream(std::size_t i) {
    REQUIRE(eventually([&] {
      std::lock_guard lock(mutex);
      return streams.size() > i;
    }));
    std::lock_guard lock(mutex);
    return streams[i];
  }
};

}  // namespace

TEST_CASE("a stream: the head (no length, Connection: close), then the pieces in order, no deadline while idle") {
  stream_fixture f({.read_timeout = 200ms, .write_timeout = 200ms});
  http_client c(f.server.port());
  c.send_raw("GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
  auto s = f.stream(0);
  auto head = c.read_until("\r\n\r\n");
  CHECK(head.find("HTTP/1.1 200 OK\r\n") == 0);
  CHECK(head.find("Content-Type: text/event-stream\r\n") != std::string::npos);
  CHECK(head.find("Connection: close\r\n") != std::string::npos);
  CHECK(head.find("Content-Length") == std::string::npos);
  CHECK(head.find("dropped") == std::string::npos);
  CHECK(f.server.stats().streams_open == 1);
  std::this_thread::sleep_for(1s);  // five times both timeouts: nothing closes an idle stream
  CHECK(s->open());
  for (int i = 0; i < 100; ++i) CHECK(s->write("data: " + std::to_string(i) + "\n\n"));
  auto body = c.read_until("data: 99\n\n");
  std::string expected;
  for (int i = 0; i < 100; ++i) expected += "data: " + std::to_string(i) + "\n\n";
  CHECK(body == expected);
  s->write("data: last\n\n");
  s->close();
  CHECK(c.read_until("never") == "data: last\n\n");  // what was queued, then the end
  CHECK(eventually([&] { return f.ended == 1; }));
  CHECK_FALSE(s->open());
  CHECK_FALSE(s->write("data: late\n\n"));
  CHECK(eventually([&] { return f.server.stats().streams_open == 0; }));
}

TEST_CASE("a client that leaves ends its stream once; another stream goes on") {
  stream_fixture f;
  auto a = std::make_unique<http_client>(f.server.port());
  http_client b(f.server.port());
  a->send_raw("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  auto sa = f.stream(0);
  b.send_raw("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
  auto sb = f.stream(1);
  CHECK(f.server.stats().streams_open == 2);
  a.reset();  // the client closes its socket
  CHECK(eventually([&] { return !sa->open(); }));
  CHECK(f.ended == 1);
  CHECK_FALSE(sa->write("data: x\n\n"));
  CHECK(sb->write("data: still\n\n"));
  CHECK(b.read_until("data: still\n\n").find("data: still\n\n") != std::string::npos);
  CHECK(f.ended == 1);
  CHECK(f.server.stats().streams_open == 1);
}

TEST_CASE("a client that does not read: the stream ends past max_stream_backlog, the server goes on") {
  stream_fixture f({.max_stream_backlog = 64 * 1024});
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket quiet(io);
  quiet.connect({boost::asio::ip::make_address("127.0.0.1"), f.server.port()});
  const int small = 4096;
  ::setsockopt(quiet.native_handle(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  boost::asio::write(quiet, boost::asio::buffer(std::string("GET /q HTTP/1.1\r\nHost: x\r\n\r\n")));
  auto s = f.stream(0);
  const std::string piece(16 * 1024, 'x');
  int written = 0;
  for (; written < 20000 && s->open(); ++written) {
    s->write(piece);
    if (written % 64 == 0) std::this_thread::sleep_for(1ms);  // lets the writes block
  }
  CHECK(eventually([&] { return !s->open(); }));
  CHECK(written < 20000);
  CHECK(f.ended == 1);
  http_client other(f.server.port());
  other.send_raw("GET /o HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(f.stream(1)->write("data: ok\n\n"));
  CHECK(other.read_until("data: ok").find("data: ok") != std::string::npos);
}

TEST_CASE("stop() ends open streams; HEAD gets the head alone; no connection: the head, already ended") {
  SUBCASE("stop") {
    stream_fixture f;
    http_client c(f.server.port());
    c.send_raw("GET /s HTTP/1.1\r\nHost: x\r\n\r\n");
    auto s = f.stream(0);
    f.server.stop();
    CHECK(eventually([&] { return !s->open(); }));
    CHECK(f.ended == 1);
    CHECK(c.closed_by_server());
  }
  SUBCASE("HEAD") {
    stream_fixture f;
    http_client c(f.server.port());
    auto r = c.head("/h");
    CHECK(r.status == 200);
    CHECK(r.headers["Content-Type"] == "text/event-stream");
    CHECK(r.body.empty());
    CHECK_FALSE(f.stream(0)->open());
    CHECK(f.ended == 1);
    CHECK(c.closed_by_server());
  }
  SUBCASE("function responder") {
    std::optional<http::response> got;
    int ended = 0;
    http::responder r([&](http::response x) { got = std::move(x); });
    http::response head{http::status::ok, 11};
    auto s = r.open_stream(std::move(head), [&] { ++ended; });
    CHECK(got);
    CHECK(ended == 1);
    CHECK_FALSE(s->open());
    CHECK_FALSE(s->write("x"));
    CHECK_FALSE(r);
  }
}
