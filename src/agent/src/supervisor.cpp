#include "rap/agent/supervisor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

extern char** environ;

namespace rap::agent {

const char* to_string(WorkloadState s) {
  switch (s) {
    case WorkloadState::kStarting:
      return "starting";
    case WorkloadState::kRunning:
      return "running";
    case WorkloadState::kUnhealthy:
      return "unhealthy";
    case WorkloadState::kBackoff:
      return "backoff";
    case WorkloadState::kCrashLoop:
      return "crash_loop";
    case WorkloadState::kStopping:
      return "stopping";
    case WorkloadState::kFailed:
      return "failed";
  }
  return "unknown";
}

// ---------------- POSIX backend ----------------

namespace {

std::string pid_file_for(const std::string& log_path) {
  const auto dot = log_path.rfind(".log");
  return (dot == std::string::npos ? log_path : log_path.substr(0, dot)) + ".pid";
}

// Field 22 of /proc/PID/stat (start time in clock ticks): tells a pid apart from a reused one.
std::string process_start_time(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream is(text.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && is >> field; ++i) {
  }
  return field;
}

class PosixBackend final : public ProcessBackend {
 public:
  Result<int> spawn(const std::vector<std::string>& argv,
                    const std::map<std::string, std::string>& env,
                    const std::string& log_path) override {
    if (argv.empty()) return fail("spawn_failed", "empty argv");
    std::error_code ec;
    if (std::filesystem::file_size(log_path, ec) > kMaxLog && !ec) {
      std::filesystem::rename(log_path, log_path + ".1", ec);  // keep one previous log
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0640);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    sigset_t none;
    sigset_t all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, static_cast<short>(POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                                       POSIX_SPAWN_SETSIGDEF));
    std::vector<std::string> envs;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      const std::string kv(*e);
      const auto eq = kv.find('=');
      if (eq != std::string::npos && env.count(kv.substr(0, eq)) == 0) envs.push_back(kv);
    }
    for (const auto& [k, v] : env) {
      std::string kv = k;
      kv.append("=").append(v);
      envs.push_back(std::move(kv));
    }
    std::vector<char*> cargv;
    std::vector<char*> cenv;
    cargv.reserve(argv.size() + 1);
    cenv.reserve(envs.size() + 1);
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    for (const auto& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, argv[0].c_str(), &fa, &attr, cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) return fail("spawn_failed", argv[0] + ": " + std::strerror(rc));
    // Pid file beside the log: lets a restarted agent find workloads it left behind.
    std::ofstream(pid_file_for(log_path), std::ios::trunc)
        << pid << " " << process_start_time(pid) << "\n";
    return static_cast<int>(pid);
  }

  void signal(int pid, int sig) override {
    if (pid <= 0) return;
    // The workload leads its own session: signal the whole process group.
    if (::kill(-pid, sig) != 0) ::kill(pid, sig);
  }

  std::optional<std::string> poll_exit(int pid) override {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == 0) return std::nullopt;
    if (r < 0) return std::string("gone");  // not our child any more (ECHILD)
    if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
    return std::string("ended");
  }

  bool tcp_healthy(std::uint16_t port) override {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = false;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      ok = true;
    } else if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 200) == 1) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        ok = err == 0;
      }
    }
    ::close(fd);
    return ok;
  }

 private:
  static constexpr std::uintmax_t kMaxLog = 10u * 1024 * 1024;
};

}  // namespace

std::unique_ptr<ProcessBackend> make_posix_backend() {
  return std::make_unique<PosixBackend>();
}

