// The exam servers' connections under the HTTP layer's rules: pipelined requests
// answered in order, malformed requests, slow and silent clients cut off by the read
// and write deadlines, HTTPS, and how connections are spread over the threads.

#include <doctest/doctest.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/http/verb.hpp>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "support/exam_fixture.hpp"

using namespace ingest;
using namespace ingest::test;
using namespace std::chrono_literals;

TEST_CASE("HTTP edges: pipelined requests answered in order, malformed requests, slow clients cut off") {
  exam_fixture f(kind::queue_memory);
  auto c = f.client();
  c.send_raw(
      "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: "
      "x\r\n\r\n");
  CHECK(c.read().status == 200);
  CHECK(c.read().status == 404);
  CHECK(c.read().status == 200);

  auto bad = f.client();
  bad.send_raw("NOT HTTP AT ALL\r\n\r\n");
  CHECK(bad.read().status == 400);
  CHECK(bad.closed_by_server());

  auto headers = f.client();
  headers.send_raw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n");
  CHECK(headers.read().status == 431);
  std::string many = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 3000; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  auto too_many = f.client();
  too_many.send_raw(many + "\r\n");
  CHECK(too_many.read().status == 431);

  // The body trickled a byte at a time: the deadline covers the whole request, so
  // steady progress does not keep the connection open past it.
  auto trickle = f.client();
  trickle.send_raw("POST /v1/exams/open/submissions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token("s1") +
                   "\r\nContent-Type: application/json\r\nIdempotency-Key: k-trickle\r\nContent-Length: 100\r\n\r\n");
  const auto start = std::chrono::steady_clock::now();
  bool cut = false;
  for (int i = 0; i < 40 && !cut; ++i) {
    std::this_thread::sleep_for(200ms);
    try {
      trickle.send_raw("{");
    } catch (const std::exception&) {
      cut = true;
    }
  }
  CHECK((cut || trickle.closed_by_server()));
  CHECK(std::chrono::steady_clock::now() - start < 6s);
  CHECK(f.rows() == 0);

  // Slowloris: half a request, then nothing; the read deadline (2 s here) closes it.
  auto slow = f.client();
  slow.send_raw("POST /v1/exams/open/submissions HTTP/1.1\r\nHost: x\r\n");
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(slow.closed_by_server());
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  CHECK(f.server->stats().timeouts >= 1);
}

TEST_CASE("a client that sends requests but never reads the answers is cut off by the write deadline") {
  exam_fixture f(kind::queue_memory, {}, 1h, true, 1000ms, "", {.read_timeout = 5s, .write_timeout = 500ms});
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket s(io);
  s.connect({boost::asio::ip::make_address("127.0.0.1"), f.server->port()});
  s.non_blocking(true);
  // Pipelined /metrics requests (a few hundred bytes each, answers of kilobytes): the
  // answers fill both socket buffers, the server's write stalls, and its deadline must
  // close the connection. Sending stops with an error once it is closed.
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string burst;
  for (int i = 0; i < 64; ++i) burst += req;
  const auto start = std::chrono::steady_clock::now();
  boost::system::error_code ec;
  std::size_t sent = 0;
  while (std::chrono::steady_clock::now() - start < 20s) {
    sent += s.write_some(boost::asio::buffer(burst), ec);
    if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) {
      ec.clear();
      std::this_thread::sleep_for(20ms);
      continue;
    }
    if (ec) break;
  }
  INFO("sent " << sent << " bytes; last error: " << ec.message());
  CHECK((ec == boost::asio::error::connection_reset || ec == boost::asio::error::broken_pipe));
  CHECK(std::chrono::steady_clock::now() - start < 15s);
  // The server keeps serving others.
  auto other = f.client();
  other.send_raw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(other.read().status == 200);
}

