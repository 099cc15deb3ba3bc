#include "status_streams.hpp"

#include <boost/json/parse.hpp>
#include <random>
#include <vector>

namespace exam {

status_streams::status_streams(reader read, stream_options o) : read_(std::move(read)), options_(o) {}

std::shared_ptr<status_streams> status_streams::make(reader read, stream_options o) {
  auto s = std::make_shared<status_streams>(std::move(read), o);
  s->thread_ = std::thread([raw = s.get()] { raw->run(); });
  return s;
}

void status_streams::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (!thread_.joinable()) return;
  if (thread_.get_id() == std::this_thread::get_id())
    thread_.detach();  // the last reference dropped in a read's callback: run() returns next
  else
    thread_.join();
}

status_streams::~status_streams() {
  stop();
}

std::string status_streams::event(std::string_view type, std::string_view json) {
  std::string out = "event: ";
  out += type;
  out += "\ndata: ";
  out += json;  // one line: the servers write JSON without newlines
  out += "\n\n";
  return out;
}

bool status_streams::final_status(std::string_view json) {
  boost::system::error_code ec;
  const auto v = boost::json::parse(json, ec);
  if (ec || !v.is_object()) return false;
  const auto* s = v.as_object().if_contains("status");
  return s && s->is_string() && s->as_string() == "graded";
}

std::pair<std::uint64_t, status_streams::refusal> status_streams::reserve(const std::string& principal) {
  std::lock_guard lock(mutex_);
  if (places_.size() >= options_.max_streams) return {0, refusal::too_many};
  auto& mine = per_principal_[principal];
  if (mine >= options_.max_per_principal) return {0, refusal::too_many_for_principal};
  ++mine;
  const auto id = ++next_id_;
  places_[id].principal = principal;
  return {id, refusal::none};
}

void status_streams::release(std::uint64_t id) {
  std::shared_ptr<ingest::http::body_stream> stream;  // dropped outside the lock
  std::lock_guard lock(mutex_);
  auto it = places_.find(id);
  if (it == places_.end()) return;
  stream = std::move(it->second.stream);
  if (auto p = per_principal_.find(it->second.principal); p != per_principal_.end() && --p->second == 0)
    per_principal_.erase(p);
  places_.erase(it);
}

void status_streams::follow(std::uint64_t id, std::string receipt_id, std::string authorization,
                            std::shared_ptr<ingest::http::body_stream> stream, std::string first) {
  thread_local std::minstd_rand spread(std::random_device{}());
  const auto now = clock::now();
  std::lock_guard lock(mutex_);
  auto it = places_.find(id);
  if (it == places_.end()) return;  // ended already
  auto& p = it->second;
  p.receipt_id = std::move(receipt_id);
  p.authorization = std::move(authorization);
  p.stream = std::move(stream);
  p.last = std::move(first);
  p.last_write = now;
  // The first read again somewhere in the next interval: streams opened together
  // (a whole class after a deadline) are read apart.
  p.due = now + std::chrono::milliseconds(spread() % (options_.interval.count() + 1));
}

std::size_t status_streams::open() const {
  std::lock_guard lock(mutex_);
  return places_.size();
}

void status_streams::run() {
  // Fine steps: the reads due (spread over the interval, see follow()) go out in small
  // groups instead of an eighth of every stream at once, which showed in the accept
  // path's p95 (benchmarks/README.md, "Status followers during a flood").
  const auto step = std::clamp(options_.interval / 20, std::chrono::milliseconds(10), std::chrono::milliseconds(100));
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, step, [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    tick(clock::now());
    lock.lock();
  }
}

void status_streams::tick(clock::time_point now) {
  struct due_read {
    std::uint64_t id;
    std::string receipt_id, authorization;
  };
  std::vector<due_read> reads;
  std::vector<std::shared_ptr<ingest::http::body_stream>> idle;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, p] : places_) {
      if (!p.stream) continue;
      if (!p.reading && now >= p.due) {
        p.reading = true;
        p.due = now + options_.interval;
        reads.push_back({id, p.receipt_id, p.authorization});
      }
      if (now - p.last_write >= options_.heartbeat) {
        p.last_write = now;
        idle.push_back(p.stream);
      }
    }
  }
  // A comment line: proxies keep the connection, and a client gone is noticed.
  for (auto& s : idle) s->write(": keep-alive\n\n");
  auto self = weak_from_this();
  for (auto& r : reads)
    read_(r.receipt_id, r.authorization, [self, id = r.id](ingest::http::response answer) {
      if (auto me = self.lock()) me->on_read(id, answer);
    });
}

void status_streams::on_read(std::uint64_t id, const ingest::http::response& r) {
  std::shared_ptr<ingest::http::body_stream> stream;
  std::string text;
  bool end = false;
  {
    std::lock_guard lock(mutex_);
    auto it = places_.find(id);
    if (it == places_.end()) return;
    auto& p = it->second;
    p.reading = false;
    const auto code = r.result_int();
    if (code == 200) {
      if (r.body() == p.last) return;
      p.last = r.body();
      text = event("status", r.body());
      end = final_status(r.body());
    } else if (code == 401 || code == 403 || code == 404) {
      text = event("error", r.body());  // a token expired, say: the page falls back to polling
      end = true;
    } else {
      return;  // the database cannot be read now: read again next time
    }
    p.last_write = clock::now();
    stream = p.stream;
  }
  ++events_;
  stream->write(std::move(text));
  if (end) stream->close();
}

}  // namespace exam