int stop_orphans(const std::string& log_dir) {
  int stopped = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(log_dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (it->path().extension() != ".pid") continue;
    std::ifstream f(it->path());
    int pid = 0;
    std::string start;
    f >> pid >> start;
    std::error_code rm;
    std::filesystem::remove(it->path(), rm);
    if (pid <= 0 || start.empty() || process_start_time(pid) != start) continue;
    // Still the workload we started: stop its whole process group.
    spdlog::warn("stopping workload pid {} left behind by a previous agent ({})", pid,
                 it->path().stem().string());
    ::kill(-pid, SIGTERM);
    for (int i = 0; i < 100 && process_start_time(pid) == start; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (process_start_time(pid) == start) ::kill(-pid, SIGKILL);
    ++stopped;
  }
  return stopped;
}

// ---------------- Supervisor ----------------

struct Supervisor::Slot {
  WorkloadSpec spec;
  bool desired = true;                  // false: remove once it has stopped
  std::optional<WorkloadSpec> pending;  // start this once the current process has stopped
  WorkloadStatus st;
  TimePoint started{};
  TimePoint next_start{};
  Duration backoff{0};
  std::deque<TimePoint> exits;
  TimePoint stop_deadline{};
  bool kill_sent = false;
  TimePoint next_health{};
};

Supervisor::Supervisor(ProcessBackend& backend, const Clock& clock, SupervisorOptions opts)
    : backend_(backend), clock_(clock), opts_(std::move(opts)) {}

Supervisor::~Supervisor() {
  stop();
}

void Supervisor::start(Slot& s) {
  const auto now = clock_.now();
  s.st.version = s.spec.version;
  auto kind = opts_.kinds.find(s.spec.kind);
  if (kind == opts_.kinds.end()) {
    s.st.state = WorkloadState::kFailed;
    s.st.last_error = "unknown workload kind '" + s.spec.kind + "' (not in this node's allow-list)";
    s.next_start = now + opts_.backoff_max;
    spdlog::warn("workload {} not started: {}", s.spec.name, s.st.last_error);
    return;
  }
  std::vector<std::string> argv{kind->second};
  argv.insert(argv.end(), s.spec.args.begin(), s.spec.args.end());
  const std::string log = opts_.log_dir + "/" + s.spec.name + ".log";
  auto pid = backend_.spawn(argv, s.spec.env, log);
  if (!pid) {
    s.st.last_error = pid.error().message;
    spdlog::warn("workload {} spawn failed: {}", s.spec.name, s.st.last_error);
    schedule_restart(s, "spawn failed");
    s.st.state = WorkloadState::kFailed;
    return;
  }
  s.st.pid = *pid;
  s.st.last_error.clear();
  s.started = now;
  s.kill_sent = false;
  s.st.state = s.spec.health_tcp_port != 0 ? WorkloadState::kStarting : WorkloadState::kRunning;
  s.next_health = now;
  spdlog::info("workload {} started pid={} kind={} version={}", s.spec.name, *pid, s.spec.kind,
               s.spec.version);
}

void Supervisor::schedule_restart(Slot& s, const std::string& why) {
  const auto now = clock_.now();
  // A workload that ran for longer than the maximum backoff was healthy: start over.
  if (s.started != TimePoint{} && now - s.started > opts_.backoff_max) s.backoff = Duration{0};
  s.exits.push_back(now);
  while (!s.exits.empty() && now - s.exits.front() > opts_.crash_loop_window) s.exits.pop_front();
  s.backoff = s.backoff.count() == 0 ? opts_.backoff_initial
                                     : std::min<Duration>(s.backoff * 2, opts_.backoff_max);
  if (s.exits.size() >= opts_.crash_loop_threshold) {
    s.backoff = opts_.backoff_max;
    s.st.state = WorkloadState::kCrashLoop;
    spdlog::error("workload {} is crash-looping ({} exits in {} s; last: {}), retry in {} s",
                  s.spec.name, s.exits.size(),
                  std::chrono::duration_cast<std::chrono::seconds>(opts_.crash_loop_window).count(),
                  why, std::chrono::duration_cast<std::chrono::seconds>(s.backoff).count());
  } else {
    s.st.state = WorkloadState::kBackoff;
    spdlog::warn("workload {} ended ({}), restart in {} ms", s.spec.name, why,
                 std::chrono::duration_cast<std::chrono::milliseconds>(s.backoff).count());
  }
  s.st.restarts++;
  s.next_start = now + s.backoff;
}

void Supervisor::set_desired(const std::vector<WorkloadSpec>& desired) {
  const auto now = clock_.now();
  std::set<std::string> names;
  for (const auto& d : desired) names.insert(d.name);
  for (auto it = slots_.begin(); it != slots_.end();) {
    Slot& s = *it->second;
    if (names.count(it->first) != 0) {
      ++it;
      continue;
    }
    s.desired = false;
    s.pending.reset();
    if (s.st.pid == 0) {
      spdlog::info("workload {} removed", it->first);
      it = slots_.erase(it);
      continue;
    }
    if (s.st.state != WorkloadState::kStopping) {
      backend_.signal(s.st.pid, SIGTERM);
      s.st.state = WorkloadState::kStopping;
      s.stop_deadline = now + opts_.stop_grace;
      spdlog::info("workload {} stopping (no longer assigned)", it->first);
    }
    ++it;
  }
  for (const auto& d : desired) {
    auto it = slots_.find(d.name);
    if (it == slots_.end()) {
      auto s = std::make_unique<Slot>();
      s->spec = d;
      s->st.name = d.name;
      Slot& ref = *s;
      slots_.emplace(d.name, std::move(s));
      start(ref);
      continue;
    }
    Slot& s = *it->second;
    s.desired = true;
    if (s.spec == d && !s.pending) continue;
    if (s.st.pid == 0) {
      s.spec = d;
      s.backoff = Duration{0};
      s.exits.clear();
      start(s);
      continue;
    }
    s.pending = d;  // changed (or re-added while stopping): restart with the new spec
    if (s.st.state != WorkloadState::kStopping) {
      backend_.signal(s.st.pid, SIGTERM);
      s.st.state = WorkloadState::kStopping;
      s.stop_deadline = now + opts_.stop_grace;
      spdlog::info("workload {} restarting for version {}", d.name, d.version);
    }
  }
}

void Supervisor::tick() {
  const auto now = clock_.now();
  for (auto it = slots_.begin(); it != slots_.end();) {
    Slot& s = *it->second;
    if (s.st.pid != 0) {
      if (auto ex = backend_.poll_exit(s.st.pid)) {
        s.st.pid = 0;
        s.st.last_exit = *ex;
        if (s.st.state == WorkloadState::kStopping) {
          if (s.pending) {
            s.spec = *s.pending;
            s.pending.reset();
            s.backoff = Duration{0};
            s.exits.clear();
            start(s);
          } else if (!s.desired) {
            spdlog::info("workload {} stopped ({})", it->first, *ex);
            it = slots_.erase(it);
            continue;
          } else {
            schedule_restart(s, *ex);
          }
        } else {
          schedule_restart(s, *ex);
        }
      } else if (s.st.state == WorkloadState::kStopping && !s.kill_sent && now >= s.stop_deadline) {
        spdlog::warn("workload {} did not stop within the grace period: SIGKILL", it->first);
        backend_.signal(s.st.pid, SIGKILL);
        s.kill_sent = true;
      } else if (s.spec.health_tcp_port != 0 && s.st.state != WorkloadState::kStopping &&
                 now >= s.next_health) {
        s.next_health = now + opts_.health_interval;
        const bool ok = backend_.tcp_healthy(s.spec.health_tcp_port);
        if (ok) {
          s.st.state = WorkloadState::kRunning;
        } else if (s.st.state == WorkloadState::kRunning) {
          s.st.state = WorkloadState::kUnhealthy;
          spdlog::warn("workload {} health check failed (tcp {})", it->first,
                       s.spec.health_tcp_port);
        }
      }
    } else if (s.desired && now >= s.next_start &&
               (s.st.state == WorkloadState::kBackoff || s.st.state == WorkloadState::kCrashLoop ||
                s.st.state == WorkloadState::kFailed)) {
      start(s);
    }
    ++it;
  }
}

std::vector<WorkloadStatus> Supervisor::status() const {
  std::vector<WorkloadStatus> out;
  out.reserve(slots_.size());
  for (const auto& [name, s] : slots_) out.push_back(s->st);
  return out;
}

bool Supervisor::idle() const {
  return std::all_of(slots_.begin(), slots_.end(),
                     [](const auto& kv) { return kv.second->st.pid == 0; });
}

bool Supervisor::stop() {
  set_desired({});
  const auto limit = std::chrono::steady_clock::now() + opts_.stop_grace + std::chrono::seconds(1);
  while (!slots_.empty() && std::chrono::steady_clock::now() < limit) {
    tick();
    if (slots_.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Past the grace period on a manual clock: force what is left.
  for (auto& [name, s] : slots_) {
    if (s->st.pid == 0) continue;
    backend_.signal(s->st.pid, SIGKILL);
    for (int i = 0; i < 50 && !backend_.poll_exit(s->st.pid); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // reap: no zombies left
    }
  }
  const bool clean = slots_.empty();
  slots_.clear();
  return clean;
}

}  // namespace rap::agent
