#pragma once
// The fauxqs SQS emulator (npm, pinned in tests/sqs/package.json) for tests: started
// through tests/sqs/fauxqs.mjs on a free 127.0.0.1 port, stopped, killed and started
// again on the same port. It keeps its queues in memory: a restart empties them.

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "support/child_process.hpp"
#include "support/nats_server.hpp"  // find_program, free_port, port_open

#ifndef INGEST_FAUXQS_DIR
#error "INGEST_FAUXQS_DIR must name tests/sqs"
#endif

namespace ingest::test {

class fauxqs {
 public:
  static std::string node() { return find_program("node"); }
  static std::filesystem::path dir() { return INGEST_FAUXQS_DIR; }
  /// Node is installed and `npm ci` ran in tests/sqs (scripts/setup.sh does both).
  static bool available() {
    return !node().empty() && std::filesystem::exists(dir() / "node_modules" / "fauxqs" / "package.json");
  }

  /// Plain HTTP; with a certificate and key (PEM files), HTTPS.
  explicit fauxqs(std::string tls_cert = {}, std::string tls_key = {})
      : port_(free_port()), cert_(std::move(tls_cert)), key_(std::move(tls_key)) {
    start();
  }
  ~fauxqs() { kill(); }

  int port() const { return port_; }
  std::string endpoint() const {
    return (cert_.empty() ? "http://127.0.0.1:" : "https://127.0.0.1:") + std::to_string(port_);
  }

  void start() {
    std::vector<std::string> args{node(), (dir() / "fauxqs.mjs").string(), "--port", std::to_string(port_)};
    if (!cert_.empty()) args.insert(args.end(), {"--tls-cert", cert_, "--tls-key", key_});
    process_ = std::make_unique<child_process>(std::move(args));
    const auto line = process_->read_line(std::chrono::seconds(30));
    if (!line || line->rfind("listening", 0) != 0) throw std::runtime_error("fauxqs did not start");
  }
  /// SIGKILL: the emulator and every message in it are gone.
  void kill() {
    if (process_) process_->kill();
    process_.reset();
  }

 private:
  int port_;
  std::string cert_, key_;
  std::unique_ptr<child_process> process_;
};

}  // namespace ingest::test
