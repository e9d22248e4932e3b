#include "rap/control/auth.h"

#include <gtest/gtest.h>

#include "rap/common/random.h"
#include "rap/control/api.h"

namespace rc = rap::control;

TEST(ControlAuth, PasswordHashRoundTrip) {
  auto h = rc::hash_password("correct horse battery");
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->rfind("$argon2id$", 0), 0u);
  EXPECT_TRUE(rc::verify_password(*h, "correct horse battery"));
  EXPECT_FALSE(rc::verify_password(*h, "correct horse batterY"));
  EXPECT_FALSE(rc::verify_password("", "x"));
}

TEST(ControlAuth, TokensAreRandomHexAndHashed) {
  rap::SystemRandom rng;
  const auto a = rc::random_token_hex(rng);
  const auto b = rc::random_token_hex(rng);
  EXPECT_TRUE(rc::valid_token_shape(a));
  EXPECT_NE(a, b);
  EXPECT_EQ(rc::token_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(rc::constant_time_equal("abc", "abc"));
  EXPECT_FALSE(rc::constant_time_equal("abc", "abd"));
  EXPECT_FALSE(rc::constant_time_equal("abc", "abcd"));
}

TEST(ControlAuth, Validation) {
  EXPECT_TRUE(rc::valid_slug("ac"));
  EXPECT_TRUE(rc::valid_slug("acme-01"));
  EXPECT_FALSE(rc::valid_slug("a"));
  EXPECT_FALSE(rc::valid_slug("Acme"));
  EXPECT_FALSE(rc::valid_slug("acme_1"));
  EXPECT_FALSE(rc::valid_slug(std::string(64, 'a')));
  EXPECT_TRUE(rc::valid_slug(std::string(63, 'a')));
  EXPECT_TRUE(rc::valid_email("a@b.io"));
  EXPECT_FALSE(rc::valid_email("a@b"));
  EXPECT_FALSE(rc::valid_email("@b.io"));
  EXPECT_FALSE(rc::valid_email("a@@b.io"));
  EXPECT_FALSE(rc::valid_email("a b@c.io"));
  EXPECT_FALSE(rc::valid_password("short"));
  EXPECT_TRUE(rc::valid_password("twelve chars"));
  EXPECT_FALSE(rc::valid_token_shape(std::string(64, 'G')));
}

TEST(ControlAuth, ErrorBodyShape) {
  EXPECT_EQ(rc::error_body("x", "y"), R"({"error":{"code":"x","message":"y"}})");
}
