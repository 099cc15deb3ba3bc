// The SigV4 signer against vectors of AWS's published Signature Version 4 test suite
// (aws-sig-v4-test-suite: credentials AKIDEXAMPLE, region us-east-1, service
// "service", 2015-08-30T12:36:00Z).
#include "ingest/aws/sigv4.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>

#include "ingest/error.hpp"
#include "support/test_support.hpp"

namespace {

using ingest::aws::credentials;
using ingest::aws::sha256_hex;
using ingest::aws::sign_v4;
using ingest::aws::signing_input;

const credentials suite{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
constexpr const char* date = "20150830T123600Z";
const std::string empty_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

signing_input request(std::string method, std::string path, std::string query = {},
                      std::vector<std::pair<std::string, std::string>> extra = {}, std::string body = {}) {
  signing_input in;
  in.method = std::move(method);
  in.path = std::move(path);
  in.query = std::move(query);
  in.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", date}};
  for (auto& h : extra) in.headers.push_back(std::move(h));
  in.payload_sha256 = sha256_hex(body);
  return in;
}

std::string authorization(const std::string& signed_headers, const std::string& signature) {
  return "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=" +
         signed_headers + ", Signature=" + signature;
}

}  // namespace

TEST_CASE("sigv4: get-vanilla, with the canonical request and string to sign of the suite") {
  const auto s = sign_v4(request("GET", "/"), suite, "us-east-1", "service", date);
  CHECK(s.canonical_request ==
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + empty_hash);
  CHECK(s.string_to_sign ==
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  CHECK(s.signature == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  CHECK(s.authorization == authorization("host;x-amz-date", s.signature));
}

TEST_CASE("sigv4: get-vanilla-query-order-key-case sorts the query") {
  const auto s = sign_v4(request("GET", "/", "Param2=value2&Param1=value1"), suite, "us-east-1", "service", date);
  CHECK(s.canonical_request.find("\nParam1=value1&Param2=value2\n") != std::string::npos);
  CHECK(s.signature == "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

TEST_CASE("sigv4: get-utf8 signs the path as sent") {
  const auto s = sign_v4(request("GET", "/%E1%88%B4"), suite, "us-east-1", "service", date);
  CHECK(s.signature == "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
}

TEST_CASE("sigv4: get-header-value-trim folds blanks in header values") {
  const auto s = sign_v4(request("GET", "/", {}, {{"My-Header1", " value1"}, {"My-Header2", "\"a   b   c\""}}), suite,
                         "us-east-1", "service", date);
  CHECK(s.signed_headers == "host;my-header1;my-header2;x-amz-date");
  CHECK(s.canonical_request.find("my-header1:value1\nmy-header2:\"a b c\"\n") != std::string::npos);
  CHECK(s.signature == "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");
}

TEST_CASE("sigv4: post-vanilla and post-x-www-form-urlencoded (a signed body)") {
  CHECK(sign_v4(request("POST", "/"), suite, "us-east-1", "service", date).signature ==
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
  const auto s = sign_v4(request("POST", "/", {}, {{"Content-Type", "application/x-www-form-urlencoded"}}, "Param1=value1"),
                         suite, "us-east-1", "service", date);
  CHECK(s.signed_headers == "content-type;host;x-amz-date");
  CHECK(s.string_to_sign.ends_with("42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281"));
  CHECK(s.signature == "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
}

TEST_CASE("sigv4: post-sts-header-before signs the session token") {
  const std::string token =
      "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuw"
      "thAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHN"
      "VXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxB"
      "A==";
  const auto s = sign_v4(request("POST", "/", {}, {{"X-Amz-Security-Token", token}}),
                         credentials{suite.access_key_id, suite.secret_access_key, token}, "us-east-1", "service", date);
  CHECK(s.signed_headers == "host;x-amz-date;x-amz-security-token");
  CHECK(s.signature == "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead");
}

TEST_CASE("sigv4: any change to what is signed changes the signature") {
  const auto base = sign_v4(request("POST", "/"), suite, "us-east-1", "service", date).signature;
  CHECK(sign_v4(request("POST", "/", {}, {}, "x"), suite, "us-east-1", "service", date).signature != base);
  CHECK(sign_v4(request("POST", "/"), suite, "eu-west-1", "service", date).signature != base);
  CHECK(sign_v4(request("POST", "/"), suite, "us-east-1", "sqs", date).signature != base);
  CHECK(sign_v4(request("POST", "/"), credentials{"AKIDEXAMPLE", "other", ""}, "us-east-1", "service", date).signature !=
        base);
}

TEST_CASE("credentials: the environment first, then AWS_PROFILE in the shared credentials file; region from config") {
  ingest::test::temp_dir dir;
  const auto creds_file = dir.file("credentials"), config_file = dir.file("config");
  std::ofstream(creds_file) << "# made by aws configure\n[default]\naws_access_key_id = AKIDDEFAULT\n"
                               "aws_secret_access_key = secret-default\n\n[exam]\n aws_access_key_id=AKIDEXAM \n"
                               "aws_secret_access_key = secret exam\naws_session_token = tok\n";
  std::ofstream(config_file) << "[default]\nregion = us-west-2\n[profile exam]\nregion = eu-north-1\n";
  for (const char* name : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"})
    unsetenv(name);
  setenv("AWS_SHARED_CREDENTIALS_FILE", creds_file.c_str(), 1);
  setenv("AWS_CONFIG_FILE", config_file.c_str(), 1);

  auto c = credentials::from_default_chain();
  CHECK(c.access_key_id == "AKIDDEFAULT");
  CHECK(c.secret_access_key == "secret-default");
  CHECK(ingest::aws::region_from_shared_config() == "us-west-2");
  setenv("AWS_PROFILE", "exam", 1);
  c = credentials::from_default_chain();
  CHECK(c.access_key_id == "AKIDEXAM");
  CHECK(c.secret_access_key == "secret exam");
  CHECK(c.session_token == "tok");
  CHECK(ingest::aws::region_from_shared_config() == "eu-north-1");
  // The environment wins over the file.
  setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "secret-env", 1);
  CHECK(credentials::from_default_chain().access_key_id == "AKIDENV");
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  // A profile the file does not have is an error that names it, not silence.
  setenv("AWS_PROFILE", "nope", 1);
  try {
    credentials::from_default_chain();
    FAIL("an unknown profile was accepted");
  } catch (const ingest::error& e) {
    CHECK(std::string(e.what()).find("'nope'") != std::string::npos);
  }
  unsetenv("AWS_PROFILE");
  setenv("AWS_SHARED_CREDENTIALS_FILE", dir.file("missing").c_str(), 1);
  CHECK(credentials::from_default_chain().access_key_id.empty());
  unsetenv("AWS_SHARED_CREDENTIALS_FILE");
  unsetenv("AWS_CONFIG_FILE");
}
