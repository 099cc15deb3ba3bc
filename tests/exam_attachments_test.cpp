// Attachments end to end against the S3 side of the fauxqs emulator: a presigned upload
// from an ordinary HTTP client, the submission naming it, the graders checking it before
// grading; a file never uploaded retried then dead-lettered (attachment_missing), a file
// of other bytes dead-lettered (attachment_mismatch), the storage stopped and back.
// fauxqs checks no signature or expiry (s3_presign_test holds the signature vectors).
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "ingest/aws/sigv4.hpp"
#include "support/exam_fixture.hpp"
#include "support/fauxqs.hpp"
#include "support/s3_upload.hpp"

namespace {

using namespace ingest::test;
using namespace std::chrono_literals;

std::string catalog_json() {
  const auto now = ingest::clock::now();
  const auto t = [](ingest::time_point x) { return ingest::format_time(x); };
  return R"({"exams":[
    {"id":"essay","answer_key":{"q1":"B"},"opens_at":")" + t(now - 1h) + R"(","deadline":")" + t(now + 1h) +
         R"(","attachments":{"max_files":2,"max_bytes":4096,"content_types":["application/pdf","text/plain"]}},
    {"id":"plain","answer_key":{"q1":"B"},"opens_at":")" + t(now - 1h) + R"(","deadline":")" + t(now + 1h) + R"("},
    {"id":"later","answer_key":{"q1":"B"},"opens_at":")" + t(now + 1h) + R"(","deadline":")" + t(now + 2h) +
         R"(","attachments":{"max_files":1}},
    {"id":"past","answer_key":{"q1":"B"},"opens_at":")" + t(now - 2h) + R"(","deadline":")" + t(now - 1h) +
         R"(","attachments":{"max_files":1}},
    {"id":"roster","answer_key":{"q1":"B"},"opens_at":")" + t(now - 1h) + R"(","deadline":")" + t(now + 1h) +
         R"(","students":["s9"],"attachments":{"max_files":1}}]})";
}

// The queue-based server on the embedded queue, its graders checking files in the bucket.
struct rig {
  explicit rig(std::uint32_t max_attempts = 3, bool with_storage = true)
      : bucket(std::make_shared<ingest::aws::s3_bucket>(ingest::aws::s3_options::from_url(
            "s3+http://127.0.0.1:" + std::to_string(storage.port()) + "/exam-files?timeout=2s"))),
        exams(exam::catalog::from_json(catalog_json())),
        reader(exam::open_reader(dir.file("exam.db"))) {
    bucket->create_bucket();
    queue = exam::open_queue("sqlite://" + dir.file("queue.db"), io.executor());
    exam::app_options options;
    options.jwt_secret = secret;
    options.receipts = exam::make_receipt_signer({}, secret);
    if (with_storage) options.storage = bucket;
    queue->sign_receipts(options.receipts);
    metrics = std::make_shared<ingest::pipeline_metrics>();
    producer = std::make_unique<ingest::producer>(*queue, ingest::producer_options{.metrics = metrics});
    backend = std::make_unique<exam::queue_backend>(*queue, *producer, *reader, metrics);
    backend->start();
    grader = std::make_unique<exam::grading_consumer>(
        *queue, dir.file("exam.db"), exams,
        exam::consumer_settings{.max_batch = 20, .linger = 2ms, .max_attempts = max_attempts, .storage = bucket},
        metrics);
    grader->start();
    api = std::make_unique<exam::app>(exams, *reader, *backend, options);
    server = std::make_unique<ingest::http::server>(
        io.context(), ingest::http::server_options{},
        [this](auto req, const auto& info, auto respond) { api->handle(std::move(req), info, std::move(respond)); });
    server->start();
  }
  ~rig() {
    server->stop();
    backend->stop();
    grader->drain();
    queue->close();
    io.join();
  }

  http_client client() { return http_client(server->port()); }

