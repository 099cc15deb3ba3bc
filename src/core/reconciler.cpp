#include "ingest/reconciler.hpp"

#include <charconv>
#include <fmt/format.h>
#include <unordered_map>

#include "ingest/error.hpp"
#include "rate_limiter.hpp"

namespace ingest {

std::string_view to_string(discrepancy_kind k) noexcept {
  switch (k) {
    case discrepancy_kind::missing: return "missing";
    case discrepancy_kind::extra: return "extra";
    case discrepancy_kind::different: return "different";
  }
  return "unknown";
}

std::string reconcile_cursor::to_string() const {
  return fmt::format("{}:{}", pass, after);
}

std::optional<reconcile_cursor> reconcile_cursor::parse(std::string_view text) {
  const auto colon = text.find(':');
  if (colon != 1) return std::nullopt;
  int pass = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + 1, pass);
  if (ec != std::errc{} || end != text.data() + 1 || pass < 0 || pass > 2) return std::nullopt;
  return reconcile_cursor{pass, std::string(text.substr(2))};
}

std::string to_prometheus(const reconcile_metrics& m, std::string_view prefix) {
  return fmt::format(
      "# HELP {0}checked_total Records of the source of truth compared.\n# TYPE {0}checked_total counter\n"
      "{0}checked_total {1}\n"
      "# HELP {0}copies_checked_total Records of the copy looked up in the source of truth.\n"
      "# TYPE {0}copies_checked_total counter\n{0}copies_checked_total {2}\n"
      "# HELP {0}discrepancies_total Keys found wrong, by kind.\n# TYPE {0}discrepancies_total counter\n"
      "{0}discrepancies_total{{kind=\"missing\"}} {3}\n{0}discrepancies_total{{kind=\"extra\"}} {4}\n"
      "{0}discrepancies_total{{kind=\"different\"}} {5}\n"
      "# HELP {0}pages_total Pages read.\n# TYPE {0}pages_total counter\n{0}pages_total {6}\n",
      prefix, m.checked.value(), m.copies_checked.value(), m.missing.value(), m.extra.value(), m.different.value(),
      m.pages.value());
}

void reconcile_options::validate() const {
  if (page_size == 0) throw error(errc::invalid_config, "reconcile: page_size must be at least 1");
  if (!(max_records_per_second >= 0)) throw error(errc::invalid_config, "reconcile: max_records_per_second < 0");
  if (window.until <= window.from) throw error(errc::invalid_config, "reconcile: the window is empty");
}

namespace {

class run {
 public:
  run(record_source& truth, record_source& copy, const reconcile_options& o, reconcile_report& r)
      : truth_(truth), copy_(copy), o_(o), r_(r), pace_(o.max_records_per_second) {}

  // One page of the current pass; false when stopped while waiting for its turn.
  bool step() {
    const bool first = r_.next.pass == 0;
    auto& walked = first ? truth_ : copy_;
    auto& other = first ? copy_ : truth_;
    if (!pace_.acquire(o_.page_size, o_.stop)) return false;
    auto page = walked.page(o_.window, r_.next.after, o_.page_size);
    if (o_.metrics) o_.metrics->pages.inc();
    if (!page.empty() && page.back().key == r_.next.after)
      throw error(errc::invalid_config, "reconcile: a source returned a page that does not advance");
    std::vector<std::string> keys;
    keys.reserve(page.size());
    for (const auto& rec : page) keys.push_back(rec.key);
    std::unordered_map<std::string, reconcile_record> there;
    if (!keys.empty()) {
      // Stopped here, the page counts for nothing: a resumed run reads it again.
      if (!pace_.acquire(keys.size(), o_.stop)) return false;
      for (auto& rec : other.find(keys)) there.emplace(rec.key, std::move(rec));
      if (o_.metrics) o_.metrics->pages.inc();
    }
    const bool more = page.size() == o_.page_size;
    r_.next = more ? reconcile_cursor{r_.next.pass, page.back().key} : reconcile_cursor{r_.next.pass + 1, {}};
    for (auto& rec : page) first ? compare(std::move(rec), there) : look_up(std::move(rec), there);
    return true;
  }

 private:
  void compare(reconcile_record rec, std::unordered_map<std::string, reconcile_record>& there) {
    ++r_.checked;
    if (o_.metrics) o_.metrics->checked.inc();
    auto it = there.find(rec.key);
    if (it == there.end()) return report(discrepancy_kind::missing, std::move(rec), std::nullopt);
    const bool agree = o_.same ? o_.same(rec, it->second) : rec.fingerprint == it->second.fingerprint;
    if (!agree) return report(discrepancy_kind::different, std::move(rec), std::move(it->second));
    ++r_.matched;
  }

  void look_up(reconcile_record rec, std::unordered_map<std::string, reconcile_record>& there) {
    ++r_.copies_checked;
    if (o_.metrics) o_.metrics->copies_checked.inc();
    if (!there.contains(rec.key)) report(discrepancy_kind::extra, std::nullopt, std::move(rec));
  }

  void report(discrepancy_kind kind, std::optional<reconcile_record> truth, std::optional<reconcile_record> copy) {
    discrepancy d{kind, truth ? truth->key : copy->key, std::move(truth), std::move(copy)};
    switch (kind) {
      case discrepancy_kind::missing:
        ++r_.missing;
        if (o_.metrics) o_.metrics->missing.inc();
        break;
      case discrepancy_kind::extra:
        ++r_.extra;
        if (o_.metrics) o_.metrics->extra.inc();
        break;
      case discrepancy_kind::different:
        ++r_.different;
        if (o_.metrics) o_.metrics->different.inc();
        break;
    }
    if (o_.on_discrepancy) o_.on_discrepancy(d);
    if (r_.found.size() < o_.max_reported) r_.found.push_back(std::move(d));
  }

  record_source& truth_;
  record_source& copy_;
  const reconcile_options& o_;
  reconcile_report& r_;
  detail::rate_limiter pace_;
};

}  // namespace

reconcile_report reconcile(record_source& truth, record_source& copy, const reconcile_options& options,
                           reconcile_report start) {
  options.validate();
  reconcile_report r = std::move(start);
  run walk(truth, copy, options, r);
  while (r.next.pass < 2) {
    if (options.stop.stop_requested() || !walk.step()) return r;
    if (r.next.pass == 1 && !options.find_extra) r.next = {2, {}};
    if (options.on_page) options.on_page(r);
  }
  r.complete = true;
  return r;
}

}  // namespace ingest
