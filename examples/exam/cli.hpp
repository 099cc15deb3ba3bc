#pragma once
// The command lines of the contract (examples/README.md), shared by exam_server, direct_server and exam_worker.

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "app.hpp"
#include "exams.hpp"
#include "ingest/http/server.hpp"

namespace exam {

struct server_cli {
  std::string listen;
  std::string data = "data";
  std::string exams;  // empty: the built-in demo exam
  std::string queue;  // empty: sqlite://<data>/queue.db
  std::string db;     // where submissions are written and read: empty = <data>/exam.db, or postgresql://...
  std::string jwt_secret;
  std::vector<std::string> receipt_secrets;  // empty: $INGEST_RECEIPT_SECRET, else derived from the JWT secret
  token_checks jwt{};                        // --jwt-issuer, --jwt-audience
  unsigned threads = 0;                      // 0: one per core
  std::size_t read_threads = 4;              // the GET routes' database reads
  int read_nice = 10;                        // how much lower those threads run
  double events_interval = 2;                // seconds between reads of a followed receipt
  std::size_t max_streams = 20000;           // status event streams open at once
  double student_rate = 10;
  double student_burst = 20;
  double ip_rate = 0;
  double ip_burst = 100;
  std::size_t max_body = 64 * 1024;
  std::size_t max_connections = 16384;
  std::string log_level = "warning";  // JSON lines on standard error
  std::string tls_cert;               // with tls_key: HTTPS only
  std::string tls_key;
  std::string storage;  // s3+http(s)://HOST:PORT/BUCKET for attachments (empty: no uploads)
};

struct token_cli {
  std::string sub;
  std::string role = "student";
  std::string ttl = "2h";
  std::string jwt_secret;
  token_checks jwt{};
};

// Adds --listen --data --exams --jwt-secret --threads --tls-cert --tls-key and the limits
// (and --queue and --storage if `with_queue`: the direct server checks no files).
void add_server_options(CLI::App& app, server_cli& o, const std::string& default_listen, bool with_queue);
// The submissions database of `o`: its --db, else DATA/exam.db.
std::string submissions_db(const server_cli& o);
// The attachments' storage of a --storage URL. Refuses a bucket that is not there (a
// missing bucket would read as missing files); a storage that cannot be reached now is
// reported and used anyway (the accept path does not need it; the graders retry).
std::shared_ptr<ingest::aws::s3_bucket> open_storage(const std::string& url);
// Adds the `token` subcommand.
CLI::App* add_token_command(CLI::App& app, token_cli& t);
// Prints the token; returns the exit code.
int run_token(const token_cli& t);

// --jwt-secret, else INGEST_JWT_SECRET, else a generated secret (`generated` set).
std::string resolve_secret(const std::string& flag, bool& generated);
catalog load_exams(const std::string& path);
// "HOST:PORT" -> host, port. Throws std::invalid_argument.
std::pair<std::string, std::uint16_t> parse_listen(const std::string& text);
// Raises the soft open-file limit to the hard limit (10,000 students = 10,000 sockets).
void raise_fd_limit();
// Peak resident set size of this process, in KiB (from /proc/self/status VmHWM).
long peak_rss_kib();
// What both servers do first: raise the file limit, create the data directory, load
// the exams, settle the secret and the address.
struct server_setup {
  catalog exams;
  std::string secret;
  bool generated_secret = false;
  std::string host;
  std::uint16_t port = 0;
};
server_setup prepare_server(const server_cli& o);
// The receipt signer of the servers: `secrets` (the first signs), else
// $INGEST_RECEIPT_SECRET, else a key derived from the JWT secret.
std::shared_ptr<const ingest::receipt_signer> make_receipt_signer(std::vector<std::string> secrets,
                                                                  const std::string& jwt_secret);
app_options make_app_options(const server_cli& o, const std::string& secret);
ingest::http::server_options make_http_options(const server_cli& o, const server_setup& s, std::string name);
// "http://HOST:PORT" or "https://HOST:PORT".
std::string server_url(const server_cli& o, const server_setup& s, std::uint16_t port);
// After server.stop(): waits (at most `limit`) for the last answers to be written.
void wait_closed(const ingest::http::server& server, std::chrono::seconds limit = std::chrono::seconds(5));

// Adds --jwt-issuer and --jwt-audience.
void add_token_check_options(CLI::App& app, token_checks& checks);

// Prints URL, a demo token and a ready curl command.
void print_banner(const std::string& name, const std::string& url, const std::string& secret, bool generated_secret,
                  const catalog& exams, const token_checks& checks = {});

}  // namespace exam
