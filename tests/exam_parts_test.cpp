// The exam system's parts: tokens, the exam catalogue, request bodies, rate limits.

#include <doctest/doctest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <boost/json/parse.hpp>
#include <atomic>
#include <latch>
#include <sstream>
#include <thread>

#include "dlq.hpp"
#include "exams.hpp"
#include "queue_url.hpp"
#include "store.hpp"
#include "support/test_support.hpp"
#include "ingest/envelope.hpp"
#include "json_text.hpp"
#include "jwt.hpp"
#include "limits.hpp"
#include "progress.hpp"
#include "submission.hpp"

using namespace std::chrono_literals;

namespace {

// RFC 4648 base64url without padding, through OpenSSL's base64.
std::string base64url(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (auto& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

}  // namespace

TEST_CASE("jwt: the signature of a published HS256 token verifies; claims are then checked") {
  // The example token of RFC 7519's ecosystem (jwt.io), secret "your-256-bit-secret":
  // a correct HMAC gets past the signature check and fails on our required claims.
  const std::string token =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
      "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
  CHECK(exam::verify_token(token, "your-256-bit-secret").error == exam::token_error::bad_claims);
  CHECK(exam::verify_token(token, "another-secret").error == exam::token_error::bad_signature);
}

TEST_CASE("jwt: mint and verify, expiry, algorithms, tampering, long secrets") {
  const auto now = std::chrono::system_clock::now();
  const auto t = exam::mint_token({"s1", exam::role::student, now + 1h}, "k");
  auto v = exam::verify_token(t, "k");
  REQUIRE(v.error == exam::token_error::none);
  CHECK(v.who.sub == "s1");
  CHECK(v.who.role == exam::role::student);
  CHECK(exam::verify_token(t, "k", now + 2h).error == exam::token_error::expired);
  CHECK(exam::verify_token(t.substr(0, t.size() - 2), "k").error != exam::token_error::none);
  CHECK(exam::verify_token("a.b", "k").error == exam::token_error::malformed);
  CHECK(exam::verify_token("a.b.c.d", "k").error == exam::token_error::malformed);
  // alg "none" with an empty signature, and HS512 in the header, are refused outright.
  CHECK(exam::verify_token("eyJhbGciOiJub25lIn0.eyJzdWIiOiJzMSJ9.", "k").error == exam::token_error::bad_algorithm);
  CHECK(exam::verify_token("eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJzMSJ9.AAAA", "k").error == exam::token_error::bad_algorithm);
  // Secrets shorter and longer than the SHA-256 block (a longer one is hashed first,
  // RFC 2104): the signature is OpenSSL's HMAC of the signing input, byte for byte.
  for (const auto& secret : {std::string("k"), std::string(64, 'y'), std::string(200, 'x')}) {
    CAPTURE(secret.size());
    const auto lt = exam::mint_token({"t1", exam::role::teacher, now + 1h}, secret);
    const auto dot = lt.rfind('.');
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(lt.data()),
         dot, mac, &len);
    REQUIRE(len == 32);
    CHECK(lt.substr(dot + 1) == base64url(std::string_view(reinterpret_cast<const char*>(mac), len)));
    CHECK(exam::verify_token(lt, secret).error == exam::token_error::none);
    CHECK(exam::verify_token(lt, secret).who.role == exam::role::teacher);
    CHECK(exam::verify_token(lt, "x").error == exam::token_error::bad_signature);
  }
}

TEST_CASE("jwt: one token has one spelling: non-canonical base64url is refused") {
  const auto t = exam::mint_token({"s1", exam::role::student, std::chrono::system_clock::now() + 1h}, "k");
  REQUIRE(exam::verify_token(t, "k").error == exam::token_error::none);
  // The signature is 32 bytes: 43 characters whose last one carries 2 unused bits. Each
  // other last character with the same 4 used bits decodes to the same bytes.
  const auto dot = t.rfind('.');
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const auto last = alphabet.find(t.back());
  REQUIRE(t.size() - dot - 1 == 43);
  REQUIRE(last % 4 == 0);  // canonical: the unused bits are zero
  for (std::size_t low = 1; low < 4; ++low) {
    auto other = t;
    other.back() = alphabet[last + low];
    CAPTURE(other.back());
    CHECK(exam::verify_token(other, "k").error == exam::token_error::malformed);
  }
  // Padding and the standard alphabet are not base64url either.
  CHECK(exam::verify_token(t + "=", "k").error == exam::token_error::malformed);
  auto plus = t;
  plus[1] = '+';
  CHECK(exam::verify_token(plus, "k").error == exam::token_error::malformed);
}

TEST_CASE("jwt: nbf, and iss and aud when the server asks for them") {
  using exam::token_error;
  const auto now = std::chrono::system_clock::now();
  const auto at = [&](std::chrono::seconds d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::seconds>((now + d).time_since_epoch()).count());
  };
  auto check = [&](const std::string& claims, const exam::token_checks& c = {}) {
    return exam::verify_token(exam::sign_claims(claims, "k"), "k", c, now).error;
  };
  const auto base = R"({"sub":"s1","role":"student","exp":)" + at(1h);
  CHECK(check(base + R"(,"nbf":)" + at(-1s) + "}") == token_error::none);
  CHECK(check(base + R"(,"nbf":)" + at(1min) + "}") == token_error::not_yet_valid);
  CHECK(check(base + R"(,"nbf":"soon"})") == token_error::bad_claims);

