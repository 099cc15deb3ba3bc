#include "cli.hpp"

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "ingest/detail/hmac.hpp"
#include "jwt.hpp"

namespace exam {

void add_server_options(CLI::App& app, server_cli& o, const std::string& default_listen, bool with_queue) {
  o.listen = default_listen;
  app.add_option("--listen", o.listen, "HOST:PORT to listen on")->capture_default_str();
  app.add_option("--data", o.data,
                 with_queue ? "directory of exam.db (and queue.db for the embedded queue)" : "directory of exam.db")
      ->capture_default_str();
  app.add_option("--exams", o.exams, "exams JSON file (default: the built-in demo exam)");
  app.add_option("--db,--sink", o.db,
                 "submissions database: an SQLite file (default: DATA/exam.db) or postgresql://USER@HOST:PORT/DB "
                 "(the PG* environment variables fill in the rest)");
  if (with_queue)
    app.add_option("--queue", o.queue,
                   "queue URL: sqlite://FILE[?options] (default: DATA/queue.db?commit_linger=5ms), nats://HOST:PORT, "
                   "sqs+http[s]://HOST:PORT/ACCOUNT/QUEUE, memory (not durable)");
  if (with_queue)
    app.add_option("--storage", o.storage,
                   "S3-compatible storage for attachments: s3+http[s]://HOST:PORT/BUCKET[?region=...] (default: none; "
                   "credentials as for SQS)");
  app.add_option("--jwt-secret", o.jwt_secret, "HS256 secret (default: $INGEST_JWT_SECRET, else generated)");
  app.add_option("--receipt-secret", o.receipt_secrets,
                 "receipt signing key, repeatable: the first signs, all verify (default: $INGEST_RECEIPT_SECRET, "
                 "else derived from the JWT secret)");
  add_token_check_options(app, o.jwt);
  app.add_option("--threads", o.threads, "HTTP threads (0: one per core)")->capture_default_str();
  app.add_option("--read-threads", o.read_threads, "threads for the database reads of GETs (0: on the HTTP threads)")
      ->capture_default_str();
  app.add_option("--read-nice", o.read_nice,
                 "how much lower the read threads run (Linux nice; 0: as the HTTP threads): submissions first")
      ->check(CLI::Range(0, 19))
      ->capture_default_str();
  app.add_option("--events-interval", o.events_interval,
                 "seconds between two reads of a receipt followed over GET .../events")
      ->check(CLI::Range(0.01, 3600.0))
      ->capture_default_str();
  app.add_option("--max-streams", o.max_streams, "status event streams open at once (more: 503, the page polls)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20))
      ->capture_default_str();
  app.add_option("--student-rate", o.student_rate, "submissions/s per student (0: no limit)")->capture_default_str();
  app.add_option("--student-burst", o.student_burst, "burst per student")->capture_default_str();
  app.add_option("--ip-rate", o.ip_rate, "requests/s to /v1 per client IP, checked before the token (0: no limit)")
      ->capture_default_str();
  app.add_option("--ip-burst", o.ip_burst, "burst per client IP")->capture_default_str();
  app.add_option("--max-body", o.max_body, "largest request body in bytes")->capture_default_str();
  app.add_option("--max-connections", o.max_connections, "open connections at most")->capture_default_str();
  auto* cert =
      app.add_option("--tls-cert", o.tls_cert, "PEM certificate (chain): serve HTTPS only")->check(CLI::ExistingFile);
  auto* key = app.add_option("--tls-key", o.tls_key, "PEM private key of --tls-cert")->check(CLI::ExistingFile);
  cert->needs(key);
  key->needs(cert);
  app.add_option("--log-level", o.log_level,
                 "JSON-lines events on standard error, keyed by receipt id: debug, info (every accept), warning, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"debug", "info", "warning", "warn", "error"}));
}

std::string submissions_db(const server_cli& o) {
  return o.db.empty() ? o.data + "/exam.db" : o.db;
}

CLI::App* add_token_command(CLI::App& app, token_cli& t) {
  auto* cmd = app.add_subcommand("token", "print a signed token for tests and demos");
  cmd->add_option("--sub", t.sub, "student or teacher id")->required();
  cmd->add_option("--role", t.role, "student or teacher")->check(CLI::IsMember({"student", "teacher"}));
  cmd->add_option("--ttl", t.ttl, "lifetime: 90s, 30m, 2h, 1d")->capture_default_str();
  cmd->add_option("--jwt-secret", t.jwt_secret, "HS256 secret (default: $INGEST_JWT_SECRET)");
  add_token_check_options(*cmd, t.jwt);
  return cmd;
}

void add_token_check_options(CLI::App& app, token_checks& checks) {
  app.add_option("--jwt-issuer", checks.issuer, "tokens must carry this `iss` (default: not checked)");
  app.add_option("--jwt-audience", checks.audience, "tokens must name this `aud` (default: not checked)");
}

int run_token(const token_cli& t) {
  bool generated = false;
  const auto secret = resolve_secret(t.jwt_secret, generated);
  if (generated) {
    std::fputs("token: give --jwt-secret or set INGEST_JWT_SECRET (the server's secret)\n", stderr);
    return 2;
  }
  const auto ttl = parse_ttl(t.ttl);
  if (!ttl) {
    std::fprintf(stderr, "token: bad --ttl '%s'\n", t.ttl.c_str());
    return 2;
  }
  if (!valid_id(t.sub)) {
    std::fputs("token: --sub must be 1-64 of [A-Za-z0-9._-]\n", stderr);
    return 2;
  }
  principal p{t.sub, t.role == "teacher" ? role::teacher : role::student, std::chrono::system_clock::now() + *ttl};
  std::printf("%s\n", mint_token(p, secret, t.jwt).c_str());
  return 0;
}

std::string resolve_secret(const std::string& flag, bool& generated) {
  generated = false;
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("INGEST_JWT_SECRET"); env && *env) return env;
  generated = true;
  return random_secret();
}

catalog load_exams(const std::string& path) {
  if (path.empty()) return catalog::demo(std::chrono::system_clock::now());
  return catalog::from_file(path);
}

std::pair<std::string, std::uint16_t> parse_listen(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) throw std::invalid_argument("--listen must be HOST:PORT");
  const auto port = std::stoul(text.substr(colon + 1));
  if (port > 65535) throw std::invalid_argument("--listen: port out of range");
  return {text.substr(0, colon), static_cast<std::uint16_t>(port)};
}

void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

long peak_rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

server_setup prepare_server(const server_cli& o) {
  raise_fd_limit();
  std::filesystem::create_directories(o.data);
  server_setup s;
  s.exams = load_exams(o.exams);
  s.secret = resolve_secret(o.jwt_secret, s.generated_secret);
  std::tie(s.host, s.port) = parse_listen(o.listen);
  return s;
}

std::shared_ptr<const ingest::receipt_signer> make_receipt_signer(std::vector<std::string> secrets,
                                                                  const std::string& jwt_secret) {
  if (secrets.empty()) {
    if (const char* env = std::getenv("INGEST_RECEIPT_SECRET"); env && *env) secrets.emplace_back(env);
  }
  if (secrets.empty()) {
    // Servers that share the JWT secret verify each other's receipts without more set-up;
    // the derived key is not the JWT secret, so a receipt is never a valid token.
    const auto key = ingest::detail::hmac_sha256(jwt_secret).mac("ingest exam receipt signing key, version 1");
    secrets.emplace_back(reinterpret_cast<const char*>(key.data()), key.size());
  }
  return std::make_shared<const ingest::receipt_signer>(std::move(secrets));
}

std::shared_ptr<ingest::aws::s3_bucket> open_storage(const std::string& url) {
  auto bucket = std::make_shared<ingest::aws::s3_bucket>(ingest::aws::s3_options::from_url(url));
  bool there = true;
  try {
    there = bucket->bucket_exists();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warning: --storage cannot be reached now (%s); going on\n", e.what());
  }
  if (!there)
    throw std::invalid_argument("--storage: there is no bucket " + bucket->options().bucket +
                                " (create it, or add ?create=true for an emulator)");
  return bucket;
}

app_options make_app_options(const server_cli& o, const std::string& secret) {
  return {.jwt_secret = secret,
          .jwt = o.jwt,
          .student_rate = o.student_rate,
          .student_burst = o.student_burst,
          .ip_rate = o.ip_rate,
          .ip_burst = o.ip_burst,
          .log = ingest::json_lines_logger(stderr, ingest::parse_log_level(o.log_level)),
          .receipts = make_receipt_signer(o.receipt_secrets, secret),
          .read_threads = o.read_threads,
          .read_nice = o.read_nice,
          .streams = {.interval = std::chrono::milliseconds(static_cast<long long>(o.events_interval * 1000)),
                      .max_streams = o.max_streams},
          .storage = o.storage.empty() ? nullptr : open_storage(o.storage)};
}

ingest::http::server_options make_http_options(const server_cli& o, const server_setup& s, std::string name) {
  return {.host = s.host,
          .port = s.port,
          .max_connections = o.max_connections,
          .max_body_bytes = o.max_body,
          .server_name = std::move(name),
          .tls_cert_file = o.tls_cert,
          .tls_key_file = o.tls_key};
}

std::string server_url(const server_cli& o, const server_setup& s, std::uint16_t port) {
  return (o.tls_cert.empty() ? "http://" : "https://") + s.host + ":" + std::to_string(port);
}

void wait_closed(const ingest::http::server& server, std::chrono::seconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (server.stats().connections_open > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

void print_banner(const std::string& name, const std::string& url, const std::string& secret, bool generated_secret,
                  const catalog& exams, const token_checks& checks) {
  const auto now = std::chrono::system_clock::now();
  const std::string exam_id = exams.size() ? exams.begin()->first : "demo";
  const auto token = mint_token({"student-1", role::student, now + std::chrono::hours(2)}, secret, checks);
  std::printf("%s listening on %s\n", name.c_str(), url.c_str());
  if (generated_secret) std::printf("JWT secret (generated; set INGEST_JWT_SECRET to keep one): %s\n", secret.c_str());
  std::printf("exams: ");
  for (const auto& [id, e] : exams) std::printf("%s ", id.c_str());
  std::printf("\ndemo token (student-1, 2h): %s\n", token.c_str());
  // The token rides in the fragment, which browsers never send: it stays out of logs.
  std::printf("student page: %s/#exam=%s&token=%s\n", url.c_str(), exam_id.c_str(), token.c_str());
  const auto teacher = mint_token({"teacher-1", role::teacher, now + std::chrono::hours(2)}, secret, checks);
  std::printf("teacher page: %s/teacher#exam=%s&token=%s\n", url.c_str(), exam_id.c_str(), teacher.c_str());
  std::printf(
      "try:\n  curl -s -X POST %s/v1/exams/%s/submissions -H 'Authorization: Bearer %s' "
      "-H 'Content-Type: application/json' -H 'Idempotency-Key: try-1' -d "
      "'{\"answers\":{\"q1\":\"B\",\"q2\":\"D\"}}'\n",
      url.c_str(), exam_id.c_str(), token.c_str());
  std::fflush(stdout);
}

}  // namespace exam
