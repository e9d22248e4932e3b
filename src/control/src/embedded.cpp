#include "rap/control/embedded.h"

#include <fcntl.h>
#include <grp.h>
#include <hiredis/hiredis.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <pqxx/pqxx>
#include <thread>
#include <vector>

#include "sigpipe_guard.h"

extern char** environ;

namespace rap::control {

namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

constexpr int kPgPort = 5432;  // only names the socket file; there is no TCP listener

std::string errno_text(int e) {
  return std::strerror(e);
}

struct UserIds {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

Result<UserIds> lookup_user(const std::string& user) {
  passwd pw{};
  passwd* res = nullptr;
  std::vector<char> buf(16384);
  if (::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &res) != 0 || res == nullptr)
    return fail("embedded_error", "no such user: " + user + " (apt-get install postgresql)");
  UserIds ids{pw.pw_uid, pw.pw_gid, {}};
  int n = 64;
  ids.groups.resize(static_cast<std::size_t>(n));
  if (::getgrouplist(user.c_str(), pw.pw_gid, ids.groups.data(), &n) < 0) n = 0;
  ids.groups.resize(static_cast<std::size_t>(n));
  if (ids.groups.empty()) ids.groups.push_back(pw.pw_gid);
  return ids;
}

Result<std::string> find_executable(const std::string& name,
                                    const std::vector<std::string>& extra_dirs) {
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) == 0) return name;
    return fail("embedded_error", "cannot execute " + name);
  }
  std::vector<std::string> dirs;
  if (const char* p = std::getenv("PATH")) {
    std::string path = p;
    std::size_t start = 0;
    while (start <= path.size()) {
      const auto colon = path.find(':', start);
      dirs.push_back(path.substr(start, colon - start));
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
  }
  dirs.insert(dirs.end(), extra_dirs.begin(), extra_dirs.end());
  for (const auto& d : dirs) {
    if (d.empty()) continue;
    std::string cand = d;
    cand.append("/").append(name);
    if (::access(cand.c_str(), X_OK) == 0) return cand;
  }
  return fail("embedded_error", name + " not found in PATH");
}

Result<std::string> find_pg_bin_dir() {
  if (const char* env = std::getenv("RAP_PG_BINDIR"); env != nullptr && *env != '\0') {
    if (::access((std::string(env) + "/initdb").c_str(), X_OK) == 0) return std::string(env);
    return fail("embedded_error", std::string("RAP_PG_BINDIR=") + env + " has no initdb");
  }
  std::error_code ec;
  long best = -1;
  std::string best_dir;
  for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() ||
        !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    const long v = std::strtol(name.c_str(), nullptr, 10);
    const std::string bin = (e.path() / "bin").string();
    if (v > best && ::access((bin + "/initdb").c_str(), X_OK) == 0 &&
        ::access((bin + "/postgres").c_str(), X_OK) == 0) {
      best = v;
      best_dir = bin;
    }
  }
  if (best < 0)
    return fail("embedded_error",
                "no /usr/lib/postgresql/<version>/bin/initdb (apt-get install postgresql)");
  return best_dir;
}

