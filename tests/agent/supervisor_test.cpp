// Supervisor against a fake process backend and a manual clock: restart backoff, crash-loop
// detection, SIGTERM -> SIGKILL escalation, version changes, the program allow-list, health.
#include "rap/agent/supervisor.h"

#include <gtest/gtest.h>

#include <csignal>

#include "rap/agent/partition.h"

namespace rap::agent {
namespace {

class FakeBackend : public ProcessBackend {
 public:
  Result<int> spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>&,
                    const std::string& log) override {
    if (fail_spawn) return fail("spawn_failed", "no such file");
    const int pid = next_pid++;
    alive[pid] = true;
    spawned.push_back(argv);
    logs.push_back(log);
    return pid;
  }
  void signal(int pid, int sig) override {
    signals.emplace_back(pid, sig);
    if (sig == SIGKILL || (sig == SIGTERM && !ignore_term))
      exited[pid] = "signal " + std::to_string(sig);
  }
  std::optional<std::string> poll_exit(int pid) override {
    auto it = exited.find(pid);
    if (it == exited.end()) return std::nullopt;
    std::string r = it->second;
    exited.erase(it);
    alive.erase(pid);
    return r;
  }
  bool tcp_healthy(std::uint16_t) override { return healthy; }

  void crash(int pid) { exited[pid] = "exit 1"; }
  int last_pid() const { return next_pid - 1; }

