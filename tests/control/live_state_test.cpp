// LiveState against a real redis-server (RedisFixture, unix socket in a temp dir): presence TTLs,
// single-use tokens across clients, rate-limit windows, pub/sub between connections, and
// behaviour while Redis is down (errors, no crash, recovery after restart).
#include "rap/control/live_state.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "rap/testing/gtest_support.h"
#include "rap/testing/redis_fixture.h"
#include "rap/testing/subprocess.h"
#include "rap/testing/temp_dir.h"

namespace {

using namespace std::chrono_literals;
using rap::control::Change;
using rap::control::LiveState;
using rap::control::make_redis_live_state;
using rap::control::parse_redis_url;
using rap::control::RedisEndpoint;
using rap::testing::RedisFixture;

RedisEndpoint unix_endpoint(const std::string& path) {
  RedisEndpoint ep;
  ep.unix_path = path;
  return ep;
}

// Collects delivered changes; wait_for() blocks until a predicate holds (bounded).
class Inbox {
 public:
  void push(const Change& c) {
    std::lock_guard g(mu_);
    changes_.push_back(c);
    cv_.notify_all();
  }
  bool wait_for(const std::function<bool(const std::vector<Change>&)>& pred,
                std::chrono::milliseconds timeout = 5000ms) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, timeout, [&] { return pred(changes_); });
  }
  std::vector<Change> snapshot() {
    std::lock_guard g(mu_);
    return changes_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Change> changes_;
};

bool has_message(const std::vector<Change>& v, const std::string& scope, const std::string& msg) {
  for (const auto& c : v) {
    if (!c.resync && c.scope == scope && c.message == msg) return true;
  }
  return false;
}
std::size_t resyncs(const std::vector<Change>& v) {
  std::size_t n = 0;
  for (const auto& c : v) n += c.resync ? 1 : 0;
  return n;
}

class LiveStateRedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = RedisFixture::start();
    ASSERT_TRUE(r.has_value()) << r.error().message;
    redis_ = std::move(*r);
    live_ = make_redis_live_state(unix_endpoint(redis_->socket_path()));
  }
  std::unique_ptr<RedisFixture> redis_;
  std::unique_ptr<LiveState> live_;
};

TEST(LiveStateKeys, NamespacedAndValidated) {
  EXPECT_EQ(rap::control::live_key("c1", "presence", "n1"), "rap:{c1}:presence:n1");
  EXPECT_EQ(rap::control::live_key("platform", "changes"), "rap:{platform}:changes");
  EXPECT_TRUE(rap::control::valid_scope("platform"));
  EXPECT_TRUE(rap::control::valid_scope("0b7e-11aa.x_y"));
  EXPECT_FALSE(rap::control::valid_scope(""));
  EXPECT_FALSE(rap::control::valid_scope("a}:b"));
  EXPECT_FALSE(rap::control::valid_scope("a:b"));
  EXPECT_FALSE(rap::control::valid_scope("a b"));
  EXPECT_FALSE(rap::control::valid_scope(std::string(129, 'a')));
  EXPECT_TRUE(rap::control::valid_id("login:abc@x"));
  EXPECT_FALSE(rap::control::valid_id("a{b"));
  EXPECT_FALSE(rap::control::valid_id("a\nb"));
}

TEST(LiveStateUrl, Parses) {
  auto a = parse_redis_url("redis://127.0.0.1:6380/2");
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 6380);
  EXPECT_EQ(a->db, 2);
  auto b = parse_redis_url("redis://:s3cret@[::1]");
  ASSERT_TRUE(b.has_value()) << b.error().message;
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 6379);
  EXPECT_EQ(b->password, "s3cret");
  EXPECT_EQ(b->display().find("s3cret"), std::string::npos);
  auto c = parse_redis_url("unix:///run/redis/redis.sock?db=3");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->unix_path, "/run/redis/redis.sock");
  EXPECT_EQ(c->db, 3);
  for (const char* bad : {"http://x", "redis://", "redis://h:0", "redis://h:99999", "unix://rel",
                          "redis://h/x", "redis://user@h"}) {
    auto r = parse_redis_url(bad);
    EXPECT_FALSE(r.has_value()) << bad;
  }
  auto secret = parse_redis_url("redis://:topsecret@h:bad");
  ASSERT_FALSE(secret.has_value());
  EXPECT_EQ(secret.error().message.find("topsecret"), std::string::npos);
}

