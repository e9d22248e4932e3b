#include "rap/testing/subprocess.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <pwd.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

#include "rap/testing/temp_dir.h"

extern char** environ;

namespace rap::testing {

namespace {

using Clock = std::chrono::steady_clock;

std::string errno_str(int e) {
  return std::strerror(e);
}

Result<std::string> resolve_binary(const std::string& name) {
  if (name.empty()) return fail("bad_argument", "empty argv[0]");
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) != 0) {
      return fail("not_found", "cannot execute " + name + ": " + errno_str(errno));
    }
    return name;
  }
  const char* env_path = std::getenv("PATH");
  std::string path = env_path ? env_path : "/usr/local/bin:/usr/bin:/bin";
  path += ":/usr/local/sbin:/usr/sbin:/sbin";
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string cand = dir + "/" + name;
    struct stat st {};
    if (::stat(cand.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(cand.c_str(), X_OK) == 0) {
      return cand;
    }
  }
  return fail("not_found", "command not found in PATH (+/usr/sbin:/sbin): " + name);
}

struct UserIds {
  uid_t uid;
  gid_t gid;
  std::vector<gid_t> groups;
};

Result<UserIds> lookup_user(const std::string& user) {
  struct passwd pw {};
  struct passwd* res = nullptr;
  std::vector<char> buf(16384);
  if (::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &res) != 0 || res == nullptr) {
    return fail("no_such_user", "no such user: " + user);
  }
  UserIds ids{pw.pw_uid, pw.pw_gid, {}};
  int n = 64;
  ids.groups.resize(static_cast<size_t>(n));
  if (::getgrouplist(user.c_str(), pw.pw_gid, ids.groups.data(), &n) < 0) {
    ids.groups.resize(static_cast<size_t>(n));
    if (::getgrouplist(user.c_str(), pw.pw_gid, ids.groups.data(), &n) < 0) n = 0;
  }
  ids.groups.resize(static_cast<size_t>(n));
  if (ids.groups.empty()) ids.groups.push_back(pw.pw_gid);
  return ids;
}

// Failure report from the child, written to the CLOEXEC error pipe.
struct ChildError {
  int stage;
  int err;
};

const char* stage_name(int stage) {
  switch (stage) {
    case 1:
      return "setns";
    case 2:
      return "dup2";
    case 3:
      return "chdir";
    case 4:
      return "setgroups/setgid/setuid";
    case 5:
      return "prctl";
    case 6:
      return "execve";
    default:
      return "setup";
  }
}

[[noreturn]] void child_fail(int errfd, int stage) {
  ChildError ce{stage, errno};
  ssize_t w = ::write(errfd, &ce, sizeof ce);
  (void)w;
  ::_exit(127);
}

}  // namespace

std::string shell_join(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty() &&
                 a.find_first_not_of(
                     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") ==
                     std::string::npos;
    if (plain) {
      out += a;
    } else {
      out += '\'';
      for (char c : a) {
        if (c == '\'')
          out += "'\\''";
        else
          out += c;
      }
      out += '\'';
    }
  }
  return out;
}