// Forks and execs `argv` in its own process group, stdin from /dev/null, stdout+stderr appended
// to `log`, optionally as `user`, with `death_signal` when this thread dies.
Result<pid_t> spawn(const std::vector<std::string>& argv, const std::string& log,
                    const std::optional<UserIds>& user, const std::string& cwd, int death_signal) {
  RAP_ASSERT(!argv.empty());
  // Everything the child needs is prepared before fork (only async-signal-safe calls after).
  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view kv = *e;
    if (kv.starts_with("LC_ALL=") || kv.starts_with("LANG=")) continue;
    env_strings.emplace_back(kv);
  }
  env_strings.emplace_back("LC_ALL=C");
  env_strings.emplace_back("LANG=C");
  std::vector<char*> cargv;
  std::vector<std::string> args = argv;
  cargv.reserve(args.size() + 1);
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::vector<char*> cenv;
  cenv.reserve(env_strings.size() + 1);
  for (auto& e : env_strings) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (out < 0) return fail("embedded_error", "cannot open " + log + ": " + errno_text(errno));
  if (user) (void)!::fchown(out, user->uid, user->gid);
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int errpipe[2] = {-1, -1};
  if (devnull < 0 || ::pipe2(errpipe, O_CLOEXEC) != 0) {
    const int e = errno;
    ::close(out);
    if (devnull >= 0) ::close(devnull);
    return fail("embedded_error", "pipe: " + errno_text(e));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    ::close(out);
    ::close(devnull);
    ::close(errpipe[0]);
    ::close(errpipe[1]);
    return fail("embedded_error", "fork: " + errno_text(e));
  }
  if (pid == 0) {
    auto die = [&](int stage) {
      const int msg[2] = {stage, errno};
      (void)!::write(errpipe[1], msg, sizeof msg);
      ::_exit(127);
    };
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s) {
      if (s != SIGKILL && s != SIGSTOP) ::sigaction(s, &dfl, nullptr);
    }
    if (::dup2(devnull, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) die(1);
    if (::chdir(cwd.c_str()) != 0) die(2);
    if (user) {
      if (::setgroups(user->groups.size(), user->groups.data()) != 0 || ::setgid(user->gid) != 0 ||
          ::setuid(user->uid) != 0)
        die(3);
    }
    if (::prctl(PR_SET_PDEATHSIG, death_signal) != 0) die(4);
    if (::getppid() != parent) ::_exit(126);
    ::execve(cargv[0], cargv.data(), cenv.data());
    die(5);
  }
  ::setpgid(pid, pid);
  ::close(out);
  ::close(devnull);
  ::close(errpipe[1]);
  int msg[2] = {0, 0};
  ssize_t n = 0;
  do {
    n = ::read(errpipe[0], msg, sizeof msg);
  } while (n < 0 && errno == EINTR);
  ::close(errpipe[0]);
  if (n > 0) {
    int st = 0;
    ::waitpid(pid, &st, 0);
    static const char* const stages[] = {"", "dup2", "chdir", "setuid", "prctl", "execve"};
    return fail("embedded_error", "cannot start " + argv[0] + ": " +
                                      stages[std::clamp(msg[0], 0, 5)] + ": " + errno_text(msg[1]));
  }
  return pid;
}

int decode_status(int st) {
  return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 255;
}

// Runs to completion (bounded); returns the exit status.
Result<int> run_to_end(const std::vector<std::string>& argv, const std::string& log,
                       const std::optional<UserIds>& user, const std::string& cwd,
                       std::chrono::milliseconds timeout) {
  auto pid = spawn(argv, log, user, cwd, SIGKILL);
  if (!pid) return tl::unexpected(pid.error());
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    int st = 0;
    const pid_t r = ::waitpid(*pid, &st, WNOHANG);
    if (r == *pid) return decode_status(st);
    if (r < 0 && errno != EINTR) return fail("embedded_error", "waitpid: " + errno_text(errno));
    if (SteadyClock::now() > deadline) {
      ::kill(-*pid, SIGKILL);
      ::waitpid(*pid, &st, 0);
      return fail("embedded_error", argv[0] + " timed out");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::string log_tail(Env& env, const std::string& path) {
  auto s = env.read_file(path);
  if (!s) return "";
  return s->size() > 2000 ? s->substr(s->size() - 2000) : *s;
}

// The postgres user must be able to walk down to `dir` (each ancestor searchable by others).
Result<void> check_traversable(const std::string& dir) {
  fs::path p = fs::path(dir).parent_path();
  for (; !p.empty() && p != p.root_path(); p = p.parent_path()) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0)
      return fail("embedded_error", "cannot stat " + p.string() + ": " + errno_text(errno));
    if ((st.st_mode & S_IXOTH) == 0)
      return fail("embedded_error",
                  "the postgres user cannot reach the data directory: " + p.string() +
                      " is not searchable by others (chmod o+x it, or choose another --data-dir)");
  }
  return {};
}

bool sun_path_fits(const std::string& path) {
  return path.size() < sizeof(sockaddr_un{}.sun_path);
}

bool redis_ping(const std::string& socket_path) {
  detail::SigpipeGuard no_sigpipe;
  const timeval tv{1, 0};
  redisContext* c = redisConnectUnixWithTimeout(socket_path.c_str(), tv);
  if (c == nullptr) return false;
  bool ok = false;
  if (c->err == 0) {
    redisSetTimeout(c, tv);
    auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
    ok = r != nullptr && r->type == REDIS_REPLY_STATUS && std::string_view(r->str) == "PONG";
    if (r != nullptr) freeReplyObject(r);
  }
  redisFree(c);
  return ok;
}

}  // namespace

EmbeddedServices::EmbeddedServices(EmbeddedOptions opts, Env& env)
    : opts_(std::move(opts)), env_(env) {}

EmbeddedServices::~EmbeddedServices() {
  stop();
}

std::string EmbeddedServices::database_url() const {
  return "host=" + pg_dir_ + " port=" + std::to_string(kPgPort) + " dbname=" + opts_.database +
         " user=postgres";
}

std::string EmbeddedServices::redis_url() const {
  return opts_.start_redis ? "unix://" + redis_dir_ + "/redis.sock" : "";
}

