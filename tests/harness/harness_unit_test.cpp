// Unit tests of the harness building blocks that need no services: TempDir, Subprocess,
// run_command.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "rap/testing/gtest_support.h"
#include "rap/testing/subprocess.h"
#include "rap/testing/temp_dir.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using rap::testing::process_alive;
using rap::testing::run_command;
using rap::testing::RunOptions;
using rap::testing::Subprocess;
using rap::testing::SubprocessOptions;
using rap::testing::TempDir;

TEST(HarnessTempDir, CreatedUniqueAndRemovedRecursively) {
  fs::path p1, p2;
  {
    RAP_ASSIGN_OR_FAIL(TempDir d1, TempDir::create("rap-unit-"));
    RAP_ASSIGN_OR_FAIL(TempDir d2, TempDir::create("rap-unit-"));
    p1 = d1.path();
    p2 = d2.path();
    EXPECT_NE(p1, p2);
    EXPECT_EQ(p1.parent_path(), fs::path("/tmp"));
    fs::create_directories(p1 / "a" / "b");
    RAP_ASSERT_OK(rap::testing::write_text_file(p1 / "a" / "b" / "f.txt", "hello"));
    RAP_ASSIGN_OR_FAIL(std::string text, rap::testing::read_text_file(p1 / "a" / "b" / "f.txt"));
    EXPECT_EQ(text, "hello");
    TempDir moved = std::move(d2);
    EXPECT_EQ(moved.path(), p2);
  }
  EXPECT_FALSE(fs::exists(p1));
  EXPECT_FALSE(fs::exists(p2));
  EXPECT_FALSE(TempDir::create("bad/prefix").has_value());
}

TEST(HarnessTempDir, ChownToUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  RAP_ASSIGN_OR_FAIL(TempDir d, TempDir::create());
  fs::create_directories(d.path() / "x");
  RAP_ASSERT_OK(d.chown_to("nobody"));
  struct stat st {};
  ASSERT_EQ(::stat((d.path() / "x").c_str(), &st), 0);
  EXPECT_NE(st.st_uid, 0u);
  EXPECT_FALSE(d.chown_to("no-such-user-rap").has_value());
}

TEST(HarnessSubprocess, RunCommandCapturesOutputAndExitCode) {
  auto r = run_command({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.output.find("out"), std::string::npos);
  EXPECT_NE(r.output.find("err"), std::string::npos);

  auto ok = run_command({"true"});
  EXPECT_TRUE(ok.ok());

  RunOptions env_opts;
  env_opts.env = {{"RAP_UNIT_VAR", "v42"}};
  auto e = run_command({"sh", "-c", "printf %s \"$RAP_UNIT_VAR\""}, env_opts);
  EXPECT_EQ(e.output, "v42");
}

TEST(HarnessSubprocess, RunCommandTimesOutAndKills) {
  RunOptions o;
  o.timeout = 300ms;
  auto start = std::chrono::steady_clock::now();
  auto r = run_command({"sleep", "30"}, o);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(HarnessSubprocess, MissingBinaryIsAClearError) {
  auto sp = Subprocess::spawn({"rap-no-such-binary-xyz"});
  ASSERT_FALSE(sp.has_value());
  EXPECT_NE(sp.error().message.find("rap-no-such-binary-xyz"), std::string::npos);
  auto r = run_command({"rap-no-such-binary-xyz"});
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_NE(r.output.find("not found"), std::string::npos);
  SubprocessOptions bad_ns;
  bad_ns.netns = "rap-no-such-ns";
  auto ns = Subprocess::spawn({"true"}, bad_ns);
  ASSERT_FALSE(ns.has_value());
  EXPECT_NE(ns.error().message.find("rap-no-such-ns"), std::string::npos);
}

TEST(HarnessSubprocess, OutputFileWaitAndExitStatus) {
  RAP_ASSIGN_OR_FAIL(TempDir d, TempDir::create());
  SubprocessOptions o;
  o.output_file = d.path() / "out.log";
  RAP_ASSIGN_OR_FAIL(Subprocess sp,
                     Subprocess::spawn({"sh", "-c", "sleep 0.2; echo ready; exit 7"}, o));
  EXPECT_GT(sp.pid(), 0);
  RAP_ASSERT_OK(sp.wait_for_output("ready", 5s));
  auto st = sp.wait_exit(5s);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(*st, 7);
  EXPECT_FALSE(sp.running());
  EXPECT_EQ(sp.output(), "ready\n");

  RAP_ASSIGN_OR_FAIL(Subprocess quitter, Subprocess::spawn({"sh", "-c", "exit 0"}, o));
  auto w = quitter.wait_for_output("never printed", 5s);
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code, "process_exited");
}

TEST(HarnessSubprocess, KillAndTimeout) {
  RAP_ASSIGN_OR_FAIL(Subprocess sp, Subprocess::spawn({"sleep", "30"}));
  EXPECT_FALSE(sp.wait_exit(100ms).has_value());
  EXPECT_TRUE(sp.running());
  sp.kill(SIGKILL);
  auto st = sp.wait_exit(5s);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(*st, 128 + SIGKILL);
}

TEST(HarnessSubprocess, DestructorKillsWholeProcessGroup) {
  RAP_ASSIGN_OR_FAIL(TempDir d, TempDir::create());
  const fs::path pidfile = d.path() / "grandchild.pid";
  pid_t child = -1;
  pid_t grandchild = -1;
  {
    SubprocessOptions o;
    o.term_grace = 500ms;
    // The shell ignores SIGTERM, so the destructor has to escalate to SIGKILL; the
    // background sleep is a grandchild in the same process group.
    RAP_ASSIGN_OR_FAIL(
        Subprocess sp,
        Subprocess::spawn(
            {"sh", "-c", "trap '' TERM; sleep 300 & echo $! > " + pidfile.string() + "; wait"}, o));
    child = sp.pid();
    for (int i = 0; i < 500 && grandchild <= 0; ++i) {
      std::ifstream in(pidfile);
      if (!(in >> grandchild)) grandchild = -1;
      if (grandchild <= 0) std::this_thread::sleep_for(10ms);
    }
    ASSERT_GT(grandchild, 0);
    EXPECT_TRUE(process_alive(child));
    EXPECT_TRUE(process_alive(grandchild));
  }
  // Orphans are reaped by init asynchronously; give it a moment.
  for (int i = 0; i < 200 && process_alive(grandchild); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(process_alive(child));
  EXPECT_FALSE(process_alive(grandchild));
}

TEST(HarnessSubprocess, RunsAsAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  RunOptions o;
  o.user = "nobody";
  auto r = run_command({"id", "-un"}, o);
  ASSERT_TRUE(r.ok()) << r.output;
  EXPECT_EQ(r.output, "nobody\n");
}

TEST(HarnessTempDir, RemoveStaleDeletesOnlyDirsOfDeadProcesses) {
  // A pid that certainly is dead: a child we ran and reaped.
  RAP_ASSIGN_OR_FAIL(Subprocess gone, Subprocess::spawn({"true"}));
  ASSERT_TRUE(gone.wait_exit(5s).has_value());
  const pid_t dead = gone.pid();
  const fs::path stale = fs::path("/tmp") / ("rap-unit-stale-" + std::to_string(dead) + "-abc");
  fs::create_directories(stale / "sub");
  RAP_ASSIGN_OR_FAIL(TempDir mine, TempDir::create_owned("rap-unit-stale-"));
  EXPECT_NE(mine.path().filename().string().find(std::to_string(::getpid())), std::string::npos);
  TempDir::remove_stale("rap-unit-stale-");
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(mine.path()));
}
