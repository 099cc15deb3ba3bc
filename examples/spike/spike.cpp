// spike: replays a deadline flood against an exam server and audits exam.db afterwards.
//
// Wall mode (default): N students, each on its own connection opened beforehand (they
// are already on the page), all pressing "submit" within a window. Open-loop mode
// (--rate R --duration D): R submissions per second on a pool of connections, latency
// measured from each request's scheduled time (no coordinated omission).
//
// Browsers are imitated: a share of double clicks (the same key twice, on a second
// connection), and on a timeout, a 5xx, a 409/429 or a connection error a retry with the
// same key after a backoff, up to --retries times. Every receipt is kept; after the
// flood the tool waits for the drain and checks exam.db: every receipt exactly once, no
// row without a receipt. See examples/README.md.

#include <CLI/CLI.hpp>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <string_view>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "cli.hpp"
#include "ingest/envelope.hpp"
#include "ingest/metrics.hpp"
#include "ingest/sqlite/database.hpp"
#include "json_text.hpp"
#include "progress.hpp"
#include "jwt.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;
using asio::awaitable;
using asio::use_awaitable;

namespace {

struct settings {
  std::string url = "http://127.0.0.1:8081";
  std::string exam = "demo";
  int students = 10000;
  double window_s = 1.0;
  double double_click = 0.05;
  double timeout_s = 10;
  int retries = 3;
  double rate = 0;  // > 0: open-loop mode
  double duration_s = 10;
  int connections = 1000;  // open-loop pool
  int threads = 1;
  std::string secret;
  exam::token_checks jwt{};
  std::string db;
  int server_pid = 0;
  double drain_timeout_s = 300;
  std::string json_out, svg_out, label;
  int questions = 10;
  bool one_student = false;  // every submission from the same student (an abusive client)
  std::string bind;          // local address to connect from (e.g. 127.0.0.2: another client IP)
};

// What happened, shared by every student (thread-safe).
struct results {
  ingest::histogram accept_latency;   // 2xx answers: request written -> response read
  ingest::histogram all_latency;      // every answer
  ingest::histogram connect_latency;  // TCP connect
  ingest::histogram scheduled_latency;  // open loop: scheduled time -> response read
  std::atomic<std::uint64_t> requests{0}, ok{0}, retried{0}, gave_up{0}, mismatched{0};
  std::mutex mutex;
  std::map<std::string, std::uint64_t> errors;     // kind -> count
  std::map<std::string, std::string> receipts;     // idempotency key -> receipt id
  std::vector<std::uint32_t> accepted_per_tick;    // 100 ms ticks since t0
  steady::time_point t0{};
  steady::time_point last_accept{};

  void error(const std::string& kind) {
    std::lock_guard lock(mutex);
    ++errors[kind];
  }
  void receipt(const std::string& key, const std::string& id, steady::time_point at) {
    std::lock_guard lock(mutex);
    auto [it, fresh] = receipts.emplace(key, id);
    if (!fresh && it->second != id) ++mismatched;  // a second receipt for the same key
    const auto tick = static_cast<std::size_t>(std::max<std::int64_t>(0, (at - t0) / 100ms));
    if (accepted_per_tick.size() <= tick) accepted_per_tick.resize(tick + 1, 0);
    if (fresh) ++accepted_per_tick[tick];
    last_accept = std::max(last_accept, at);
  }
};

struct target {
  std::string host;
  std::string port;
};

target parse_url(const std::string& url) {
  const std::string prefix = "http://";
  if (url.rfind(prefix, 0) != 0) throw std::invalid_argument("--url must start with http://");
  auto rest = url.substr(prefix.size());
  if (auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) return {rest, "80"};
  return {rest.substr(0, colon), rest.substr(colon + 1)};
}

struct student {
  std::string id;
  std::string token;
  std::string key;
  std::string body;
  std::string wire;  // the whole HTTP request
  bool double_click = false;
};

// One connection. Its requests' timeout is a deadline time stamp that one sweeper
// checks for every client (see `deadline_sweeper`), up to 50 ms late: arming and
// cancelling a timer per request cost the load generator CPU that it shares with the
// server it measures (see benchmarks/README.md).
class client {
 public:
  client(asio::any_io_executor ex, const settings& s, results& r, tcp::endpoint ep)
      : stream_(ex), s_(s), r_(r), ep_(ep) {}

  asio::any_io_executor executor() { return stream_.get_executor(); }

  // Called by the sweeper (any thread): closes the connection, on its own executor,
  // if its request is still unanswered past the deadline.
  void expire_if_late(steady::time_point now) {
    if (deadline_.load(std::memory_order_relaxed) > now.time_since_epoch().count()) return;
    asio::post(stream_.get_executor(), [this] {
      if (deadline_.load(std::memory_order_relaxed) > steady::now().time_since_epoch().count()) return;
      deadline_.store(never, std::memory_order_relaxed);  // closed once, not again every sweep
      timed_out_ = true;
      beast::error_code ignored;
      stream_.socket().close(ignored);
    });
  }

