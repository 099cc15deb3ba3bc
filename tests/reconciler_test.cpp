#include "ingest/reconciler.hpp"

#include <doctest/doctest.h>

#include <map>
#include <set>
#include <thread>

#include "ingest/error.hpp"
#include "ingest/fingerprint.hpp"

namespace ingest::test {

namespace {

using namespace std::chrono_literals;

// A side kept in a map (bytewise key order), counting what is read from it.
class map_source final : public record_source {
 public:
  std::map<std::string, reconcile_record> records;
  std::size_t pages = 0, lookups = 0;

  void put(const std::string& key, const std::string& payload, time_point at) {
    records[key] = {key, fingerprint(payload), at, payload};
  }
  std::vector<reconcile_record> page(const reconcile_window& w, std::string_view after, std::size_t limit) override {
    ++pages;
    std::vector<reconcile_record> out;
    for (auto it = records.upper_bound(std::string(after)); it != records.end() && out.size() < limit; ++it)
      if (it->second.at >= w.from && it->second.at < w.until) out.push_back(it->second);
    return out;
  }
  std::vector<reconcile_record> find(std::span<const std::string> keys) override {
    ++lookups;
    std::vector<reconcile_record> out;
    for (const auto& k : keys)
      if (auto it = records.find(k); it != records.end()) out.push_back(it->second);
    return out;
  }
};

const time_point t0 = clock::now() - 24h;

std::string key(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "k%05d", i);
  return buf;
}

// 1,000 writes in the window, each copied 50 ms after it was made, and what the test
// broke on purpose.
struct sides {
  map_source truth, copy;
  std::set<std::string> missing, extra, different;
  std::uint64_t truth_in_window = 0, copies_in_window = 0;
  reconcile_window window{t0, t0 + 1000s};

  sides() {
    for (int i = 0; i < 1000; ++i) {
      const auto at = t0 + std::chrono::seconds(i);
      truth.put(key(i), "answers " + std::to_string(i), at);
      copy.put(key(i), "answers " + std::to_string(i), at + 50ms);
    }
    for (int i : {3, 400, 999}) copy.records.erase(key(i)), missing.insert(key(i));
    for (int i : {10, 777}) copy.put(key(i), "changed", t0 + std::chrono::seconds(i)), different.insert(key(i));
    for (int i : {1000, 1001, 1002, 1003}) copy.put(key(i) + "x", "only here", t0 + std::chrono::seconds(i - 500)), extra.insert(key(i) + "x");
    // Made just before the window, copied just inside it: neither missing nor extra.
    truth.put("a-early", "edge", t0 - 10ms);
    copy.put("a-early", "edge", t0 + 40ms);
    // Made inside, copied after the window's end: not missing either.
    truth.put("z-late", "edge", t0 + 999s + 990ms);
    copy.put("z-late", "edge", t0 + 1000s + 30ms);
    for (auto& [k, r] : truth.records) truth_in_window += r.at >= window.from && r.at < window.until;
    for (auto& [k, r] : copy.records) copies_in_window += r.at >= window.from && r.at < window.until;
  }
};

std::set<std::string> keys_of(const reconcile_report& r, discrepancy_kind kind) {
  std::set<std::string> out;
  for (const auto& d : r.found)
    if (d.kind == kind) out.insert(d.key);
  return out;
}

}  // namespace

TEST_CASE("reconcile: finds every injected discrepancy and nothing else, whatever the page size") {
  for (std::size_t page : {1000u, 7u, 1u}) {
    CAPTURE(page);
    sides s;
    auto metrics = std::make_shared<reconcile_metrics>();
    std::vector<discrepancy> alerted;
    const auto r = reconcile(s.truth, s.copy,
                             {.window = s.window,
                              .page_size = page,
                              .on_discrepancy = [&](const discrepancy& d) { alerted.push_back(d); },
                              .metrics = metrics});
    CHECK(r.complete);
    CHECK_FALSE(r.clean());
    CHECK(keys_of(r, discrepancy_kind::missing) == s.missing);
    CHECK(keys_of(r, discrepancy_kind::extra) == s.extra);
    CHECK(keys_of(r, discrepancy_kind::different) == s.different);
    CHECK(r.missing == s.missing.size());
    CHECK(r.extra == s.extra.size());
    CHECK(r.different == s.different.size());
    CHECK(r.checked == s.truth_in_window);
    CHECK(r.copies_checked == s.copies_in_window);
    CHECK(r.matched == s.truth_in_window - s.missing.size() - s.different.size());
    CHECK(alerted.size() == r.found.size());
    CHECK(metrics->checked.value() == r.checked);
    CHECK(metrics->missing.value() == s.missing.size());
    for (const auto& d : r.found) {
      if (d.kind != discrepancy_kind::extra) CHECK(d.truth);
      if (d.kind != discrepancy_kind::missing) CHECK(d.copy);
      if (d.kind == discrepancy_kind::different) CHECK(d.copy->detail == "changed");
    }
  }
}

TEST_CASE("reconcile: without the extra pass, only missing and different keys are looked for") {
  sides s;
  const auto r = reconcile(s.truth, s.copy, {.window = s.window, .page_size = 64, .find_extra = false});
  CHECK(r.complete);
  CHECK(r.copies_checked == 0);
  CHECK(r.extra == 0);
  CHECK(keys_of(r, discrepancy_kind::missing) == s.missing);
  CHECK(keys_of(r, discrepancy_kind::different) == s.different);
}

TEST_CASE("reconcile: two identical sides are clean") {
  sides s;
  s.copy = s.truth;
  const auto r = reconcile(s.truth, s.copy, {.window = s.window, .page_size = 64});
  CHECK(r.clean());
  CHECK(r.found.empty());
  CHECK(r.matched == s.truth_in_window);
}

