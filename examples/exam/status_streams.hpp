#pragma once
// Students following their submission's status over server-sent events
// (GET /v1/submissions/{id}/events). One thread re-reads every followed receipt once an
// interval, through the same status read as a poll (so the reads are batched like
// polls), and pushes what changed; a graded submission ends its stream.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "ingest/http/server.hpp"

namespace exam {

struct stream_options {
  std::chrono::milliseconds interval{2000};    // how often each followed receipt is read again
  std::chrono::milliseconds heartbeat{15000};  // a comment line when nothing else was sent
  std::size_t max_streams = 20000;             // open at once, in all
  std::size_t max_per_principal = 8;           // open at once, per account
};

class status_streams : public std::enable_shared_from_this<status_streams> {
 public:
  // Reads the status of `receipt_id` as a GET with `authorization` would, and calls
  // `done` with that GET's answer (from any thread).
  using reader = std::function<void(const std::string& receipt_id, const std::string& authorization,
                                    std::function<void(ingest::http::response)> done)>;
  enum class refusal { none, too_many, too_many_for_principal };

  // Made shared, its thread started once it is (the thread takes weak_from_this()).
  static std::shared_ptr<status_streams> make(reader read, stream_options o);
  status_streams(reader read, stream_options o);
  // Stops the thread and waits for it: no read starts after it returns. Call it before
  // dropping the owner's reference, so that the last one never drops on the thread
  // itself (a read's callback holds one while it runs).
  void stop();
  ~status_streams();
  status_streams(const status_streams&) = delete;
  status_streams& operator=(const status_streams&) = delete;

  // Holds a place for a stream of `principal`: its id, or why not.
  std::pair<std::uint64_t, refusal> reserve(const std::string& principal);
  // Gives the place back (the stream was never opened).
  void release(std::uint64_t id);
  // The stream of place `id` has sent `first` (the status JSON): follow it until it
  // ends. A stream already ended (its place released) is ignored.
  void follow(std::uint64_t id, std::string receipt_id, std::string authorization,
              std::shared_ptr<ingest::http::body_stream> stream, std::string first);
  // The stream's end (responder::open_stream's on_end): the place goes.
  void ended(std::uint64_t id) { release(id); }

  // One SSE event of `type` carrying `json`.
  static std::string event(std::string_view type, std::string_view json);
  // True for a status no change follows ("graded").
  static bool final_status(std::string_view json);

  std::size_t open() const;
  std::uint64_t events() const { return events_; }

 private:
  using clock = std::chrono::steady_clock;
  struct place {
    std::string principal;
    std::string receipt_id;
    std::string authorization;
    std::shared_ptr<ingest::http::body_stream> stream;  // null until follow()
    std::string last;                                   // the last status sent
    clock::time_point due{};
    clock::time_point last_write{};
    bool reading = false;
  };
  void run();
  void tick(clock::time_point now);
  void on_read(std::uint64_t id, const ingest::http::response& r);

  reader read_;
  const stream_options options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::uint64_t next_id_ = 0;
  std::unordered_map<std::uint64_t, place> places_;
  std::map<std::string, std::size_t, std::less<>> per_principal_;
  std::atomic<std::uint64_t> events_{0};
  std::thread thread_;  // started by make(), once the object is shared
};

}  // namespace exam
