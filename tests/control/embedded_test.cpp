// End-to-end: the real rap-control binary WITHOUT --database-url (embedded mode: it runs its own
// PostgreSQL and Redis under --data-dir), driven over HTTPS by curl. Covers first start (setup
// token), login throttling through Redis (429 + Retry-After), change notifications, restart on
// the same data (no re-initdb, no new setup token) and that SIGTERM / a dying child leave no
// processes behind. Also: an external database with its Redis down (degraded mode).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "control_process.h"
#include "rap/control/live_state.h"
#include "rap/testing/gtest_support.h"
#include "rap/testing/postgres_fixture.h"
#include "rap/testing/subprocess.h"
#include "rap/testing/temp_dir.h"

namespace {

using namespace std::chrono_literals;
using namespace rap::testing::control;
using rap::testing::TempDir;
namespace fs = std::filesystem;

constexpr auto kStartTimeout = std::chrono::seconds(240);

// pid from a "embedded <name>: started pid=N" log line (the last one).
pid_t started_pid(const std::string& out, const std::string& name) {
  const std::regex re("embedded " + name + ": started pid=([0-9]+)");
  pid_t pid = -1;
  for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator();
       ++it)
    pid = std::stoi((*it)[1]);
  return pid;
}

// Processes whose command line or working directory mentions `dir`.
std::vector<std::string> processes_under(const std::string& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() ||
        !std::all_of(name.begin(), name.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
      continue;
    if (!rap::testing::process_alive(std::stoi(name))) continue;
    std::ifstream in(e.path() / "cmdline", std::ios::binary);
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    std::error_code ec2;
    const std::string cwd = fs::read_symlink(e.path() / "cwd", ec2).string();
    if (cmd.find(dir) != std::string::npos || (!ec2 && cwd.starts_with(dir)))
      found.push_back(name + ": " + cmd + " (cwd " + cwd + ")");
  }
  return found;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class EmbeddedControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = TempDir::create_owned("rap-embedded-test-");
    ASSERT_TRUE(d.has_value()) << d.error().message;
    root_.emplace(std::move(*d));
    // As root the private PostgreSQL runs as `postgres`, which must be able to walk down here.
    ::chmod(root_->path().c_str(), 0711);
    data_ = (root_->path() / "data").string();
  }

  rap::Result<std::unique_ptr<ControlProcess>> start(const std::string& name) {
    auto c = ControlProcess::spawn_args({"--listen", "127.0.0.1:0", "--data-dir", data_}, name);
    if (!c) return c;
    if (auto r = (*c)->wait_ready(kStartTimeout); !r) return tl::unexpected(r.error());
    return c;
  }

  // SIGTERM to rap-control only (its children have their own process groups): it must stop
  // them and exit 0, leaving nothing running under the data dir.
  void stop_and_check(ControlProcess& c) {
    const std::string out = c.output();
    const pid_t pg = started_pid(out, "postgres");
    const pid_t redis = started_pid(out, "redis");
    ASSERT_GT(pg, 0) << out;
    ASSERT_GT(redis, 0) << out;
    ASSERT_TRUE(rap::testing::process_alive(pg));
    ASSERT_TRUE(rap::testing::process_alive(redis));
    ::kill(c.proc().pid(), SIGTERM);
    auto st = c.proc().wait_exit(60s);
    ASSERT_TRUE(st.has_value()) << c.output();
    EXPECT_EQ(*st, 0) << c.output();
    EXPECT_FALSE(rap::testing::process_alive(pg));
    EXPECT_FALSE(rap::testing::process_alive(redis));
    auto left = processes_under(data_);
    EXPECT_TRUE(left.empty()) << ::testing::PrintToString(left);
    // A clean fast shutdown (a PANIC here once meant the postgres user lost access to the dir).
    EXPECT_NE(c.output().find("embedded postgres: stopped (status 0)"), std::string::npos)
        << c.output();
    EXPECT_NE(c.output().find("embedded redis: stopped (status 0)"), std::string::npos)
        << c.output();
    const std::string pglog = read_file(data_ + "/postgres/postgres.log");
    EXPECT_EQ(pglog.find("PANIC"), std::string::npos) << pglog;
  }

  std::optional<TempDir> root_;
  std::string data_;
};

