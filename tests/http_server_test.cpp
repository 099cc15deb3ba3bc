// ingest/http/server.hpp on its own, with a plain handler: answers now or later from
// another thread, pipelined requests answered in request order, a dropped responder
// answering 500, HEAD, the body and header limits, the connection cap, the counters,
// option checks, and a stop that finishes the request in hand.

#include "ingest/http/server.hpp"

#include <doctest/doctest.h>

#include <boost/asio/post.hpp>
#include <boost/beast/http/verb.hpp>
#include <future>
#include <thread>
#include <utility>
#include <vector>

#include "ingest/http/response.hpp"
#include "support/http_client.hpp"
#include "support/test_support.hpp"

using namespace ingest;
using namespace ingest::test;
using boost::beast::http::verb;
using ingest::http::status;

namespace {

// The handler of every test: /drop drops its responder, /held answers from another
// thread once the test opens the gate, anything else answers at once with its path.
struct fixture {
  io_thread io{2};
  std::promise<void> gate;
  std::shared_future<void> opened = gate.get_future().share();
  bool gate_open = false;
  std::vector<std::thread> answering;  // joined before the server and the io_context go
  http::server server;

  explicit fixture(http::server_options o = {})
      : server(io.context(), o, [this](http::request req, const http::request_info&, http::responder respond) {
          handle(std::move(req), std::move(respond));
        }) {
    server.start();
  }
  ~fixture() {
    open_gate();
    for (auto& t : answering) t.join();
    server.stop();
  }
  void open_gate() {
    if (!std::exchange(gate_open, true)) gate.set_value();
  }

  // Runs on the server's threads; `answering` is touched only by one request at a time
  // in these tests (a /held request is always answered before the next comes in).
  void handle(http::request req, http::responder respond) {
    const std::string target(req.target());
    const http::reply_to to(req);
    if (target == "/drop") return;
    if (target == "/held") {
      answering.emplace_back([to, r = std::move(respond), opened = opened]() mutable {
        opened.wait();
        r(http::json_response(to, status::ok, R"({"at":"/held"})"));
      });
      return;
    }
    respond(http::json_response(to, status::ok, R"({"at":")" + target + "\"}"));
  }
};

}  // namespace

TEST_CASE("pipelined requests are answered in request order, a later answer from another thread included") {
  fixture f;
  http_client c(f.server.port());
  CHECK(c.call(verb::get, "/now").body == R"({"at":"/now"})");
  c.send_raw("GET /held HTTP/1.1\r\nHost: x\r\n\r\nGET /quick HTTP/1.1\r\nHost: x\r\n\r\n");
  // /held is in hand (the /now before it counted too) before its answer may go.
  REQUIRE(eventually([&] { return f.server.stats().requests == 2; }));
  f.open_gate();
  CHECK(c.read().body == R"({"at":"/held"})");
  CHECK(c.read().body == R"({"at":"/quick"})");
  const auto st = f.server.stats();
  CHECK(st.requests == 3);
  CHECK(st.connections_total == 1);
  CHECK(st.connections_open == 1);
}

TEST_CASE("a dropped responder answers 500, and the connection goes on") {
  fixture f;
  http_client c(f.server.port());
  CHECK(c.call(verb::get, "/drop").status == 500);
  CHECK(c.call(verb::get, "/now").status == 200);
}

TEST_CASE("a responder made from a function delivers once; dropped, it delivers a 500") {
  std::vector<int> got;
  {
    http::responder r([&](http::response res) { got.push_back(res.result_int()); });
    CHECK(static_cast<bool>(r));
    CHECK_FALSE(r.executor());
    r(http::json_response(http::reply_to{}, status::accepted, "{}"));
    CHECK_FALSE(static_cast<bool>(r));
    r(http::json_response(http::reply_to{}, status::ok, "{}"));  // ignored
  }
  {
    http::responder dropped([&](http::response res) { got.push_back(res.result_int()); });
  }
  CHECK(got == std::vector<int>{202, 500});
}

TEST_CASE("HEAD gets GET's headers, Content-Length included, and no content") {
  fixture f;
  http_client c(f.server.port());
  const auto get = c.call(verb::get, "/now");
  const auto head = c.head("/now");
  CHECK(head.status == 200);
  CHECK(head.headers["Content-Length"] == get.headers["Content-Length"]);
  CHECK(head.body.empty());
  CHECK(c.leftover() == 0);
  CHECK(get.headers["Server"] == "ingest");
}

TEST_CASE("bodies and headers over their limits get 413 and 431") {
  fixture f({.max_header_bytes = 1024, .max_body_bytes = 100});
  {
    http_client c(f.server.port());
    CHECK(c.call(verb::post, "/now", {}, std::string(100, 'x')).status == 200);
  }
  {
    http_client c(f.server.port());
    CHECK(c.call(verb::post, "/now", {}, std::string(101, 'x')).status == 413);
  }
  {
    http_client c(f.server.port());
    CHECK(c.call(verb::get, "/now", {{"X-Big", std::string(2000, 'h')}}).status == 431);
  }
}

TEST_CASE("connections over the cap are closed at once and counted") {
  fixture f({.max_connections = 2});
  http_client a(f.server.port()), b(f.server.port());
  CHECK(a.call(verb::get, "/now").status == 200);
  CHECK(b.call(verb::get, "/now").status == 200);
  http_client over(f.server.port());
  CHECK(over.closed_by_server());
  CHECK(eventually([&] { return f.server.stats().connections_refused == 1; }));
  CHECK(f.server.stats().connections_open == 2);
}

TEST_CASE("stop() finishes the request in hand with Connection: close, and refuses new connections") {
  fixture f;
  const auto port = f.server.port();
  http_client c(port);
  c.send_raw("GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(eventually([&] { return f.server.stats().requests == 1; }));
  f.server.stop();
  CHECK(f.server.stopping());
  f.open_gate();  // the answer comes after the stop
  const auto r = c.read();
  CHECK(r.status == 200);
  CHECK(r.headers["Connection"] == "close");
  CHECK(c.closed_by_server());
  CHECK_THROWS(http_client(port).call(verb::get, "/now"));
}

TEST_CASE("options are checked before the server starts") {
  CHECK_THROWS_AS(http::server_options{.tls_cert_file = "cert.pem"}.validate(), ingest::error);
  CHECK_THROWS_AS(http::server_options{.max_connections = 0}.validate(), ingest::error);
  CHECK_NOTHROW(http::server_options{}.validate());
}