  int next_pid = 100;
  bool fail_spawn = false;
  bool ignore_term = false;
  bool healthy = true;
  std::map<int, bool> alive;
  std::map<int, std::string> exited;
  std::vector<std::vector<std::string>> spawned;
  std::vector<std::string> logs;
  std::vector<std::pair<int, int>> signals;
};

SupervisorOptions opts() {
  SupervisorOptions o;
  o.kinds = {{"web", "/usr/lib/rap/web"}};
  o.log_dir = "/var/log/rap";
  o.backoff_initial = std::chrono::seconds(1);
  o.backoff_max = std::chrono::seconds(16);
  o.crash_loop_threshold = 4;
  o.crash_loop_window = std::chrono::seconds(60);
  o.stop_grace = std::chrono::seconds(5);
  return o;
}

WorkloadSpec spec(const std::string& name, std::uint64_t version = 1) {
  WorkloadSpec s;
  s.name = name;
  s.kind = "web";
  s.args = {"--port", "8080"};
  s.version = version;
  return s;
}

const WorkloadStatus& status_of(const Supervisor& s, const std::string& name) {
  static WorkloadStatus none;
  static std::vector<WorkloadStatus> keep;
  keep = s.status();
  for (const auto& w : keep)
    if (w.name == name) return w;
  return none;
}

TEST(Supervisor, StartsOnlyAllowListedProgramsWithTheirArgsAndLog) {
  FakeBackend be;
  ManualClock clock;
  Supervisor sup(be, clock, opts());
  auto bad = spec("evil");
  bad.kind = "sh";
  sup.set_desired({spec("a"), bad});
  ASSERT_EQ(be.spawned.size(), 1u);
  EXPECT_EQ(be.spawned[0], (std::vector<std::string>{"/usr/lib/rap/web", "--port", "8080"}));
  EXPECT_EQ(be.logs[0], "/var/log/rap/a.log");
  EXPECT_EQ(status_of(sup, "a").state, WorkloadState::kRunning);
  EXPECT_EQ(status_of(sup, "evil").state, WorkloadState::kFailed);
  EXPECT_NE(status_of(sup, "evil").last_error.find("allow-list"), std::string::npos);
}

TEST(Supervisor, CrashesBackOffExponentiallyThenCrashLoop) {
  FakeBackend be;
  ManualClock clock;
  Supervisor sup(be, clock, opts());
  sup.set_desired({spec("a")});
  std::vector<int> waits;
  for (int round = 0; round < 4; ++round) {
    be.crash(be.last_pid());
    sup.tick();
    const auto spawned = be.spawned.size();
    int waited = 0;
    while (be.spawned.size() == spawned && waited < 100) {
      clock.advance(std::chrono::milliseconds(500));
      sup.tick();
      waited++;
    }
    waits.push_back(waited);
  }
  // 1 s, 2 s, 4 s, then the 4th exit within the window is a crash loop: 16 s (the maximum).
  EXPECT_EQ(waits, (std::vector<int>{2, 4, 8, 32}));
  EXPECT_EQ(status_of(sup, "a").restarts, 4u);
  be.crash(be.last_pid());
  sup.tick();
  EXPECT_EQ(status_of(sup, "a").state, WorkloadState::kCrashLoop);
  EXPECT_EQ(status_of(sup, "a").last_exit, "exit 1");
}

TEST(Supervisor, RemovalSendsTermThenKillAfterGrace) {
  FakeBackend be;
  be.ignore_term = true;
  ManualClock clock;
  Supervisor sup(be, clock, opts());
  sup.set_desired({spec("a")});
  const int pid = be.last_pid();
  sup.set_desired({});
  ASSERT_EQ(be.signals.size(), 1u);
  EXPECT_EQ(be.signals[0], std::make_pair(pid, SIGTERM));
  EXPECT_EQ(status_of(sup, "a").state, WorkloadState::kStopping);
  clock.advance(std::chrono::seconds(4));
  sup.tick();
  EXPECT_EQ(be.signals.size(), 1u);
  clock.advance(std::chrono::seconds(2));
  sup.tick();
  ASSERT_EQ(be.signals.size(), 2u);
  EXPECT_EQ(be.signals[1], std::make_pair(pid, SIGKILL));
  sup.tick();
  EXPECT_TRUE(sup.status().empty());
  EXPECT_TRUE(sup.idle());
}

TEST(Supervisor, NewVersionRestartsWithoutBackoff) {
  FakeBackend be;
  ManualClock clock;
  Supervisor sup(be, clock, opts());
  sup.set_desired({spec("a", 1)});
  sup.set_desired({spec("a", 1)});  // unchanged: nothing happens
  EXPECT_EQ(be.spawned.size(), 1u);
  EXPECT_TRUE(be.signals.empty());
  sup.set_desired({spec("a", 2)});
  EXPECT_EQ(status_of(sup, "a").state, WorkloadState::kStopping);
  sup.tick();  // TERM took effect: restarted at once with the new version
  EXPECT_EQ(be.spawned.size(), 2u);
  EXPECT_EQ(status_of(sup, "a").version, 2u);
  EXPECT_EQ(status_of(sup, "a").state, WorkloadState::kRunning);
}

TEST(Supervisor, HealthCheckMarksUnhealthyAndRecovers) {
  FakeBackend be;
  ManualClock clock;
  Supervisor sup(be, clock, opts());
  auto s = spec("a");
  s.health_tcp_port = 9000;
  be.healthy = false;
  sup.set_desired({s});
  EXPECT_EQ(status_of(sup, "a").state, WorkloadState::kStarting);
  sup.tick();
  EXPECT_EQ(status_of(sup, "a").state, WorkloadState::kStarting);
  be.healthy = true;
  clock.advance(std::chrono::seconds(3));
  sup.tick();
  EXPECT_EQ(status_of(sup, "a").state, WorkloadState::kRunning);
  be.healthy = false;
  clock.advance(std::chrono::seconds(3));
  sup.tick();
  EXPECT_EQ(status_of(sup, "a").state, WorkloadState::kUnhealthy);
}

TEST(Supervisor, SpawnFailureIsRetriedNotFatal) {
  FakeBackend be;
  be.fail_spawn = true;
  ManualClock clock;
  Supervisor sup(be, clock, opts());
  sup.set_desired({spec("a")});
  EXPECT_EQ(status_of(sup, "a").state, WorkloadState::kFailed);
  be.fail_spawn = false;
  clock.advance(std::chrono::seconds(2));
  sup.tick();
  EXPECT_EQ(status_of(sup, "a").state, WorkloadState::kRunning);
}

TEST(PartitionTracker, DegradedIsolatedRecoveryHealthy) {
  ManualClock clock;
  PartitionTracker t(std::chrono::seconds(30));
  EXPECT_EQ(t.state(clock.now()), PartitionState::kHealthy);
  t.on_failure(clock.now(), "connection refused");
  EXPECT_EQ(t.state(clock.now()), PartitionState::kDegraded);
  clock.advance(std::chrono::seconds(29));
  t.on_failure(clock.now(), "connection refused");
  EXPECT_EQ(t.state(clock.now()), PartitionState::kDegraded);
  clock.advance(std::chrono::seconds(2));
  EXPECT_EQ(t.state(clock.now()), PartitionState::kIsolated);
  EXPECT_EQ(t.last_error(), "connection refused");
  t.on_success(clock.now(), false);
  EXPECT_EQ(t.state(clock.now()), PartitionState::kRecovery);
  t.on_success(clock.now(), true);
  EXPECT_EQ(t.state(clock.now()), PartitionState::kHealthy);
  EXPECT_TRUE(t.last_error().empty());
}

}  // namespace
}  // namespace rap::agent