  // POST .../uploads; the answer.
  http_result ask_upload(const std::string& tok, const std::string& body, const std::string& exam_id = "essay") {
    auto c = client();
    auto headers = bearer(tok);
    headers.emplace_back("Content-Type", "application/json");
    return c.call(verb::post, "/v1/exams/" + exam_id + "/uploads", headers, body);
  }
  // The upload route's answer for `bytes`, and the file PUT to its URL (unless `put` is false).
  boost::json::object upload(const std::string& tok, const std::string& bytes, const std::string& claimed_sha = "",
                             bool put = true, std::string put_bytes = "\x01") {
    const std::string sha = claimed_sha.empty() ? ingest::aws::sha256_hex(bytes) : claimed_sha;
    const auto r = ask_upload(tok, R"({"filename":"essay.pdf","content_type":"application/pdf","size":)" +
                                       std::to_string(bytes.size()) + R"(,"sha256":")" + sha + R"("})");
    REQUIRE(r.status == 201);
    auto o = r.json().as_object();
    if (put) {
      std::vector<std::pair<std::string, std::string>> headers;
      for (const auto& [k, v] : o["headers"].as_object()) headers.emplace_back(std::string(k), std::string(v.as_string()));
      const auto stored = send_presigned("PUT", std::string(o["upload_url"].as_string()), headers, storage.port(),
                                         put_bytes == "\x01" ? bytes : put_bytes);
      REQUIRE(stored.status == 200);
    }
    return o;
  }
  http_result submit(const std::string& tok, const std::string& key, const boost::json::array& attachments,
                     const std::string& exam_id = "essay") {
    boost::json::object body{{"answers", boost::json::object{{"q1", "B"}}}, {"attachments", attachments}};
    auto c = client();
    return c.call(verb::post, "/v1/exams/" + exam_id + "/submissions", submit_headers(tok, key),
                  boost::json::serialize(body));
  }
  std::int64_t rows() {
    return dynamic_cast<exam::store_pool&>(*reader).with([](exam::store_reader& r) {
      ingest::sqlite::statement s(r.db(), "SELECT count(*) FROM submissions");
      s.step();
      return s.column_int(0);
    });
  }
  // The exam's dead letters as the teacher route lists them.
  boost::json::array dead_letters() {
    auto c = client();
    return c.call(verb::get, "/v1/exams/essay/dead-letters", bearer(token("t1", exam::role::teacher)))
        .json()
        .as_object()["items"]
        .as_array();
  }

  fauxqs storage;
  temp_dir dir;
  io_thread io{2};
  std::shared_ptr<ingest::aws::s3_bucket> bucket;
  exam::catalog exams;
  std::unique_ptr<exam::submission_reader> reader;
  std::unique_ptr<ingest::durable_queue> queue;
  std::shared_ptr<ingest::pipeline_metrics> metrics;
  std::unique_ptr<ingest::producer> producer;
  std::unique_ptr<exam::queue_backend> backend;
  std::unique_ptr<exam::grading_consumer> grader;
  std::unique_ptr<exam::app> api;
  std::unique_ptr<ingest::http::server> server;
};

}  // namespace

TEST_CASE("attachments: uploaded through the presigned URL, submitted, checked, graded, downloadable") {
  rig r;
  const auto tok = token("s1");
  const std::string pdf = "%PDF-1.4 my essay";
  auto up = r.upload(tok, pdf);
  const std::string key(up["object_key"].as_string());
  CHECK(key.rfind("exams/essay/s1/", 0) == 0);
  CHECK(up["method"].as_string() == "PUT");
  CHECK(up["max_files"].as_int64() == 2);
  CHECK(up["headers"].as_object().contains("x-amz-checksum-sha256"));
  CHECK_FALSE(up["expires_at"].as_string().empty());

  const auto receipt = r.submit(tok, "k1", boost::json::array{up["attachment"]});
  REQUIRE(receipt.status == 202);
  REQUIRE(eventually([&] { return r.rows() == 1; }, 10s));
  CHECK(r.grader->attachment_counters().ok == 1);
  // Audit: the stored object is the student's file, byte for byte.
  CHECK(*r.bucket->get(key, 1 << 20) == pdf);
  // The same key again: the same receipt, no second row.
  const auto again = r.submit(tok, "k1", boost::json::array{up["attachment"]});
  CHECK(again.field("receipt_id") == receipt.field("receipt_id"));

  // The graded row names its file: the receipt's status and the teacher's list say so.
  auto c = r.client();
  const auto teacher = bearer(token("t1", exam::role::teacher));
  const auto status = c.call(verb::get, "/v1/submissions/" + receipt.field("receipt_id"), teacher);
  REQUIRE(status.status == 200);
  auto named = status.json().as_object()["attachments"].as_array();
  REQUIRE(named.size() == 1);
  CHECK(named[0].as_object()["key"].as_string() == key);
  CHECK(named[0].as_object()["sha256"].as_string() == ingest::aws::sha256_hex(pdf));
  CHECK(named[0].as_object()["size"].as_int64() == static_cast<std::int64_t>(pdf.size()));
  auto listed = c.call(verb::get, "/v1/exams/essay/submissions", teacher).json().as_object()["items"].as_array();
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].as_object()["attachments"].as_array() == named);

  const auto link = c.call(verb::get, "/v1/exams/essay/attachments?key=" + ingest::aws::uri_encode(key, true),
                           bearer(token("t1", exam::role::teacher)));
  REQUIRE(link.status == 200);
  const auto file = send_presigned("GET", link.field("url"), {}, r.storage.port());
  CHECK(file.status == 200);
  CHECK(file.body == pdf);
  CHECK(r.rows() == 1);
}

