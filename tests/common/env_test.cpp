#include "rap/common/env.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include "rap/common/clock.h"
#include "rap/common/random.h"

TEST(Env, AtomicWriteSetsModeAndReplaces) {
  char tmpl[] = "/tmp/rap-env-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  auto& env = rap::default_env();
  const std::string path = dir + "/node.key";
  ASSERT_TRUE(env.write_file_atomic(path, "secret-1", 0600).has_value());
  ASSERT_TRUE(env.write_file_atomic(path, "secret-2", 0600).has_value());
  EXPECT_EQ(*env.read_file(path), "secret-2");
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(env.exists(path + ".tmp"));
  auto missing = env.read_file(dir + "/nope");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, "io_error");
  EXPECT_FALSE(env.write_file_atomic(dir + "/no/such/dir/x", "x", 0600).has_value());
  std::filesystem::remove_all(dir);
}

TEST(Clock, ManualClockOnlyMovesWhenTold) {
  rap::ManualClock c;
  const auto t0 = c.now();
  EXPECT_EQ(c.now(), t0);
  c.advance(std::chrono::seconds(3));
  EXPECT_EQ(c.now() - t0, std::chrono::seconds(3));
}

TEST(Random, SeededIsDeterministicSystemIsNot) {
  rap::SeededRandom a(42), b(42);
  std::array<std::uint8_t, 32> x{}, y{};
  a.fill(x);
  b.fill(y);
  EXPECT_EQ(x, y);
  rap::SystemRandom s;
  s.fill(x);
  s.fill(y);
  EXPECT_NE(x, y);
}