TEST_CASE("reconcile: a stopped run resumes from its report and ends with the same findings, none twice") {
  sides s;
  const auto whole = reconcile(s.truth, s.copy, {.window = s.window, .page_size = 50});
  reconcile_report saved;
  int runs = 0;
  do {
    std::stop_source stop;
    int pages = 0;
    saved = reconcile(s.truth, s.copy,
                      {.window = s.window,
                       .page_size = 50,
                       .on_page =
                           [&](const reconcile_report&) {
                             if (++pages == 3) stop.request_stop();
                           },
                       .stop = stop.get_token()},
                      saved);
    // What another process would read back: the cursor through its text form.
    saved.next = *reconcile_cursor::parse(saved.next.to_string());
    REQUIRE(++runs < 100);
  } while (!saved.complete);
  CHECK(runs > 3);
  CHECK(saved.checked == whole.checked);
  CHECK(saved.copies_checked == whole.copies_checked);
  CHECK(saved.matched == whole.matched);
  CHECK(keys_of(saved, discrepancy_kind::missing) == s.missing);
  CHECK(keys_of(saved, discrepancy_kind::extra) == s.extra);
  CHECK(keys_of(saved, discrepancy_kind::different) == s.different);
  CHECK(saved.found.size() == whole.found.size());
}

TEST_CASE("reconcile: a caller's comparison replaces the fingerprints, and the report keeps max_reported") {
  sides s;
  // Compare only the first 7 bytes: "answers" = "answers"; "changed" differs.
  auto prefix = [](const reconcile_record& a, const reconcile_record& b) {
    return a.detail.substr(0, 7) == b.detail.substr(0, 7);
  };
  s.copy.put(key(5), "answers but with another tail", t0 + 5s);
  const auto r = reconcile(s.truth, s.copy, {.window = s.window, .max_reported = 2, .same = prefix});
  CHECK(r.different == s.different.size());
  CHECK(r.missing == s.missing.size());
  CHECK(r.found.size() == 2);
}

TEST_CASE("reconcile: reads are paced to max_records_per_second") {
  map_source truth, copy;
  for (int i = 0; i < 300; ++i) {
    truth.put(key(i), "x", t0 + std::chrono::seconds(i));
    copy.put(key(i), "x", t0 + std::chrono::seconds(i));
  }
  // Pass 0 reads 300 and looks 300 up, pass 1 the same: 1,200 records at 2,000/s
  // cannot take less than about 0.55 s (the first page starts at once).
  const auto start = std::chrono::steady_clock::now();
  const auto r = reconcile(truth, copy, {.window = {t0, t0 + 1h}, .page_size = 50, .max_records_per_second = 2000});
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(r.clean());
  CHECK(took >= 500ms);
}

TEST_CASE("reconcile: a stop request ends a run waiting for its turn at once; resumed, it finds the rest") {
  sides s;
  std::stop_source stop;
  reconcile_report first;
  std::thread run([&] {
    // 1 record a second: the first page goes at once, its lookup would wait 100 s.
    first = reconcile(s.truth, s.copy,
                      {.window = s.window, .page_size = 100, .max_records_per_second = 1, .stop = stop.get_token()});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto asked = std::chrono::steady_clock::now();
  stop.request_stop();
  run.join();
  CHECK(std::chrono::steady_clock::now() - asked < std::chrono::seconds(2));
  CHECK_FALSE(first.complete);
  CHECK(first.checked == 0);  // the page whose lookup never ran counts for nothing
  const auto rest = reconcile(s.truth, s.copy, {.window = s.window, .page_size = 100}, first);
  CHECK(rest.complete);
  CHECK(keys_of(rest, discrepancy_kind::missing) == s.missing);
  CHECK(rest.checked == s.truth_in_window);
}

TEST_CASE("reconcile: bad options, a page that does not advance, and cursor text are checked") {
  map_source a, b;
  CHECK_THROWS_AS(reconcile(a, b, {.page_size = 0}), error);
  CHECK_THROWS_AS(reconcile(a, b, {.window = {t0, t0}}), error);
  CHECK_THROWS_AS(reconcile(a, b, {.max_records_per_second = -1}), error);

  struct stuck final : record_source {
    std::vector<reconcile_record> page(const reconcile_window&, std::string_view, std::size_t) override {
      return {{"same", "f", t0, {}}};
    }
    std::vector<reconcile_record> find(std::span<const std::string>) override { return {}; }
  } broken;
  try {
    reconcile(broken, b, {.page_size = 1});
    FAIL("a source stuck on one key was read forever");
  } catch (const error& e) {
    CHECK(e.code() == errc::invalid_config);
  }

  CHECK(reconcile_cursor{1, "k:with:colons"}.to_string() == "1:k:with:colons");
  CHECK(*reconcile_cursor::parse("1:k:with:colons") == reconcile_cursor{1, "k:with:colons"});
  CHECK(*reconcile_cursor::parse("0:") == reconcile_cursor{});
  for (const char* bad : {"", "3:x", "x:1", "10:a", ":a", "0"}) CHECK_FALSE(reconcile_cursor::parse(bad));
}

TEST_CASE("reconcile: Prometheus text") {
  reconcile_metrics m;
  m.missing.inc(2);
  m.checked.inc(10);
  const auto text = to_prometheus(m);
  CHECK(text.find("ingest_reconcile_checked_total 10\n") != std::string::npos);
  CHECK(text.find("ingest_reconcile_discrepancies_total{kind=\"missing\"} 2\n") != std::string::npos);
  CHECK(text.find("ingest_reconcile_discrepancies_total{kind=\"extra\"} 0\n") != std::string::npos);
}

}  // namespace ingest::test