  awaitable<bool> connect() {
    const auto t = steady::now();
    stream_.expires_after(timeout());  // once per connection: Beast's own timer
    beast::error_code ec;
    if (!s_.bind.empty()) {
      // Another source address: the server sees another client IP.
      auto& socket = stream_.socket();
      socket.open(ep_.protocol(), ec);
      if (!ec) socket.bind(tcp::endpoint(asio::ip::make_address(s_.bind, ec), 0), ec);
      if (ec) {
        r_.error("bind_error");
        beast::error_code ignored;
        socket.close(ignored);
        co_return false;
      }
    }
    co_await stream_.async_connect(ep_, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      r_.error("connect_error");
      co_return false;
    }
    stream_.expires_never();  // requests are timed by the sweeper
    stream_.socket().set_option(tcp::no_delay(true), ec);
    r_.connect_latency.observe(std::chrono::duration<double>(steady::now() - t).count());
    connected_ = true;
    co_return true;
  }

  // One request; returns the status (0: no answer) and the body.
  awaitable<std::pair<int, std::string>> post(const student& st, steady::time_point scheduled) {
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
      connected_ = false;
      beast::error_code ignored;
      stream_.socket().close(ignored);
      buffer_.clear();
      co_return std::pair<int, std::string>{0, timed_out_ ? "timeout" : "connection_error"};
    }
    const double seconds = std::chrono::duration<double>(done - t).count();
    r_.all_latency.observe(seconds);
    if (scheduled != steady::time_point{})
      r_.scheduled_latency.observe(std::chrono::duration<double>(done - scheduled).count());
    const int code = static_cast<int>(res.result_int());
    if (code >= 200 && code < 300) r_.accept_latency.observe(seconds);
    if (!res.keep_alive()) {
      connected_ = false;
      beast::error_code ignored;
      stream_.socket().close(ignored);
      buffer_.clear();
    }
    co_return std::pair<int, std::string>{code, std::move(res.body())};
  }

 private:
  static constexpr steady::rep never = std::numeric_limits<steady::rep>::max();

  steady::duration timeout() const {
    return std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(s_.timeout_s));
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  const settings& s_;
  results& r_;
  tcp::endpoint ep_;
  bool connected_ = false;
  bool timed_out_ = false;  // the sweeper closed the connection
  std::atomic<steady::rep> deadline_{never};  // of the request in flight
};

// Expires late requests for a set of clients, every 50 ms, while any of the work it
// guards is running: `start()` once per coroutine, `finish()` when it ends; the last
// `finish()` stops the sweeper so that `io.run()` returns.
class deadline_sweeper {
 public:
  deadline_sweeper(asio::io_context& io, std::vector<client*> clients)
      : strand_(asio::make_strand(io)), timer_(strand_), clients_(std::move(clients)) {}

  void start() { active_.fetch_add(1, std::memory_order_relaxed); }
  void finish() {
    if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) asio::post(strand_, [this] { timer_.cancel(); });
  }
  void run() {
    asio::co_spawn(strand_, [this]() -> awaitable<void> {
      while (active_.load(std::memory_order_acquire) > 0) {
        timer_.expires_after(50ms);
        beast::error_code ec;
        co_await timer_.async_wait(asio::redirect_error(use_awaitable, ec));
        const auto now = steady::now();
        for (auto* c : clients_) c->expire_if_late(now);
      }
    }, asio::detached);
  }

 private:
  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer timer_;
  std::vector<client*> clients_;
  std::atomic<int> active_{0};
};

// Sends one student's submission with a browser's retries; records the receipt.
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

awaitable<void> wait_until(steady::time_point t) {
  asio::steady_timer timer(co_await asio::this_coro::executor, t);
  co_await timer.async_wait(use_awaitable);
}

// ---- the database side ----------------------------------------------------------

// Counts this run's rows (keys starting with the run's prefix) as they arrive. Each
// count reads only the rows added since the previous one: exam.db never deletes, and
// its writers commit one at a time, so rowids only grow. Scanning the whole table
// every 100 ms took the load generator ever more CPU as the table grew.
class row_counter {
 public:
  row_counter(ingest::sqlite::database& db, const std::string& prefix)
      : prefix_(prefix),
        end_(prefix + "\x7f"),
        count_(db,
               "SELECT count(*) FILTER (WHERE idempotency_key >= ?2 AND idempotency_key < ?3),"
               " coalesce(max(rowid), ?1) FROM submissions WHERE rowid > ?1") {}

  std::int64_t total() {
    count_.bind(1, last_rowid_).bind(2, prefix_).bind(3, end_);
    count_.step();
    total_ += count_.column_int(0);
    last_rowid_ = count_.column_int(1);
    count_.reset();
    return total_;
  }

 private:
  std::string prefix_, end_;
  ingest::sqlite::statement count_;
  std::int64_t last_rowid_ = 0, total_ = 0;
};

struct audit_result {
  std::int64_t rows = 0;
  std::int64_t receipts = 0;
  std::int64_t lost = 0;        // receipts with no row that the server does not know either
  std::int64_t pending = 0;     // receipts with no row yet: still queued or retrying
  std::int64_t dead_lettered = 0;  // receipts parked in the dead-letter store
  std::vector<std::string> missing;  // receipts with no row
  std::int64_t duplicated = 0;  // keys with more than one row, or one key with two receipts
  std::int64_t unreceipted = 0;  // rows whose receipt the client never saw
};

