// Supervisor: runs the node's authorized workloads as child processes and keeps them in their
// desired state. It does no policy: the agent hands it only workloads that an explicit role
// assignment authorizes (capabilities alone never start anything).
//
//   Supervisor sup(backend, clock, options);
//   sup.set_desired({spec...});   // start new, stop removed, restart changed
//   sup.tick();                   // call periodically: reaps exits, restarts with backoff,
//                                 // escalates SIGTERM -> SIGKILL, runs health checks
//   sup.status();                 // reported state per workload
//   sup.stop();                   // stops every workload (SIGTERM, then SIGKILL after grace)
//
// A workload that exits is restarted after an exponential backoff (1 s doubling to 60 s by
// default); `crash_loop_threshold` exits within `crash_loop_window` mark it crash_loop (it keeps
// being retried at the maximum backoff). Workloads run in their own session (setsid) with
// stdout/stderr appended to <log_dir>/<name>.log, so a crashing workload never takes the agent
// down and its output is kept.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rap/common/clock.h"
#include "rap/common/result.h"

namespace rap::agent {

struct WorkloadSpec {
  std::string name;  // [a-z0-9-]{1,63}, unique on the node
  std::string kind;  // must be a key of SupervisorOptions::kinds (local executable allow-list)
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::uint16_t health_tcp_port = 0;  // 0: no health check; else TCP connect to 127.0.0.1:port
  std::uint64_t version = 0;          // a changed version restarts the workload

  bool operator==(const WorkloadSpec&) const = default;
};

enum class WorkloadState : std::uint8_t {
  kStarting,   // spawned; health check not yet passed
  kRunning,    // alive (and healthy if it has a health check)
  kUnhealthy,  // alive but its health check fails
  kBackoff,    // exited; waiting to restart
  kCrashLoop,  // exited too often recently; retried at the maximum backoff
  kStopping,   // SIGTERM sent
  kFailed,     // cannot be started (unknown kind, spawn error); retried with backoff
};
const char* to_string(WorkloadState s);

struct WorkloadStatus {
  std::string name;
  WorkloadState state = WorkloadState::kStarting;
  int pid = 0;
  std::uint32_t restarts = 0;
  std::string last_exit;  // "exit 3", "signal 9", ""
  std::string last_error;
  std::uint64_t version = 0;
};

// How processes are started and observed. The POSIX backend is the real one; unit tests of the
// supervisor substitute a fake.
class ProcessBackend {
 public:
  virtual ~ProcessBackend() = default;
  virtual Result<int> spawn(const std::vector<std::string>& argv,
                            const std::map<std::string, std::string>& env,
                            const std::string& log_path) = 0;
  virtual void signal(int pid, int sig) = 0;
  // The exit description ("exit N" / "signal N") once the process has ended (and was reaped).
  virtual std::optional<std::string> poll_exit(int pid) = 0;
  virtual bool tcp_healthy(std::uint16_t port) = 0;
};

// posix_spawn with POSIX_SPAWN_SETSID, output appended to the log file (rotated to .1 beyond
// 10 MiB at start), waitpid(WNOHANG) to reap, 200 ms TCP connect for health.
// Each spawn also writes <log_dir>/<name>.pid ("pid starttime").
std::unique_ptr<ProcessBackend> make_posix_backend();

// Stops workloads a previous agent process left running (found by their pid files, checked
// against the process start time so a reused pid is never signalled). Returns how many.
int stop_orphans(const std::string& log_dir);

struct SupervisorOptions {
  std::map<std::string, std::string> kinds;  // kind -> absolute path of the executable
  std::string log_dir;
  Duration backoff_initial = std::chrono::seconds(1);
  Duration backoff_max = std::chrono::seconds(60);
  std::uint32_t crash_loop_threshold = 5;
  Duration crash_loop_window = std::chrono::seconds(120);
  Duration stop_grace = std::chrono::seconds(5);
  Duration health_interval = std::chrono::seconds(2);
};

class Supervisor {
 public:
  Supervisor(ProcessBackend& backend, const Clock& clock, SupervisorOptions opts);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  void set_desired(const std::vector<WorkloadSpec>& desired);
  void tick();
  std::vector<WorkloadStatus> status() const;
  // Stops everything and waits (ticking) up to stop_grace + 1 s; returns true if all ended.
  bool stop();
  bool idle() const;  // nothing running or stopping

 private:
  struct Slot;
  void start(Slot& s);
  void schedule_restart(Slot& s, const std::string& why);

  ProcessBackend& backend_;
  const Clock& clock_;
  SupervisorOptions opts_;
  std::map<std::string, std::unique_ptr<Slot>> slots_;
};

}  // namespace rap::agent