TEST(LiveStateMemory, SameSemanticsWithManualClock) {
  rap::ManualClock clock;
  auto live = rap::control::make_memory_live_state(clock);
  RAP_ASSERT_OK(live->set_presence("c1", "n1", "v1", 1000ms));
  RAP_ASSERT_OK(live->set_presence("c1", "n2", "v2", 3000ms));
  RAP_ASSERT_OK(live->set_presence("c2", "n3", "v3", 3000ms));
  EXPECT_EQ(live->list_presence("c1")->size(), 2u);
  clock.advance(1500ms);
  EXPECT_FALSE(live->get_presence("c1", "n1")->has_value());
  EXPECT_EQ(*live->list_presence("c1"), (std::map<std::string, std::string>{{"n2", "v2"}}));

  RAP_ASSERT_OK(live->put_token("platform", "t1", "x", 1000ms));
  EXPECT_EQ(live->take_token("platform", "t1")->value_or(""), "x");
  EXPECT_FALSE(live->take_token("platform", "t1")->has_value());
  RAP_ASSERT_OK(live->put_token("platform", "t2", "y", 1000ms));
  clock.advance(1001ms);
  EXPECT_FALSE(live->take_token("platform", "t2")->has_value());

  for (int i = 1; i <= 3; ++i) EXPECT_EQ(live->rate_hit("platform", "b", 10s)->count, i);
  EXPECT_EQ(live->rate_peek("platform", "b")->count, 3);
  clock.advance(10s);
  EXPECT_EQ(live->rate_peek("platform", "b")->count, 0);
  EXPECT_EQ(live->rate_hit("platform", "b", 10s)->count, 1);

  Inbox inbox;
  auto sub = live->subscribe({"c1"}, [&](const Change& c) { inbox.push(c); });
  ASSERT_TRUE(sub.has_value());
  RAP_ASSERT_OK(live->publish("c1", "hello"));
  RAP_ASSERT_OK(live->publish("c2", "not for us"));
  EXPECT_TRUE(has_message(inbox.snapshot(), "c1", "hello"));
  EXPECT_EQ(inbox.snapshot().size(), 1u);
  (*sub)->stop();
  RAP_ASSERT_OK(live->publish("c1", "after stop"));
  EXPECT_EQ(inbox.snapshot().size(), 1u);

  EXPECT_FALSE(live->set_presence("bad scope", "n", "v", 1s).has_value());
  EXPECT_FALSE(live->put_token("p", "t", "v", 0ms).has_value());
}

TEST_F(LiveStateRedisTest, PresenceExpiresAndListsPerCluster) {
  RAP_ASSERT_OK(live_->ping());
  EXPECT_EQ(live_->backend(), "redis");
  RAP_ASSERT_OK(live_->set_presence("c1", "n1", R"({"load":1})", 300ms));
  RAP_ASSERT_OK(live_->set_presence("c1", "n2", "two", 30s));
  RAP_ASSERT_OK(live_->set_presence("c2", "n9", "other cluster", 30s));
  EXPECT_EQ(live_->get_presence("c1", "n1")->value_or(""), R"({"load":1})");
  auto all = live_->list_presence("c1");
  ASSERT_TRUE(all.has_value()) << all.error().message;
  EXPECT_EQ(*all, (std::map<std::string, std::string>{{"n1", R"({"load":1})"}, {"n2", "two"}}));
  std::this_thread::sleep_for(450ms);
  EXPECT_FALSE(live_->get_presence("c1", "n1")->has_value());
  EXPECT_EQ(*live_->list_presence("c1"), (std::map<std::string, std::string>{{"n2", "two"}}));
  EXPECT_EQ(live_->list_presence("c2")->size(), 1u);
  EXPECT_TRUE(live_->list_presence("empty")->empty());
  // A heartbeat refreshes the TTL.
  RAP_ASSERT_OK(live_->set_presence("c1", "n1", "back", 30s));
  EXPECT_EQ(live_->list_presence("c1")->size(), 2u);
  // Invalid scopes never reach Redis.
  auto bad = live_->set_presence("c1}:x", "n", "v", 1s);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, "invalid_argument");
}