audit_result audit(ingest::sqlite::database& db, const std::string& prefix, results& r) {
  audit_result a;
  std::map<std::string, std::vector<std::string>> rows_by_key;
  ingest::sqlite::statement s(db,
                              "SELECT idempotency_key, receipt_id FROM submissions WHERE idempotency_key >= ?1 AND "
                              "idempotency_key < ?2");
  s.bind(1, prefix).bind(2, prefix + "\x7f");
  while (s.step()) {
    rows_by_key[s.column_text(0)].push_back(s.column_text(1));
    ++a.rows;
  }
  std::lock_guard lock(r.mutex);
  a.receipts = static_cast<std::int64_t>(r.receipts.size());
  for (const auto& [key, id] : r.receipts) {
    auto it = rows_by_key.find(key);
    if (it == rows_by_key.end() || std::find(it->second.begin(), it->second.end(), id) == it->second.end())
      a.missing.push_back(id);
  }
  for (const auto& [key, ids] : rows_by_key) {
    if (ids.size() > 1) a.duplicated += static_cast<std::int64_t>(ids.size() - 1);
    auto it = r.receipts.find(key);
    for (const auto& id : ids)
      if (it == r.receipts.end() || it->second != id) ++a.unreceipted;
  }
  a.duplicated += static_cast<std::int64_t>(r.mismatched.load());
  return a;
}

// A receipt with no row: asks the server (as a teacher) where it is. Every receipt
// must be in exactly one state: graded (a row), pending, or dead-lettered.
void classify_missing(audit_result& a, const settings& s, const tcp::endpoint& ep) {
  if (a.missing.empty()) return;
  const auto teacher = exam::mint_token(
      {"spike-auditor", exam::role::teacher, std::chrono::system_clock::now() + std::chrono::hours(1)}, s.secret, s.jwt);
  asio::io_context io;
  beast::tcp_stream stream(io);
  beast::error_code ec;
  stream.connect(ep, ec);
  beast::flat_buffer buffer;
  for (const auto& id : a.missing) {
    int status = 0;
    std::string body;
    // 503: the server could not read its queue just now; asked again a few times.
    for (int attempt = 0; attempt < 5 && !ec && (status == 0 || status == 503); ++attempt) {
      if (status == 503) std::this_thread::sleep_for(std::chrono::seconds(1));
      bhttp::request<bhttp::empty_body> req{bhttp::verb::get, "/v1/submissions/" + id, 11};
      req.set(bhttp::field::host, "127.0.0.1");
      req.set(bhttp::field::authorization, "Bearer " + teacher);
      bhttp::write(stream, req, ec);
      bhttp::response<bhttp::string_body> res;
      if (!ec) bhttp::read(stream, buffer, res, ec);
      if (!ec) {
        status = static_cast<int>(res.result_int());
        body = res.body();
      }
    }
    if (status == 200 && body.find("\"dead_lettered\"") != std::string::npos)
      ++a.dead_lettered;
    else if (status == 200)
      ++a.pending;  // received or processing (or graded since the check: counted as pending)
    else
      ++a.lost;
  }
}

// ---- the server process -----------------------------------------------------------

struct proc_sample {
  long peak_rss_kib = -1;
  double cpu_seconds = -1;
};

