// Students polling their status during the flood (--poll-rate): GET
// /v1/submissions/{receipt} with the student's own token, for receipts already given,
// at a fixed rate in all, spread over the servers, on connections of their own, so that
// what the reads cost the accept path shows in the same run's accept latency.

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>

#include "scenarios.hpp"

namespace spike {

using asio::awaitable;
using asio::use_awaitable;

namespace {

// "received", "graded", ...: the status field of a GET's body ("" when there is none).
std::string status_in(const std::string& body) {
  boost::system::error_code ec;
  const auto v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return {};
  const auto* st = v.as_object().if_contains("status");
  return st && st->is_string() ? std::string(st->as_string()) : std::string();
}

// splitmix64: which student the k-th poll asks about.
std::uint64_t spread(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

void flood::schedule_polls(const std::vector<student>& students) {
  polls_.t0 = r_.t0;
  for (auto& p : pollers_) {
    sweeper_->start();
    asio::co_spawn(
        p->executor(),
        [this, &students, &c = *p]() -> awaitable<void> {
          co_await poll_loop(c, students);
          sweeper_->finish();
        },
        asio::detached);
  }
}

awaitable<void> flood::poll_loop(client& c, const std::vector<student>& students) {
  while (submitting_.load(std::memory_order_relaxed) > 0) {
    const auto k = next_poll_++;
    const auto when = r_.t0 + std::chrono::duration_cast<steady::duration>(
                                  std::chrono::duration<double>(static_cast<double>(k) / s_.poll_rate));
    if (steady::now() < when) {
      asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::ceil<std::chrono::milliseconds>(when));
      co_await timer.async_wait(use_awaitable);
    }
    // A student who has a receipt. Students submit in index order (the wall's schedule,
    // the open loop's), so those with one are about the first `given`: a few draws
    // among them find one; a slot where none does is skipped.
    const student* st = nullptr;
    std::string id;
    {
      std::lock_guard lock(r_.mutex);
      const auto given = std::max<std::size_t>(1, std::min(r_.receipts.size(), students.size()));
      for (std::uint64_t draw = 0; draw < 8 && id.empty(); ++draw) {
        st = &students[spread(static_cast<std::uint64_t>(k) * 8 + draw) % given];
        if (auto it = r_.receipts.find(st->key); it != r_.receipts.end()) id = it->second;
      }
    }
    if (id.empty()) continue;
    student get;
    get.wire =
        "GET /v1/submissions/" + id + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + st->token + "\r\n\r\n";
    auto [code, body] = co_await c.post(get, when);
    if (code == 200) {
      ++polls_.ok;
      polls_.error("200 " + status_in(body));
    } else {
      polls_.error(code == 0 ? body : "http_" + std::to_string(code));
    }
  }
}

}  // namespace spike
