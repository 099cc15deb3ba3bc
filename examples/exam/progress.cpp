#include "progress.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace exam {

std::string grouped(std::uint64_t n) {
  auto digits = std::to_string(n);
  for (auto i = static_cast<std::ptrdiff_t>(digits.size()) - 3; i > 0; i -= 3)
    digits.insert(static_cast<std::size_t>(i), ",");
  return digits;
}

std::string progress_line(const progress_sample& now, const progress_sample& before, double seconds) {
  auto rate = [&](const std::optional<std::uint64_t>& a, const std::optional<std::uint64_t>& b) {
    if (!a || !b || seconds <= 0 || *a < *b) return std::uint64_t{0};
    return static_cast<std::uint64_t>(std::llround(static_cast<double>(*a - *b) / seconds));
  };
  std::string line;
  auto part = [&](const std::string& text) { line += (line.empty() ? "" : " | ") + text; };
  if (now.accepted) part("accepted " + grouped(*now.accepted) + " (" + grouped(rate(now.accepted, before.accepted)) + "/s)");
  const auto written_rate = rate(now.written, before.written);
  if (now.written) part("written " + grouped(*now.written) + " (" + grouped(written_rate) + "/s)");
  if (now.backlog) {
    part("backlog " + grouped(*now.backlog));
    if (*now.backlog > 0 && written_rate > 0)
      part("drained in ~" + grouped((*now.backlog + written_rate - 1) / written_rate) + " s");
  }
  part("errors " + grouped(now.errors));
  return line;
}

bool progress_meter::wanted() {
  const char* setting = std::getenv("INGEST_PROGRESS");
  return isatty(STDERR_FILENO) == 1 && !(setting && std::string(setting) == "0");
}

progress_meter::progress_meter(std::string label, std::function<progress_sample()> read,
                               std::chrono::milliseconds period)
    : label_(std::move(label)), read_(std::move(read)), period_(period) {
  if (wanted()) thread_ = std::thread([this] { run(); });
}

progress_meter::~progress_meter() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
    std::fputs("\r\033[K", stderr);  // the line goes; the program's own summary follows
    std::fflush(stderr);
  }
}

progress_sample progress_meter::read() {
  try {
    return read_();
  } catch (const std::exception&) {
    return {};  // a sample that failed shows nothing new; the work goes on
  }
}

void progress_meter::run() {
  auto before = read();
  auto at = std::chrono::steady_clock::now();
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, period_, [&] { return stop_; })) {
    lock.unlock();
    const auto now = read();
    const auto t = std::chrono::steady_clock::now();
    const auto line = progress_line(now, before, std::chrono::duration<double>(t - at).count());
    std::fprintf(stderr, "\r\033[K%s: %s", label_.c_str(), line.c_str());
    std::fflush(stderr);
    before = now;
    at = t;
    lock.lock();
  }
}

}  // namespace exam