TEST_F(EmbeddedControlTest, SetupThrottleRestartAndCleanShutdown) {
  RAP_ASSIGN_OR_FAIL(auto c, start("embedded-1"));
  const std::string out = c->output();
  EXPECT_NE(out.find("RAP EMBEDDED DATA: " + data_), std::string::npos) << out;
  ASSERT_TRUE(c->setup_token().has_value()) << out;
  // Layout and modes.
  struct stat st {};
  ASSERT_EQ(::stat((data_ + "/postgres").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  if (::geteuid() == 0) {
    EXPECT_NE(st.st_uid, 0u);  // owned by postgres
  }
  ASSERT_EQ(::stat((data_ + "/redis").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_TRUE(fs::exists(data_ + "/postgres/data/PG_VERSION"));
  EXPECT_TRUE(fs::exists(data_ + "/redis/redis.sock"));

  auto h = c->call("GET", "/healthz");
  EXPECT_EQ(h.status, 200) << h;
  EXPECT_EQ(h.j, json({{"status", "ok"}, {"db", "ok"}, {"redis", "ok"}})) << h;

  const std::string owner = setup_owner(*c, "owner@embedded.test", kOwnerPw);
  ASSERT_FALSE(owner.empty());

  // Org creation publishes a change notification; another connection to the same Redis sees it.
  {
    rap::control::RedisEndpoint ep;
    ep.unix_path = data_ + "/redis/redis.sock";
    auto live = rap::control::make_redis_live_state(ep);
    std::mutex mu;
    std::condition_variable cv;
    std::vector<rap::control::Change> got;
    auto sub = live->subscribe({"platform"}, [&](const rap::control::Change& ch) {
      std::lock_guard g(mu);
      got.push_back(ch);
      cv.notify_all();
    });
    ASSERT_TRUE(sub.has_value()) << sub.error().message;
    {
      std::unique_lock l(mu);
      ASSERT_TRUE(cv.wait_for(l, 5s, [&] { return !got.empty(); }));  // the resync notice
    }
    auto r =
        c->call("POST", "/api/v1/orgs", json{{"slug", "acme"}, {"name", "Acme"}}.dump(), owner);
    ASSERT_EQ(r.status, 201) << r;
    const std::string org_id = r.j["org"]["id"].get<std::string>();
    std::unique_lock l(mu);
    EXPECT_TRUE(cv.wait_for(l, 5s, [&] {
      return std::any_of(got.begin(), got.end(), [&](const rap::control::Change& ch) {
        auto j = json::parse(ch.message, nullptr, false);
        return !ch.resync && ch.scope == "platform" && j.is_object() &&
               j.value("kind", "") == "org.created" && j.value("id", "") == org_id;
      });
    }));
    l.unlock();
    (*sub)->stop();
  }

  // Login throttling: 10 failures per email per window, then 429 with Retry-After, even with
  // the right password; other emails are not affected.
  const fs::path headers = root_->path() / "headers.txt";
  for (int i = 1; i <= 10; ++i) {
    auto r =
        c->call("POST", "/api/v1/login", login_body("owner@embedded.test", "wrong-password-x"));
    EXPECT_EQ(r.status, 401) << "attempt " << i << ": " << r;
  }
  {
    auto r = c->call("POST", "/api/v1/login", login_body("owner@embedded.test", "wrong-password-x"),
                     "", {"-D", headers.string()});
    EXPECT_EQ(r.status, 429) << r;
    EXPECT_EQ(r.error_code(), "rate_limited");
    std::smatch m;
    const std::string hdr = read_file(headers);
    ASSERT_TRUE(std::regex_search(hdr, m, std::regex("[Rr]etry-[Aa]fter: ([0-9]+)"))) << hdr;
    const int secs = std::stoi(m[1]);
    EXPECT_GE(secs, 1);
    EXPECT_LE(secs, 300);
    auto good = c->call("POST", "/api/v1/login", login_body("owner@embedded.test", kOwnerPw));
    EXPECT_EQ(good.status, 429) << good;
  }
  {
    auto other = c->call("POST", "/api/v1/login", login_body("nobody@embedded.test", kOwnerPw));
    EXPECT_EQ(other.status, 401) << other;
  }
  // The existing session keeps working (PostgreSQL state, not Redis).
  EXPECT_EQ(c->call("GET", "/api/v1/orgs", "", owner).status, 200);
  auto metrics = c->call("GET", "/metrics");
  EXPECT_NE(metrics.body.find("rap_control_live_state_up{backend=\"redis\"} 1"), std::string::npos)
      << metrics.body;

  stop_and_check(*c);
  c.reset();

  // Restart on the same data: no initdb, no new setup token, the owner and the org are there.
  // Redis started empty (live state only), so the throttle window is gone too.
  RAP_ASSIGN_OR_FAIL(auto c2, start("embedded-2"));
  const std::string out2 = c2->output();
  EXPECT_FALSE(c2->setup_token().has_value()) << out2;
  EXPECT_NE(out2.find("reusing the existing cluster"), std::string::npos) << out2;
  EXPECT_EQ(out2.find("initdb"), std::string::npos) << out2;
  const std::string owner2 = login(*c2, "owner@embedded.test", kOwnerPw);
  ASSERT_FALSE(owner2.empty());
  auto orgs = c2->call("GET", "/api/v1/orgs", "", owner2);
  EXPECT_EQ(slugs(orgs), std::vector<std::string>{"acme"}) << orgs;
  stop_and_check(*c2);
}

// A supervised child that dies takes rap-control down with a non-zero status (and the other
// child with it): the operator's supervisor restarts the whole unit.
TEST_F(EmbeddedControlTest, DyingChildStopsEverythingWithError) {
  RAP_ASSIGN_OR_FAIL(auto c, start("embedded-die"));
  const std::string out = c->output();
  const pid_t pg = started_pid(out, "postgres");
  const pid_t redis = started_pid(out, "redis");
  ASSERT_GT(pg, 0) << out;
  ASSERT_GT(redis, 0) << out;
  ::kill(redis, SIGKILL);
  auto st = c->proc().wait_exit(60s);
  ASSERT_TRUE(st.has_value()) << c->output();
  EXPECT_NE(*st, 0) << c->output();
  EXPECT_NE(c->output().find("embedded redis"), std::string::npos) << c->output();
  EXPECT_FALSE(rap::testing::process_alive(pg));
  auto left = processes_under(data_);
  EXPECT_TRUE(left.empty()) << ::testing::PrintToString(left);
}

}  // namespace

// Not embedded: an external database and a Redis that is not there. The control plane serves
// from PostgreSQL in degraded mode (healthz 200 "degraded", metrics), login works (throttling
// fails open), and nothing crashes.
TEST(ControlRedisDown, ServesFromPostgresInDegradedMode) {
  RAP_ASSIGN_OR_FAIL(auto pg, rap::testing::PostgresFixture::start());
  RAP_ASSIGN_OR_FAIL(std::string db, pg->create_database("redis_down"));
  RAP_ASSIGN_OR_FAIL(auto dir, TempDir::create("rap-redis-down-"));
  RAP_ASSIGN_OR_FAIL(
      auto c, ControlProcess::spawn_args({"--listen", "127.0.0.1:0", "--database-url", db,
                                          "--redis-url", "unix://" + dir.str() + "/no-redis.sock",
                                          "--data-dir", (dir.path() / "data").string()},
                                         "redis-down"));
  RAP_ASSERT_OK(c->wait_ready(kStartTimeout));
  auto h = c->call("GET", "/healthz");
  EXPECT_EQ(h.status, 200) << h;
  EXPECT_EQ(h.j, json({{"status", "degraded"}, {"db", "ok"}, {"redis", "unavailable"}})) << h;
  const std::string owner = setup_owner(*c, "owner@down.test", kOwnerPw);
  ASSERT_FALSE(owner.empty());
  for (int i = 0; i < 12; ++i) {
    auto r = c->call("POST", "/api/v1/login", login_body("owner@down.test", "wrong-password-x"));
    EXPECT_EQ(r.status, 401) << r;  // fails open: no 429 without Redis
  }
  auto org =
      c->call("POST", "/api/v1/orgs", json{{"slug", "acme"}, {"name", "Acme"}}.dump(), owner);
  EXPECT_EQ(org.status, 201) << org;  // the notification is lost, the org is not
  auto m = c->call("GET", "/metrics");
  EXPECT_NE(m.body.find("rap_control_live_state_up{backend=\"redis\"} 0"), std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find("rap_control_live_state_degraded_total 1"), std::string::npos) << m.body;
  EXPECT_TRUE(c->proc().running());
}