TEST_CASE("attachments: every refusal of the upload route") {
  rig r;
  const auto tok = token("s1");
  const std::string sha = ingest::aws::sha256_hex("x");
  const std::string good = R"({"filename":"a.pdf","content_type":"application/pdf","size":10,"sha256":")" + sha + "\"}";
  auto c = r.client();
  check_error(c.call(verb::post, "/v1/exams/essay/uploads", {{"Content-Type", "application/json"}}, good), 401,
              "unauthorized");
  check_error(r.ask_upload(token("t1", exam::role::teacher), good), 403, "forbidden");
  check_error(r.ask_upload(tok, good, "nope"), 404, "exam_not_found");
  check_error(r.ask_upload(tok, good, "plain"), 403, "attachments_not_allowed");
  check_error(r.ask_upload(tok, good, "later"), 403, "exam_not_open");
  check_error(r.ask_upload(tok, good, "past"), 403, "deadline_passed");
  check_error(r.ask_upload(tok, good, "roster"), 403, "forbidden");
  CHECK(r.ask_upload(token("s9"), good, "roster").status == 201);
  check_error(r.ask_upload(token(".."), good), 403, "forbidden");  // an id that cannot be a key segment
  check_error(c.call(verb::post, "/v1/exams/essay/uploads", bearer(tok), good), 415, "unsupported_media_type");
  for (const auto& bad : std::vector<std::string>{"{", R"({"filename":"a.pdf"})",
                                R"({"filename":"a/b.pdf","content_type":"application/pdf","size":10,"sha256":")" + sha + "\"}",
                                R"({"filename":"a.pdf","content_type":"application/pdf","size":0,"sha256":")" + sha + "\"}",
                                R"({"filename":"a.pdf","content_type":"application/pdf","size":10,"sha256":"ABC"})"}) {
    CAPTURE(bad);
    check_error(r.ask_upload(tok, bad), 400, "invalid_body");
  }
  check_error(r.ask_upload(tok, R"({"filename":"a.pdf","content_type":"application/pdf","size":4097,"sha256":")" + sha +
                                    "\"}"),
              413, "attachment_too_large");
  check_error(r.ask_upload(tok, R"({"filename":"a.exe","content_type":"application/x-msdownload","size":10,"sha256":")" +
                                    sha + "\"}"),
              415, "attachment_type_not_allowed");
  const auto get = c.call(verb::get, "/v1/exams/essay/uploads", bearer(tok));
  check_error(get, 405, "method_not_allowed");
  CHECK(get.headers["Allow"] == "POST");

  // The download route: teachers only, keys of the exam only.
  const auto teacher = bearer(token("t1", exam::role::teacher));
  check_error(c.call(verb::get, "/v1/exams/essay/attachments?key=exams/essay/s1/x", bearer(tok)), 403, "forbidden");
  check_error(c.call(verb::get, "/v1/exams/essay/attachments?key=exams/plain/s1/x", teacher), 400, "invalid_query");
  check_error(c.call(verb::get, "/v1/exams/essay/attachments", teacher), 400, "invalid_query");
  check_error(c.call(verb::get, "/v1/exams/nope/attachments?key=exams/nope/x", teacher), 404, "exam_not_found");
}

TEST_CASE("attachments: a server without storage hands out no upload URL") {
  rig r(3, false);
  check_error(r.ask_upload(token("s1"),
                           R"({"filename":"a.pdf","content_type":"application/pdf","size":10,"sha256":")" +
                               ingest::aws::sha256_hex("x") + "\"}"),
              403, "attachments_not_allowed");
  auto c = r.client();
  check_error(c.call(verb::get, "/v1/exams/essay/attachments?key=exams/essay/s1/x", bearer(token("t1", exam::role::teacher))),
              404, "not_found");
}

TEST_CASE("attachments: references not issued to this student for this file are refused at accept") {
  rig r;
  const auto tok = token("s1");
  auto up = r.upload(tok, "%PDF one", "", false);
  auto ref = up["attachment"].as_object();
  auto changed = [&](const char* field, boost::json::value v) {
    auto copy = ref;
    copy[field] = std::move(v);
    return boost::json::array{copy};
  };
  check_error(r.submit(token("s2"), "a", boost::json::array{ref}), 400, "invalid_attachments");  // another student's
  check_error(r.submit(tok, "b", changed("size", 9)), 400, "invalid_attachments");
  check_error(r.submit(tok, "c", changed("sha256", boost::json::string(ingest::aws::sha256_hex("other")))), 400, "invalid_attachments");
  check_error(r.submit(tok, "d", changed("key", boost::json::string(std::string(ref["key"].as_string()) + "0"))), 400, "invalid_attachments");
  check_error(r.submit(tok, "e", boost::json::array{ref, ref}), 400, "invalid_attachments");  // twice
  auto second = r.upload(tok, "%PDF two", "", false)["attachment"];
  auto third = r.upload(tok, "%PDF three", "", false)["attachment"];
  check_error(r.submit(tok, "f", boost::json::array{ref, second, third}), 400, "invalid_attachments");  // over max_files
  check_error(r.submit(tok, "g", boost::json::array{ref}, "plain"), 400, "invalid_attachments");
  check_error(r.submit(tok, "h", boost::json::array{"not an object"}), 400, "invalid_body");
  CHECK(r.submit(tok, "i", boost::json::array{ref, second}).status == 202);
}