Result<Subprocess> Subprocess::spawn(std::vector<std::string> argv, SubprocessOptions opts) {
  if (argv.empty()) return fail("bad_argument", "Subprocess::spawn: empty argv");
  auto bin = resolve_binary(argv[0]);
  if (!bin) return tl::unexpected(bin.error());

  std::optional<UserIds> ids;
  if (opts.user) {
    auto u = lookup_user(*opts.user);
    if (!u) return tl::unexpected(u.error());
    ids = std::move(*u);
  }

  // Environment.
  std::vector<std::string> env_strings;
  if (opts.inherit_env) {
    for (char** e = environ; e && *e; ++e) {
      std::string kv = *e;
      std::string key = kv.substr(0, kv.find('='));
      bool overridden = false;
      for (const auto& [k, v] : opts.env) overridden = overridden || k == key;
      if (!overridden) env_strings.push_back(std::move(kv));
    }
  }
  for (const auto& [k, v] : opts.env) env_strings.push_back(k + "=" + v);

  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::vector<char*> cenv;
  for (auto& e : env_strings) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  // Everything the child needs is opened here, before fork.
  int netns_fd = -1;
  if (opts.netns) {
    std::string p = "/var/run/netns/" + *opts.netns;
    netns_fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (netns_fd < 0) return fail("netns_error", "cannot open " + p + ": " + errno_str(errno));
  }
  auto close_fd = [](int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  };
  int out_fd = -1;
  bool own_out = false;
  if (opts.output_fd >= 0) {
    out_fd = opts.output_fd;
  } else if (opts.output_file) {
    out_fd = ::open(opts.output_file->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out_fd < 0) {
      int e = errno;
      close_fd(netns_fd);
      return fail("io_error",
                  "cannot open output file " + opts.output_file->string() + ": " + errno_str(e));
    }
    own_out = true;
  }
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int errpipe[2] = {-1, -1};
  if (devnull < 0 || ::pipe2(errpipe, O_CLOEXEC) != 0) {
    int e = errno;
    close_fd(netns_fd);
    if (own_out) close_fd(out_fd);
    close_fd(devnull);
    return fail("io_error", std::string("pipe/open /dev/null: ") + errno_str(e));
  }
  std::string cwd = opts.cwd ? opts.cwd->string() : std::string();
  const pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    close_fd(netns_fd);
    if (own_out) close_fd(out_fd);
    close_fd(devnull);
    close_fd(errpipe[0]);
    close_fd(errpipe[1]);
    return fail("spawn_failed", "fork: " + errno_str(e));
  }
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s) {
      if (s == SIGKILL || s == SIGSTOP) continue;
      ::sigaction(s, &dfl, nullptr);
    }
    if (netns_fd >= 0 && ::setns(netns_fd, CLONE_NEWNET) != 0) child_fail(errpipe[1], 1);
    if (::dup2(devnull, 0) < 0) child_fail(errpipe[1], 2);
    if (out_fd >= 0) {
      if (::dup2(out_fd, 1) < 0 || ::dup2(out_fd, 2) < 0) child_fail(errpipe[1], 2);
    }
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) child_fail(errpipe[1], 3);
    if (ids) {
      if (::setgroups(ids->groups.size(), ids->groups.data()) != 0 || ::setgid(ids->gid) != 0 ||
          ::setuid(ids->uid) != 0) {
        child_fail(errpipe[1], 4);
      }
    }
    // After the credential change (which clears it).
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(errpipe[1], 5);
    if (::getppid() != parent) ::_exit(126);
    ::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execve(bin->c_str(), cargv.data(), cenv.data());
    child_fail(errpipe[1], 6);
  }

  // Parent.
  ::setpgid(pid, pid);  // also done by the child; whichever runs first wins the race
  close_fd(errpipe[1]);
  close_fd(netns_fd);
  if (own_out) close_fd(out_fd);
  close_fd(devnull);
  ChildError ce{};
  ssize_t n;
  do {
    n = ::read(errpipe[0], &ce, sizeof ce);
  } while (n < 0 && errno == EINTR);
  close_fd(errpipe[0]);
  if (n > 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::string msg = "cannot start `" + shell_join(argv) + "`: " + stage_name(ce.stage) + ": " +
                      errno_str(ce.err);
    if (opts.netns) msg += " (netns " + *opts.netns + ")";
    if (opts.user) msg += " (user " + *opts.user + ")";
    return fail("spawn_failed", msg);
  }

  Subprocess sp;
  sp.pid_ = pid;
  sp.argv_ = std::move(argv);
  sp.output_file_ = opts.output_fd >= 0 ? std::nullopt : opts.output_file;
  sp.term_grace_ = opts.term_grace;
  return sp;
}

Subprocess::Subprocess(Subprocess&& o) noexcept
    : pid_(o.pid_),
      status_(o.status_),
      argv_(std::move(o.argv_)),
      output_file_(std::move(o.output_file_)),
      term_grace_(o.term_grace_) {
  o.pid_ = -1;
}

Subprocess& Subprocess::operator=(Subprocess&& o) noexcept {
  if (this != &o) {
    cleanup();
    pid_ = o.pid_;
    status_ = o.status_;
    argv_ = std::move(o.argv_);
    output_file_ = std::move(o.output_file_);
    term_grace_ = o.term_grace_;
    o.pid_ = -1;
  }
  return *this;
}

Subprocess::~Subprocess() {
  cleanup();
}

void Subprocess::cleanup() noexcept {
  if (pid_ <= 0) return;
  terminate(term_grace_);
  pid_ = -1;
}