Result<void> EmbeddedServices::start() {
  RAP_ASSERT(pg_.pid < 0 && redis_.pid < 0);
  if (opts_.data_dir.empty()) return fail("embedded_error", "no data directory");
  std::error_code ec;
  root_ = fs::absolute(opts_.data_dir, ec).lexically_normal().string();
  if (ec) return fail("embedded_error", "bad data directory: " + ec.message());
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  pg_dir_ = root_ + "/postgres";
  redis_dir_ = root_ + "/redis";
  if (!sun_path_fits(pg_dir_ + "/.s.PGSQL." + std::to_string(kPgPort)) ||
      !sun_path_fits(redis_dir_ + "/redis.sock"))
    return fail("embedded_error", "data directory path too long for unix sockets: " + root_);

  auto bin = opts_.pg_bin_dir.empty() ? find_pg_bin_dir() : Result<std::string>(opts_.pg_bin_dir);
  if (!bin) return tl::unexpected(bin.error());
  pg_bin_ = *bin;

  const bool root_user = ::geteuid() == 0;
  run_as_ = root_user ? "postgres" : "";
  // The root stays private; as root it must be searchable for the postgres user (0711: no
  // listing). Every subdirectory is 0700.
  if (auto r = env_.make_dirs(root_, root_user ? 0711 : 0700); !r) return r;
  if (root_user) {
    ::chmod(root_.c_str(), 0711);
    if (auto r = check_traversable(root_); !r) return r;
  }
  if (auto r = env_.make_dirs(pg_dir_, 0700); !r) return r;
  if (root_user) {
    auto ids = lookup_user(run_as_);
    if (!ids) return tl::unexpected(ids.error());
    // Recursively: an earlier run may have left files owned by someone else (e.g. a log).
    if (::chown(pg_dir_.c_str(), ids->uid, ids->gid) != 0)
      return fail("embedded_error", "chown " + pg_dir_ + ": " + errno_text(errno));
    try {
      for (const auto& e : fs::recursive_directory_iterator(pg_dir_, ec)) {
        (void)!::lchown(e.path().c_str(), ids->uid, ids->gid);
      }
    } catch (const std::exception& e) {
      return fail("embedded_error", "cannot walk " + pg_dir_ + ": " + e.what());
    }
  }
  ::chmod(pg_dir_.c_str(), 0700);

  if (auto r = start_postgres(); !r) {
    stop();
    return r;
  }
  if (auto r = create_database(); !r) {
    stop();
    return r;
  }
  if (opts_.start_redis) {
    if (auto r = start_redis(); !r) {
      stop();
      return r;
    }
  }
  return {};
}

