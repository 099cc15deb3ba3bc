#include "ingest/receipt_signer.hpp"

#include <doctest/doctest.h>

#include "ingest/detail/hmac.hpp"
#include "ingest/error.hpp"

using namespace std::chrono_literals;
using ingest::receipt_signer;

namespace {

const std::string key_a = "first-key-of-sixteen+";
const std::string key_b = "second-key-sixteen+++";

ingest::time_point at_us(std::int64_t us) {
  return ingest::time_point(std::chrono::duration_cast<ingest::time_point::duration>(std::chrono::microseconds(us)));
}

}  // namespace

TEST_CASE("a signed id verifies and gives back its postmark to the microsecond and its claims") {
  receipt_signer s({key_a});
  for (const std::int64_t us : {std::int64_t{1'795'000'000'123'000}, std::int64_t{1'795'000'000'123'999},
                                std::int64_t{1'795'000'000'124'001}, std::int64_t{0}}) {
    const auto id = s.sign(at_us(us), R"(["exam","s1"])");
    REQUIRE(id);
    CHECK(id->size() <= 255);
    const auto got = s.verify(*id);
    REQUIRE(got);
    CHECK(got->accepted_at == at_us(us));
    CHECK(got->claims == R"(["exam","s1"])");
  }
  // Two ids for the same postmark and claims still differ (the random tail).
  const auto t = at_us(1'795'000'000'000'000);
  CHECK(*s.sign(t, "x") != *s.sign(t, "x"));
  // Empty claims are allowed.
  CHECK(s.verify(*s.sign(t, ""))->claims.empty());
}

TEST_CASE("ids are UUIDv7 first, so that they sort by accept time") {
  receipt_signer s({key_a});
  const auto early = *s.sign(at_us(1'795'000'000'000'000), "zzz");
  const auto late = *s.sign(at_us(1'795'000'000'002'000), "aaa");
  CHECK(early < late);
  CHECK(early[14] == '7');  // the version nibble
}

TEST_CASE("anything changed, cut short or signed elsewhere does not verify") {
  receipt_signer s({key_a});
  const auto id = *s.sign(at_us(1'795'000'000'000'000), R"(["e","s"])");
  for (std::size_t i = 0; i < id.size(); ++i) {
    auto bad = id;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    CAPTURE(i);
    CHECK_FALSE(s.verify(bad));
  }
  CHECK_FALSE(s.verify(id.substr(0, id.size() - 1)));
  CHECK_FALSE(s.verify(id + "A"));
  CHECK_FALSE(s.verify(""));
  CHECK_FALSE(s.verify("0190f5e2-7a1b-7c3d-8e4f-5a6b7c8d9e0f"));  // a plain UUIDv7 receipt
  CHECK_FALSE(receipt_signer({key_b}).verify(id));
}

TEST_CASE("rotation: the first key signs, every key verifies") {
  receipt_signer old_only({key_a});
  receipt_signer rotated({key_b, key_a});
  receipt_signer new_only({key_b});
  const auto old_id = *old_only.sign(at_us(1'795'000'000'000'000), "c");
  const auto new_id = *rotated.sign(at_us(1'795'000'000'000'000), "c");
  CHECK(rotated.verify(old_id));
  CHECK(new_only.verify(new_id));
  CHECK_FALSE(old_only.verify(new_id));
  CHECK_FALSE(new_only.verify(old_id));
}

TEST_CASE("limits: claims up to max_claims give an id of at most 255 characters; keys of 16 bytes or more") {
  receipt_signer s({key_a});
  const auto t = at_us(1'795'000'000'000'000);
  const auto longest = s.sign(t, std::string(receipt_signer::max_claims, 'x'));
  REQUIRE(longest);
  CHECK(longest->size() <= 255);
  CHECK(s.verify(*longest));
  CHECK_FALSE(s.sign(t, std::string(receipt_signer::max_claims + 1, 'x')));
  CHECK_FALSE(s.sign(at_us(-1), "c"));
  CHECK_THROWS_AS(receipt_signer({}), ingest::error);
  CHECK_THROWS_AS(receipt_signer({"fifteen bytes.."}), ingest::error);
  CHECK_NOTHROW(receipt_signer({"sixteen bytes..."}));
}

TEST_CASE("base64url: one spelling per value") {
  using ingest::detail::base64url_decode;
  using ingest::detail::base64url_encode;
  using namespace std::string_literals;
  for (const std::string& v : {""s, "f"s, "fo"s, "foo"s, "foob"s, "fooba"s, "foobar"s, "\xff\xfe\x00"s})
    CHECK(*base64url_decode(base64url_encode(v)) == v);
  CHECK(base64url_encode("\xfb\xff") == "-_8");
  CHECK_FALSE(base64url_decode("Zh"));  // unused bits set: "Zg" is the spelling of "f"
  CHECK_FALSE(base64url_decode("Z"));
  CHECK_FALSE(base64url_decode("Zg=="));
  CHECK_FALSE(base64url_decode("Z+"));
}

TEST_CASE("HMAC-SHA256 matches RFC 4231 test case 2") {
  ingest::detail::hmac_sha256 h("Jefe");
  const auto mac = h.mac("what do ya want for nothing?");
  static constexpr char hex[] = "0123456789abcdef";
  std::string text;
  for (unsigned char c : mac) {
    text.push_back(hex[c >> 4]);
    text.push_back(hex[c & 15]);
  }
  CHECK(text == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
