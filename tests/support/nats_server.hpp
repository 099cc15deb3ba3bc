#pragma once
// A real nats-server with JetStream for tests: started on a free loopback port with
// its own store directory, stopped, killed and restarted at will.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ingest/nats/queue.hpp"
#include "support/child_process.hpp"

namespace ingest::test {

inline std::string find_program(const char* name) {
  for (const char* dir : {"/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"}) {
    auto path = std::string(dir) + "/" + name;
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return {};
}

/// A free TCP port on 127.0.0.1 (bound and released: good enough for tests).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

inline bool port_open(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

class nats_server {
 public:
  static std::string binary() { return find_program("nats-server"); }
  static bool available() { return !binary().empty(); }

  /// `extra`: more arguments (cluster settings).
  explicit nats_server(std::filesystem::path dir, std::string name = "n1", std::vector<std::string> extra = {})
      : dir_(std::move(dir)), name_(std::move(name)), extra_(std::move(extra)), port_(free_port()) {
    std::filesystem::create_directories(dir_);
    start();
  }
  ~nats_server() { kill(); }

  int port() const { return port_; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

  void start() {
    std::vector<std::string> args{binary(),
                                  "-js",
                                  "-a",
                                  "127.0.0.1",
                                  "-p",
                                  std::to_string(port_),
                                  "-sd",
                                  (dir_ / "store").string(),
                                  "--server_name",
                                  name_,
                                  "-l",
                                  (dir_ / "server.log").string()};
    args.insert(args.end(), extra_.begin(), extra_.end());
    process_ = std::make_unique<child_process>(args);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (!port_open(port_)) {
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("nats-server did not start: " + name_);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  /// SIGKILL: no chance to flush anything.
  void kill() {
    if (process_) process_->kill();
    process_.reset();
  }
  /// SIGTERM: a clean shutdown.
  void stop() {
    if (process_) process_->terminate();
    process_.reset();
  }
  void restart() {
    stop();
    start();
  }
  /// SIGSTOP / SIGCONT: a server that stalls with its connections open, and resumes.
  void freeze() {
    if (process_) ::kill(process_->pid(), SIGSTOP);
  }
  void thaw() {
    if (process_) ::kill(process_->pid(), SIGCONT);
  }

 private:
  std::filesystem::path dir_;
  std::string name_;
  std::vector<std::string> extra_;
  int port_;
  std::unique_ptr<child_process> process_;
};

/// Options for a queue of its own on `url`: stream `name`, subject `ingest.<name>`, its
/// dead-letter stream and consumer named after it.
inline nats::queue_options queue_options_for(const std::string& url, const std::string& name,
                                             std::chrono::milliseconds ack_wait = std::chrono::seconds(30)) {
  nats::queue_options o;
  o.servers = {url};
  o.stream = name;
  o.subject = "ingest." + name;
  o.dead_letter_stream = name + "_DLQ";
  o.dead_letter_subject = "ingest." + name + ".dead";
  o.consumer = name + "_workers";
  o.ack_wait = ack_wait;
  return o;
}

}  // namespace ingest::test