proc_sample sample_process(int pid) {
  proc_sample out;
  if (pid <= 0) return out;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) out.peak_rss_kib = std::strtol(line.c_str() + 6, nullptr, 10);
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = content.rfind(')');
  if (close != std::string::npos) {
    std::istringstream fields(content.substr(close + 2));
    std::string f;
    std::vector<std::string> v;
    while (fields >> f) v.push_back(f);
    // After the command: state is field 3; utime and stime are fields 14 and 15.
    if (v.size() > 13)
      out.cpu_seconds = static_cast<double>(std::stoll(v[11]) + std::stoll(v[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return out;
}

// ---- output -----------------------------------------------------------------------

std::string svg_chart(const settings& s, const std::vector<std::uint32_t>& accepted, const std::vector<std::int64_t>& written,
                      const ingest::histogram& latency) {
  const double w = 900, h = 300, left = 60, top = 30;
  std::size_t ticks = std::max(accepted.size(), written.size());
  if (ticks < 2) ticks = 2;
  double peak = 1;
  std::vector<double> acc_rate(ticks, 0), wr_rate(ticks, 0);
  for (std::size_t i = 0; i < ticks; ++i) {
    acc_rate[i] = i < accepted.size() ? accepted[i] * 10.0 : 0;
    wr_rate[i] = i < written.size() && i > 0 ? static_cast<double>(written[i] - written[i - 1]) * 10.0 : 0;
    peak = std::max({peak, acc_rate[i], wr_rate[i]});
  }
  auto line = [&](const std::vector<double>& v, const char* colour) {
    std::string pts;
    for (std::size_t i = 0; i < v.size(); ++i)
      pts += std::to_string(left + w * static_cast<double>(i) / static_cast<double>(ticks - 1)) + "," +
             std::to_string(top + h - h * v[i] / peak) + " ";
    return "<polyline fill='none' stroke='" + std::string(colour) + "' stroke-width='2' points='" + pts + "'/>\n";
  };
  std::string out = "<svg xmlns='http://www.w3.org/2000/svg' width='1000' height='720' font-family='sans-serif' font-size='12'>\n";
  out += "<rect width='1000' height='720' fill='white'/>\n";
  out += "<text x='" + std::to_string(left) + "' y='18' font-size='14'>" + s.label +
         ": accepted/s (blue) vs written to exam.db/s (orange), 100 ms buckets</text>\n";
  out += "<line x1='" + std::to_string(left) + "' y1='" + std::to_string(top + h) + "' x2='" + std::to_string(left + w) +
         "' y2='" + std::to_string(top + h) + "' stroke='black'/>\n";
  out += "<line x1='" + std::to_string(left) + "' y1='" + std::to_string(top) + "' x2='" + std::to_string(left) + "' y2='" +
         std::to_string(top + h) + "' stroke='black'/>\n";
  out += "<text x='5' y='" + std::to_string(top + 10) + "'>" + std::to_string(static_cast<long>(peak)) + "/s</text>\n";
  out += "<text x='5' y='" + std::to_string(top + h) + "'>0</text>\n";
  out += "<text x='" + std::to_string(left + w - 60) + "' y='" + std::to_string(top + h + 16) + "'>" +
         std::to_string(static_cast<double>(ticks) / 10.0).substr(0, 5) + " s</text>\n";
  out += line(acc_rate, "#1f77b4");
  out += line(wr_rate, "#ff7f0e");
  // Latency distribution: the histogram's buckets from 100 us to 20 s.
  const double top2 = 400, h2 = 250;
  out += "<text x='" + std::to_string(left) + "' y='" + std::to_string(top2 - 12) +
         "' font-size='14'>accept latency distribution (requests per bucket, log time axis)</text>\n";
  const auto counts = latency.counts();
  std::uint64_t most = 1;
  std::size_t first = counts.size(), last = 0;
  for (std::size_t i = 0; i < counts.size(); ++i)
    if (counts[i]) {
      most = std::max(most, counts[i]);
      first = std::min(first, i);
      last = i;
    }
  if (first <= last) {
    const double lo = std::log10(std::max(1e-4, ingest::histogram::upper_bound(first > 0 ? first - 1 : 0)));
    const double hi = std::log10(ingest::histogram::upper_bound(last)) + 0.05;
    for (std::size_t i = first; i <= last; ++i) {
      const double x0 = left + w * (std::log10(std::max(1e-4, i > 0 ? ingest::histogram::upper_bound(i - 1) : 1e-6)) - lo) / (hi - lo);
      const double x1 = left + w * (std::log10(ingest::histogram::upper_bound(i)) - lo) / (hi - lo);
      const double bh = h2 * static_cast<double>(counts[i]) / static_cast<double>(most);
      out += "<rect x='" + std::to_string(x0) + "' y='" + std::to_string(top2 + h2 - bh) + "' width='" +
             std::to_string(std::max(1.0, x1 - x0 - 1)) + "' height='" + std::to_string(bh) + "' fill='#2ca02c'/>\n";
    }
    for (double decade = std::ceil(lo); decade <= hi; decade += 1) {
      const double x = left + w * (decade - lo) / (hi - lo);
      const double secs = std::pow(10.0, decade);
      const std::string label = secs < 1 ? std::to_string(static_cast<long>(std::lround(secs * 1000))) + " ms"
                                         : std::to_string(static_cast<long>(secs)) + " s";
      out += "<text x='" + std::to_string(x) + "' y='" + std::to_string(top2 + h2 + 16) + "'>" + label + "</text>\n";
    }
  }
  out += "<line x1='" + std::to_string(left) + "' y1='" + std::to_string(top2 + h2) + "' x2='" + std::to_string(left + w) +
         "' y2='" + std::to_string(top2 + h2) + "' stroke='black'/>\n</svg>\n";
  return out;
}

// `spike report a.json b.json ...`: medians per label, side by side, with the ratio of
// each label to the first one.
int report(const std::vector<std::string>& files) {
  std::vector<std::string> labels;
  std::map<std::string, std::vector<boost::json::object>> runs;
  for (const auto& f : files) {
    std::ifstream in(f);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    boost::system::error_code ec;
    auto v = boost::json::parse(text, ec);
    if (ec || !v.is_object()) {
      std::fprintf(stderr, "spike report: %s is not a result file\n", f.c_str());
      return 2;
    }
    const std::string label(v.as_object().at("label").as_string());
    if (!runs.count(label)) labels.push_back(label);
    runs[label].push_back(v.as_object());
  }
  auto number = [](const boost::json::value* v) -> double {
    if (!v) return std::nan("");
    if (v->is_double()) return v->as_double();
    if (v->is_int64()) return static_cast<double>(v->as_int64());
    if (v->is_uint64()) return static_cast<double>(v->as_uint64());
    return std::nan("");
  };
  auto median = [&](const std::string& label, const std::function<const boost::json::value*(const boost::json::object&)>& get) {
    std::vector<double> xs;
    for (const auto& o : runs[label])
      if (double x = number(get(o)); !std::isnan(x)) xs.push_back(x);
    if (xs.empty()) return std::nan("");
    std::sort(xs.begin(), xs.end());
    return xs.size() % 2 ? xs[xs.size() / 2] : (xs[xs.size() / 2 - 1] + xs[xs.size() / 2]) / 2;
  };
  struct row {
    const char* name;
    std::function<const boost::json::value*(const boost::json::object&)> get;
    const char* format;
  };
  auto field = [](const char* k) {
    return [k](const boost::json::object& o) { return o.if_contains(k); };
  };
  auto nested = [](const char* a, const char* b) {
    return [a, b](const boost::json::object& o) -> const boost::json::value* {
      const auto* x = o.if_contains(a);
      return x && x->is_object() ? x->as_object().if_contains(b) : nullptr;
    };
  };
  const std::vector<row> rows{
      {"students / submissions", field("students"), "%.0f"},
      {"success rate %", field("success_pct"), "%.2f"},
      {"failed requests", field("failed_requests"), "%.0f"},
      {"accept latency avg ms", nested("accept_latency", "avg_ms"), "%.1f"},
      {"accept latency p50 ms", nested("accept_latency", "p50_ms"), "%.1f"},
      {"accept latency p95 ms", nested("accept_latency", "p95_ms"), "%.1f"},
      {"accept latency p99 ms", nested("accept_latency", "p99_ms"), "%.1f"},
      {"accept latency max ms", nested("accept_latency", "max_ms"), "%.1f"},
      {"accepted/s", field("accept_rate"), "%.0f"},
      {"exam.db rows/s", field("write_rate"), "%.0f"},
      {"exam.db rows/s with a backlog", field("backlog_write_rate"), "%.0f"},
      {"drain after last accept s", field("drain_s"), "%.2f"},
      {"server peak RSS MB", field("server_peak_rss_mb"), "%.1f"},
      {"server CPU s (flood)", field("server_cpu_flood_s"), "%.2f"},
      {"audit: lost", nested("audit", "lost"), "%.0f"},
      {"audit: duplicated", nested("audit", "duplicated"), "%.0f"},
      {"audit: rows without receipt", nested("audit", "rows_without_receipt"), "%.0f"},
  };
  std::printf("| median of runs |");
  for (const auto& l : labels) std::printf(" %s (%zu) |", l.c_str(), runs[l].size());
  for (std::size_t i = 1; i < labels.size(); ++i) std::printf(" %s / %s |", labels[i].c_str(), labels[0].c_str());
  std::printf("\n|---|");
  for (std::size_t i = 0; i < 2 * labels.size() - 1; ++i) std::printf("---|");
  std::printf("\n");
  for (const auto& rw : rows) {
    std::printf("| %s |", rw.name);
    std::vector<double> values;
    for (const auto& l : labels) {
      values.push_back(median(l, rw.get));
      if (std::isnan(values.back()))
        std::printf(" - |");
      else
        std::printf((" " + std::string(rw.format) + " |").c_str(), values.back());
    }
    for (std::size_t i = 1; i < values.size(); ++i) {
      if (std::isnan(values[i]) || std::isnan(values[0]) || values[0] == 0)
        std::printf(" - |");
      else
        std::printf(" %.2fx |", values[i] / values[0]);
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "report") {
    std::vector<std::string> files(argv + 2, argv + argc);
    if (files.empty()) {
      std::fputs("usage: spike report RESULT.json...\n", stderr);
      return 2;
    }
    return report(files);
  }
  settings s;
  CLI::App cli{"spike: replays a deadline flood against an exam server, then audits exam.db"};
  cli.add_option("--url", s.url, "server base URL")->capture_default_str();
  cli.add_option("--exam", s.exam, "exam id")->capture_default_str();
  cli.add_option("--students", s.students, "students in the wall")->capture_default_str()->check(CLI::Range(1, 1000000));
  cli.add_option("--window", s.window_s, "seconds within which every student submits")->capture_default_str();
  cli.add_option("--double-click", s.double_click, "share of students who click twice")->capture_default_str();
  cli.add_option("--timeout", s.timeout_s, "client timeout, seconds")->capture_default_str();
  cli.add_option("--retries", s.retries, "retries after a timeout, 5xx, 409/429 or connection error")->capture_default_str();
  cli.add_option("--rate", s.rate, "open-loop mode: submissions per second (0: wall mode)");
  cli.add_option("--duration", s.duration_s, "open-loop mode: seconds")->capture_default_str();
  cli.add_option("--connections", s.connections, "open-loop mode: connection pool size")->capture_default_str();
  cli.add_option("--threads", s.threads, "client threads")->capture_default_str();
  cli.add_option("--jwt-secret", s.secret, "the server's secret (default: $INGEST_JWT_SECRET)");
  exam::add_token_check_options(cli, s.jwt);
  cli.add_option("--db", s.db, "exam.db to watch and audit (empty: no audit)");
  cli.add_option("--server-pid", s.server_pid, "server process, for peak RSS and CPU");
  cli.add_option("--drain-timeout", s.drain_timeout_s, "seconds to wait for exam.db to catch up")->capture_default_str();
  cli.add_option("--json", s.json_out, "write the results as JSON here");
  cli.add_option("--svg", s.svg_out, "draw the chart here");
  cli.add_option("--label", s.label, "name of this run in the outputs");
  cli.add_flag("--one-student", s.one_student,
               "every submission from one student, each with a new key (an abusive client; see the rate limits)");
  cli.add_option("--bind", s.bind, "local address to connect from, e.g. 127.0.0.2 (another client IP)");
  CLI11_PARSE(cli, argc, argv);
  if (s.label.empty()) s.label = s.url;
  bool generated = false;
  s.secret = exam::resolve_secret(s.secret, generated);
  if (generated) {
    std::fputs("spike: give --jwt-secret or set INGEST_JWT_SECRET (the server's secret)\n", stderr);
    return 2;
  }
  exam::raise_fd_limit();

  const bool open_loop = s.rate > 0;
  const int n = open_loop ? static_cast<int>(std::lround(s.rate * s.duration_s)) : s.students;
  // Keys of this run share a prefix, so that the audit sees this run only.
  const std::string run = ingest::make_receipt_id().substr(0, 13);
  const std::string prefix = "spike-" + run + "-";
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> coin(0, 1);
  std::uniform_int_distribution<int> choice(0, 3);
  std::vector<student> students(static_cast<std::size_t>(n));
  const auto expires = std::chrono::system_clock::now() + std::chrono::hours(2);
  for (int i = 0; i < n; ++i) {
    auto& st = students[static_cast<std::size_t>(i)];
    if (s.one_student && i > 0) {
      st.id = students[0].id;
      st.token = students[0].token;
    } else {
      st.id = (s.one_student ? "abuser-" + run : "st") + std::to_string(i);
      st.token = exam::mint_token({st.id, exam::role::student, expires}, s.secret, s.jwt);
    }
    st.key = prefix + std::to_string(i);
    boost::json::object answers;
    for (int q = 1; q <= s.questions; ++q) answers["q" + std::to_string(q)] = std::string(1, static_cast<char>('A' + choice(rng)));
    boost::json::object body;
    body["answers"] = std::move(answers);
    st.body = boost::json::serialize(body);
    st.wire = "POST /v1/exams/" + s.exam + "/submissions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
              st.token + "\r\nContent-Type: application/json\r\nIdempotency-Key: " + st.key +
              "\r\nContent-Length: " + std::to_string(st.body.size()) + "\r\n\r\n" + st.body;
    st.double_click = !open_loop && coin(rng) < s.double_click;
  }

  const auto where = parse_url(s.url);
  asio::io_context io(s.threads);
  tcp::resolver resolver(io);
  const tcp::endpoint ep = *resolver.resolve(where.host, where.port).begin();
  results r;
  const auto before = sample_process(s.server_pid);

  std::optional<ingest::sqlite::database> db;
  std::optional<row_counter> counter;
  std::int64_t rows_before = 0;
  if (!s.db.empty()) {
    try {
      db.emplace(s.db, ingest::sqlite::database_options{.create = false, .read_only = true, .wal = false,
                                                        .synchronous_full = false});
      counter.emplace(*db, prefix);
      rows_before = counter->total();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "spike: cannot audit %s: %s\n", s.db.c_str(), e.what());
      return 2;
    }
  }

  // Connections first (the students are already on the page), then the wall.
  std::vector<std::unique_ptr<client>> clients;
  const int pool = open_loop ? std::min(s.connections, n) : n;
  // With more than one thread a client's work and the sweeper's close must not overlap:
  // each client is then a strand.
  const auto client_executor = [&]() -> asio::any_io_executor {
    if (s.threads > 1) return asio::make_strand(io);
    return io.get_executor();
  };
  for (int i = 0; i < pool; ++i) clients.push_back(std::make_unique<client>(client_executor(), s, r, ep));
  std::atomic<int> connected{0}, next_connect{0};
  const auto t_connect = steady::now();
  for (int lane = 0; lane < std::min(pool, 500); ++lane)
    asio::co_spawn(io, [&]() -> awaitable<void> {
      for (int i = next_connect++; i < pool; i = next_connect++)
        if (co_await clients[static_cast<std::size_t>(i)]->connect()) ++connected;
    }, asio::detached);
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < s.threads; ++t) threads.emplace_back([&] { io.run(); });
    for (auto& t : threads) t.join();
  }
  io.restart();
  const double connect_seconds = std::chrono::duration<double>(steady::now() - t_connect).count();
  std::printf("%s: %d connections open in %.2f s\n", s.label.c_str(), connected.load(), connect_seconds);
  std::fflush(stdout);

  r.t0 = steady::now() + 200ms;
  std::vector<std::unique_ptr<client>> extra;  // the second connection of a double click
  for (const auto& st : students)
    if (st.double_click) extra.push_back(std::make_unique<client>(client_executor(), s, r, ep));
  std::vector<client*> all;
  for (auto& c : clients) all.push_back(c.get());
  for (auto& c : extra) all.push_back(c.get());
  deadline_sweeper sweeper(io, std::move(all));
  std::atomic<int> next{0};  // open loop: the next submission to send (outlives the coroutines)
  if (!open_loop) {
    std::size_t e = 0;
    for (int i = 0; i < n; ++i) {
      const auto at = r.t0 + std::chrono::duration_cast<steady::duration>(
                                 std::chrono::duration<double>(s.window_s * i / n));
      auto& c = *clients[static_cast<std::size_t>(i)];
      const auto& st = students[static_cast<std::size_t>(i)];
      sweeper.start();
      asio::co_spawn(c.executor(), [&, at]() -> awaitable<void> {
        co_await wait_until(at);
        co_await submit(c, st, s, r, steady::time_point{});
        sweeper.finish();
      }, asio::detached);
      if (st.double_click) {
        auto& c2 = *extra[e++];
        sweeper.start();
        asio::co_spawn(c2.executor(), [&, at]() -> awaitable<void> {
          co_await wait_until(at + 30ms);  // the impatient second click
          co_await submit(c2, st, s, r, steady::time_point{});
          sweeper.finish();
        }, asio::detached);
      }
    }
  } else {
    for (int ci = 0; ci < pool; ++ci) {
      sweeper.start();
      asio::co_spawn(clients[static_cast<std::size_t>(ci)]->executor(), [&, ci]() -> awaitable<void> {
        for (int i = next++; i < n; i = next++) {
          const auto at = r.t0 + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(i / s.rate));
          // Timers end on whole milliseconds (rounded up): the requests of one
          // millisecond share one timer expiry instead of re-arming the kernel's timer
          // for each. Latency still counts from `at`, so the pacing delay is charged
          // to the server, never hidden.
          if (steady::now() < at) co_await wait_until(std::chrono::ceil<std::chrono::milliseconds>(at));
          co_await submit(*clients[static_cast<std::size_t>(ci)], students[static_cast<std::size_t>(i)], s, r, at);
        }
        sweeper.finish();
      }, asio::detached);
    }
  }

  // exam.db sampled every 100 ms while the flood runs and until it has drained.
  std::vector<std::int64_t> written;
  std::atomic<std::int64_t> rows_now{-1};
  std::atomic<bool> flood_done{false};
  std::thread watcher;
  double drain_seconds = -1;
  if (db)
    watcher = std::thread([&] {
      std::this_thread::sleep_until(r.t0);
      std::optional<steady::time_point> give_up;  // set when the flood is over
      auto tick = r.t0;
      while (true) {
        const auto rows = counter->total() - rows_before;
        written.push_back(rows);
        rows_now = rows;
        if (flood_done) {
          if (!give_up)
            give_up = steady::now() + std::chrono::duration_cast<steady::duration>(
                                          std::chrono::duration<double>(s.drain_timeout_s));
          std::lock_guard lock(r.mutex);
          if (rows >= static_cast<std::int64_t>(r.receipts.size())) {
            drain_seconds = std::chrono::duration<double>(steady::now() - r.last_accept).count();
            break;
          }
          if (steady::now() > *give_up) break;
        }
        tick += 100ms;
        std::this_thread::sleep_until(tick);
      }
    });
  std::optional<exam::progress_meter> progress;
  progress.emplace(s.label, [&] {
    exam::progress_sample p;
    std::lock_guard lock(r.mutex);
    p.accepted = r.receipts.size();
    if (const auto rows = rows_now.load(); rows >= 0) {
      p.written = static_cast<std::uint64_t>(rows);
      p.backlog = *p.accepted > *p.written ? *p.accepted - *p.written : 0;
    }
    for (const auto& [kind, n] : r.errors) p.errors += n;
    return p;
  });
  const auto t_flood = steady::now();
  sweeper.run();
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < s.threads; ++t) threads.emplace_back([&] { io.run(); });
    for (auto& t : threads) t.join();
  }
  const double flood_seconds = std::chrono::duration<double>(steady::now() - t_flood).count();
  const auto after_flood = sample_process(s.server_pid);
  flood_done = true;
  if (watcher.joinable()) watcher.join();
  progress.reset();
  const auto after = sample_process(s.server_pid);

  audit_result a;
  if (db) {
    a = audit(*db, prefix, r);
    classify_missing(a, s, ep);
  }
  // The rate exam.db was written at: rows over the time from the first row to the last.
  double write_rate = 0;
  {
    std::size_t first = written.size(), last = 0;
    for (std::size_t i = 0; i < written.size(); ++i) {
      if (written[i] > 0 && first == written.size()) first = i;
      if (i > 0 && written[i] > written[i - 1]) last = i;
    }
    if (first < written.size() && last > first)
      write_rate = static_cast<double>(written[last] - (first > 0 ? written[first - 1] : 0)) /
                   (0.1 * static_cast<double>(last - first + 1));
  }
  const double accept_span = std::chrono::duration<double>(r.last_accept - r.t0).count();
  // The rate while a backlog exists (at least a few batches waiting in the queue): what
  // load leveling promises to hold at the consumer's configured rate.
  double backlog_rate = 0;
  {
    std::int64_t accepted_cum = 0, rows = 0;
    double seconds = 0;
    for (std::size_t i = 1; i < written.size(); ++i) {
      accepted_cum += i - 1 < r.accepted_per_tick.size() ? r.accepted_per_tick[i - 1] : 0;
      const auto backlog = accepted_cum - written[i - 1];
      if (backlog >= 2000 && written[i] < static_cast<std::int64_t>(r.receipts.size())) {
        rows += written[i] - written[i - 1];
        seconds += 0.1;
      }
    }
    if (seconds >= 0.5) backlog_rate = static_cast<double>(rows) / seconds;
  }
  const auto receipts = static_cast<std::int64_t>(r.receipts.size());
  const double success = 100.0 * static_cast<double>(receipts) / n;
  const auto failed_requests = [&] {
    std::uint64_t f = 0;
    std::lock_guard lock(r.mutex);
    for (const auto& [k, v] : r.errors) f += v;
    return f;
  }();

  // The report.
  auto ms = [](double seconds) { return seconds * 1000.0; };
  const auto& lat = open_loop ? r.scheduled_latency : r.accept_latency;
  std::printf("\n%s (%s, %d %s)\n", s.label.c_str(), open_loop ? "open loop" : "wall", n,
              open_loop ? "submissions" : "students");
  std::printf("  requests %llu, 2xx %llu, failed %llu, retried %llu, gave up %llu\n",
              static_cast<unsigned long long>(r.requests.load()), static_cast<unsigned long long>(r.ok.load()),
              static_cast<unsigned long long>(failed_requests), static_cast<unsigned long long>(r.retried.load()),
              static_cast<unsigned long long>(r.gave_up.load()));
  std::printf("  students with a receipt: %lld of %d (%.2f %%)\n", static_cast<long long>(receipts), n, success);
  {
    std::lock_guard lock(r.mutex);
    for (const auto& [k, v] : r.errors) std::printf("  error %-20s %llu\n", k.c_str(), static_cast<unsigned long long>(v));
  }
  std::printf("  accept latency ms: avg %.1f  p50 %.1f  p95 %.1f  p99 %.1f  max %.1f%s\n",
              lat.count() ? ms(lat.sum() / static_cast<double>(lat.count())) : 0.0, ms(lat.quantile(0.5)),
              ms(lat.quantile(0.95)), ms(lat.quantile(0.99)), ms(lat.quantile(1.0)),
              open_loop ? " (from scheduled time)" : "");
  std::printf("  connect ms: p50 %.1f p99 %.1f; flood %.2f s; accepted %.0f/s\n", ms(r.connect_latency.quantile(0.5)),
              ms(r.connect_latency.quantile(0.99)), flood_seconds,
              std::chrono::duration<double>(r.last_accept - r.t0).count() > 0
                  ? static_cast<double>(receipts) / std::chrono::duration<double>(r.last_accept - r.t0).count()
                  : 0.0);
  if (s.server_pid > 0)
    std::printf("  server: peak RSS %.1f MB, CPU %.2f s during the flood, %.2f s until drained\n",
                static_cast<double>(after.peak_rss_kib) / 1024.0, after_flood.cpu_seconds - before.cpu_seconds,
                after.cpu_seconds - before.cpu_seconds);
  if (db)
    std::printf("  exam.db written at %.0f rows/s (%.0f rows/s while a backlog of 2,000+ waited)\n", write_rate,
                backlog_rate);
  if (db)
    std::printf("  audit: rows %lld, receipts %lld, lost %lld, duplicated %lld, rows without receipt %lld; drained %.2f s after the last accept\n"
                "  states of the receipts: graded %lld + pending %lld + dead-lettered %lld + lost %lld = %lld\n",
                static_cast<long long>(a.rows), static_cast<long long>(a.receipts), static_cast<long long>(a.lost),
                static_cast<long long>(a.duplicated), static_cast<long long>(a.unreceipted), drain_seconds,
                static_cast<long long>(a.receipts - static_cast<std::int64_t>(a.missing.size())),
                static_cast<long long>(a.pending), static_cast<long long>(a.dead_lettered),
                static_cast<long long>(a.lost), static_cast<long long>(a.receipts));

  if (!s.json_out.empty()) {
    boost::json::object o;
    o["label"] = s.label;
    o["mode"] = open_loop ? "open_loop" : "wall";
    o["students"] = n;
    o["window_s"] = s.window_s;
    o["rate"] = s.rate;
    o["requests"] = r.requests.load();
    o["ok"] = r.ok.load();
    o["failed_requests"] = failed_requests;
    o["retried"] = r.retried.load();
    o["gave_up"] = r.gave_up.load();
    o["receipts"] = receipts;
    o["success_pct"] = success;
    boost::json::object errs;
    {
      std::lock_guard lock(r.mutex);
      for (const auto& [k, v] : r.errors) errs[k] = v;
    }
    o["errors"] = std::move(errs);
    boost::json::object l;
    l["avg_ms"] = lat.count() ? ms(lat.sum() / static_cast<double>(lat.count())) : 0.0;
    l["p50_ms"] = ms(lat.quantile(0.5));
    l["p95_ms"] = ms(lat.quantile(0.95));
    l["p99_ms"] = ms(lat.quantile(0.99));
    l["max_ms"] = ms(lat.quantile(1.0));
    o["accept_latency"] = std::move(l);
    o["connect_p99_ms"] = ms(r.connect_latency.quantile(0.99));
    o["flood_s"] = flood_seconds;
    o["server_peak_rss_mb"] = static_cast<double>(after.peak_rss_kib) / 1024.0;
    o["server_cpu_flood_s"] = after_flood.cpu_seconds - before.cpu_seconds;
    o["drain_s"] = drain_seconds;
    o["write_rate"] = write_rate;
    o["backlog_write_rate"] = backlog_rate;
    o["accept_rate"] = accept_span > 0 ? static_cast<double>(receipts) / accept_span : 0.0;
    boost::json::object au;
    au["rows"] = a.rows;
    au["lost"] = a.lost;
    au["duplicated"] = a.duplicated;
    au["rows_without_receipt"] = a.unreceipted;
    au["pending"] = a.pending;
    au["dead_lettered"] = a.dead_lettered;
    au["audited"] = db.has_value();
    o["audit"] = std::move(au);
    boost::json::array acc, wr;
    for (auto v : r.accepted_per_tick) acc.push_back(v);
    for (auto v : written) wr.push_back(v);
    o["accepted_per_100ms"] = std::move(acc);
    o["written_cumulative_per_100ms"] = std::move(wr);
    std::ofstream(s.json_out) << exam::to_plain_json(o) << "\n";
  }
  if (!s.svg_out.empty()) std::ofstream(s.svg_out) << svg_chart(s, r.accepted_per_tick, written, lat);

  // Exit status: the audit is the verdict.
  if (db && (a.lost != 0 || a.duplicated != 0)) return 1;
  return 0;
}
