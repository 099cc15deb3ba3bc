// Status reads gathered into batches (examples/exam/record_batcher.hpp): every read is
// answered with its own receipt's record, the reads that arrive while a query runs go
// together in the next, and a failed query fails each of its reads.

#include "record_batcher.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <functional>
#include <latch>
#include <thread>

#if defined(__linux__)
#include <sys/resource.h>
#include <unistd.h>
#endif

namespace {

// Answers each receipt with a row whose status is the receipt id; the first query
// waits until it is let go, and `fail` makes queries throw.
struct slow_reader final : exam::submission_reader {
  std::optional<exam::stored_submission> by_receipt(const std::string& id) override {
    exam::stored_submission s;
    s.receipt_id = id;
    s.status = "row of " + id;
    return s;
  }
  std::optional<exam::stored_submission> by_key(const std::string&, const std::string&, const std::string&) override {
    return std::nullopt;
  }
  std::vector<exam::stored_submission> list(const std::string&, const std::string&, std::size_t) override { return {}; }
  std::uint64_t written_total() override { return 0; }
  std::vector<exam::receipt_record> records(std::span<const std::string> ids) override {
    {
      std::unique_lock lock(mutex);
      ++queries;
      sizes.push_back(ids.size());
      entered.notify_all();
      released.wait(lock, [&] { return open; });
    }
    if (fail) throw std::runtime_error("database gone");
    return submission_reader::records(ids);
  }
  void let_go() {
    std::lock_guard lock(mutex);
    open = true;
    released.notify_all();
  }
  void wait_entered(int n) {
    std::unique_lock lock(mutex);
    entered.wait(lock, [&] { return queries >= n; });
  }
  std::mutex mutex;
  std::condition_variable entered, released;
  bool open = false;
  bool fail = false;
  int queries = 0;
  std::vector<std::size_t> sizes;
};

struct answers {
  void add(const std::string& id, std::exception_ptr e, const exam::receipt_record& r) {
    std::lock_guard lock(mutex);
    got.emplace_back(id, e ? std::string("failed") : (r.row ? r.row->status : std::string("none")));
    done.notify_all();
  }
  void wait_for(std::size_t n) {
    std::unique_lock lock(mutex);
    CHECK(done.wait_for(lock, std::chrono::seconds(10), [&] { return got.size() >= n; }));
  }
  std::mutex mutex;
  std::condition_variable done;
  std::vector<std::pair<std::string, std::string>> got;
};

}  // namespace

TEST_CASE("the reads that arrive while a query runs go together in the next one, each with its own answer") {
  slow_reader store;
  answers a;
  {
    boost::asio::thread_pool threads(4);
    exam::record_batcher batcher(store, &threads, {.max_batch = 20, .lanes = 1});
    batcher.look_up("r0", [&](std::exception_ptr e, exam::receipt_record r) { a.add("r0", e, r); });
    store.wait_entered(1);
    // 49 more from 7 threads while the first query waits on the database.
    std::vector<std::thread> students;
    for (int t = 0; t < 7; ++t)
      students.emplace_back([&, t] {
        for (int i = 0; i < 7; ++i) {
          const auto id = "r" + std::to_string(1 + t * 7 + i);
          batcher.look_up(id, [&a, id](std::exception_ptr e, exam::receipt_record r) { a.add(id, e, r); });
        }
      });
    for (auto& s : students) s.join();
    store.let_go();
    a.wait_for(50);
    threads.join();
    CHECK(batcher.reads() == 50);
    CHECK(batcher.queries() == 4);
  }
  // One alone, then 49 in batches of at most 20.
  CHECK(store.sizes == std::vector<std::size_t>{1, 20, 20, 9});
  REQUIRE(a.got.size() == 50);
  for (const auto& [id, status] : a.got) CHECK(status == "row of " + id);
}

TEST_CASE("students polling without a pause leave the read threads to other work between batches") {
  slow_reader store;
  store.open = true;
  std::atomic<bool> other_ran{false};
  std::atomic<int> polls{0};
  constexpr int give_up = 20000;
  {
    boost::asio::thread_pool threads(1);
    exam::record_batcher batcher(store, &threads, {.max_batch = 4, .lanes = 1});
    // Every answer asks again at once, so reads are always waiting.
    std::function<void()> poll = [&] {
      batcher.look_up("r", [&](std::exception_ptr, exam::receipt_record) {
        if (!other_ran && ++polls < give_up) poll();
      });
    };
    boost::asio::post(threads, [&] {
      poll();                                                 // its batch is queued first,
      boost::asio::post(threads, [&] { other_ran = true; });  // then a teacher's list
    });
    threads.join();
  }
  CHECK(other_ran);
  CHECK(polls < 10);
}

TEST_CASE("a query that fails fails each of its reads, and the next reads are asked again") {
  slow_reader store;
  store.open = true;
  store.fail = true;
  answers a;
  boost::asio::thread_pool threads(2);
  exam::record_batcher batcher(store, &threads);
  for (int i = 0; i < 5; ++i) {
    const auto id = "r" + std::to_string(i);
    batcher.look_up(id, [&a, id](std::exception_ptr e, exam::receipt_record r) { a.add(id, e, r); });
  }
  a.wait_for(5);
  for (const auto& [id, status] : a.got) CHECK(status == "failed");
  store.fail = false;  // read by the next query only: the pool has no read in flight now
  batcher.look_up("again", [&](std::exception_ptr e, exam::receipt_record r) { a.add("again", e, r); });
  a.wait_for(6);
  CHECK(a.got.back() == std::pair<std::string, std::string>("again", "row of again"));
  threads.join();
}

TEST_CASE("without read threads a read runs at once, on the caller's thread") {
  slow_reader store;
  store.open = true;
  exam::record_batcher batcher(store, nullptr);
  const auto caller = std::this_thread::get_id();
  std::thread::id ran_on;
  std::string status;
  batcher.look_up("r1", [&](std::exception_ptr, exam::receipt_record r) {
    ran_on = std::this_thread::get_id();
    status = r.row->status;
  });
  CHECK(ran_on == caller);
  CHECK(status == "row of r1");
  CHECK(batcher.queries() == 1);
}

#if defined(__linux__)
TEST_CASE("the read threads run at a lower priority than the thread that made them, every one of them") {
  const int mine = getpriority(PRIO_PROCESS, static_cast<id_t>(gettid()));
  auto pool = exam::make_read_pool(3, 5);
  REQUIRE(pool);
  std::mutex m;
  std::vector<int> theirs;
  std::latch all(3);
  for (int i = 0; i < 3; ++i)
    boost::asio::post(*pool, [&] {
      {
        std::lock_guard lock(m);
        theirs.push_back(getpriority(PRIO_PROCESS, static_cast<id_t>(gettid())));
      }
      all.arrive_and_wait();  // one task per thread
    });
  all.wait();
  pool->join();
  CHECK(theirs == std::vector<int>(3, std::min(mine + 5, 19)));
  CHECK(getpriority(PRIO_PROCESS, static_cast<id_t>(gettid())) == mine);
  CHECK_FALSE(exam::make_read_pool(0, 5));
}
#endif

TEST_CASE("a read pool at a lower priority starts and stops every time it is made") {
  // Each pool must start all its threads and join them again; a start-up that let a
  // thread wait on something already gone would hang here (the test's timeout).
  std::atomic<int> ran{0};
  for (int round = 0; round < 300; ++round) {
    auto pool = exam::make_read_pool(4, 1);
    REQUIRE(pool);
    boost::asio::post(*pool, [&] { ++ran; });
    pool->join();
  }
  CHECK(ran == 300);
}
