// Standard base64 with padding (RFC 4648 test vectors) and strict decoding.
#include "rap/common/base64.h"

#include <gtest/gtest.h>

#include <string>

namespace {

TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> v[] = {{"", ""},
                                                   {"f", "Zg=="},
                                                   {"fo", "Zm8="},
                                                   {"foo", "Zm9v"},
                                                   {"foob", "Zm9vYg=="},
                                                   {"fooba", "Zm9vYmE="},
                                                   {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, enc] : v) {
    EXPECT_EQ(rap::base64_encode(plain), enc);
    auto d = rap::base64_decode(enc);
    ASSERT_TRUE(d.has_value()) << enc;
    EXPECT_EQ(*d, plain);
  }
}

TEST(Base64, BinaryRoundTripAndStandardAlphabet) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  const std::string e = rap::base64_encode(all);
  EXPECT_NE(e.find('+'), std::string::npos);
  EXPECT_NE(e.find('/'), std::string::npos);
  EXPECT_EQ(rap::base64_decode(e), all);
}

TEST(Base64, StrictDecoding) {
  EXPECT_FALSE(rap::base64_decode("Zg").has_value());      // no padding
  EXPECT_FALSE(rap::base64_decode("Zm9v\n").has_value());  // whitespace
  EXPECT_FALSE(rap::base64_decode("Zm-_").has_value());    // URL alphabet
  EXPECT_FALSE(rap::base64_decode("Z===").has_value());
}

}  // namespace