Result<void> EmbeddedServices::start_postgres() {
  std::optional<UserIds> user;
  if (!run_as_.empty()) {
    auto ids = lookup_user(run_as_);
    if (!ids) return tl::unexpected(ids.error());
    user = std::move(*ids);
  }
  const std::string data = postgres_data_dir();
  const std::string log = pg_dir_ + "/postgres.log";
  if (env_.exists(data + "/PG_VERSION")) {
    spdlog::info("embedded postgres: reusing the existing cluster in {}", data);
    initialized_now_ = false;
  } else {
    std::error_code ec;
    if (env_.exists(data) && !fs::is_empty(data, ec)) {
      return fail("embedded_error", data +
                                        " exists but holds no PostgreSQL cluster (no PG_VERSION); "
                                        "move it away to let rap-control initialize a new one");
    }
    spdlog::info("embedded postgres: initdb {} (first start)", data);
    auto st = run_to_end({pg_bin_ + "/initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E",
                          "UTF8", "--locale=C"},
                         pg_dir_ + "/initdb.log", user, pg_dir_, opts_.start_timeout);
    if (!st) return tl::unexpected(st.error());
    if (*st != 0)
      return fail("embedded_error", "initdb failed (exit " + std::to_string(*st) + "), see " +
                                        pg_dir_ + "/initdb.log:\n" +
                                        log_tail(env_, pg_dir_ + "/initdb.log"));
    initialized_now_ = true;
  }
  // Postmaster: SIGQUIT (immediate shutdown, children included) if rap-control dies.
  auto pid = spawn({pg_bin_ + "/postgres", "-D", data, "-k", pg_dir_, "-p", std::to_string(kPgPort),
                    "-c", "listen_addresses=", "-c", "unix_socket_permissions=0700"},
                   log, user, pg_dir_, SIGQUIT);
  if (!pid) return tl::unexpected(pid.error());
  pg_.pid = *pid;
  pg_.status.reset();
  spdlog::info("embedded postgres: started pid={} socket_dir={} log={}", pg_.pid, pg_dir_, log);

  const std::string ping_ci = "host=" + pg_dir_ + " port=" + std::to_string(kPgPort) +
                              " dbname=postgres user=postgres connect_timeout=2";
  const auto deadline = SteadyClock::now() + opts_.start_timeout;
  for (;;) {
    try {
      pqxx::connection probe(ping_ci);
      return {};
    } catch (const std::exception&) {
      // not accepting connections yet
    }
    if (reap(pg_, false))
      return fail("embedded_error", "postgres exited with status " +
                                        std::to_string(pg_.status.value_or(-1)) + ", see " + log +
                                        ":\n" + log_tail(env_, log));
    if (SteadyClock::now() > deadline)
      return fail("embedded_error", "postgres did not accept connections in time, see " + log);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Result<void> EmbeddedServices::create_database() {
  try {
    pqxx::connection c("host=" + pg_dir_ + " port=" + std::to_string(kPgPort) +
                       " dbname=postgres user=postgres connect_timeout=5");
    pqxx::nontransaction t(c);
    auto rows = t.exec_params("SELECT 1 FROM pg_database WHERE datname = $1", opts_.database);
    if (rows.empty()) {
      t.exec("CREATE DATABASE " + t.quote_name(opts_.database));
      spdlog::info("embedded postgres: created database {}", opts_.database);
    }
    return {};
  } catch (const std::exception& e) {
    return fail("embedded_error", std::string("cannot create the database: ") + e.what());
  }
}

Result<void> EmbeddedServices::start_redis() {
  if (auto r = env_.make_dirs(redis_dir_, 0700); !r) return r;
  ::chmod(redis_dir_.c_str(), 0700);
  auto bin = find_executable(opts_.redis_server.empty() ? "redis-server" : opts_.redis_server,
                             {"/usr/bin", "/usr/sbin", "/usr/local/bin"});
  if (!bin) return fail(bin.error().code, bin.error().message + " (apt-get install redis-server)");
  const std::string sock = redis_dir_ + "/redis.sock";
  const std::string log = redis_dir_ + "/redis.log";
  // Live state only: no RDB/AOF persistence (losing it loses nothing durable).
  auto pid = spawn({*bin, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--dir",
                    redis_dir_, "--daemonize", "no", "--save", "", "--appendonly", "no"},
                   log, std::nullopt, redis_dir_, SIGTERM);
  if (!pid) return tl::unexpected(pid.error());
  redis_.pid = *pid;
  redis_.status.reset();
  spdlog::info("embedded redis: started pid={} socket={} log={}", redis_.pid, sock, log);
  const auto deadline = SteadyClock::now() + opts_.start_timeout;
  for (;;) {
    if (redis_ping(sock)) return {};
    if (reap(redis_, false))
      return fail("embedded_error", "redis-server exited with status " +
                                        std::to_string(redis_.status.value_or(-1)) + ", see " +
                                        log + ":\n" + log_tail(env_, log));
    if (SteadyClock::now() > deadline)
      return fail("embedded_error", "redis-server did not answer in time, see " + log);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

bool EmbeddedServices::reap(Child& c, bool block) {
  if (c.pid < 0 || c.status) return c.status.has_value();
  int st = 0;
  pid_t r = 0;
  do {
    r = ::waitpid(c.pid, &st, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == c.pid) {
    c.status = decode_status(st);
  } else if (r < 0) {
    c.status = 255;  // ECHILD: not ours any more
  }
  return c.status.has_value();
}

void EmbeddedServices::keep_reachable() {
  if (::geteuid() == 0 && !root_.empty()) ::chmod(root_.c_str(), 0711);
}

Result<void> EmbeddedServices::check() {
  for (Child* c : {&pg_, &redis_}) {
    if (c->pid > 0 && reap(*c, false)) {
      return fail("embedded_child_exited", "embedded " + c->name + " (pid " +
                                               std::to_string(c->pid) + ") exited with status " +
                                               std::to_string(*c->status));
    }
  }
  return {};
}

void EmbeddedServices::stop_child(Child& c) {
  if (c.pid < 0) return;
  if (!reap(c, false)) {
    ::kill(c.pid, c.stop_signal);
    const auto deadline = SteadyClock::now() + opts_.stop_timeout;
    while (!reap(c, false) && SteadyClock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!c.status) {
      spdlog::warn("embedded {}: no exit after {} ms, killing", c.name, opts_.stop_timeout.count());
      ::kill(-c.pid, SIGKILL);
      reap(c, true);
    } else {
      spdlog::info("embedded {}: stopped (status {})", c.name, *c.status);
    }
  }
  // No group kill after a clean exit: with the leader reaped the group id may be reused.
  c.pid = -1;
  c.status.reset();
}

void EmbeddedServices::stop() {
  stop_child(redis_);
  stop_child(pg_);
}

}  // namespace rap::control
