// Presigned URLs and S3 header signing against the examples of AWS's S3 documentation
// ("Authenticating Requests: Using Query Parameters" and "Signature Calculations for the
// Authorization Header": credentials AKIAIOSFODNN7EXAMPLE, bucket examplebucket,
// us-east-1, 2013-05-24T00:00:00Z), and the storage URL.
#include <doctest/doctest.h>

#include "ingest/aws/presign.hpp"
#include "ingest/aws/s3.hpp"
#include "ingest/aws/sigv4.hpp"
#include "ingest/error.hpp"

namespace {

using namespace ingest::aws;

const credentials example{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
constexpr const char* date = "20130524T000000Z";
const std::string empty_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

signing_input s3_get(std::string path, std::string query, std::vector<std::pair<std::string, std::string>> extra = {}) {
  signing_input in;
  in.method = "GET";
  in.path = std::move(path);
  in.query = std::move(query);
  in.headers = {{"Host", "examplebucket.s3.amazonaws.com"}, {"x-amz-date", date}, {"x-amz-content-sha256", empty_hash}};
  for (auto& h : extra) in.headers.push_back(std::move(h));
  in.payload_sha256 = empty_hash;
  return in;
}

std::string query_value(const std::string& url, const std::string& name) {
  const auto at = url.find(name + '=');
  if (at == std::string::npos) return {};
  const auto start = at + name.size() + 1;
  return url.substr(start, url.find('&', start) - start);
}

}  // namespace

TEST_CASE("presign: the presigned GET of AWS's example (test.txt, 86400 s)") {
  presign_input in;
  in.origin = "https://examplebucket.s3.amazonaws.com";
  in.path = "/test.txt";
  in.expires = std::chrono::seconds(86400);
  const auto p = presign_v4(in, example, "us-east-1", "s3", date);
  CHECK(p.signature.signature == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  CHECK(p.url ==
        "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  CHECK(p.signature.canonical_request ==
        "GET\n/test.txt\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%"
        "2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\nhost:examplebucket.s3."
        "amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD");
  CHECK(p.headers.empty());
}

TEST_CASE("presign: every signed part changes the signature; headers to send are returned") {
  presign_input in;
  in.origin = "https://examplebucket.s3.amazonaws.com";
  in.path = "/test.txt";
  in.expires = std::chrono::seconds(86400);
  const auto base = presign_v4(in, example, "us-east-1", "s3", date).signature.signature;
  auto changed = [&](auto edit) {
    presign_input other = in;
    edit(other);
    return presign_v4(other, example, "us-east-1", "s3", date).signature.signature != base;
  };
  CHECK(changed([](presign_input& i) { i.method = "PUT"; }));
  CHECK(changed([](presign_input& i) { i.path = "/test2.txt"; }));
  CHECK(changed([](presign_input& i) { i.expires = std::chrono::seconds(3600); }));
  CHECK(changed([](presign_input& i) { i.origin = "https://otherbucket.s3.amazonaws.com"; }));
  CHECK(changed([](presign_input& i) { i.headers = {{"Content-Length", "10"}}; }));
  CHECK(presign_v4(in, example, "eu-west-1", "s3", date).signature.signature != base);

  in.method = "PUT";
  in.headers = {{"Content-Type", "application/pdf"}, {"content-length", "1024"}};
  const auto p = presign_v4(in, example, "us-east-1", "s3", date);
  CHECK(query_value(p.url, "X-Amz-SignedHeaders") == "content-length%3Bcontent-type%3Bhost");
  CHECK(p.headers == std::vector<std::pair<std::string, std::string>>{{"content-type", "application/pdf"},
                                                                       {"content-length", "1024"}});
  CHECK(p.method == "PUT");
}

TEST_CASE("presign: a session token is carried and signed; a default port is left out of the host") {
  presign_input in;
  in.origin = "https://examplebucket.s3.amazonaws.com:443";
  in.path = "/a%20b.txt";
  const auto plain = presign_v4(in, example, "us-east-1", "s3", date);
  CHECK(plain.url.rfind("https://examplebucket.s3.amazonaws.com:443/a%20b.txt?", 0) == 0);
  CHECK(plain.signature.canonical_request.find("\nhost:examplebucket.s3.amazonaws.com\n") != std::string::npos);
  const auto token = presign_v4(in, credentials{example.access_key_id, example.secret_access_key, "tok/en+="},
                                "us-east-1", "s3", date);
  CHECK(query_value(token.url, "X-Amz-Security-Token") == "tok%2Fen%2B%3D");
  CHECK(token.signature.signature != plain.signature.signature);
}

TEST_CASE("presign: refused inputs") {
  presign_input in;
  in.origin = "https://examplebucket.s3.amazonaws.com";
  in.expires = std::chrono::seconds(0);
  CHECK_THROWS_AS(presign_v4(in, example, "us-east-1", "s3", date), ingest::error);
  in.expires = std::chrono::seconds(604801);
  CHECK_THROWS_AS(presign_v4(in, example, "us-east-1", "s3", date), ingest::error);
  in.expires = std::chrono::seconds(604800);
  CHECK_NOTHROW(presign_v4(in, example, "us-east-1", "s3", date));
  in.origin = "ftp://x";
  CHECK_THROWS_AS(presign_v4(in, example, "us-east-1", "s3", date), ingest::error);
  in.origin = "https://x";
  in.headers = {{"Host", "y"}};
  CHECK_THROWS_AS(presign_v4(in, example, "us-east-1", "s3", date), ingest::error);
}

TEST_CASE("s3 header signing: AWS's GET Object example (a range)") {
  const auto s = sign_v4(s3_get("/test.txt", "", {{"Range", "bytes=0-9"}}), example, "us-east-1", "s3", date);
  CHECK(s.signed_headers == "host;range;x-amz-content-sha256;x-amz-date");
  CHECK(s.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST_CASE("s3 header signing: AWS's PUT Object example (a signed body, an encoded key)") {
  signing_input in;
  in.method = "PUT";
  in.path = "/" + uri_encode("test$file.text", false);
  CHECK(in.path == "/test%24file.text");
  in.payload_sha256 = sha256_hex("Welcome to Amazon S3.");
  CHECK(in.payload_sha256 == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  in.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                {"x-amz-date", date},
                {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                {"x-amz-content-sha256", in.payload_sha256}};
  CHECK(sign_v4(in, example, "us-east-1", "s3", date).signature ==
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST_CASE("s3 header signing: AWS's GET Bucket Lifecycle and List Objects examples (queries)") {
  CHECK(sign_v4(s3_get("/", "lifecycle"), example, "us-east-1", "s3", date).signature ==
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
  CHECK(sign_v4(s3_get("/", "max-keys=2&prefix=J"), example, "us-east-1", "s3", date).signature ==
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST_CASE("uri_encode and the checksum's base64") {
  CHECK(uri_encode("a b/c~d_e-f.g", false) == "a%20b/c~d_e-f.g");
  CHECK(uri_encode("a b/c", true) == "a%20b%2Fc");
  CHECK(uri_encode("\xC3\xA9+=&", true) == "%C3%A9%2B%3D%26");
  CHECK(sha256_hex_to_base64(empty_hash) == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
  CHECK_THROWS_AS(sha256_hex_to_base64("abc"), ingest::error);
  CHECK_THROWS_AS(sha256_hex_to_base64(std::string(64, 'g')), ingest::error);
}

TEST_CASE("s3_options::from_url") {
  const auto o = s3_options::from_url("s3+http://127.0.0.1:4566/exam-files?region=eu-west-1&timeout=2s&create=true");
  CHECK(o.create);
  CHECK(o.endpoint == "http://127.0.0.1:4566");
  CHECK(o.bucket == "exam-files");
  CHECK(o.region == "eu-west-1");
  CHECK(o.timeout == std::chrono::seconds(2));
  CHECK(o.path_style);
  const auto tls = s3_options::from_url("s3+https://s3.eu-west-1.amazonaws.com/b?path_style=false&tls_verify=false");
  CHECK(tls.endpoint == "https://s3.eu-west-1.amazonaws.com");
  CHECK_FALSE(tls.path_style);
  CHECK_FALSE(tls.tls_verify);
  for (const char* bad : {"http://127.0.0.1/b", "s3+http://127.0.0.1", "s3+http://127.0.0.1/", "s3+http:///b",
                          "s3+http://h/b/c", "s3+http://h/b?nope=1", "s3+http://h/b?tls_verify=false",
                          "s3+http://h/b?timeout=0s", "s3+http://h/b?max_connections=0"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(s3_options::from_url(bad), ingest::error);
  }
}
