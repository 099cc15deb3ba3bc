#include "server_process.hpp"

#include <unistd.h>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace spike {

proc_sample sample_process(int pid) {
  proc_sample out;
  if (pid <= 0) return out;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0)
      out.peak_rss_kib = std::strtol(line.c_str() + 6, nullptr, 10);
    else if (line.rfind("VmRSS:", 0) == 0)
      out.rss_kib = std::strtol(line.c_str() + 6, nullptr, 10);
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = content.rfind(')');
  if (close != std::string::npos) {
    std::istringstream fields(content.substr(close + 2));
    std::string f;
    std::vector<std::string> v;
    while (fields >> f) v.push_back(f);
    // After the command: state is field 3; utime and stime are fields 14 and 15.
    if (v.size() > 13)
      out.cpu_seconds =
          static_cast<double>(std::stoll(v[11]) + std::stoll(v[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return out;
}

}  // namespace spike
