// Canonical JSON: strict parsing and stable encoding.
#include "rap/config/canonical.h"

#include <gtest/gtest.h>

#include <string>

#include "rap/config/errors.h"

using namespace rap::config;

namespace {

std::string canon(std::string_view text) {
  auto j = parse_strict(text);
  EXPECT_TRUE(j.has_value()) << (j ? "" : j.error().message);
  if (!j) return {};
  auto out = canonical_encode(*j);
  EXPECT_TRUE(out.has_value());
  return out ? *out : std::string();
}

void expect_malformed(std::string_view text, const ParseLimits& limits = {}) {
  auto j = parse_strict(text, limits);
  ASSERT_FALSE(j.has_value()) << "accepted: " << text;
  EXPECT_EQ(j.error().code, errc::malformed);
}

}  // namespace

TEST(Canonical, SortsKeysAndDropsWhitespace) {
  EXPECT_EQ(canon(R"( { "b" : -3 , "a" : [ 1 , 2 , { "d" : true , "c" : null } ] } )"),
            R"({"a":[1,2,{"c":null,"d":true}],"b":-3})");
  EXPECT_EQ(canon(R"({"z":{"y":{"x":"w"}},"":0})"), R"({"":0,"z":{"y":{"x":"w"}}})");
}

TEST(Canonical, StringEscapesAreMinimal) {
  // Non-ASCII and '/' literal; controls escaped with lower-case hex; \" and \\ escaped.
  EXPECT_EQ(canon(R"(["\u00e9\/\u001F\n\"\\"])"), "[\"\xc3\xa9/\\u001f\\n\\\"\\\\\"]");
}

TEST(Canonical, IntegersOnly) {
  EXPECT_EQ(canon("[-0,0,18446744073709551615,-9223372036854775808]"),
            "[0,0,18446744073709551615,-9223372036854775808]");
  expect_malformed("1.0");
  expect_malformed("[1e3]");
  expect_malformed(R"({"a":0.5})");
  expect_malformed("18446744073709551616");  // beyond uint64: only representable as a float
  Json built = {{"f", 1.5}};
  auto enc = canonical_encode(built);
  ASSERT_FALSE(enc.has_value());
  EXPECT_EQ(enc.error().code, errc::malformed);
}

TEST(Canonical, RejectsDuplicateKeysAtAnyDepth) {
  expect_malformed(R"({"a":1,"a":1})");
  expect_malformed(R"({"x":[{"id":"p","id":"q"}]})");
  EXPECT_EQ(canon(R"([{"a":1},{"a":1}])"), R"([{"a":1},{"a":1}])");  // distinct objects
}

TEST(Canonical, RejectsInvalidUtf8AndSurrogates) {
  expect_malformed("\"\xff\"");
  expect_malformed("\"\xc0\xaf\"");      // overlong '/'
  expect_malformed("\"\xed\xa0\x80\"");  // UTF-8 encoded surrogate
  expect_malformed(R"("\ud800")");       // lone surrogate escape
  expect_malformed("{\"\xfe\":1}");      // keys too
  Json built = std::string("\xff");
  auto enc = canonical_encode(built);
  ASSERT_FALSE(enc.has_value());
  EXPECT_EQ(enc.error().code, errc::malformed);
}

TEST(Canonical, RejectsTrailingGarbageAndLimits) {
  expect_malformed("{} {}");
  expect_malformed("{");
  expect_malformed("");
  expect_malformed(std::string(40, '[') + std::string(40, ']'));  // default depth 32
  EXPECT_TRUE(parse_strict(std::string(32, '[') + std::string(32, ']')).has_value());
  expect_malformed(R"({"a":"0123456789"})", ParseLimits{10, 32});
  Json deep = Json::array();
  for (int i = 0; i < 40; ++i) deep = Json::array({deep});
  EXPECT_FALSE(canonical_encode(deep).has_value());
}

TEST(Canonical, RoundTripIsStableAndHashIsKnown) {
  const std::string text = R"({"b":-3,"a":[1,2,{"d":true,"c":null}],"e":"\u00e9/\u001f"})";
  const std::string once = canon(text);
  EXPECT_EQ(canon(once), once);
  EXPECT_EQ(once, "{\"a\":[1,2,{\"c\":null,\"d\":true}],\"b\":-3,\"e\":\"\xc3\xa9/\\u001f\"}");
  // sha256 of the canonical text, computed independently (python3 hashlib).
  EXPECT_EQ(sha256_hex(once), "cc8f0a81679301a94392ba15c644ce1c84a70832519ec644e6fb644a21eac9c8");
  EXPECT_EQ(sha256_hex("{\"a\":1}"),
            "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862");
}

TEST(Canonical, Hex) {
  std::array<std::uint8_t, 32> k{};
  k[0] = 0xab;
  k[31] = 0x01;
  const std::string h = to_hex(k);
  EXPECT_EQ(h.substr(0, 2), "ab");
  std::array<std::uint8_t, 32> back{};
  ASSERT_TRUE(from_hex(h, back));
  EXPECT_EQ(back, k);
  EXPECT_FALSE(from_hex(h.substr(1), back));
  std::string upper = h;
  upper[0] = 'A';
  EXPECT_FALSE(from_hex(upper, back));
}
