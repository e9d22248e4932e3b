// Subprocess: fork/exec with its own process group; the destructor kills the whole group
// (SIGTERM, then SIGKILL after a grace period) so nothing leaks when a test fails.
//
// The child gets PR_SET_PDEATHSIG(SIGKILL): if the test process dies (crash, ctest timeout)
// the direct child dies too. Note the "parent" is the *thread* that spawned it: spawn long
// lived processes from the test's main thread, not from a short-lived helper thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rap/common/result.h"

namespace rap::testing {

struct SubprocessOptions {
  // Extra environment KEY=VALUE pairs; they override the inherited environment.
  std::vector<std::pair<std::string, std::string>> env;
  bool inherit_env = true;  // false: the child sees only `env`
  // stdout and stderr both go to this file (truncated). Unset: inherited from the test.
  std::optional<std::filesystem::path> output_file;
  // Advanced: an open fd dup2'd onto the child's stdout+stderr (the caller keeps ownership).
  // Takes precedence over output_file.
  int output_fd = -1;
  // Run inside network namespace /var/run/netns/<netns> (setns in the child before exec).
  std::optional<std::string> netns;
  std::optional<std::filesystem::path> cwd;
  // Run as this user (setgid/initgroups/setuid in the child; needs root). E.g. "postgres".
  std::optional<std::string> user;
  // Destructor / terminate(): time between SIGTERM and SIGKILL.
  std::chrono::milliseconds term_grace{3000};
};

class Subprocess {
 public:
  // argv[0] is looked up in PATH (plus /usr/sbin and /sbin) unless it contains '/'.
  // Fails with a clear message if the binary is missing, the namespace/user does not exist,
  // or exec fails in the child.
  static Result<Subprocess> spawn(std::vector<std::string> argv, SubprocessOptions opts = {});

  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess();

  pid_t pid() const { return pid_; }
  const std::vector<std::string>& argv() const { return argv_; }
  const std::optional<std::filesystem::path>& output_file() const { return output_file_; }

  // Waits for exit. Returns the exit code (128+N when killed by signal N), or nullopt on
  // timeout. Once reaped, later calls return the same status immediately.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  bool running();  // not yet exited (reaps if it has)
  std::optional<int> exit_status() const { return status_; }

  // Sends `sig` to the whole process group (no-op once the group is gone).
  void kill(int sig = SIGTERM);
  // SIGTERM to the group, wait up to `grace`, then SIGKILL; reaps. Returns the exit status.
  int terminate(std::chrono::milliseconds grace = std::chrono::milliseconds{3000});

  // Contents of output_file ("" if none).
  std::string output() const;
  // Polls output_file until it contains `needle`; error on timeout or if the process exits
  // first (the message includes the output tail).
  Result<void> wait_for_output(std::string_view needle, std::chrono::milliseconds timeout);

 private:
  Subprocess() = default;
  void cleanup() noexcept;
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::vector<std::string> argv_;
  std::optional<std::filesystem::path> output_file_;
  std::chrono::milliseconds term_grace_{3000};
};

struct CommandResult {
  int exit_code = -1;  // -1: could not start, or timed out (see output)
  bool timed_out = false;
  std::string output;  // stdout and stderr interleaved
  bool ok() const { return exit_code == 0; }
};

struct RunOptions {
  std::optional<std::string> netns;
  std::optional<std::string> user;
  std::optional<std::filesystem::path> cwd;
  std::chrono::milliseconds timeout{30000};
  std::vector<std::pair<std::string, std::string>> env;
};

// Runs argv to completion (killing it after options.timeout) and captures its output.
CommandResult run_command(const std::vector<std::string>& argv, const RunOptions& options = {});

// True if `pid` exists and is not a zombie (reads /proc/<pid>/stat).
bool process_alive(pid_t pid);

// "a b 'c d'": for error messages.
std::string shell_join(const std::vector<std::string>& argv);

}  // namespace rap::testing