  const exam::token_checks lms{.issuer = "https://lms.example", .audience = "exam-api"};
  CHECK(check(base + "}") == token_error::none);  // nothing asked, nothing checked
  CHECK(check(base + "}", lms) == token_error::bad_issuer);
  CHECK(check(base + R"(,"iss":"https://other.example","aud":"exam-api"})", lms) == token_error::bad_issuer);
  CHECK(check(base + R"(,"iss":"https://lms.example"})", lms) == token_error::bad_audience);
  CHECK(check(base + R"(,"iss":"https://lms.example","aud":"grades"})", lms) == token_error::bad_audience);
  CHECK(check(base + R"(,"iss":"https://lms.example","aud":["grades",7]})", lms) == token_error::bad_audience);
  CHECK(check(base + R"(,"iss":"https://lms.example","aud":"exam-api"})", lms) == token_error::none);
  CHECK(check(base + R"(,"iss":"https://lms.example","aud":["grades","exam-api"]})", lms) == token_error::none);
  // What the server mints with the same settings passes them.
  const auto minted = exam::mint_token({"s1", exam::role::student, now + 1h}, "k", lms);
  CHECK(exam::verify_token(minted, "k", lms, now).error == token_error::none);
  CHECK(exam::verify_token(minted, "k", {.issuer = "x"}, now).error == token_error::bad_issuer);
}

TEST_CASE("jwt: correctly signed tokens with odd claims") {
  using exam::token_error;
  auto check = [](const std::string& claims) { return exam::verify_token(exam::sign_claims(claims, "k"), "k").error; };
  CHECK(check(R"({"sub":"s1","role":"student","exp":1e300})") == token_error::none);  // far future, clamped
  CHECK(check(R"({"sub":"s1","role":"student","exp":-1e300})") == token_error::expired);
  CHECK(check(R"({"sub":"s1","role":"student","exp":18446744073709551615})") == token_error::none);
  CHECK(check(R"({"sub":"s1","role":"student","exp":-9223372036854775808})") == token_error::expired);
  CHECK(check(R"({"sub":"s1","role":"admin","exp":4102444800})") == token_error::bad_claims);
  CHECK(check(R"({"sub":"","role":"student","exp":4102444800})") == token_error::bad_claims);
  CHECK(check(R"({"sub":1,"role":"student","exp":4102444800})") == token_error::bad_claims);
  CHECK(check(R"({"sub":"s1","role":"student","exp":"4102444800"})") == token_error::bad_claims);
  CHECK(check(R"(["sub","s1"])") == token_error::malformed);
  CHECK(check("not json") == token_error::malformed);
}

TEST_CASE("JSON text: numbers as people read them; any non-empty receipt id") {
  CHECK(exam::to_plain_json(boost::json::parse(R"({"a":20.0,"b":33.33,"c":0.000001,"d":[1e300,-2.5,7]})")) ==
        R"({"a":20,"b":33.33,"c":0.000001,"d":[1e+300,-2.5,7]})");
  CHECK(exam::receipt_id_in(R"({"receipt_id":"01a2b3c4-0000-7000-8000-000000000001","status":"received"})") ==
        "01a2b3c4-0000-7000-8000-000000000001");
  CHECK(exam::receipt_id_in(R"({"receipt_id":"0123456789abcdef0123456789abcdef"})") ==
        "0123456789abcdef0123456789abcdef");  // 32 characters: another server's ids
  CHECK(exam::receipt_id_in(R"({"status":"received", "receipt_id" : "r-1"})") == "r-1");  // spaced: parsed
  CHECK(exam::receipt_id_in(R"({"receipt_id":"a\"b"})") == "a\"b");  // escaped: parsed
  CHECK_FALSE(exam::receipt_id_in(R"({"receipt_id":""})"));
  CHECK_FALSE(exam::receipt_id_in(R"({"receipt_id":7})"));
  CHECK_FALSE(exam::receipt_id_in("not json"));
}

TEST_CASE("progress: plain grouped numbers, rates, the drain's end; nothing on a pipe") {
  CHECK(exam::grouped(0) == "0");
  CHECK(exam::grouped(999) == "999");
  CHECK(exam::grouped(1234567) == "1,234,567");
  exam::progress_sample before{.accepted = 1000, .written = 500, .backlog = 500, .errors = 0};
  exam::progress_sample now{.accepted = 3000, .written = 1500, .backlog = 1500, .errors = 3};
  CHECK(exam::progress_line(now, before, 2.0) ==
        "accepted 3,000 (1,000/s) | written 1,500 (500/s) | backlog 1,500 | drained in ~3 s | errors 3");
  exam::progress_sample w0, w1;
  w0.written = 4;
  w1.written = 10;
  CHECK(exam::progress_line(w1, w0, 1.0) == "written 10 (6/s) | errors 0");
  CHECK_FALSE(exam::progress_meter::wanted());  // ctest's standard error is no terminal
}

TEST_CASE("ttl parsing") {
  CHECK(exam::parse_ttl("2h") == std::chrono::seconds(7200));
  CHECK(exam::parse_ttl("90s") == std::chrono::seconds(90));
  CHECK(exam::parse_ttl("1d") == std::chrono::seconds(86400));
  CHECK_FALSE(exam::parse_ttl("h"));
  CHECK_FALSE(exam::parse_ttl("-1h"));
  CHECK_FALSE(exam::parse_ttl("2w"));
}

TEST_CASE("catalogue: the shipped file loads; bad files are refused with the reason") {
  const auto demo = exam::catalog::demo(std::chrono::system_clock::now());
  REQUIRE(demo.find("demo"));
  CHECK(demo.find("demo")->answer_key.size() == 10);
  CHECK(demo.find("demo")->grade({{"q1", "B"}, {"q2", "D"}}) == doctest::Approx(20.0));

  const auto shipped = exam::catalog::from_file(INGEST_EXAMS_FILE);
  CHECK(shipped.size() >= 3);
  const auto* closed = shipped.find("history-final");
  REQUIRE(closed);
  CHECK(closed->late(std::chrono::system_clock::now()));
  CHECK_FALSE(closed->late(closed->deadline + closed->grace));
  CHECK(closed->late(closed->deadline + closed->grace + 1ms));
  CHECK_FALSE(shipped.find("physics-quiz")->allows("s3"));
  CHECK(shipped.find("physics-quiz")->allows("s1"));

  auto refused = [](const std::string& text, const std::string& part) {
    try {
      exam::catalog::from_json(text);
    } catch (const std::runtime_error& e) {
      return std::string(e.what()).find(part) != std::string::npos;
    }
    return false;
  };
  CHECK(refused("{", "not JSON"));
  CHECK(refused(R"({"exams":{}})", "expected"));
  CHECK(refused(R"({"exams":[{"id":"a b","answer_key":{},"opens_at":"2026-01-01T00:00:00Z","deadline":"2026-01-02T00:00:00Z"}]})", "id"));
  CHECK(refused(R"({"exams":[{"id":"a","answer_key":{},"opens_at":"yesterday","deadline":"2026-01-02T00:00:00Z"}]})", "opens_at"));
  CHECK(refused(R"({"exams":[{"id":"a","answer_key":{},"opens_at":"2026-01-03T00:00:00Z","deadline":"2026-01-02T00:00:00Z"}]})", "deadline before"));
  CHECK(refused(R"({"exams":[{"id":"a","answer_key":{"q1":1},"opens_at":"2026-01-01T00:00:00Z","deadline":"2026-01-02T00:00:00Z"}]})", "strings"));
}

TEST_CASE("request bodies: answers must be an object of strings; the payload is canonical") {
  CHECK(exam::parse_answers(R"({"answers":{"q1":"B"}})").error.empty());
  // A question answered twice is refused, with the key named (Boost.JSON would keep
  // the last one silently); so is a repeated key at the top.
  const auto twice = exam::parse_answers(R"({"answers":{"q1":"B","q2":"A","q1":"C"}})");
  CHECK(twice.error.find("\"q1\" appears twice") != std::string::npos);
  CHECK(twice.answers.empty());
  CHECK_FALSE(exam::parse_answers(R"({"answers":{"q1":"B"},"answers":{}})").error.empty());
  // The same key in two different objects is no repeat.
  CHECK(exam::parse_answers(R"({"answers":{"answers":"B"}})").error.empty());
  CHECK(exam::parse_answers(R"({"answers":{}})").error.empty());  // a blank submission
  CHECK_FALSE(exam::parse_answers(R"({"answers":{"":"B"}})").error.empty());
  CHECK_FALSE(exam::parse_answers(R"({"answers":{"q1":null}})").error.empty());
  CHECK_FALSE(exam::parse_answers(R"([])").error.empty());
  CHECK_FALSE(exam::parse_answers(R"({"answers":{"q1":"B","q2":"C"}})", 1).error.empty());
  CHECK_FALSE(exam::parse_answers(std::string(100, '{')).error.empty());

  exam::submission a{"e", "s", "k", {{"q2", "B"}, {"q1", "A"}}};
  exam::submission b{"e", "s", "k", {{"q1", "A"}, {"q2", "B"}}};
  CHECK(a.to_json() == b.to_json());
  auto back = exam::submission::from_json(a.to_json());
  REQUIRE(back);
  CHECK(back->answers == a.answers);
  CHECK(back->queue_key() == "e/s/k");
  exam::submission long_key{"e", "s", std::string(255, 'k'), {}};
  CHECK(long_key.queue_key().size() <= 255);
  CHECK(long_key.queue_key() != exam::submission{"e", "s2", std::string(255, 'k'), {}}.queue_key());
}

TEST_CASE("rate limits: a bucket per key, refilled at the rate") {
  exam::keyed_limiter l(2, 2);
  const auto t0 = exam::keyed_limiter::clock::now();
  CHECK(l.take("a", t0).count() == 0);
  CHECK(l.take("a", t0).count() == 0);
  const auto wait = l.take("a", t0);
  CHECK(wait.count() > 0);
  CHECK(wait.count() <= 500);
  CHECK(l.take("b", t0).count() == 0);
  CHECK(l.take("a", t0 + 600ms).count() == 0);
  exam::keyed_limiter off(0, 1);
  for (int i = 0; i < 100; ++i) CHECK(off.take("x").count() == 0);
}

TEST_CASE("a queue that cannot be opened is named, with its secret hidden and what to check") {
  ingest::test::io_thread io;
  auto refusal = [&](const std::string& url) {
    try {
      exam::open_queue(url, io.executor());
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("opened");
  };
  const auto nats = refusal("nats://bob:s3cret@127.0.0.1:1?stream=EXAMS");
  CHECK(nats.find("cannot open the queue nats://bob:***@127.0.0.1:1?stream=EXAMS") != std::string::npos);
  CHECK(nats.find("s3cret") == std::string::npos);
  CHECK(nats.find("check that nats-server runs") != std::string::npos);
  const auto sqlite = refusal("sqlite:///no-such-directory/for/sure/q.db");
  CHECK(sqlite.find("sqlite:///no-such-directory/for/sure/q.db") != std::string::npos);
  CHECK(sqlite.find("the directory exists") != std::string::npos);
  CHECK(refusal("kafka://x").find("unknown queue URL") != std::string::npos);
  CHECK(exam::redact_url("nats://tok3n@h:1,h:2") == "nats://***@h:1,h:2");
  // A password the URL parser cannot read is not quoted back either.
  const auto bad = refusal("nats://bob:p%zz-s3cret@127.0.0.1:1");
  CHECK(bad.find("two hex digits") != std::string::npos);
  CHECK(bad.find("s3cret") == std::string::npos);
  CHECK(exam::redact_url("sqs+https://sqs.example/1/q?dlq=a@b") == "sqs+https://sqs.example/1/q?dlq=a@b");
}

TEST_CASE("dead-letter command line: list, show, replay, purge") {
  using namespace ingest;
  using namespace ingest::test;
  temp_dir dir;
  io_thread io;
  for (const std::string& url : {std::string("memory"), "sqlite://" + dir.file("q.db")}) {
    CAPTURE(url);
    auto q = exam::open_queue(url, io.executor());
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) {
      auto [ec, r] = publish(*q, message("k" + std::to_string(i), "payload-" + std::to_string(i)));
      REQUIRE_FALSE(ec);
      ids.push_back(r.id);
    }
    auto [fec, got] = fetch(*q, 3, 1s);
    REQUIRE(got.size() == 3);
    std::vector<settlement> dead;
    for (const auto& d : got) dead.push_back({d.token, settle_action::dead_letter, {}, "permanent_failure", "bad answers"});
    REQUIRE_FALSE(settle(*q, dead));

    auto run = [&](exam::dlq_request r, int expect) {
      std::ostringstream out, err;
      CHECK(exam::run_dlq(*q, r, out, err) == expect);
      return out.str() + err.str();
    };
    auto listed = run({.action = "list"}, 0);
    CHECK(listed.find("3 dead letter(s)") != std::string::npos);
    for (const auto& id : ids) CHECK(listed.find(id) != std::string::npos);
    auto page = run({.action = "list", .limit = 2}, 0);
    CHECK(page.find("more") != std::string::npos);
    auto shown = run({.action = "show", .receipts = {ids[1]}}, 0);
    CHECK(shown.find("payload-1") != std::string::npos);
    CHECK(shown.find("bad answers") != std::string::npos);
    CHECK(shown.find("permanent_failure") != std::string::npos);
    CHECK(run({.action = "show", .receipts = {"01a00000-0000-7000-8000-000000000000"}}, 1).find("no dead letter") !=
          std::string::npos);
    CHECK(run({.action = "replay"}, 2).find("--all") != std::string::npos);
    CHECK(run({.action = "replay", .receipts = {ids[0]}}, 0).find("replayed 1") != std::string::npos);
    CHECK(stats(*q).pending == 1);
    CHECK(run({.action = "purge", .all = true}, 0).find("purged 2") != std::string::npos);
    CHECK(dead_letters(*q).empty());
    CHECK(run({.action = "fix"}, 2).find("unknown action") != std::string::npos);
    q->close();
  }
}

TEST_CASE("attachments: exam limits, upload keys, and the payload with files") {
  const auto demo = exam::catalog::demo(std::chrono::system_clock::now());
  CHECK(demo.find("demo")->attachments.allowed());
  const auto shipped = exam::catalog::from_file(INGEST_EXAMS_FILE);
  CHECK_FALSE(shipped.find("physics-quiz")->attachments.allowed());  // none unless the exam says

  const std::string head = R"({"exams":[{"id":"a","answer_key":{},"opens_at":"2026-01-01T00:00:00Z","deadline":"2026-01-02T00:00:00Z","attachments":)";
  const auto rules = exam::catalog::from_json(head + R"({"max_files":2,"max_bytes":100,"content_types":["text/plain"]}}]})")
                         .find("a")
                         ->attachments;
  CHECK(rules.max_files == 2);
  CHECK(rules.max_bytes == 100);
  CHECK(rules.takes_type("text/plain"));
  CHECK_FALSE(rules.takes_type("application/pdf"));
  for (const char* bad : {R"([])", R"({"max_files":-1})", R"({"max_files":2,"max_bytes":0})",
                          R"({"max_files":21})", R"({"max_files":1,"content_types":[]})",
                          R"({"max_files":1,"content_types":["pdf"]})", R"({"max_files":1,"size":3})"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(exam::catalog::from_json(head + bad + "}]}"), std::runtime_error);
  }

  const exam::upload_keys keys("secret"), other("other secret");
  const std::string sha(64, 'a');
  exam::attachment a{keys.issue("e1", "s1", 10, sha), sha, 10, "x.pdf"};
  CHECK(a.key.rfind("exams/e1/s1/", 0) == 0);
  CHECK(keys.issued(a, "e1", "s1"));
  CHECK_FALSE(other.issued(a, "e1", "s1"));
  CHECK_FALSE(keys.issued(a, "e1", "s2"));
  CHECK_FALSE(keys.issued(a, "e2", "s1"));
  CHECK(keys.issue("e1", "s1", 10, sha) != a.key);  // a fresh key every time
  auto changed = a;
  changed.size = 11;
  CHECK_FALSE(keys.issued(changed, "e1", "s1"));
  changed = a;
  changed.sha256 = std::string(64, 'b');
  CHECK_FALSE(keys.issued(changed, "e1", "s1"));

  // Without files the payload is what it always was; with files they travel along.
  exam::submission plain{"e", "s", "k", {{"q1", "A"}}};
  CHECK(plain.to_json() == R"({"exam_id":"e","student_id":"s","idempotency_key":"k","answers":{"q1":"A"}})");
  exam::submission with_files{"e", "s", "k", {{"q1", "A"}}, {a}};
  const auto back = exam::submission::from_json(with_files.to_json());
  REQUIRE(back);
  CHECK(back->attachments == with_files.attachments);
  const auto parsed = exam::parse_answers(R"({"answers":{},"attachments":[{"key":"k","sha256":")" + sha + R"(","size":3}]})");
  CHECK(parsed.error.empty());
  REQUIRE(parsed.attachments.size() == 1);
  CHECK(parsed.attachments[0].size == 3);
  for (const auto& bad : std::vector<std::string>{R"("x")", R"([{"key":"k","sha256":"ab","size":3}])",
                                R"([{"key":"k","sha256":")" + sha + R"(","size":0}])",
                                R"([{"key":"","sha256":")" + sha + R"(","size":1}])",
                                R"([{"key":"k","sha256":")" + sha + R"(","size":1,"filename":"a/b"}])"}) {
    CAPTURE(bad);
    CHECK_FALSE(exam::parse_answers(R"({"answers":{},"attachments":)" + bad + "}").error.empty());
  }
}

TEST_CASE("exam.db: a graded row keeps its files; a file made before the column gets it at start") {
  ingest::test::temp_dir dir;
  const auto path = dir.file("exam.db");
  {
    // As an exam.db from before attachments: the submissions table without the column.
    ingest::sqlite::database old(path);
    old.exec(
        "CREATE TABLE submissions(receipt_id TEXT PRIMARY KEY, idempotency_key TEXT NOT NULL, exam_id TEXT NOT NULL,"
        " student_id TEXT NOT NULL, accepted_at TEXT NOT NULL, answers_json TEXT NOT NULL, fingerprint TEXT NOT NULL,"
        " status TEXT NOT NULL, score REAL, graded_at TEXT, UNIQUE(exam_id, student_id, idempotency_key));"
        "INSERT INTO submissions VALUES ('r0', 'k0', 'open', 's0', '2026-01-01T00:00:00.000Z', '{}', 'f', 'graded',"
        " 1, '2026-01-01T00:00:01.000Z')");
  }
  // Four processes' worth of connections open it at once: each finds the column.
  std::vector<std::thread> openers;
  std::atomic<int> opened{0};
  std::latch start(4);
  for (int i = 0; i < 4; ++i)
    openers.emplace_back([&] {
      start.arrive_and_wait();
      try {
        exam::store_reader r(path);
        if (r.by_receipt("r0")) ++opened;
      } catch (const std::exception& e) {
        MESSAGE(e.what());
      }
    });
  for (auto& t : openers) t.join();
  CHECK(opened == 4);
  exam::store_reader reader(path);
  REQUIRE(reader.by_receipt("r0").has_value());
  CHECK(reader.by_receipt("r0")->attachments_json.empty());
  exam::exam_info info;
  info.id = "open";
  info.answer_key = {{"q1", "B"}};
  exam::submission s{"open", "s1", "k1", {{"q1", "B"}}};
  s.attachments = {{"exams/open/s1/n1-t1", std::string(64, 'c'), 5, "a.pdf"}};
  const auto now = ingest::clock::now();
  {
    ingest::sqlite::database db(path);
    exam::store_writer writer(db);
    writer.insert(exam::graded_row(info, s, "r1", now, "f1", now));
  }
  const auto row = reader.by_receipt("r1");
  REQUIRE(row.has_value());
  CHECK(row->attachments_json == s.attachments_json());
  CHECK(row->attachments_json.find("exams/open/s1/n1-t1") != std::string::npos);
}
