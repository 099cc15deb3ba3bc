// The S3 bucket client against the S3 side of the fauxqs emulator: uploads through
// presigned URLs with an ordinary HTTP client, HEAD and GET, missing objects, and the
// emulator going away and coming back. (fauxqs does not check signatures or expiry:
// those rest on the signature vectors of s3_presign_test.)
#include <doctest/doctest.h>

#include "ingest/aws/s3.hpp"
#include "ingest/error.hpp"
#include "support/fauxqs.hpp"
#include "support/s3_upload.hpp"

namespace {

using namespace ingest::aws;

s3_options options_for(const ingest::test::fauxqs& emulator, std::string bucket = "exam-files") {
  return s3_options::from_url("s3+http://127.0.0.1:" + std::to_string(emulator.port()) + '/' + bucket + "?timeout=3s");
}

ingest::test::http_result send(const presigned_request& p, int port, std::string body = {}) {
  return ingest::test::send_presigned(p.method, p.url, p.headers, port, std::move(body));
}

}  // namespace

TEST_CASE("s3: a presigned PUT from a plain client, then HEAD and GET see the bytes") {
  ingest::test::fauxqs emulator;
  auto options = options_for(emulator);
  options.create = true;
  s3_bucket bucket(options);  // created at start
  CHECK(bucket.origin() == "http://127.0.0.1:" + std::to_string(emulator.port()));
  bucket.create_bucket();     // again: fine

  const std::string pdf = "%PDF-1.4 an essay " + std::string(5000, 'x');
  const std::string key = "exam-1/student 7/é essay.pdf";
  const auto url = bucket.presign_put(key, "application/pdf", pdf.size(), sha256_hex(pdf), std::chrono::minutes(5));
  CHECK(url.url.find("/exam-files/exam-1/student%207/%C3%A9%20essay.pdf?") != std::string::npos);
  CHECK(url.url.find("x-amz-checksum-sha256") != std::string::npos);  // a signed header
  const auto put = send(url, emulator.port(), pdf);
  REQUIRE(put.status == 200);

  const auto info = bucket.head(key);
  REQUIRE(info);
  CHECK(info->size == pdf.size());
  CHECK(info->content_type == "application/pdf");
  CHECK_FALSE(info->etag.empty());
  const auto bytes = bucket.get(key, 1 << 20);
  REQUIRE(bytes);
  CHECK(*bytes == pdf);
  CHECK(sha256_hex(*bytes) == sha256_hex(pdf));

  const auto download = send(bucket.presign_get(key, std::chrono::minutes(1), "essay.pdf"), emulator.port());
  CHECK(download.status == 200);
  CHECK(download.body == pdf);
}

TEST_CASE("s3: a missing object is nullopt, a too-large one an error, a missing bucket a refusal") {
  ingest::test::fauxqs emulator;
  s3_bucket bucket(options_for(emulator));
  bucket.create_bucket();
  CHECK_FALSE(bucket.head("nothing/here"));
  CHECK_FALSE(bucket.get("nothing/here", 100));
  bucket.put("big", std::string(2000, 'b'), "application/octet-stream");
  REQUIRE(bucket.head("big"));
  CHECK(bucket.head("big")->size == 2000);
  try {
    (void)bucket.get("big", 1999);
    FAIL("a body over the limit was returned");
  } catch (const ingest::error& e) {
    CHECK(e.code() == ingest::errc::payload_too_large);
  }
  CHECK(bucket.get("big", 2000)->size() == 2000);

  s3_bucket absent(options_for(emulator, "no-such-bucket"));
  CHECK_THROWS_AS(absent.put("k", "v", "text/plain"), ingest::error);
  CHECK_FALSE(absent.bucket_exists());
  CHECK(bucket.bucket_exists());
  // A header value with a line break never reaches the wire.
  CHECK_THROWS_AS(bucket.put("k", "v", "text/plain\r\nx-evil: 1"), ingest::error);
}

TEST_CASE("s3: the emulator gone is backend_unavailable; back, the same client works again") {
  ingest::test::fauxqs emulator;
  s3_bucket bucket(options_for(emulator));
  bucket.create_bucket();
  bucket.put("a", "1", "text/plain");
  REQUIRE(bucket.head("a"));

  emulator.kill();
  try {
    (void)bucket.head("a");
    FAIL("a call to a stopped emulator succeeded");
  } catch (const ingest::error& e) {
    CHECK(e.code() == ingest::errc::backend_unavailable);
  }
  emulator.start();  // empty again: fauxqs keeps nothing
  bucket.create_bucket();
  CHECK_FALSE(bucket.head("a"));
  bucket.put("a", "2", "text/plain");
  CHECK(*bucket.get("a", 10) == "2");
}

TEST_CASE("s3: calls from several threads at once") {
  ingest::test::fauxqs emulator;
  s3_bucket bucket(options_for(emulator));
  bucket.create_bucket();
  std::vector<std::thread> threads;
  std::atomic<int> seen{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        const std::string key = "t" + std::to_string(t) + "/" + std::to_string(i);
        bucket.put(key, key, "text/plain");
        if (auto body = bucket.get(key, 100); body && *body == key) ++seen;
      }
    });
  for (auto& th : threads) th.join();
  CHECK(seen == 100);
}
