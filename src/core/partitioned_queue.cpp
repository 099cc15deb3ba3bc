// partitioned_queue: routing each call to its partition, and gathering the answers of
// calls that reach all of them. The fetch is in partition_fetcher.cpp.

#include "ingest/partitioned_queue.hpp"

#include <algorithm>
#include <functional>
#include <mutex>

#include "partition_fetcher.hpp"

namespace ingest {

std::size_t partition_of(std::string_view key, std::size_t count) noexcept {
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a, 64 bits
  for (const unsigned char c : key) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return count == 0 ? 0 : static_cast<std::size_t>(hash % count);
}

namespace {

bool same_features(const queue_features& a, const queue_features& b) {
  return a.durable == b.durable && a.native_dedup == b.native_dedup && a.fifo == b.fifo &&
         a.delayed_retry == b.delayed_retry && a.lease_extension == b.lease_extension &&
         a.exact_stats == b.exact_stats && a.lookup == b.lookup && a.deadline_before_store == b.deadline_before_store &&
         a.dedup_window == b.dedup_window;
}

// The answers of several partitions to one call, merged; `done` runs after the last.
template <class Result>
struct gather {
  std::mutex mutex;
  std::size_t left = 0;
  error_code ec{};
  Result result{};
  std::function<void(Result&, Result)> merge;
  std::function<void(error_code, Result)> done;

