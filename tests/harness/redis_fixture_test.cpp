// RedisFixture: a real redis-server per test, used through hiredis.
#include "rap/testing/redis_fixture.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "rap/testing/gtest_support.h"
#include "rap/testing/subprocess.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using rap::testing::RedisFixture;

namespace {

struct CtxCloser {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Ctx = std::unique_ptr<redisContext, CtxCloser>;
struct ReplyCloser {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyCloser>;

Reply cmd(redisContext* c, const char* fmt, const char* a = nullptr, const char* b = nullptr) {
  return Reply(static_cast<redisReply*>(redisCommand(c, fmt, a, b)));
}

Ctx connect(const std::string& path) {
  timeval tv{2, 0};
  return Ctx(redisConnectUnixWithTimeout(path.c_str(), tv));
}

}  // namespace

TEST(RedisFixtureTest, SetWithTtlExpiresAndCountersIncrement) {
  RAP_ASSIGN_OR_FAIL(auto redis, RedisFixture::start());
  Ctx c = connect(redis->socket_path());
  ASSERT_TRUE(c && !c->err) << (c ? c->errstr : "alloc");

  // SET with a PX TTL.
  Reply set = cmd(c.get(), "SET session:%s %s PX 400", "abc", "payload");
  ASSERT_TRUE(set);
  ASSERT_EQ(set->type, REDIS_REPLY_STATUS);
  EXPECT_STREQ(set->str, "OK");
  Reply get = cmd(c.get(), "GET session:%s", "abc");
  ASSERT_TRUE(get);
  ASSERT_EQ(get->type, REDIS_REPLY_STRING);
  EXPECT_EQ(std::string(get->str, get->len), "payload");
  Reply pttl = cmd(c.get(), "PTTL session:%s", "abc");
  ASSERT_TRUE(pttl);
  ASSERT_EQ(pttl->type, REDIS_REPLY_INTEGER);
  EXPECT_GT(pttl->integer, 0);
  EXPECT_LE(pttl->integer, 400);

  // A key without TTL stays.
  Reply keep = cmd(c.get(), "SET keep %s", "1");
  ASSERT_TRUE(keep);

  std::this_thread::sleep_for(700ms);
  Reply gone = cmd(c.get(), "GET session:%s", "abc");
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->type, REDIS_REPLY_NIL);
  Reply exists = cmd(c.get(), "EXISTS session:%s keep", "abc");
  ASSERT_TRUE(exists);
  EXPECT_EQ(exists->integer, 1);  // only "keep"

  // INCR counters, from two connections.
  Ctx c2 = connect(redis->socket_path());
  ASSERT_TRUE(c2 && !c2->err);
  for (int i = 1; i <= 5; ++i) {
    Reply r = cmd(i % 2 ? c.get() : c2.get(), "INCR counter:%s", "hits");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->type, REDIS_REPLY_INTEGER);
    EXPECT_EQ(r->integer, i);
  }
  Reply by = cmd(c.get(), "INCRBY counter:%s %s", "hits", "10");
  ASSERT_TRUE(by);
  EXPECT_EQ(by->integer, 15);
  Reply bad = cmd(c.get(), "INCR keep");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->type, REDIS_REPLY_INTEGER);  // "1" is an integer string
  Reply s = cmd(c.get(), "SET text %s", "abc");
  Reply notnum = cmd(c.get(), "INCR text");
  ASSERT_TRUE(notnum);
  EXPECT_EQ(notnum->type, REDIS_REPLY_ERROR);
}

TEST(RedisFixtureTest, IndependentInstancesAndCleanup) {
  std::string sock;
  fs::path dir;
  pid_t pid = -1;
  {
    RAP_ASSIGN_OR_FAIL(auto r1, RedisFixture::start());
    RAP_ASSIGN_OR_FAIL(auto r2, RedisFixture::start());
    ASSERT_NE(r1->socket_path(), r2->socket_path());
    Ctx a = connect(r1->socket_path());
    Ctx b = connect(r2->socket_path());
    ASSERT_TRUE(a && !a->err && b && !b->err);
    Reply set = cmd(a.get(), "SET only_in_one %s", "x");
    Reply get = cmd(b.get(), "GET only_in_one");
    ASSERT_TRUE(get);
    EXPECT_EQ(get->type, REDIS_REPLY_NIL);
    sock = r1->socket_path();
    dir = r1->dir();
    pid = r1->pid();
    EXPECT_TRUE(RedisFixture::ping(sock, 1s));
  }
  EXPECT_FALSE(rap::testing::process_alive(pid));
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_FALSE(RedisFixture::ping(sock, 200ms));
}
