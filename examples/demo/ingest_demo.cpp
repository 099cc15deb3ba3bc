// A deadline flood in miniature: submissions go through the producer into a durable
// queue (the embedded SQLite queue by default), a rate-limited batching consumer
// writes them to an SQLite sink one transaction per batch, and the per-state counts
// are printed at the end, with an audit of the sink against the receipts handed out.
//
//   ingest_demo [--submissions 5000] [--rate 5000] [--db data/demo.db]
//               [--queue sqlite://data/demo-queue.db | --queue memory]

#include <CLI/CLI.hpp>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <filesystem>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "ingest/ingest.hpp"
#include "ingest/sqlite/queue.hpp"
#include "ingest/sqlite/transactional_handler.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

struct audit_result {
  long long rows = 0;     // rows in the sink
  long long stored = 0;   // receipts found in the sink once
  long long dead = 0;     // receipts found in the dead-letter store instead
  long long missing = 0;  // receipts found in neither
  long long doubled = 0;  // receipts with more than one row, or both a row and a dead letter
  long long unknown = 0;  // rows whose receipt id no client was told
};

// Every receipt the producer handed out must be in the sink exactly once, or in the
// dead-letter store; and nothing else may be in the sink. Checked against the receipts
// themselves, not against the sink's own counts (its UNIQUE constraints would make
// those agree by construction).
audit_result audit_sink(ingest::sqlite::database& db, ingest::durable_queue& queue,
                        const std::map<std::string, std::string>& given) {
  audit_result a;
  std::map<std::string, long long> rows;
  ingest::sqlite::statement s(db, "SELECT receipt_id FROM submissions");
  while (s.step()) {
    ++rows[s.column_text(0)];
    ++a.rows;
  }
  std::set<std::string> dead;
  for (const auto& l : queue.async_dead_letters("", 1000000, asio::use_future).get()) dead.insert(l.message.receipt_id);
  std::set<std::string> told;
  for (const auto& [key, id] : given) {
    told.insert(id);
    const auto n = rows.count(id) ? rows[id] : 0;
    const bool letter = dead.count(id) > 0;
    if (n == 1 && !letter)
      ++a.stored;
    else if (n == 0 && letter)
      ++a.dead;
    else if (n == 0)
      ++a.missing;
    else
      ++a.doubled;
  }
  for (const auto& [id, n] : rows)
    if (!told.count(id)) a.unknown += n;
  return a;
}

struct demo_options {
  int submissions = 5000;
  int double_click_every = 10;
  double rate = 5000;
  std::string db_path = "data/demo.db";
  std::string queue_url = "sqlite://data/demo-queue.db";
};

void add_options(CLI::App& app, demo_options& o) {
  app.add_option("--submissions", o.submissions, "students submitting")->check(CLI::Range(1, 1000000));
  app.add_option("--double-click-every", o.double_click_every, "every Nth student submits twice")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--rate", o.rate, "consumer write limit, rows/s")->check(CLI::PositiveNumber);
  app.add_option("--db", o.db_path, "sink database (recreated)");
  app.add_option("--queue", o.queue_url, "sqlite://FILE (recreated) or memory (not durable)")->capture_default_str();
  app.get_option("--db")->capture_default_str();
  app.get_option("--submissions")->capture_default_str();
  app.get_option("--rate")->capture_default_str();
}

// Every run starts from empty files.
void fresh(const std::string& file) {
  std::filesystem::path path(file);
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(file + suffix);
}

// The queue the URL names, on empty files. Throws ingest::error for a bad URL.
std::unique_ptr<ingest::durable_queue> open_queue(const std::string& url, asio::any_io_executor ex) {
  if (url == "memory") return std::make_unique<ingest::memory_queue>(ex);
  auto options = ingest::sqlite::queue_options::from_url(url);
  fresh(options.path);
  return std::make_unique<ingest::sqlite::queue>(ex, options);
}

// The sink's row writer: one row per submission, keyed by receipt; a payload whose
// answers are not an object is a permanent failure (dead-lettered).
ingest::sqlite::item_writer sink_writer(ingest::sqlite::statement& insert) {
  return [&insert](ingest::sqlite::database&, const ingest::delivery& d) {
    if (d.message.payload.find("\"answers\":{") == std::string::npos)
      throw ingest::permanent_error("answers must be an object");
    insert.bind(1, d.message.receipt_id)
        .bind(2, d.message.idempotency_key)
        .bind(3, d.message.payload)
        .bind(4, ingest::format_time(d.message.accepted_at));
    insert.run();
  };
}

