#include "scenarios.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include "attachments.hpp"
#include "ingest/fingerprint.hpp"
#include "jwt.hpp"

namespace spike {

using namespace std::chrono_literals;
using asio::awaitable;
using asio::use_awaitable;

namespace {

awaitable<void> wait_until(steady::time_point t) {
  asio::steady_timer timer(co_await asio::this_coro::executor, t);
  co_await timer.async_wait(use_awaitable);
}

// `s.attachments` references to 1 MiB files of student `id`, as the upload route would
// have issued them (the keys' tags are made with the server's secret).
boost::json::array references(const exam::upload_keys& keys, const settings& s, const std::string& id, int i) {
  std::vector<exam::attachment> files;
  for (int f = 0; f < s.attachments; ++f) {
    const std::string sha = ingest::fingerprint(id + '/' + std::to_string(i) + '/' + std::to_string(f));
    files.push_back({keys.issue(s.exam, id, 1 << 20, sha), sha, 1 << 20, "answer-" + std::to_string(f + 1) + ".pdf"});
  }
  return exam::attachments_to_json(files);
}

}  // namespace

std::vector<student> make_students(const settings& s, const run_plan& plan) {
  const int n = plan.n;
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> coin(0, 1);
  std::uniform_int_distribution<int> choice(0, 3);
  std::vector<student> students(static_cast<std::size_t>(n));
  const auto expires = std::chrono::system_clock::now() + std::chrono::hours(2);
  const exam::upload_keys keys(s.secret);
  for (int i = 0; i < n; ++i) {
    auto& st = students[static_cast<std::size_t>(i)];
    if (s.one_student && i > 0) {
      st.id = students[0].id;
      st.token = students[0].token;
    } else {
      st.id = (s.one_student ? "abuser-" + plan.run : "st") + std::to_string(i);
      st.token = exam::mint_token({st.id, exam::role::student, expires}, s.secret, s.jwt);
    }
    st.key = plan.prefix + std::to_string(i);
    boost::json::object answers;
    for (int q = 1; q <= s.questions; ++q)
      answers["q" + std::to_string(q)] = std::string(1, static_cast<char>('A' + choice(rng)));
    boost::json::object body;
    body["answers"] = std::move(answers);
    if (s.attachments > 0) body["attachments"] = references(keys, s, st.id, i);
    st.body = boost::json::serialize(body);
    st.wire = "POST /v1/exams/" + s.exam + "/submissions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
              st.token + "\r\nContent-Type: application/json\r\nIdempotency-Key: " + st.key +
              "\r\nContent-Length: " + std::to_string(st.body.size()) + "\r\n\r\n" + st.body;
    st.double_click = !plan.open_loop && coin(rng) < s.double_click;
  }
  return students;
}

const std::vector<server_address>& flood::resolve() {
  tcp::resolver resolver(io_);
  for (const auto& url : s_.urls) {
    const auto where = parse_url(url);
    servers_.push_back({*resolver.resolve(where.host, where.port).begin(), where.host + ":" + where.port});
  }
  return servers_;
}

// With more than one thread a client's work and the sweeper's close must not overlap:
// each client is then a strand.
asio::any_io_executor flood::client_executor() {
  if (s_.threads > 1) return asio::make_strand(io_);
  return io_.get_executor();
}

void flood::connect() {
  const int n = plan_.n;
  pool_ = plan_.open_loop ? std::min(s_.connections, n) : n;
  for (int i = 0; i < pool_; ++i)
    clients_.push_back(std::make_unique<client>(client_executor(), s_, r_, servers_, next_client_++));
  std::atomic<int> connected{0}, next_connect{0};
  const auto t_connect = steady::now();
  for (int lane = 0; lane < std::min(pool_, 500); ++lane)
    asio::co_spawn(
        io_,
        [&]() -> awaitable<void> {
          for (int i = next_connect++; i < pool_; i = next_connect++)
            if (co_await clients_[static_cast<std::size_t>(i)]->connect()) ++connected;
        },
        asio::detached);
  run_threads();
  io_.restart();
  const double connect_seconds = std::chrono::duration<double>(steady::now() - t_connect).count();
  std::printf("%s: %d connections open in %.2f s\n", s_.label.c_str(), connected.load(), connect_seconds);
  std::fflush(stdout);
}

void flood::schedule(const std::vector<student>& students) {
  r_.t0 = steady::now() + 200ms;
  for (const auto& st : students)
    if (st.double_click)
      extra_.push_back(std::make_unique<client>(client_executor(), s_, r_, servers_, next_client_++));
  std::vector<client*> all;
  for (auto& c : clients_) all.push_back(c.get());
  for (auto& c : extra_) all.push_back(c.get());
  if (s_.poll_rate > 0)
    for (int i = 0; i < s_.poll_connections; ++i) {
      pollers_.push_back(std::make_unique<client>(client_executor(), s_, polls_, servers_, next_client_++));
      all.push_back(pollers_.back().get());
    }
  sweeper_.emplace(io_, std::move(all));
  if (!plan_.open_loop)
    schedule_wall(students);
  else
    schedule_open_loop(students);
  if (s_.poll_rate > 0) schedule_polls(students);
}

void flood::schedule_wall(const std::vector<student>& students) {
  const int n = plan_.n;
  auto& sweeper = *sweeper_;
  std::size_t e = 0;
  for (int i = 0; i < n; ++i) {
    const auto at =
        r_.t0 + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(s_.window_s * i / n));
    auto& c = *clients_[static_cast<std::size_t>(i)];
    const auto& st = students[static_cast<std::size_t>(i)];
    sweeper.start();
    ++submitting_;
    asio::co_spawn(
        c.executor(),
        [&, at]() -> awaitable<void> {
          co_await wait_until(at);
          co_await submit(c, st, s_, r_, steady::time_point{});
          --submitting_;
          sweeper.finish();
        },
        asio::detached);
    if (st.double_click) {
      auto& c2 = *extra_[e++];
      sweeper.start();
      ++submitting_;
      const auto again =
          at + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(s_.click_again_s));
      asio::co_spawn(
          c2.executor(),
          [&, again]() -> awaitable<void> {
            co_await wait_until(again);  // the impatient second click
            co_await submit(c2, st, s_, r_, steady::time_point{});
            --submitting_;
            sweeper.finish();
          },
          asio::detached);
    }
  }
}

