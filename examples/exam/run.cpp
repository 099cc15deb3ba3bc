#include "run.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <future>

#include "ingest/sqlite/database.hpp"

namespace exam {

void prepare_process() {
  ingest::sqlite::disable_memory_statistics();
}

int run_until_signal(boost::asio::io_context& io, unsigned threads, const std::function<int()>& drain) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  auto work = boost::asio::make_work_guard(io);
  std::promise<int> signalled;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signo) { signalled.set_value(ec ? 0 : signo); });
  std::vector<std::thread> pool;
  for (unsigned i = 0; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  signalled.get_future().wait();
  const int code = drain();
  work.reset();
  io.stop();
  for (auto& t : pool) t.join();
  return code;
}

}  // namespace exam