struct flood_result {
  int requests = 0;
  std::atomic<int> receipts{0}, originals_returned{0};
  std::mutex given_mutex;
  std::map<std::string, std::string> given;  // key -> the receipt id the client was told
  int inconsistent = 0;                      // a key answered with two different receipt ids
  int retried = 0, rounds = 0;
};

// The flood: every student submits once, some twice (a double click), and one
// sends answers the grader cannot read. A refused request (in flight, or retry
// later) is sent again with the same key in the next round, as a browser would.
void flood(ingest::producer& producer, const demo_options& o, flood_result& out) {
  std::vector<int> to_send;
  for (int i = 0; i < o.submissions; ++i) {
    to_send.push_back(i);
    if (i % o.double_click_every == 0) to_send.push_back(i);
  }
  out.requests = static_cast<int>(to_send.size());
  while (!to_send.empty()) {
    ++out.rounds;
    std::mutex m;
    std::vector<int> again;
    std::latch answered(static_cast<std::ptrdiff_t>(to_send.size()));
    for (std::size_t n = 0; n < to_send.size(); ++n) {
      const int student = to_send[n];
      const bool broken = student == o.submissions / 2;
      ingest::submission s{.idempotency_key = "student-" + std::to_string(student) + "-attempt-1",
                           .subject = "exam.demo",
                           .payload = broken ? R"({"answers":"B"})" : R"({"answers":{"q1":"B","q2":"D","q3":"A"}})",
                           .headers = {}};
      producer.async_submit(std::move(s), [&, student](ingest::error_code ec, ingest::receipt r) {
        if (!ec) {
          ++out.receipts;
          if (r.duplicate) ++out.originals_returned;
          std::lock_guard lock(out.given_mutex);
          if (auto [it, added] = out.given.try_emplace(r.idempotency_key, r.id); !added && it->second != r.id)
            ++out.inconsistent;
        } else if (ingest::is_retry_later(ec) || ec == ingest::errc::in_flight) {
          std::lock_guard lock(m);
          again.push_back(student);
        } else {
          std::fprintf(stderr, "submission %d refused: %s\n", student, ec.message().c_str());
        }
        answered.count_down();
      });
      if (n % 256 == 255) std::this_thread::sleep_for(1ms);  // arrivals over time, not all in one instant
    }
    answered.wait();
    out.retried += static_cast<int>(again.size());
    to_send = std::move(again);
    if (!to_send.empty()) std::this_thread::sleep_for(5ms);  // the client's backoff
  }
}

void print_counts(const flood_result& f, const ingest::queue_stats& st, const audit_result& audit, int alerts) {
  std::printf("\n%-34s %10s\n", "", "count");
  std::printf("%-34s %10d\n", "requests sent", f.requests);
  std::printf("%-34s %10d\n", "receipts returned", f.receipts.load());
  std::printf("%-34s %10d\n", "  of which original receipts", f.originals_returned.load());
  std::printf("%-34s %10d\n", "retried by the client (409/503)", f.retried);
  std::printf("%-34s %10llu\n", "accepted (distinct)", static_cast<unsigned long long>(st.accepted));
  std::printf("%-34s %10llu\n", "processed", static_cast<unsigned long long>(st.processed));
  std::printf("%-34s %10llu\n", "pending/retrying", static_cast<unsigned long long>(st.pending));
  std::printf("%-34s %10llu\n", "dead-lettered", static_cast<unsigned long long>(st.dead_lettered));
  std::printf("%-34s %10lld\n", "rows in sink", static_cast<long long>(audit.rows));
  std::printf("%-34s %10d\n", "alerts raised", alerts);
}

void print_latencies(const ingest::pipeline_metrics& metrics) {
  const auto& latency = metrics.accept_latency;
  std::printf("accept latency (every answer, from the library's histogram): p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
              1e3 * latency.quantile(0.5), 1e3 * latency.quantile(0.99), 1e3 * latency.quantile(1.0));
  std::printf("batches: %llu, mean size %.0f, commit p99 %.2f ms\n",
              static_cast<unsigned long long>(metrics.batch_size.count()),
              metrics.batch_size.sum() / std::max<double>(1, static_cast<double>(metrics.batch_size.count())),
              1e3 * metrics.commit_latency.quantile(0.99));
}