// Seconds from the start at which submission i is sent: burst_n at the burst's rate,
// then the rest at --rate.
double flood::scheduled_offset(int i) const {
  if (i < plan_.burst_n) return i / s_.burst_rate;
  return s_.burst_s * (plan_.burst_n > 0 ? 1 : 0) + (i - plan_.burst_n) / s_.rate;
}

void flood::schedule_open_loop(const std::vector<student>& students) {
  for (int ci = 0; ci < pool_; ++ci) {
    sweeper_->start();
    ++submitting_;
    asio::co_spawn(
        clients_[static_cast<std::size_t>(ci)]->executor(),
        [this, &students, ci]() -> awaitable<void> {
          for (int i = next_++; i < plan_.n; i = next_++) {
            const auto at = r_.t0 + std::chrono::duration_cast<steady::duration>(
                                        std::chrono::duration<double>(scheduled_offset(i)));
            // Timers end on whole milliseconds (rounded up): the requests of one
            // millisecond share one timer expiry instead of re-arming the kernel's timer
            // for each. Latency still counts from `at`, so the pacing delay is charged
            // to the server, never hidden.
            if (steady::now() < at) co_await wait_until(std::chrono::ceil<std::chrono::milliseconds>(at));
            co_await submit(*clients_[static_cast<std::size_t>(ci)], students[static_cast<std::size_t>(i)], s_, r_, at);
          }
          --submitting_;
          sweeper_->finish();
        },
        asio::detached);
  }
}

double flood::run() {
  const auto t_flood = steady::now();
  sweeper_->run();
  run_threads();
  return std::chrono::duration<double>(steady::now() - t_flood).count();
}

void flood::run_threads() {
  std::vector<std::thread> threads;
  for (int t = 0; t < s_.threads; ++t) threads.emplace_back([&] { io_.run(); });
  for (auto& t : threads) t.join();
}

}  // namespace spike