TEST_CASE("HTTPS: submissions over TLS; plain HTTP and silent clients on the TLS port are cut off") {
  test_certificates certs;
  const auto &cert = certs.cert, &key = certs.key, &other = certs.other;
  exam_fixture f(kind::queue_sqlite, {}, 1h, true, 1000ms, "",
                 {.read_timeout = 1s, .tls_cert_file = cert, .tls_key_file = key});
  const auto port = f.server->port();
  http_client c(port, cert);
  auto first = f.submit(c, "open", token("s1"), "k-tls");
  CHECK(first.status == 202);
  auto again = f.submit(c, "open", token("s1"), "k-tls");
  CHECK(again.field("receipt_id") == first.field("receipt_id"));
  REQUIRE(f.written(1));
  CHECK(c.call(verb::get, "/v1/submissions/" + first.field("receipt_id"), {{"Authorization", "Bearer " + token("s1")}})
            .status == 200);

  // Plain HTTP on the TLS port gets no answer; a client that never says hello is cut
  // off by the read deadline; a client that trusts another CA refuses the server.
  auto plain = f.client();
  plain.send_raw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(plain.closed_by_server());
  auto silent = f.client();
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(silent.closed_by_server());
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  CHECK_THROWS(http_client(port, other));
  CHECK(eventually([&] { return f.server->stats().tls_failures >= 3; }));
  CHECK(f.rows() == 1);

  // Misconfiguration is refused up front.
  CHECK_THROWS_AS(http::server(f.io->context(), {.tls_cert_file = cert}, [](auto, const auto&, auto) {}),
                  ingest::error);
  http::server missing(f.io->context(), {.tls_cert_file = certs.dir.file("none.pem"), .tls_key_file = key},
                       [](auto, const auto&, auto) {});
  CHECK_THROWS_AS(missing.start(), ingest::error);
}

TEST_CASE("a responder names its connection's strand; an answer made there is written without a hand-off") {
  io_thread io(2);
  std::atomic<int> on_strand{0}, answered{0};
  http::server srv(io.context(), {}, [&](http::request req, const http::request_info&, http::responder respond) {
    auto ex = respond.executor();
    // Answer later, from a completion bound to that executor (as the exam server does
    // with the producer's receipt).
    boost::asio::post(
        boost::asio::bind_executor(ex, [&, ex, req = std::move(req), respond = std::move(respond)]() mutable {
          const auto* strand = ex.target<boost::asio::strand<boost::asio::io_context::executor_type>>();
          if (strand && strand->running_in_this_thread()) ++on_strand;
          respond(http::json_response(req, http::status::ok, R"({"ok":true})"));
          if (!respond.executor()) ++answered;  // a responder that has answered names no executor
        }));
  });
  srv.start();
  http_client c(srv.port());
  for (int i = 0; i < 3; ++i) CHECK(c.call(verb::get, "/x").status == 200);
  CHECK(on_strand == 3);  // counted before the answer was sent
  // Counted after the answer was sent, so possibly after the client read it.
  CHECK(eventually([&] { return answered == 3; }));
  srv.stop();

  // A responder made from a function has no connection, so no executor.
  http::response got;
  http::responder detached([&got](http::response r) { got = std::move(r); });
  CHECK_FALSE(detached.executor());
  detached(http::response{http::status::ok, 11});
  CHECK(got.result() == http::status::ok);
}

TEST_CASE("a server on several io_contexts spreads its connections over them, round-robin") {
  io_thread a, b;
  std::vector<boost::asio::io_context*> loops{&a.context(), &b.context()};
  std::mutex m;
  std::map<std::uint64_t, std::set<int>> seen;  // connection -> the contexts its requests ran on
  http::server srv(loops, {}, [&](http::request req, const http::request_info& info, http::responder respond) {
    int where = -1;
    for (int i = 0; i < 2; ++i)
      if (loops[i]->get_executor().running_in_this_thread()) where = i;
    {
      std::lock_guard lock(m);
      seen[info.connection].insert(where);
    }
    respond(http::json_response(req, http::status::ok, R"({"ok":true})"));
  });
  srv.start();
  {
    std::vector<std::unique_ptr<http_client>> clients;
    for (int i = 0; i < 6; ++i) clients.push_back(std::make_unique<http_client>(srv.port()));
    for (int round = 0; round < 3; ++round)
      for (auto& c : clients) CHECK(c->call(verb::get, "/x").status == 200);
  }
  srv.stop();
  std::lock_guard lock(m);
  REQUIRE(seen.size() == 6);
  std::map<int, int> per_context;
  for (const auto& [connection, where] : seen) {
    CHECK(where.size() == 1);  // a connection stays on its context
    ++per_context[*where.begin()];
  }
  CHECK(per_context[0] == 3);
  CHECK(per_context[1] == 3);

  // No context, or a null one, is refused up front.
  auto ok = [](auto, const auto&, auto) {};
  CHECK_THROWS_AS(http::server(std::vector<boost::asio::io_context*>{}, {}, ok), ingest::error);
  CHECK_THROWS_AS(http::server(std::vector<boost::asio::io_context*>{&a.context(), nullptr}, {}, ok), ingest::error);
}
