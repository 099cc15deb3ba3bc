#include "ingest/auditor.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <mutex>

#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"
#include "ingest/memory_queue.hpp"
#include "ingest/sqlite/queue.hpp"
#include "ingest/sqlite/queue_records.hpp"
#include "support/test_support.hpp"

namespace ingest::test {

namespace {

// A side in memory, shared by the sources the factories make.
struct shared_side {
  std::mutex mutex;
  std::map<std::string, reconcile_record> records;
};

class side_source final : public record_source {
 public:
  explicit side_source(shared_side& s) : s_(s) {}
  std::vector<reconcile_record> page(const reconcile_window& w, std::string_view after, std::size_t limit) override {
    std::lock_guard lock(s_.mutex);
    std::vector<reconcile_record> out;
    for (auto it = s_.records.upper_bound(std::string(after)); it != s_.records.end() && out.size() < limit; ++it)
      if (it->second.at >= w.from && it->second.at < w.until) out.push_back(it->second);
    return out;
  }
  std::vector<reconcile_record> find(std::span<const std::string> keys) override {
    std::lock_guard lock(s_.mutex);
    std::vector<reconcile_record> out;
    for (const auto& k : keys)
      if (auto it = s_.records.find(k); it != s_.records.end()) out.push_back(it->second);
    return out;
  }