std::optional<int> Subprocess::wait_exit(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  if (pid_ <= 0) return std::nullopt;
  const auto deadline = Clock::now() + timeout;
  auto nap = std::chrono::microseconds(500);
  for (;;) {
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 255;
      return status_;
    }
    if (r < 0 && errno != EINTR) {
      // ECHILD: someone else reaped it. Treat as gone with an unknown status.
      status_ = 255;
      return status_;
    }
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(nap);
    nap = std::min<std::chrono::microseconds>(nap * 2, std::chrono::milliseconds(20));
  }
}

bool Subprocess::running() {
  return pid_ > 0 && !wait_exit(std::chrono::milliseconds(0));
}

void Subprocess::kill(int sig) {
  if (pid_ <= 0) return;
  ::kill(-pid_, sig);
  if (!status_) ::kill(pid_, sig);  // in case setpgid lost a race with exec
}

int Subprocess::terminate(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return status_.value_or(-1);
  if (!status_) {
    kill(SIGTERM);
    if (!wait_exit(grace)) {
      kill(SIGKILL);
      if (!wait_exit(std::chrono::seconds(30))) {
        std::fprintf(stderr, "rap::testing::Subprocess: pid %d survived SIGKILL for 30s\n", pid_);
      }
    }
  }
  // Stragglers in the group (forked helpers) die too.
  ::kill(-pid_, SIGKILL);
  return status_.value_or(-1);
}

std::string Subprocess::output() const {
  if (!output_file_) return {};
  auto r = read_text_file(*output_file_);
  return r ? *r : std::string();
}

Result<void> Subprocess::wait_for_output(std::string_view needle,
                                         std::chrono::milliseconds timeout) {
  if (!output_file_)
    return fail("bad_argument", "wait_for_output needs SubprocessOptions::output_file");
  const auto deadline = Clock::now() + timeout;
  auto tail = [](const std::string& s) { return s.size() > 2000 ? s.substr(s.size() - 2000) : s; };
  for (;;) {
    std::string out = output();
    if (out.find(needle) != std::string::npos) return {};
    if (!running()) {
      out = output();
      if (out.find(needle) != std::string::npos) return {};
      return fail("process_exited", "`" + shell_join(argv_) + "` exited with status " +
                                        std::to_string(status_.value_or(-1)) +
                                        " before printing '" + std::string(needle) +
                                        "'; output:\n" + tail(out));
    }
    if (Clock::now() >= deadline) {
      return fail("timeout", "`" + shell_join(argv_) + "` did not print '" + std::string(needle) +
                                 "' within " + std::to_string(timeout.count()) + " ms; output:\n" +
                                 tail(out));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool process_alive(pid_t pid) {
  if (pid <= 0) return false;
  auto stat = read_text_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  auto rp = stat->rfind(')');
  if (rp == std::string::npos || rp + 2 >= stat->size()) return false;
  char state = (*stat)[rp + 2];
  return state != 'Z' && state != 'X' && state != 'x';
}

CommandResult run_command(const std::vector<std::string>& argv, const RunOptions& options) {
  CommandResult res;
  int mfd = ::memfd_create("rap-run-command", MFD_CLOEXEC);
  if (mfd < 0) {
    res.output = std::string("memfd_create: ") + std::strerror(errno);
    return res;
  }
  SubprocessOptions so;
  so.netns = options.netns;
  so.user = options.user;
  so.cwd = options.cwd;
  so.env = options.env;
  so.output_fd = mfd;
  so.term_grace = std::chrono::milliseconds(500);
  auto sp = Subprocess::spawn(argv, so);
  if (!sp) {
    ::close(mfd);
    res.output = sp.error().message;
    return res;
  }
  auto st = sp->wait_exit(options.timeout);
  if (!st) {
    sp->terminate(std::chrono::milliseconds(500));
    res.timed_out = true;
  } else {
    res.exit_code = *st;
  }
  std::string out;
  char buf[8192];
  off_t off = 0;
  for (;;) {
    ssize_t n = ::pread(mfd, buf, sizeof buf, off);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  ::close(mfd);
  res.output = std::move(out);
  if (res.timed_out) {
    res.output += "\n[rap::testing::run_command: `" + shell_join(argv) + "` timed out after " +
                  std::to_string(options.timeout.count()) + " ms and was killed]";
  }
  return res;
}

}  // namespace rap::testing
