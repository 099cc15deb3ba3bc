#pragma once
// A real PostgreSQL 15 server for tests: initdb into a temporary directory, started on
// a free loopback port, stopped (fast or immediate), killed and restarted at will.
// initdb and postgres refuse to run as root: as root, they run as the unprivileged
// `postgres` user (made by Debian's postgresql package) or `nobody`, through setpriv,
// which also keeps the parent-death signal so that a crashed test leaves no server.

#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/child_process.hpp"
#include "support/nats_server.hpp"  // free_port, port_open, find_program

namespace ingest::test {

class postgres_server {
 public:
  static std::filesystem::path bin_dir() {
    for (const char* v : {"17", "16", "15"}) {
      std::filesystem::path dir = std::string("/usr/lib/postgresql/") + v + "/bin";
      if (::access((dir / "postgres").c_str(), X_OK) == 0 && ::access((dir / "initdb").c_str(), X_OK) == 0) return dir;
    }
    return {};
  }
  static bool available() { return !bin_dir().empty() && (::geteuid() != 0 || !find_program("setpriv").empty()); }

  /// `settings`: extra `-c name=value` server settings.
  explicit postgres_server(std::filesystem::path dir, std::vector<std::string> settings = {})
      : dir_(std::move(dir)), settings_(std::move(settings)), port_(free_port()) {
    std::filesystem::create_directories(dir_);
    if (::geteuid() == 0) {
      const passwd* pw = ::getpwnam("postgres");
      if (!pw) pw = ::getpwnam("nobody");
      if (!pw) throw std::runtime_error("no unprivileged user to run PostgreSQL as");
      uid_ = pw->pw_uid;
      gid_ = pw->pw_gid;
      // The user must reach its directory through the test's temporary one.
      ::chmod(dir_.parent_path().c_str(), 0755);
      ::chmod(dir_.c_str(), 0700);
      if (::chown(dir_.c_str(), uid_, gid_) != 0) throw std::runtime_error("cannot hand the data directory over");
    }
    run({(bin_dir() / "initdb").string(), "-D", data().string(), "-U", "ingest", "--auth=trust", "-E", "UTF8",
         "--locale=C", "--no-sync", "--no-instructions"});
    start();
  }
  // Stopped with `pg_ctl -m immediate -w`, which returns once every server process has
  // gone: a SIGKILL of the postmaster alone leaves its children writing into the
  // directory the caller is about to remove.
  ~postgres_server() {
    try {
      stop_immediate();
    } catch (const std::exception&) {
      kill();
    }
  }

  int port() const { return port_; }
  /// A connection URI for the superuser `ingest` on database `postgres`.
  std::string url(const std::string& database = "postgres") const {
    return "postgresql://ingest@127.0.0.1:" + std::to_string(port_) + "/" + database;
  }
  std::filesystem::path data() const { return dir_ / "data"; }
  std::filesystem::path log() const { return dir_ / "server.log"; }

  void start() {
    std::vector<std::string> args{(bin_dir() / "postgres").string(),
                                  "-D",
                                  data().string(),
                                  "-p",
                                  std::to_string(port_),
                                  "-k",
                                  dir_.string(),
                                  "-c",
                                  "listen_addresses=127.0.0.1"};
    for (const auto& s : settings_) {
      args.emplace_back("-c");
      args.push_back(s);
    }
    process_ = std::make_unique<child_process>(as_user(args), log().string());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    const auto info = "host=127.0.0.1 port=" + std::to_string(port_) + " user=ingest dbname=postgres";
    while (PQping(info.c_str()) != PQPING_OK) {
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("PostgreSQL did not start");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  /// `pg_ctl stop -m immediate`: the postmaster and its backends quit at once, without
  /// a checkpoint (the next start recovers from the WAL).
  void stop_immediate() { pg_ctl_stop("immediate"); }
  /// `pg_ctl stop -m fast`: active transactions are rolled back, a clean shutdown.
  void stop() { pg_ctl_stop("fast"); }
  void restart() {
    stop();
    start();
  }
  /// SIGKILL of the postmaster (its backends exit when they notice).
  void kill() {
    if (process_) process_->kill();
    process_.reset();
  }

 private:
  std::vector<std::string> as_user(std::vector<std::string> args) const {
    if (::geteuid() != 0) return args;
    std::vector<std::string> wrapped{find_program("setpriv"), "--reuid=" + std::to_string(uid_),
                                     "--regid=" + std::to_string(gid_), "--clear-groups", "--pdeathsig", "KILL", "--"};
    wrapped.insert(wrapped.end(), args.begin(), args.end());
    return wrapped;
  }
  void run(const std::vector<std::string>& args) const {
    child_process p(as_user(args), (dir_ / "setup.log").string());
    if (p.wait_exit().first != 0) throw std::runtime_error("PostgreSQL command failed: " + args.front());
  }
  void pg_ctl_stop(const char* mode) {
    if (!process_) return;
    run({(bin_dir() / "pg_ctl").string(), "stop", "-D", data().string(), "-m", mode, "-w", "-t", "60"});
    process_->wait_exit();
    process_.reset();
  }

  std::filesystem::path dir_;
  std::vector<std::string> settings_;
  int port_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::unique_ptr<child_process> process_;
};

}  // namespace ingest::test

namespace ingest::test {

/// One server for a whole test program (started on first use), and a fresh database
/// on it per call, so that tests do not see each other's tables.
class shared_postgres {
 public:
  static shared_postgres& get() {
    static shared_postgres instance;
    return instance;
  }
  postgres_server& server() { return server_; }
  /// Creates a new empty database and returns its URI.
  std::string fresh_database() {
    const auto name = "t" + std::to_string(++databases_);
    const auto info = "host=127.0.0.1 port=" + std::to_string(server_.port()) + " user=ingest dbname=postgres";
    PGconn* c = PQconnectdb(info.c_str());
    PGresult* r = PQexec(c, ("CREATE DATABASE " + name).c_str());
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    PQfinish(c);
    if (!ok) throw std::runtime_error("CREATE DATABASE failed");
    return server_.url(name);
  }

 private:
  shared_postgres() : dir_(make_dir()), server_(dir_ / "pg", {"max_connections=200"}) {}
  ~shared_postgres() {
    try {
      server_.stop_immediate();
    } catch (const std::exception&) {
      server_.kill();
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  static std::filesystem::path make_dir() {
    auto dir = std::filesystem::temp_directory_path() / ("ingest-pg-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    return dir;
  }
  std::filesystem::path dir_;
  postgres_server server_;
  int databases_ = 0;
};

}  // namespace ingest::test