  // An error other than an expired lease (the others were settled) says more.
  void answer(error_code e, Result r) {
    std::unique_lock lock(mutex);
    if (e && (!ec || ec == errc::lease_expired)) ec = e;
    merge(result, std::move(r));
    if (--left > 0) return;
    lock.unlock();
    done(ec, std::move(result));
  }
};

template <class Result>
std::shared_ptr<gather<Result>> gather_for(std::size_t n, std::function<void(Result&, Result)> merge,
                                           std::function<void(error_code, Result)> done) {
  auto g = std::make_shared<gather<Result>>();
  g->left = n;
  g->merge = std::move(merge);
  g->done = std::move(done);
  return g;
}

struct nothing {};

void add_counts(queue_stats& to, const queue_stats& s) {
  to.accepted += s.accepted;
  to.pending += s.pending;
  to.leased += s.leased;
  to.retrying += s.retrying;
  to.processed += s.processed;
  to.dead_lettered += s.dead_lettered;
  to.purged += s.purged;
  to.exact.accepted = to.exact.accepted && s.exact.accepted;
  to.exact.pending = to.exact.pending && s.exact.pending;
  to.exact.processed = to.exact.processed && s.exact.processed;
  to.exact.dead_lettered = to.exact.dead_lettered && s.exact.dead_lettered;
  to.exact.purged = to.exact.purged && s.exact.purged;
}

}  // namespace

partitioned_queue::partitioned_queue(executor_type ex, std::vector<std::unique_ptr<durable_queue>> partitions,
                                     duration hold_limit)
    : executor_(std::move(ex)), partitions_(std::move(partitions)) {
  if (partitions_.empty()) throw error(errc::invalid_config, "partitioned_queue: at least one partition is needed");
  if (hold_limit <= duration::zero())
    throw error(errc::invalid_config, "partitioned_queue: hold_limit must be positive");
  for (const auto& p : partitions_)
    if (!p) throw error(errc::invalid_config, "partitioned_queue: a partition is missing");
  features_ = partitions_.front()->features();
  for (const auto& p : partitions_)
    if (!same_features(p->features(), features_))
      throw error(errc::invalid_config, "partitioned_queue: the partitions must be queues of one kind and settings");
  if (partitions_.size() > 1) features_.fifo = false;  // in order within a partition only
  std::vector<durable_queue*> raw;
  for (const auto& p : partitions_) raw.push_back(p.get());
  fetcher_ = std::make_shared<fetcher>(executor_, std::move(raw), hold_limit);
}

partitioned_queue::~partitioned_queue() {
  close();
  fetcher_->forget();
}

void partitioned_queue::close() {
  fetcher_->close();
  for (auto& p : partitions_) p->close();
}

void partitioned_queue::sign_receipts(std::shared_ptr<const receipt_signer> signer) {
  for (auto& p : partitions_) p->sign_receipts(signer);
  durable_queue::sign_receipts(std::move(signer));
}

void partitioned_queue::do_publish(envelope message, callback<error_code, receipt> done) {
  auto& p = *partitions_[partition_of(message.idempotency_key, partitions_.size())];
  p.do_publish(std::move(message), std::move(done));
}

void partitioned_queue::do_fetch(std::size_t max, duration wait, callback<error_code, std::vector<delivery>> done) {
  fetcher_->fetch(max, wait, std::move(done));
}

namespace {

// Sorts items by the partition their token names, replacing each token with the
// partition's own; `unknown` is set when a token names none (not a lease of ours).
template <class Item, class TokenOf>
std::vector<std::vector<Item>> route_by_token(std::vector<Item>& items, std::size_t count, TokenOf token_of,
                                              bool& unknown) {
  std::vector<std::vector<Item>> out(count);
  for (auto& item : items) {
    std::size_t p = 0;
    std::string inner;
    if (!detail::split_partition_token(token_of(item), count, p, inner)) {
      unknown = true;
      continue;
    }
    token_of(item) = std::move(inner);
    out[p].push_back(std::move(item));
  }
  return out;
}

// Sends each partition its share with `send(partition, share, answer)` and completes
// `done` after the last answer; a token of nobody's is answered as a backend answers a
// lease it does not hold.
template <class Item, class Send>
void send_routed(std::vector<std::vector<Item>> shares, bool unknown, detail::callback<void(error_code)> done,
                 Send send) {
  const auto n =
      static_cast<std::size_t>(std::count_if(shares.begin(), shares.end(), [](const auto& v) { return !v.empty(); }));
  auto finish = [done = std::make_shared<detail::callback<void(error_code)>>(std::move(done)), unknown](error_code ec,
                                                                                                        nothing) {
    (*done)(!ec && unknown ? error_code(make_error_code(errc::lease_expired)) : ec);
  };
  if (n == 0) return finish(error_code{}, nothing{});
  auto g = gather_for<nothing>(
      n, [](nothing&, nothing) {}, finish);
  for (std::size_t p = 0; p < shares.size(); ++p)
    if (!shares[p].empty()) send(p, std::move(shares[p]), [g](error_code ec) { g->answer(ec, nothing{}); });
}

}  // namespace

void partitioned_queue::do_settle(std::vector<settlement> decisions, callback<error_code> done) {
  bool unknown = false;
  auto shares = route_by_token(
      decisions, partitions_.size(), [](settlement& d) -> std::string& { return d.token; }, unknown);
  send_routed(std::move(shares), unknown, std::move(done), [this](std::size_t p, auto share, auto answer) {
    partitions_[p]->do_settle(std::move(share), std::move(answer));
  });
}

void partitioned_queue::do_extend(std::vector<std::string> tokens, duration by, callback<error_code> done) {
  bool unknown = false;
  auto shares = route_by_token(
      tokens, partitions_.size(), [](std::string& t) -> std::string& { return t; }, unknown);
  send_routed(std::move(shares), unknown, std::move(done), [this, by](std::size_t p, auto share, auto answer) {
    partitions_[p]->do_extend(std::move(share), by, std::move(answer));
  });
}

void partitioned_queue::do_stats(callback<error_code, queue_stats> done) {
  queue_stats none;
  none.exact = {true, true, true, true, true};
  auto g = gather_for<queue_stats>(
      partitions_.size(), [](queue_stats& to, queue_stats s) { add_counts(to, s); },
      [done = std::make_shared<callback<error_code, queue_stats>>(std::move(done))](error_code ec, queue_stats s) {
        (*done)(ec, ec ? queue_stats{} : s);
      });
  g->result = none;
  for (auto& p : partitions_) p->do_stats([g](error_code ec, queue_stats s) { g->answer(ec, s); });
}

void partitioned_queue::do_dead_letters(std::string after, std::size_t limit,
                                        callback<error_code, std::vector<dead_letter>> done) {
  using letters = std::vector<dead_letter>;
  auto g = gather_for<letters>(
      partitions_.size(),
      [](letters& to, letters more) { std::move(more.begin(), more.end(), std::back_inserter(to)); },
      [done = std::make_shared<callback<error_code, letters>>(std::move(done)), limit](error_code ec, letters all) {
        // Each partition gave its first `limit` after `after`: the first `limit` of them all are among those.
        std::sort(all.begin(), all.end(), [](const dead_letter& a, const dead_letter& b) {
          return a.message.receipt_id < b.message.receipt_id;
        });
        if (all.size() > limit) all.resize(limit);
        (*done)(ec, ec ? letters{} : std::move(all));
      });
  for (auto& p : partitions_)
    p->do_dead_letters(after, limit, [g](error_code ec, letters l) { g->answer(ec, std::move(l)); });
}

void partitioned_queue::do_replay(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) {
  auto g = gather_for<std::size_t>(
      partitions_.size(), [](std::size_t& to, std::size_t n) { to += n; },
      [done = std::make_shared<callback<error_code, std::size_t>>(std::move(done))](error_code ec, std::size_t n) {
        (*done)(ec, n);
      });
  for (auto& p : partitions_) p->do_replay(receipt_ids, [g](error_code ec, std::size_t n) { g->answer(ec, n); });
}

void partitioned_queue::do_purge(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) {
  auto g = gather_for<std::size_t>(
      partitions_.size(), [](std::size_t& to, std::size_t n) { to += n; },
      [done = std::make_shared<callback<error_code, std::size_t>>(std::move(done))](error_code ec, std::size_t n) {
        (*done)(ec, n);
      });
  for (auto& p : partitions_) p->do_purge(receipt_ids, [g](error_code ec, std::size_t n) { g->answer(ec, n); });
}

void partitioned_queue::do_find(std::string receipt_id, callback<error_code, message_status> done) {
  if (!features_.lookup) return durable_queue::do_find(std::move(receipt_id), std::move(done));
  // One partition knows the message; the others answer not_found, which is the answer
  // only when all of them give it.
  struct found {
    bool any = false;
    error_code other{};
    message_status status{};
  };
  auto g = std::make_shared<gather<found>>();
  g->left = partitions_.size();
  g->merge = [](found& to, found f) {
    if (f.any && !to.any) {
      to.any = true;
      to.status = std::move(f.status);
    } else if (f.other && !to.other) {
      to.other = f.other;
    }
  };
  g->done = [done = std::make_shared<callback<error_code, message_status>>(std::move(done))](error_code, found f) {
    if (f.any) return (*done)(error_code{}, std::move(f.status));
    (*done)(f.other ? f.other : error_code(make_error_code(errc::not_found)), message_status{});
  };
  for (auto& p : partitions_)
    p->do_find(receipt_id, [g](error_code ec, message_status s) {
      found f;
      if (!ec) {
        f.any = true;
        f.status = std::move(s);
      } else if (ec != errc::not_found) {
        f.other = ec;
      }
      g->answer(error_code{}, std::move(f));
    });
}

}  // namespace ingest
