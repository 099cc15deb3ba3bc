// The exam server's request handling as a whole: any bytes are parsed as the server
// parses them (same header and body limits), then handled by exam::app with a backend
// that takes every submission. Placeholders in the input stand for real tokens
// ($S1, $S2: students s1, s2; $T: a teacher; $X: an expired student token), so the
// fuzzer reaches the checks behind authentication.
//
// Checked for every request: exactly one answer; a status of the contract (examples/README.md); every error body
// is {"error": "...", "message": "..."}; a submission reaches the backend only when
// the token's student may submit to that open exam, with a valid key and answers.

#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/json/parse.hpp>
#include <cctype>
#include <filesystem>
#include <set>

#include "app.hpp"
#include "fuzz_support.hpp"
#include "ingest/fingerprint.hpp"

namespace bhttp = boost::beast::http;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view secret = "fuzz-secret";

std::string exams_json() {
  return R"({"exams": [
    {"id": "open", "answer_key": {"q1": "A", "q2": "B"}, "opens_at": "2020-01-01T00:00:00Z",
     "deadline": "2090-01-01T00:00:00Z", "students": "any"},
    {"id": "private", "answer_key": {"q1": "A"}, "opens_at": "2020-01-01T00:00:00Z",
     "deadline": "2090-01-01T00:00:00Z", "students": ["s1"]},
    {"id": "later", "answer_key": {"q1": "A"}, "opens_at": "2089-01-01T00:00:00Z",
     "deadline": "2090-01-01T00:00:00Z", "students": "any"}]})";
}

class taking_backend final : public exam::submit_backend {
 public:
  std::optional<exam::submission> last;
  void submit(const exam::exam_info& e, exam::submission s, boost::asio::any_io_executor,
              exam::submit_done done) override {
    FUZZ_CHECK(s.exam_id == e.id);
    last = s;
    done(exam::submit_outcome::receipt(exam::submit_outcome::kind::queued, "r-1", "2026-01-01T00:00:00.000Z",
                                       "received"));
  }
  bool ready() const override { return true; }
  std::string metrics() const override { return {}; }
};

struct world {
  std::filesystem::path dir;
  exam::catalog exams = exam::catalog::from_json(exams_json());
  std::unique_ptr<exam::store_pool> store;
  taking_backend backend;
  std::unique_ptr<exam::app> app;
  std::map<std::string, std::string> tokens;

  world() {
    dir = std::filesystem::temp_directory_path() / ("ingest-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto db_path = (dir / "exam.db").string();
    {
      ingest::sqlite::database db(db_path);
      exam::create_schema(db);
    }
    store = std::make_unique<exam::store_pool>(db_path);
    exam::app_options o;
    o.jwt_secret = std::string(secret);
    o.student_rate = 1e9;  // limits on (their code runs), never reached
    o.student_burst = 1e9;
    o.ip_rate = 1e9;
    o.ip_burst = 1e9;
    o.max_answers = 16;
    o.read_threads = 0;  // every answer before handle() returns: the check counts them there
    app = std::make_unique<exam::app>(exams, *store, backend, o);
    const auto later = std::chrono::system_clock::now() + 24h;
    tokens["$S1"] = exam::mint_token({"s1", exam::role::student, later}, secret);
    tokens["$S2"] = exam::mint_token({"s2", exam::role::student, later}, secret);
    tokens["$T"] = exam::mint_token({"t1", exam::role::teacher, later}, secret);
    tokens["$X"] = exam::mint_token({"s1", exam::role::student, std::chrono::system_clock::now() - 1h}, secret);
  }
  ~world() {
    app.reset();
    store.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

world& the_world() {
  static world w;
  return w;
}

std::string with_tokens(std::string text, const std::map<std::string, std::string>& tokens) {
  for (const auto& [name, token] : tokens)
    for (auto at = text.find(name); at != std::string::npos; at = text.find(name, at + token.size()))
      text.replace(at, name.size(), token);
  return text;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  the_world();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& w = the_world();
  const auto text = with_tokens(std::string(reinterpret_cast<const char*>(data), size), w.tokens);

  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(64 * 1024);
  parser.eager(true);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(text), ec);
  if (ec || !parser.is_done()) return 0;  // the server answers 400/413/431 or waits
  auto req = parser.release();
  const auto authorization = std::string(req[bhttp::field::authorization]);

  w.backend.last.reset();
  int answers = 0;
  ingest::http::response answer;
  ingest::http::request_info info;
  info.remote = boost::asio::ip::make_address("127.0.0.1");
  w.app->handle(std::move(req), info, ingest::http::responder([&](ingest::http::response r) {
                  ++answers;
                  answer = std::move(r);
                }));
  FUZZ_CHECK(answers == 1);

  static const std::set<unsigned> statuses = {200, 202, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 503};
  const auto status = answer.result_int();
  FUZZ_CHECK(statuses.count(status) == 1);
  if (status >= 400) {
    boost::system::error_code jec;
    const auto body = json::parse(answer.body(), jec);
    FUZZ_CHECK(!jec && body.is_object());
    const auto* code = body.as_object().if_contains("error");
    const auto* message = body.as_object().if_contains("message");
    FUZZ_CHECK(code && code->is_string() && !code->as_string().empty());
    FUZZ_CHECK(message && message->is_string());
    FUZZ_CHECK(!w.backend.last);
  }
  if (w.backend.last) {
    const auto& s = *w.backend.last;
    FUZZ_CHECK(status == 202);
    // Who may submit what: the Bearer scheme (its name in any case, RFC 9110) and a
    // valid token after it, spaces around the token allowed.
    std::string_view header(authorization);
    constexpr std::string_view bearer = "bearer ";
    FUZZ_CHECK(header.size() > bearer.size());
    for (std::size_t i = 0; i < bearer.size(); ++i)
      FUZZ_CHECK(std::tolower(static_cast<unsigned char>(header[i])) == bearer[i]);
    auto token = header.substr(bearer.size());
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
    const auto who = exam::verify_token(token, secret);
    FUZZ_CHECK(who.error == exam::token_error::none);
    FUZZ_CHECK(who.who.role == exam::role::student && who.who.sub == s.student_id);
    const auto* e = w.exams.find(s.exam_id);
    FUZZ_CHECK(e && e->allows(s.student_id) && e->open_at(std::chrono::system_clock::now()));
    FUZZ_CHECK(ingest::valid_idempotency_key(s.idempotency_key));
    FUZZ_CHECK(s.answers.size() <= 16);
    FUZZ_CHECK(exam::submission::from_json(s.to_json()).has_value());
  }
  return 0;
}
