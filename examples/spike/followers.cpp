#include "followers.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <string_view>

#include "json_text.hpp"
#include "server_process.hpp"

namespace spike {

using asio::awaitable;
using asio::use_awaitable;
namespace bhttp = beast::http;

struct followers::one {
  explicit one(asio::any_io_executor ex) : stream(ex) {}
  beast::tcp_stream stream;
};

followers::followers(const settings& s, const run_plan& plan, std::vector<server_address> servers)
    : s_(s), plan_(plan), servers_(std::move(servers)) {}

followers::~followers() {
  if (thread_.joinable()) {
    io_.stop();
    thread_.join();
  }
}

namespace {

// The request a follower's page sends first: one submission, as a student.
bhttp::request<bhttp::string_body> submission_request(const settings& s, const std::string& token,
                                                      const std::string& key) {
  bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/v1/exams/" + s.exam + "/submissions", 11};
  req.set(bhttp::field::host, "127.0.0.1");
  req.set(bhttp::field::authorization, "Bearer " + token);
  req.set(bhttp::field::content_type, "application/json");
  req.set("Idempotency-Key", key);
  req.body() = R"({"answers":{"q1":"A"}})";
  req.prepare_payload();
  return req;
}

// Counts `needle` in a stream read in pieces (a match may straddle two pieces).
struct counter {
  std::string_view needle;
  std::string tail;
  std::uint64_t add(std::string_view piece) {
    std::string text = tail;
    text.append(piece);
    std::uint64_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
    const auto keep = std::min(text.size(), needle.size() - 1);
    tail = text.substr(text.size() - keep);
    return n;
  }
};

}  // namespace

awaitable<void> followers::follow(std::size_t i) {
  auto& f = *all_[i];
  bool settled = false;
  auto settle = [&] {
    if (!settled) ++settled_;
    settled = true;
    --opening_;
  };
  try {
    const auto& server = servers_[i % servers_.size()];
    // Until the stream is open, each step has the client timeout; then no deadline.
    const auto timeout = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(s_.timeout_s));
    f.stream.expires_after(timeout);
    co_await f.stream.async_connect(server.endpoint, use_awaitable);
    const auto sub = "follower-" + plan_.run + "-" + std::to_string(i);
    const auto token =
        exam::mint_token({sub, exam::role::student, std::chrono::system_clock::now() + std::chrono::hours(2)},
                         s_.secret, s_.jwt);
    beast::flat_buffer buffer;
    std::optional<std::string> receipt;
    // A busy server (503, 429, 409) is asked again with the same key, as the page does.
    for (int attempt = 0; attempt < 10 && !receipt; ++attempt) {
      auto req = submission_request(s_, token, "follow-" + plan_.run + "-" + std::to_string(i));
      f.stream.expires_after(timeout);
      co_await bhttp::async_write(f.stream, req, use_awaitable);
      bhttp::response<bhttp::string_body> res;
      co_await bhttp::async_read(f.stream, buffer, res, use_awaitable);
      if (res.result_int() == 200 || res.result_int() == 201 || res.result_int() == 202)
        receipt = exam::receipt_id_in(res.body());
      else {
        asio::steady_timer wait(f.stream.get_executor(), std::chrono::milliseconds(200 << std::min(attempt, 4)));
        co_await wait.async_wait(use_awaitable);
      }
    }
    if (!receipt) throw std::runtime_error("no receipt");
    ++receipts_;
    const std::string get = "GET /v1/submissions/" + *receipt +
                            "/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nAuthorization: "
                            "Bearer " + token + "\r\n\r\n";
    f.stream.expires_after(timeout);
    co_await asio::async_write(f.stream, asio::buffer(get), use_awaitable);
    counter events{"event: status", {}};
    std::array<char, 4096> piece{};
    std::string head;  // the response head, read whole (it may come in pieces)
    while (head.find("\r\n\r\n") == std::string::npos && head.size() < 16384) {
      const auto n = co_await f.stream.async_read_some(asio::buffer(piece), use_awaitable);
      head.append(piece.data(), n);
    }
    if (head.rfind("HTTP/1.1 200", 0) != 0 || head.find("text/event-stream") == std::string::npos) {
      ++refused_;
      settle();
      co_return;
    }
    f.stream.expires_never();
    ++opened_;
    ++open_now_;
    settle();
    events_ += events.add(head);
    for (;;) {
      const auto n = co_await f.stream.async_read_some(asio::buffer(piece), use_awaitable);
      events_ += events.add(std::string_view(piece.data(), n));
    }
  } catch (const std::exception&) {
    // A connection that failed (or was closed by close()).
  }
  if (!settled) {
    ++refused_;
    settle();
  } else {
    --open_now_;
  }
}

awaitable<void> followers::launch() {
  asio::steady_timer pause(co_await asio::this_coro::executor);
  for (std::size_t i = 0; i < all_.size(); ++i) {
    while (opening_.load() >= 256) {
      pause.expires_after(std::chrono::milliseconds(1));
      co_await pause.async_wait(use_awaitable);
    }
    ++opening_;
    asio::co_spawn(io_, follow(i), asio::detached);
  }
}

void followers::open() {
  report_.asked = s_.streams;
  report_.rss_before_kib = sample_process(s_.server_pid).rss_kib;
  for (int i = 0; i < s_.streams; ++i) all_.push_back(std::make_unique<one>(io_.get_executor()));
  const auto t0 = std::chrono::steady_clock::now();
  asio::co_spawn(io_, launch(), asio::detached);
  thread_ = std::thread([this] {
    auto guard = asio::make_work_guard(io_);
    io_.run();
  });
  // Bounded: followers not settled by then are counted in neither opened nor refused.
  const auto give_up = t0 + std::chrono::seconds(120);
  while (settled_.load() < s_.streams && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  report_.open_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report_.rss_with_kib = sample_process(s_.server_pid).rss_kib;
}

followers_report followers::close() {
  report_.open_at_end = open_now_.load();
  report_.receipts = receipts_.load();
  report_.opened = opened_.load();
  report_.refused = refused_.load();
  report_.events = events_.load();
  io_.stop();
  if (thread_.joinable()) thread_.join();
  return report_;
}

}  // namespace spike