TEST_F(LiveStateRedisTest, SingleUseTokenTakenOnceAcrossClients) {
  auto other = make_redis_live_state(unix_endpoint(redis_->socket_path()));
  for (int round = 0; round < 20; ++round) {
    const std::string id = "join-" + std::to_string(round);
    RAP_ASSERT_OK(live_->put_token("c1", id, "secret-value", 10s));
    std::atomic<int> winners{0};
    std::atomic<int> errors{0};
    std::vector<std::thread> takers;
    for (int t = 0; t < 4; ++t) {
      LiveState* client = t % 2 == 0 ? live_.get() : other.get();
      takers.emplace_back([&, client] {
        auto r = client->take_token("c1", id);
        if (!r) {
          ++errors;
        } else if (r->has_value()) {
          EXPECT_EQ(**r, "secret-value");
          ++winners;
        }
      });
    }
    for (auto& t : takers) t.join();
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(winners.load(), 1) << "round " << round;
  }
  RAP_ASSERT_OK(live_->put_token("c1", "short", "v", 200ms));
  std::this_thread::sleep_for(350ms);
  EXPECT_FALSE(other->take_token("c1", "short")->has_value());
}

TEST_F(LiveStateRedisTest, RateLimitFixedWindow) {
  auto other = make_redis_live_state(unix_endpoint(redis_->socket_path()));
  EXPECT_EQ(live_->rate_peek("platform", "login:x")->count, 0);
  for (int i = 1; i <= 5; ++i) {
    LiveState* c = i % 2 == 0 ? other.get() : live_.get();
    auto r = c->rate_hit("platform", "login:x", 400ms);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(r->count, i);
    EXPECT_GT(r->reset_in.count(), 0);
    EXPECT_LE(r->reset_in.count(), 400);
  }
  auto peek = live_->rate_peek("platform", "login:x");
  EXPECT_EQ(peek->count, 5);
  EXPECT_EQ(live_->rate_peek("platform", "login:y")->count, 0);
  EXPECT_EQ(live_->rate_peek("org-1", "login:x")->count, 0);  // scopes are separate
  std::this_thread::sleep_for(550ms);
  EXPECT_EQ(live_->rate_peek("platform", "login:x")->count, 0);
  EXPECT_EQ(live_->rate_hit("platform", "login:x", 400ms)->count, 1);
}

TEST_F(LiveStateRedisTest, PubSubReachesAnotherConnection) {
  auto other = make_redis_live_state(unix_endpoint(redis_->socket_path()));
  Inbox scoped;
  Inbox all;
  auto s1 = other->subscribe({"c1"}, [&](const Change& c) { scoped.push(c); });
  ASSERT_TRUE(s1.has_value()) << s1.error().message;
  auto s2 = other->subscribe({}, [&](const Change& c) { all.push(c); });
  ASSERT_TRUE(s2.has_value()) << s2.error().message;
  ASSERT_TRUE(scoped.wait_for([](const auto& v) { return resyncs(v) >= 1; }));
  ASSERT_TRUE(all.wait_for([](const auto& v) { return resyncs(v) >= 1; }));
  RAP_ASSERT_OK(live_->publish("c1", R"({"kind":"node.desired","id":"n1"})"));
  RAP_ASSERT_OK(live_->publish("platform", R"({"kind":"org.created","id":"o1"})"));
  EXPECT_TRUE(scoped.wait_for(
      [](const auto& v) { return has_message(v, "c1", R"({"kind":"node.desired","id":"n1"})"); }));
  EXPECT_TRUE(all.wait_for([](const auto& v) {
    return has_message(v, "c1", R"({"kind":"node.desired","id":"n1"})") &&
           has_message(v, "platform", R"({"kind":"org.created","id":"o1"})");
  }));
  EXPECT_FALSE(has_message(scoped.snapshot(), "platform", R"({"kind":"org.created","id":"o1"})"));
  (*s1)->stop();
  (*s2)->stop();
  const auto n = all.snapshot().size();
  RAP_ASSERT_OK(live_->publish("c1", "after stop"));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(all.snapshot().size(), n);
}

