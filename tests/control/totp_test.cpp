// RFC 6238 / RFC 4226 test vectors and the replay/window rules of rap::control::totp.
#include "rap/control/totp.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace totp = rap::control::totp;

namespace {
std::vector<std::uint8_t> bytes(const std::string& s) {
  return {s.begin(), s.end()};
}
const std::vector<std::uint8_t> kRfcSecret = bytes("12345678901234567890");  // SHA1 seed
}  // namespace

TEST(Totp, Rfc4226HotpVectors) {
  const char* expected[] = {"755224", "287082", "359152", "969429", "338314",
                            "254676", "287922", "162583", "399871", "520489"};
  for (std::uint64_t i = 0; i < 10; ++i) EXPECT_EQ(totp::hotp(kRfcSecret, i), expected[i]) << i;
}

TEST(Totp, Rfc6238Sha1Vectors) {
  // RFC 6238 appendix B, SHA1 column (8 digits).
  const std::pair<std::int64_t, const char*> vectors[] = {
      {59, "94287082"},         {1111111109, "07081804"}, {1111111111, "14050471"},
      {1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
  };
  for (const auto& [t, code] : vectors) EXPECT_EQ(totp::code_at(kRfcSecret, t, 8), code) << t;
  // The 6-digit form is the last six digits.
  EXPECT_EQ(totp::code_at(kRfcSecret, 59), "287082");
  EXPECT_EQ(totp::step_at(59), 1);
  EXPECT_EQ(totp::step_at(60), 2);
  EXPECT_EQ(totp::step_at(-5), 0);
}

TEST(Totp, VerifyWindowAndReplay) {
  const std::int64_t now = 1111111111;  // step 37037037
  const std::int64_t step = totp::step_at(now);
  const std::string cur = totp::code_at(kRfcSecret, now);
  const std::string prev = totp::code_at(kRfcSecret, now - 30);
  const std::string next = totp::code_at(kRfcSecret, now + 30);
  const std::string far = totp::code_at(kRfcSecret, now + 60);
  EXPECT_EQ(totp::verify(kRfcSecret, cur, now, std::nullopt), step);
  EXPECT_EQ(totp::verify(kRfcSecret, prev, now, std::nullopt), step - 1);
  EXPECT_EQ(totp::verify(kRfcSecret, next, now, std::nullopt), step + 1);
  EXPECT_EQ(totp::verify(kRfcSecret, far, now, std::nullopt), std::nullopt);
  // The last accepted step and anything before it are refused.
  EXPECT_EQ(totp::verify(kRfcSecret, cur, now, step), std::nullopt);
  EXPECT_EQ(totp::verify(kRfcSecret, prev, now, step - 1), std::nullopt);
  EXPECT_EQ(totp::verify(kRfcSecret, next, now, step), step + 1);
  // Malformed codes.
  for (const char* bad : {"", "12345", "1234567", "12a456", " 12345", "-12345"})
    EXPECT_EQ(totp::verify(kRfcSecret, bad, now, std::nullopt), std::nullopt) << bad;
}

TEST(Totp, Base32RoundTripAndRfc4648Vectors) {
  EXPECT_EQ(totp::base32_encode(bytes("")), "");
  EXPECT_EQ(totp::base32_encode(bytes("f")), "MY");
  EXPECT_EQ(totp::base32_encode(bytes("fo")), "MZXQ");
  EXPECT_EQ(totp::base32_encode(bytes("foo")), "MZXW6");
  EXPECT_EQ(totp::base32_encode(bytes("foob")), "MZXW6YQ");
  EXPECT_EQ(totp::base32_encode(bytes("fooba")), "MZXW6YTB");
  EXPECT_EQ(totp::base32_encode(bytes("foobar")), "MZXW6YTBOI");
  EXPECT_EQ(totp::base32_encode(kRfcSecret), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
  auto d = totp::base32_decode("mzxw6ytboi======");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, bytes("foobar"));
  EXPECT_FALSE(totp::base32_decode("MZ1W").has_value());
}

TEST(Totp, OtpauthUri) {
  EXPECT_EQ(totp::otpauth_uri("RAP", "a b@x.io", "ABC"),
            "otpauth://totp/RAP:a%20b%40x.io?secret=ABC&issuer=RAP&algorithm=SHA1&digits=6&"
            "period=30");
}