TEST_CASE("attachments: a file never uploaded is retried, then dead-lettered as attachment_missing; replayed once it is there") {
  rig r(3);
  const auto tok = token("s1");
  const std::string text = "answer sheet";
  auto up = r.upload(tok, text, "", false);
  const auto receipt = r.submit(tok, "k1", boost::json::array{up["attachment"]});
  REQUIRE(receipt.status == 202);
  boost::json::array letters;
  REQUIRE(eventually([&] { return !(letters = r.dead_letters()).empty(); }, 20s));
  auto& letter = letters[0].as_object();
  CHECK(letter["receipt_id"].as_string() == receipt.field("receipt_id"));
  CHECK(letter["reason"].as_string() == "attachment_missing");
  CHECK(letter["attempts"].as_int64() == 3);
  REQUIRE(letter["attachments"].as_array().size() == 1);  // the teacher sees which file
  CHECK(letter["attachments"].as_array()[0].as_object()["key"] == up["object_key"]);
  CHECK(r.rows() == 0);
  CHECK(r.grader->attachment_counters().missing == 3);

  // The student's upload arrives late; a teacher replays the dead letter.
  r.bucket->put(std::string(up["object_key"].as_string()), text, "text/plain");
  auto c = r.client();
  const auto replay = c.call(verb::post, "/v1/exams/essay/dead-letters/" + receipt.field("receipt_id") + "/replay",
                             bearer(token("t1", exam::role::teacher)));
  CHECK(replay.status == 202);
  CHECK(eventually([&] { return r.rows() == 1; }, 10s));
}

TEST_CASE("attachments: other bytes than the submission names are dead-lettered as attachment_mismatch") {
  rig r(3);
  const auto tok = token("s1");
  const std::string text = "the real essay";
  // Same length, other bytes (the emulator does not check x-amz-checksum-sha256; S3 does).
  auto same_size = r.upload(tok, text, "", true, std::string(text.size(), 'z'));
  // Another length (the emulator does not hold the signed Content-Length either).
  auto other_size = r.upload(tok, text, "", true, text + " and more");
  const auto a = r.submit(tok, "a", boost::json::array{same_size["attachment"]});
  const auto b = r.submit(tok, "b", boost::json::array{other_size["attachment"]});
  REQUIRE(a.status == 202);
  REQUIRE(b.status == 202);
  boost::json::array letters;
  REQUIRE(eventually([&] { return (letters = r.dead_letters()).size() == 2; }, 20s));
  for (auto& l : letters) {
    CHECK(l.as_object()["reason"].as_string() == "attachment_mismatch");
    CHECK(l.as_object()["attempts"].as_int64() == 1);
  }
  CHECK(r.rows() == 0);
  CHECK(r.grader->attachment_counters().mismatch == 2);
}

TEST_CASE("attachments: the storage stopped while submissions wait: nothing is graded without its file") {
  rig r(12);
  const auto tok = token("s1");
  const std::string text = "worked answer";
  auto up = r.upload(tok, text);
  r.storage.kill();
  const auto receipt = r.submit(tok, "k1", boost::json::array{up["attachment"]});  // the accept path needs no storage
  REQUIRE(receipt.status == 202);
  REQUIRE(eventually([&] { return r.grader->attachment_counters().unavailable >= 2; }, 20s));
  CHECK(r.rows() == 0);
  // Back (empty: the emulator keeps nothing): the page uploads again, the retry finds it.
  r.storage.start();
  r.bucket->create_bucket();
  REQUIRE(eventually([&] { return r.grader->attachment_counters().missing >= 1; }, 30s));
  CHECK(r.rows() == 0);
  r.bucket->put(std::string(up["object_key"].as_string()), text, "text/plain");
  CHECK(eventually([&] { return r.rows() == 1; }, 60s));
  CHECK(r.dead_letters().empty());
}

TEST_CASE("attachments: the direct-insert server takes none") {
  exam_fixture f(kind::direct);
  auto c = f.client();
  const auto r = f.submit(c, "open", token("s1"), "k",
                          R"({"answers":{"q1":"B"},"attachments":[{"key":"exams/open/s1/x","sha256":")" +
                              ingest::aws::sha256_hex("x") + R"(","size":1}]})");
  check_error(r, 400, "invalid_attachments");
  CHECK(f.rows() == 0);
}