// Redis is stopped mid-way: operations fail with errors (no crash, no hang beyond the bounded
// timeouts), the metrics show degraded mode, and everything recovers once Redis is back at the
// same socket, subscriptions included (with a resync notice).
TEST(LiveStateRedisOutage, ErrorsWhileDownThenRecovers) {
  RAP_ASSIGN_OR_FAIL(auto dir, rap::testing::TempDir::create("rap-live-outage-"));
  const std::string sock = (dir.path() / "redis.sock").string();
  auto start_redis = [&]() -> std::unique_ptr<rap::testing::Subprocess> {
    rap::testing::SubprocessOptions so;
    so.output_file = dir.path() / "redis.log";
    so.cwd = dir.path();
    auto sp = rap::testing::Subprocess::spawn(
        {"redis-server", "--port", "0", "--unixsocket", sock, "--dir", dir.str(), "--daemonize",
         "no", "--save", "", "--appendonly", "no"},
        so);
    if (!sp) return nullptr;
    for (int i = 0; i < 200 && !RedisFixture::ping(sock, 200ms); ++i)
      std::this_thread::sleep_for(20ms);
    return std::make_unique<rap::testing::Subprocess>(std::move(*sp));
  };
  auto server = start_redis();
  ASSERT_NE(server, nullptr);

  rap::control::RedisClientOptions opts;
  opts.retry_backoff = 200ms;
  auto live = make_redis_live_state(unix_endpoint(sock), opts);
  Inbox inbox;
  auto sub = live->subscribe({"c1"}, [&](const Change& c) { inbox.push(c); });
  ASSERT_TRUE(sub.has_value());
  ASSERT_TRUE(inbox.wait_for([](const auto& v) { return resyncs(v) >= 1; }));
  RAP_ASSERT_OK(live->set_presence("c1", "n1", "v", 30s));

  server->terminate(std::chrono::milliseconds(3000));
  server.reset();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) {
    auto p = live->set_presence("c1", "n1", "v", 30s);
    ASSERT_FALSE(p.has_value());
    EXPECT_EQ(p.error().code, "live_state_unavailable");
    EXPECT_FALSE(live->take_token("c1", "t").has_value());
    EXPECT_FALSE(live->rate_hit("platform", "b", 1s).has_value());
    EXPECT_FALSE(live->publish("c1", "x").has_value());
    EXPECT_FALSE(live->ping().has_value());
  }
  // Fail-fast backoff: 100 failing operations take nowhere near 100 connect timeouts.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  const std::string m = live->render_metrics();
  EXPECT_NE(m.find("rap_control_live_state_up{backend=\"redis\"} 0"), std::string::npos) << m;
  EXPECT_NE(m.find("rap_control_live_state_degraded_total 1"), std::string::npos) << m;
  EXPECT_NE(m.find("rap_control_live_state_errors_total{op=\"set_presence\"}"), std::string::npos)
      << m;

  server = start_redis();
  ASSERT_NE(server, nullptr);
  bool recovered = false;
  for (int i = 0; i < 100 && !recovered; ++i) {
    recovered = live->ping().has_value();
    if (!recovered) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(recovered);
  RAP_ASSERT_OK(live->set_presence("c1", "n1", "again", 30s));
  EXPECT_EQ(live->get_presence("c1", "n1")->value_or(""), "again");
  EXPECT_NE(live->render_metrics().find("rap_control_live_state_up{backend=\"redis\"} 1"),
            std::string::npos);
  // The subscriber reconnected by itself and announced a resync; delivery works again.
  ASSERT_TRUE(inbox.wait_for([](const auto& v) { return resyncs(v) >= 2; }, 10s));
  RAP_ASSERT_OK(live->publish("c1", "after restart"));
  EXPECT_TRUE(inbox.wait_for([](const auto& v) { return has_message(v, "c1", "after restart"); }));
  (*sub)->stop();
}

}  // namespace
