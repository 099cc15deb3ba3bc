#include "client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <functional>
#include <optional>
#include <random>
#include <stdexcept>

#include "json_text.hpp"

namespace spike {

namespace bhttp = boost::beast::http;
using namespace std::chrono_literals;
using asio::awaitable;
using asio::use_awaitable;

target parse_url(const std::string& url) {
  const std::string prefix = "http://";
  if (url.rfind(prefix, 0) != 0) throw std::invalid_argument("--url must start with http://");
  auto rest = url.substr(prefix.size());
  if (auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) return {rest, "80"};
  return {rest.substr(0, colon), rest.substr(colon + 1)};
}

void client::expire_if_late(steady::time_point now) {
  if (deadline_.load(std::memory_order_relaxed) > now.time_since_epoch().count()) return;
  asio::post(stream_.get_executor(), [this] {
    if (deadline_.load(std::memory_order_relaxed) > steady::now().time_since_epoch().count()) return;
    deadline_.store(never, std::memory_order_relaxed);  // closed once, not again every sweep
    timed_out_ = true;
    beast::error_code ignored;
    stream_.socket().close(ignored);
  });
}

awaitable<bool> client::connect() {
  const auto t = steady::now();
  stream_.expires_after(timeout());  // once per connection: Beast's own timer
  beast::error_code ec;
  if (!s_.bind.empty()) {
    // Another source address: the server sees another client IP.
    auto& socket = stream_.socket();
    socket.open(server().endpoint.protocol(), ec);
    if (!ec) socket.bind(tcp::endpoint(asio::ip::make_address(s_.bind, ec), 0), ec);
    if (ec) {
      r_.error("bind_error");
      beast::error_code ignored;
      socket.close(ignored);
      co_return false;
    }
  }
  co_await stream_.async_connect(server().endpoint, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    r_.error("connect_error");
    beast::error_code ignored;
    stream_.socket().close(ignored);
    fail_over();
    co_return false;
  }
  stream_.expires_never();  // requests are timed by the sweeper
  stream_.socket().set_option(tcp::no_delay(true), ec);
  r_.connect_latency.observe(std::chrono::duration<double>(steady::now() - t).count());
  connected_ = true;
  co_return true;
}

awaitable<std::pair<int, std::string>> client::post(const student& st, steady::time_point scheduled) {
  if (!connected_ && !co_await connect()) co_return std::pair<int, std::string>{0, "connect_error"};
  ++r_.requests;
  const auto t = steady::now();
  timed_out_ = false;
  deadline_.store((t + timeout()).time_since_epoch().count(), std::memory_order_relaxed);
  beast::error_code ec;
  // The request bytes were made once, before the flood: the client spends its CPU
  // on the flood, not on formatting.
  co_await asio::async_write(stream_, asio::buffer(st.wire), asio::redirect_error(use_awaitable, ec));
  bhttp::response<bhttp::string_body> res;
  if (!ec) co_await bhttp::async_read(stream_, buffer_, res, asio::redirect_error(use_awaitable, ec));
  deadline_.store(never, std::memory_order_relaxed);
  const auto done = steady::now();
  if (ec) {
    disconnect();
    fail_over();
    co_return std::pair<int, std::string>{0, timed_out_ ? "timeout" : "connection_error"};
  }
  const double seconds = std::chrono::duration<double>(done - t).count();
  r_.all_latency.observe(seconds);
  const int code = static_cast<int>(res.result_int());
  const bool accepted = code >= 200 && code < 300;
  if (scheduled != steady::time_point{}) {
    const double late = std::chrono::duration<double>(done - scheduled).count();
    r_.scheduled_latency.observe(late);
    // By the second it was scheduled in: receipts only (a quick refusal is no recovery).
    if (accepted) r_.scheduled_answer(scheduled, late);
  }
  if (accepted) {
    r_.accept_latency.observe(seconds);
    if (servers_.size() > 1) r_.answered_2xx(server().name);
  }
  if (!res.keep_alive()) disconnect();
  co_return std::pair<int, std::string>{code, std::move(res.body())};
}

void client::disconnect() {
  connected_ = false;
  beast::error_code ignored;
  stream_.socket().close(ignored);
  buffer_.clear();
}

void client::fail_over() {
  at_ = (at_ + 1) % servers_.size();
}

void deadline_sweeper::finish() {
  if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) asio::post(strand_, [this] { timer_.cancel(); });
}

void deadline_sweeper::run() {
  asio::co_spawn(
      strand_,
      [this]() -> awaitable<void> {
        while (active_.load(std::memory_order_acquire) > 0) {
          timer_.expires_after(50ms);
          beast::error_code ec;
          co_await timer_.async_wait(asio::redirect_error(use_awaitable, ec));
          const auto now = steady::now();
          for (auto* c : clients_) c->expire_if_late(now);
        }
      },
      asio::detached);
}

awaitable<void> submit(client& c, const student& st, const settings& s, results& r, steady::time_point scheduled) {
  std::optional<std::mt19937> rng;  // seeded on the first retry: seeding costs more than a request
  for (int attempt = 0;; ++attempt) {
    auto [code, body] = co_await c.post(st, attempt == 0 ? scheduled : steady::time_point{});
    if (code >= 200 && code < 300) {
      ++r.ok;
      if (auto id = exam::receipt_id_in(body))
        r.receipt(st.key, *id, steady::now());
      else
        r.error("2xx_without_receipt");
      co_return;
    }
    const std::string kind = code == 0 ? body : "http_" + std::to_string(code);
    r.error(kind);
    const bool retryable = code == 0 || code >= 500 || code == 409 || code == 429;
    if (!retryable || attempt >= s.retries) {
      ++r.gave_up;
      co_return;
    }
    ++r.retried;
    // Full-jitter backoff from 200 ms, doubling.
    if (!rng) rng.emplace(std::hash<std::string>{}(st.key));
    std::uniform_int_distribution<int> jitter(0, 200 << attempt);
    asio::steady_timer wait(co_await asio::this_coro::executor, std::chrono::milliseconds(100 + jitter(*rng)));
    co_await wait.async_wait(use_awaitable);
  }
}

}  // namespace spike