// Prints the verdict; true when the books and the audit hold.
bool verdict(const flood_result& f, const ingest::queue_stats& st, const audit_result& audit) {
  const bool balanced = st.balanced() && st.pending == 0;
  const bool audited = audit.missing == 0 && audit.doubled == 0 && audit.unknown == 0 && f.inconsistent == 0;
  if (st.balance_known())
    std::printf("states add up: %s\n", balanced ? "yes" : "NO");
  else
    std::printf("states add up: cannot be checked on this backend (its counts are not all exact)\n");
  std::printf(
      "audit against the %zu receipts handed out: %s (%lld in the sink, %lld dead-lettered; missing %lld,"
      " stored twice %lld, rows nobody was told of %lld, keys answered with two ids %d)\n",
      f.given.size(), audited ? "passed" : "FAILED", static_cast<long long>(audit.stored),
      static_cast<long long>(audit.dead), static_cast<long long>(audit.missing), static_cast<long long>(audit.doubled),
      static_cast<long long>(audit.unknown), f.inconsistent);
  return (balanced || !st.balance_known()) && audited;
}

}  // namespace

int main(int argc, char** argv) {
  demo_options o;
  CLI::App app{
      "ingest demo: producer -> durable queue (embedded SQLite by default) -> batching consumer -> SQLite sink"};
  add_options(app, o);
  CLI11_PARSE(app, argc, argv);

  fresh(o.db_path);
  ingest::sqlite::database db(o.db_path);
  db.exec(
      "CREATE TABLE submissions(receipt_id TEXT PRIMARY KEY, idempotency_key TEXT NOT NULL UNIQUE,"
      " answers_json TEXT NOT NULL, accepted_at TEXT NOT NULL)");
  ingest::sqlite::idempotency_store keys(db);
  ingest::sqlite::statement insert(
      db, "INSERT INTO submissions(receipt_id, idempotency_key, answers_json, accepted_at) VALUES (?1, ?2, ?3, ?4)");

  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });
  std::unique_ptr<ingest::durable_queue> queue_ptr;
  try {
    queue_ptr = open_queue(o.queue_url, io.get_executor());
  } catch (const ingest::error& e) {
    std::fprintf(stderr, "ingest_demo: %s\n", e.what());
    work.reset();
    io_thread.join();
    return 2;
  }
  auto& queue = *queue_ptr;
  std::printf("queue: %s\n", o.queue_url.c_str());
  auto metrics = std::make_shared<ingest::pipeline_metrics>();
  ingest::producer producer(queue, {.max_in_flight = 512, .metrics = metrics});

  std::atomic<int> alerts{0};
  ingest::consumer_options options{
      .workers = 1, .max_batch = 500, .linger = 5ms, .max_rate = o.rate, .metrics = metrics};
  options.retry.max_attempts = 3;
  options.retry.initial_backoff = 10ms;
  options.dead_letter.alert = [&](const ingest::dead_letter& d) {
    ++alerts;
    std::printf("ALERT dead letter %s (%s after %u attempt(s): %s)\n", d.message.idempotency_key.c_str(),
                d.reason.c_str(), d.attempts, d.last_error.c_str());
  };
  ingest::batching_consumer consumer(queue, ingest::sqlite::transactional_handler(db, keys, sink_writer(insert)),
                                     options);
  consumer.start();

  flood_result f;
  const auto t0 = std::chrono::steady_clock::now();
  flood(producer, o, f);
  const auto accept_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  auto stats = [&] { return queue.async_stats(asio::use_future).get(); };
  while (stats().pending > 0) std::this_thread::sleep_for(20ms);
  const auto drain_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  consumer.drain();
  producer.async_drain(asio::use_future).get();
  queue.close();

  const auto st = stats();
  const auto audit = audit_sink(db, queue, f.given);
  print_counts(f, st, audit, alerts.load());
  std::printf("\nall receipts after %.2f s (%d client round(s)); sink caught up after %.2f s (limit %.0f rows/s)\n",
              accept_seconds, f.rounds, drain_seconds, o.rate);
  print_latencies(*metrics);
  const bool ok = verdict(f, st, audit);
  work.reset();
  io_thread.join();
  return ok ? 0 : 1;
}