 private:
  shared_side& s_;
};

auditor::source_factory over(shared_side& s) {
  return [&s] { return std::make_unique<side_source>(s); };
}

void put(shared_side& s, const std::string& key, time_point at) {
  std::lock_guard lock(s.mutex);
  s.records[key] = {key, "f", at, {}};
}

}  // namespace

TEST_CASE("auditor: a run covers the window ending `settle` ago and alerts with what is missing") {
  shared_side accepted, kept;
  const auto now = clock::now();
  for (int i = 0; i < 50; ++i) {
    const auto key = "r" + std::to_string(100 + i);
    put(accepted, key, now - std::chrono::minutes(55) + std::chrono::minutes(i));
    if (i != 7 && i != 20) put(kept, key, now - std::chrono::minutes(55) + std::chrono::minutes(i));
  }
  put(accepted, "r-new", now - std::chrono::seconds(10));  // still on its way: not yet audited
  put(kept, "r-old-row", now - std::chrono::minutes(30));  // the sink may hold more: no extra pass
  std::vector<std::string> alerted;
  int runs = 0;
  auditor audit(over(accepted), over(kept),
                {.lookback = std::chrono::hours(1),
                 .settle = std::chrono::seconds(60),
                 .compare = {.page_size = 8, .find_extra = false},
                 .alert =
                     [&](const reconcile_report& r) {
                       for (const auto& d : r.found) alerted.push_back(d.key);
                     },
                 .on_run = [&](const reconcile_report&) { ++runs; }});
  const auto report = audit.run_once(now);
  CHECK(report.complete);
  CHECK(report.checked == 50);
  CHECK(report.copies_checked == 0);
  CHECK(report.extra == 0);
  CHECK(alerted == std::vector<std::string>{"r107", "r120"});
  CHECK(runs == 1);
  CHECK(audit.stats().alerts == 1);

  // Once the rows are there, the next run is clean and raises nothing.
  put(kept, "r107", now);
  put(kept, "r120", now);
  alerted.clear();
  CHECK(audit.run_once(now).clean());
  CHECK(alerted.empty());
  CHECK(audit.stats().runs == 2);

  // A hook that throws is not the run's failure.
  auditor loud(over(accepted), over(kept),
               {.settle = std::chrono::seconds(60), .alert = [](const reconcile_report&) { throw 42; }});
  put(accepted, "r-lost", now - std::chrono::minutes(10));
  CHECK_NOTHROW(loud.run_once(now));
  CHECK(loud.stats().failed_runs == 0);
  CHECK(loud.stats().alerts == 1);
}

TEST_CASE("auditor: runs on its schedule, survives a failing run, stops at once") {
  shared_side accepted, kept;
  put(accepted, "a", clock::now() - std::chrono::minutes(5));
  std::atomic<int> made{0};
  auditor audit(
      [&]() -> std::unique_ptr<record_source> {
        if (++made == 2) throw error(errc::backend_unavailable, "the database restarts");
        return std::make_unique<side_source>(accepted);
      },
      over(kept), {.every = std::chrono::seconds(1), .settle = std::chrono::seconds(0)});
  audit.start();
  audit.start();  // a second start does nothing
  REQUIRE(eventually([&] { return audit.stats().runs >= 2; }, std::chrono::seconds(10)));
  const auto st = audit.stats();
  CHECK(st.failed_runs == 1);
  CHECK(st.last_error.find("restarts") != std::string::npos);
  CHECK(st.alerts == st.runs);  // "a" is missing every time
  REQUIRE(st.last);
  CHECK(st.last->missing == 1);
  const auto before = std::chrono::steady_clock::now();
  audit.stop();
  CHECK(std::chrono::steady_clock::now() - before < std::chrono::milliseconds(900));
}

TEST_CASE("auditor: bad options are refused") {
  shared_side s;
  CHECK_THROWS_AS(auditor(over(s), over(s), {.every = std::chrono::seconds(0)}), error);
  CHECK_THROWS_AS(auditor(over(s), over(s), {.lookback = std::chrono::seconds(0)}), error);
  CHECK_THROWS_AS(auditor(over(s), over(s), {.settle = std::chrono::seconds(-1)}), error);
  CHECK_THROWS_AS(auditor(over(s), over(s), {.compare = {.page_size = 0}}), error);
  CHECK_THROWS_AS(auditor({}, over(s)), error);
}

TEST_CASE("queue_records: the embedded queue's receipts with where each message is") {
  temp_dir dir;
  io_thread io;
  const auto path = (dir.path() / "queue.db").string();
  sqlite::queue q(io.executor(), {.path = path});
  std::map<std::string, std::string> receipts;  // key -> receipt id
  for (int i = 0; i < 6; ++i) {
    auto [ec, r] = publish(q, message("k" + std::to_string(i), "payload " + std::to_string(i)));
    REQUIRE_FALSE(ec);
    receipts[r.idempotency_key] = r.id;
  }
  auto [fec, got] = fetch(q, 3, std::chrono::seconds(1));
  REQUIRE(got.size() == 3);
  REQUIRE_FALSE(settle(q, {{got[0].token, settle_action::ack},
                           {got[1].token, settle_action::ack},
                           {got[2].token, settle_action::dead_letter, {}, "permanent_failure", "bad"}}));
  sqlite::queue_records records(path);
  const auto all = records.page({clock::now() - std::chrono::hours(1), clock::now() + std::chrono::hours(1)}, "", 100);
  REQUIRE(all.size() == 6);
  std::map<std::string, int> states;
  for (std::size_t i = 0; i < all.size(); ++i) {
    ++states[all[i].detail];
    if (i > 0) CHECK(all[i - 1].key < all[i].key);
  }
  CHECK(states == std::map<std::string, int>{{"pending", 3}, {"processed", 2}, {"dead_lettered", 1}});
  const auto half = records.page({clock::now() - std::chrono::hours(1), time_point::max()}, all[2].key, 100);
  CHECK(half.size() == 3);
  CHECK(records.page({clock::now() + std::chrono::hours(1), time_point::max()}, "", 100).empty());
  const std::vector<std::string> wanted{receipts["k4"], "not-a-receipt"};
  const auto found = records.find(wanted);
  REQUIRE(found.size() == 1);
  CHECK(found[0].key == receipts["k4"]);
  CHECK(found[0].fingerprint == fingerprint("payload 4"));

  sqlite::queue plain(io.executor(), {.path = (dir.path() / "plain.db").string(), .receipt_index = false});
  try {
    sqlite::queue_records none((dir.path() / "plain.db").string());
    FAIL("a queue without a receipt index was read");
  } catch (const error& e) {
    CHECK(e.code() == errc::not_supported);
  }
  q.close();
  plain.close();
}

}  // namespace ingest::test
