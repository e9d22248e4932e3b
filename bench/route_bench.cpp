// TCP access through the mesh (issue 7; docs/PROTOCOL.md §14) on loopback, every figure beside its
// baselines measured in the same run:
//   (a) ours, entry -> exit            app -> local listener piping into IngressClient (what
//   (b) ours, entry -> relay -> exit     `rapctl connect` does) -> TLS 1.3 -> entry -> fabric
//                                         session(s) -> exit -> target, e2e ChaCha20-Poly1305.
//                                         The bulk and the interactive connection use two
//                                         forwarder threads, as two `rapctl connect` processes
//                                         (one per --class) do; --one-forwarder: one for both
//   (c) ssh -L through a private sshd on 127.0.0.1 (OpenSSH defaults, one ssh connection)
//   (d) a stunnel client/server pair (TLS 1.3 between them)
//   (e) raw TCP straight to the target (the ceiling)
//   (f) ours, entry -> exit from a service workload on the entry node: app -> the workload's TCP
//       listener -> the node's local stream API (Unix socket, PROTOCOL.md §14.6) -> entry ->
//       fabric session -> exit -> target. The same shape as (c) and (d) (the app's host runs the
//       first hop), and against (a) it prices the local hop.
//   (g) ours, entry -> exit through an entry-node listener (`rapctl connect --local-entry`): app
//       -> a loopback port the entry node itself listens on -> fabric session -> exit -> target.
//       Two processes in the path like (d): the shape of the issue's "entry -> exit" target.
// Figures: throughput of one bulk transfer (the target acknowledges after the last byte), and
// 64-byte request/response round trips idle and while a bulk transfer runs on the same route
// (ours: a "bulk" class connection and an "interactive" one through the same entry/exit; ssh -L:
// both forwarded connections on the same ssh connection; stunnel: two TLS connections).
//
// The nodes are real MeshNodes with real TLS fabric sessions, signed leases, grants and tickets
// (as in tests/mesh/route_test.cpp), each on its own thread like separate processes; the
// client-side forwarder, the target and the driver have their own threads too.
// Also: CPU seconds per GB of every thread / process of each path during its bulk transfer, and
// two controls for the loaded latency (our interactive round trips while an unrelated stunnel
// bulk runs; and while our bulk takes the relayed route, i.e. other fabric sessions).
// Under each loaded round trip: the share of CPU time the hypervisor stole meanwhile
// (/proc/stat), and the mean runqueue wait per wake-up of each of our threads (their names:
// "entry", "entry-il" for its interactive lane, "fwd", "fwd-inter", ...; /proc/self/task/*/
// schedstat). As the agent does, every lane thread and the interactive forwarder ask for a short
// time slice (rap/common/thread_slice.h); --no-short-slice leaves them the kernel's. Every loop
// gives up the CPU after 500 us of busy bulk work (rap/common/priority.h); --no-cpu-yield: never.
// Nothing fails when a target is missed: each figure ends with a RESULT line. Running as root,
// it creates /run/sshd (sshd's privilege separation directory) when it is missing.
// Usage: bench_route [--bytes N] [--rounds N] [--paced-mbps N] [--no-ssh] [--no-stunnel]
//                    [--ssh-cipher NAME] [--no-lanes] [--one-forwarder] [--no-short-slice]
//                    [--no-cpu-yield] [--cpu-yield-us N (default 500)]
//                    [--initial-window BYTES] [--latency-target-us N]   (fabric session knobs)
// Diagnostics: BENCH_SLOW_US=N prints each round trip slower than N us with its steady-clock
// time (to line up with `perf sched record -k CLOCK_MONOTONIC`); BENCH_ALL_WAITS=1 adds the
// driver's and the target's threads to the runqueue-wait lines.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "rap/common/priority.h"
#include "rap/common/thread_slice.h"
#include "rap/config/canonical.h"
#include "rap/config/signer.h"
#include "rap/crypto/certs.h"
#include "rap/mesh/local_api.h"
#include "rap/mesh/mesh_node.h"
#include "rap/services/tcp_access/tcp_access.h"

namespace asio = boost::asio;
using namespace rap;
using namespace std::chrono_literals;
using Clk = std::chrono::steady_clock;
using Json = nlohmann::json;

namespace {

constexpr char kCluster[] = "cluster-1";
constexpr char kOrg[] = "org-1";
constexpr char kResource[] = "res-1";
constexpr std::size_t kChunk = 256 * 1024;
constexpr int kWarmup = 50;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

// ---------------- CPU accounting (where the time goes) ----------------

double seconds_of(const timespec& ts) {
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}
double thread_cpu(std::thread& t) {
  clockid_t cid{};
  timespec ts{};
  if (pthread_getcpuclockid(t.native_handle(), &cid) != 0 || clock_gettime(cid, &ts) != 0) return 0;
  return seconds_of(ts);
}
double this_thread_cpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return seconds_of(ts);
}
// CPU seconds (user + system) of process `pid` and all its live descendants.
double process_tree_cpu(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(stat.substr(close + 2));
  std::vector<std::string> fields;
  for (std::string t; in >> t;) fields.push_back(t);
  if (fields.size() < 13) return 0;
  // Fields 14 and 15 of /proc/PID/stat (utime, stime); fields[0] is field 3.
  double cpu =
      (std::stod(fields[11]) + std::stod(fields[12])) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream c(task.path() / "children");
    for (pid_t child = 0; c >> child;) cpu += process_tree_cpu(child);
  }
  return cpu;
}
using CpuSnapshot = std::vector<std::pair<std::string, double>>;

// ---------------- plain sockets (driver and target) ----------------

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

int listen_tcp(std::uint16_t& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = loopback(port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 128) != 0) {
    ::close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

// A port that was free a moment ago (for the external programs' listeners).
std::uint16_t free_port() {
  std::uint16_t port = 0;
  const int fd = listen_tcp(port);
  ::close(fd);
  return port;
}

int connect_tcp(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{60, 0};  // a stuck path fails its figure instead of hanging the run
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

bool read_full(int fd, void* p, std::size_t n) {
  auto* c = static_cast<char*>(p);
  while (n > 0) {
    const auto r = ::recv(fd, c, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool write_full(int fd, const void* p, std::size_t n) {
  const auto* c = static_cast<const char*>(p);
  while (n > 0) {
    const auto r = ::send(fd, c, n, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// Waits until something accepts on `port` (the probe connection is closed at once).
bool wait_listening(std::uint16_t port, std::chrono::milliseconds limit) {
  const auto end = Clk::now() + limit;
  while (Clk::now() < end) {
    const int fd = connect_tcp(port);
    if (fd >= 0) {
      ::close(fd);
      return true;
    }
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

// ---------------- the target: discards and counts, or echoes ----------------
// Every connection starts with [u64 mode, u64 bytes]: mode 0 = discard `bytes` then send a 1-byte
// ack, 1 = echo 64-byte messages until EOF, 2 = discard and count until EOF.
enum : std::uint64_t { kDiscardAck = 0, kEcho = 1, kDiscardCount = 2 };

class Sink {
 public:
  Sink() {
    fd_ = listen_tcp(port_);
    accept_ = std::thread([this] { accept_loop(); });
  }
  ~Sink() {
    ::shutdown(fd_, SHUT_RDWR);
    accept_.join();
    {
      std::lock_guard g(mu_);
      for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : conns_) t.join();
    ::close(fd_);
  }
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;
  std::uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::uint64_t counted() const { return counted_.load(); }
  // CPU seconds of the last discard-and-ack connection (read after its ack).
  double last_cpu() const { return last_cpu_.load(); }

 private:
  void accept_loop() {
    for (;;) {
      const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;
      }
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::lock_guard g(mu_);
      open_.insert(fd);
      conns_.emplace_back([this, fd] { serve(fd); });
    }
  }
  void serve(int fd) {
    ::pthread_setname_np(::pthread_self(), "target");
    std::vector<char> buf(kChunk);
    std::uint64_t hdr[2] = {};
    if (read_full(fd, hdr, sizeof hdr)) {
      if (hdr[0] == kDiscardAck) {
        std::uint64_t left = hdr[1];
        while (left > 0) {
          const auto r = ::recv(fd, buf.data(), std::min<std::uint64_t>(left, buf.size()), 0);
          if (r <= 0) break;
          left -= static_cast<std::uint64_t>(r);
        }
        last_cpu_ = this_thread_cpu();
        if (left == 0) (void)write_full(fd, buf.data(), 1);
      } else if (hdr[0] == kEcho) {
        ::pthread_setname_np(::pthread_self(), "target-echo");
        while (read_full(fd, buf.data(), 64) && write_full(fd, buf.data(), 64)) {
        }
      } else {
        for (;;) {
          const auto r = ::recv(fd, buf.data(), buf.size(), 0);
          if (r <= 0) break;
          counted_ += static_cast<std::uint64_t>(r);
        }
      }
    }
    std::lock_guard g(mu_);
    open_.erase(fd);
    ::close(fd);
  }

  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread accept_;
  std::mutex mu_;
  std::set<int> open_;
  std::vector<std::thread> conns_;
  std::atomic<std::uint64_t> counted_{0};
  std::atomic<double> last_cpu_{0};
};

// ---------------- the driver ----------------

// One transfer of `bytes` through `port`; seconds until the target acknowledged the last byte, or
// -1 when the target did not get them all.
double bulk_once(std::uint16_t port, std::uint64_t bytes) {
  const int fd = connect_tcp(port);
  if (fd < 0) return -1;
  std::vector<char> buf(kChunk, 0x42);
  const std::uint64_t hdr[2] = {kDiscardAck, bytes};
  const auto t0 = Clk::now();
  bool ok = write_full(fd, hdr, sizeof hdr);
  for (std::uint64_t left = bytes; ok && left > 0;) {
    const auto n = std::min<std::uint64_t>(left, buf.size());
    ok = write_full(fd, buf.data(), n);
    left -= n;
  }
  ok = ok && read_full(fd, buf.data(), 1);
  const double secs = std::chrono::duration<double>(Clk::now() - t0).count();
  ::close(fd);
  return ok ? secs : -1;
}

// 64-byte round trips through `port` (after kWarmup unmeasured ones); microseconds each.
std::vector<double> rtt(std::uint16_t port, int rounds) {
  std::vector<double> out;
  const int fd = connect_tcp(port);
  if (fd < 0) return out;
  const std::uint64_t hdr[2] = {kEcho, 0};
  std::array<char, 64> m{};
  bool ok = write_full(fd, hdr, sizeof hdr);
  for (int i = 0; ok && i < kWarmup + rounds; ++i) {
    const auto t0 = Clk::now();
    ok = write_full(fd, m.data(), m.size()) && read_full(fd, m.data(), m.size());
    if (ok && i >= kWarmup)
      out.push_back(std::chrono::duration<double, std::micro>(Clk::now() - t0).count());
    if (static const char* slow = std::getenv("BENCH_SLOW_US");
        slow && ok && i >= kWarmup && out.back() > std::atof(slow))
      std::fprintf(stderr, "slow rtt at %.6f: %.0f us\n",
                   std::chrono::duration<double>(t0.time_since_epoch()).count(), out.back());
  }
  ::close(fd);
  if (!ok) out.clear();
  return out;
}

// Every thread's event loop: the two-level loop (rap/common/priority.h), which gives up the CPU
// after 500 us of busy bulk work as the agent's does; --no-cpu-yield turns that off,
// --cpu-yield-us sets another interval.
std::atomic<long> g_cpu_yield_us{PrioritisedLoopOptions{}.cpu_yield_after.count()};
void run_loop(asio::io_context& io) {
  PrioritisedLoopOptions o;
  o.cpu_yield_after = std::chrono::microseconds(g_cpu_yield_us.load());
  run_prioritised(io, o);
}

// The machine's CPU time so far, and the part of it the hypervisor stole (/proc/stat "cpu" line:
// time a virtual CPU wanted to run but its host ran something else). Steal stalls every thread
// on that CPU, whatever its priority: a round trip that meets it waits for the host.
struct CpuTimes {
  std::uint64_t total = 0;
  std::uint64_t steal = 0;
};
CpuTimes cpu_times() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  CpuTimes t;
  std::uint64_t v = 0;
  f >> cpu;
  for (int i = 0; i < 8 && f >> v; ++i) {
    t.total += v;
    if (i == 7) t.steal = v;
  }
  return t;
}
double steal_share(const CpuTimes& a, const CpuTimes& b) {
  return b.total > a.total
             ? static_cast<double>(b.steal - a.steal) / static_cast<double>(b.total - a.total)
             : 0.0;
}

// Runqueue waits of this process's threads by name (/proc/self/task/*/schedstat: time spent
// runnable but not running, and the number of times the thread got a CPU): how long a woken
// thread waited for a core. Threads of one name are summed.
struct SchedWait {
  std::uint64_t wait_ns = 0;
  std::uint64_t runs = 0;
};
std::map<std::string, SchedWait> sched_waits() {
  std::map<std::string, SchedWait> out;
  std::error_code ec;
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream comm(t.path() / "comm");
    std::ifstream stat(t.path() / "schedstat");
    std::string name;
    std::uint64_t run_ns = 0, wait_ns = 0, runs = 0;
    if (!std::getline(comm, name) || !(stat >> run_ns >> wait_ns >> runs)) continue;
    out[name].wait_ns += wait_ns;
    out[name].runs += runs;
  }
  return out;
}
// "name mean-wait" for every fabric thread that ran between `a` and `b`.
std::string sched_wait_line(const std::map<std::string, SchedWait>& a,
                            const std::map<std::string, SchedWait>& b) {
  std::string line;
  for (const auto& [name, w] : b) {
    if (std::getenv("BENCH_ALL_WAITS") == nullptr &&
        (name.rfind("bench", 0) == 0 || name.rfind("target", 0) == 0 || name == "bulk-driver"))
      continue;
    const auto it = a.find(name);
    const SchedWait w0 = it == a.end() ? SchedWait{} : it->second;
    if (w.runs <= w0.runs + 100) continue;  // idle during the phase
    char buf[96];
    std::snprintf(
        buf, sizeof buf, "%s%s %.0f us", line.empty() ? "" : ", ", name.c_str(),
        static_cast<double>(w.wait_ns - w0.wait_ns) / 1e3 / static_cast<double>(w.runs - w0.runs));
    line += buf;
  }
  return line;
}

struct Loaded {
  std::vector<double> rtt;
  double bulk_mbps = 0;  // delivered to the target while the round trips ran
};

// Round trips through `inter_port` while one connection through `bulk_port` sends as fast as it
// can, or, with `pace_mbps` > 0, at that rate (a bulk transfer held back by its network link
// rather than by the CPUs: 125 MB/s is a 1 Gbit/s link).
Loaded rtt_under_bulk(std::uint16_t bulk_port, std::uint16_t inter_port, int rounds,
                      const Sink& sink, double pace_mbps = 0) {
  std::atomic<bool> stop{false};
  std::thread bulk([&] {
    ::pthread_setname_np(::pthread_self(), "bulk-driver");
    const int fd = connect_tcp(bulk_port);
    if (fd < 0) return;
    const std::size_t piece = pace_mbps > 0 ? 16 * 1024 : kChunk;
    std::vector<char> buf(std::max<std::size_t>(piece, kChunk), 0x17);
    const std::uint64_t hdr[2] = {kDiscardCount, 0};
    bool ok = write_full(fd, hdr, sizeof hdr);
    const auto start = Clk::now();
    std::uint64_t sent = 0;
    while (ok && !stop.load()) {
      ok = write_full(fd, buf.data(), piece);
      sent += piece;
      if (pace_mbps > 0)
        std::this_thread::sleep_until(
            start + std::chrono::duration_cast<Clk::duration>(std::chrono::duration<double>(
                        static_cast<double>(sent) / (pace_mbps * 1e6))));
    }
    ::shutdown(fd, SHUT_WR);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (::recv(fd, buf.data(), buf.size(), 0) > 0) {
    }
    ::close(fd);
  });
  std::this_thread::sleep_for(500ms);  // the transfer is up to speed
  Loaded out;
  const std::uint64_t c0 = sink.counted();
  const auto t0 = Clk::now();
  out.rtt = rtt(inter_port, rounds);
  const double secs = std::chrono::duration<double>(Clk::now() - t0).count();
  out.bulk_mbps = static_cast<double>(sink.counted() - c0) / secs / 1e6;
  stop = true;
  bulk.join();
  std::this_thread::sleep_for(200ms);
  return out;
}

// ---------------- external programs ----------------

pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

int run_cmd(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t pid = spawn(argv, log);
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void end_process(pid_t& pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    if (::waitpid(pid, nullptr, WNOHANG) == pid) {
      pid = -1;
      return;
    }
    std::this_thread::sleep_for(20ms);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  pid = -1;
}

void write_file(const std::string& path, const std::string& text, mode_t mode = 0600) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
}

std::string tail_of(const std::string& path) {
  std::ifstream f(path);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return s.size() > 600 ? s.substr(s.size() - 600) : s;
}

// A private sshd on 127.0.0.1 and one `ssh -N -L` client forwarding to the target.
class SshForward {
 public:
  SshForward(const std::string& dir, const std::string& target, const std::string& cipher) {
    if (::access("/usr/sbin/sshd", X_OK) != 0) {
      error_ = "/usr/sbin/sshd not found";
      return;
    }
    const std::string log = dir + "/ssh.log";
    if (::geteuid() == 0 && ::access("/run/sshd", F_OK) != 0) {
      ::mkdir("/run/sshd", 0755);  // sshd's privilege separation directory (Debian creates it
                                   // when the service starts)
    }
    for (const char* k : {"host_key", "client_key"}) {
      if (run_cmd({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", dir + "/" + k}, log) != 0) {
        error_ = "ssh-keygen failed: " + tail_of(log);
        return;
      }
    }
    std::filesystem::copy_file(dir + "/client_key.pub", dir + "/authorized_keys");
    ::chmod((dir + "/authorized_keys").c_str(), 0600);
    const passwd* pw = ::getpwuid(::geteuid());
    const std::string user = pw != nullptr ? pw->pw_name : "root";
    const std::uint16_t sport = free_port();
    write_file(dir + "/sshd_config",
               "Port " + std::to_string(sport) +
                   "\nListenAddress 127.0.0.1\n"
                   "HostKey " +
                   dir + "/host_key\nPidFile " + dir + "/sshd.pid\nAuthorizedKeysFile " + dir +
                   "/authorized_keys\nUsePAM no\nStrictModes no\nPubkeyAuthentication yes\n"
                   "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                   "AllowTcpForwarding yes\nPermitRootLogin " +
                   (::geteuid() == 0 ? "prohibit-password" : "no") + "\nLogLevel ERROR\n");
    sshd_ = spawn({"/usr/sbin/sshd", "-D", "-e", "-f", dir + "/sshd_config"}, log);
    if (!wait_listening(sport, 5s)) {
      error_ = "sshd did not start: " + tail_of(log);
      return;
    }
    port_ = free_port();
    std::vector<std::string> argv = {"ssh", "-N",
                                     "-o",  "BatchMode=yes",
                                     "-o",  "StrictHostKeyChecking=no",
                                     "-o",  "UserKnownHostsFile=/dev/null",
                                     "-o",  "ExitOnForwardFailure=yes",
                                     "-o",  "LogLevel=ERROR",
                                     "-i",  dir + "/client_key",
                                     "-p",  std::to_string(sport),
                                     "-L",  "127.0.0.1:" + std::to_string(port_) + ":" + target};
    if (!cipher.empty()) {
      argv.push_back("-c");
      argv.push_back(cipher);
    }
    argv.push_back(user + "@127.0.0.1");
    ssh_ = spawn(argv, log);
    if (!wait_listening(port_, 10s)) error_ = "ssh -L did not come up: " + tail_of(log);
  }
  ~SshForward() {
    end_process(ssh_);  // first: its sshd session process ends with the connection
    end_process(sshd_);
  }
  SshForward(const SshForward&) = delete;
  SshForward& operator=(const SshForward&) = delete;
  const std::string& error() const { return error_; }
  std::uint16_t port() const { return port_; }
  CpuSnapshot cpu() const {
    return {{"ssh client", process_tree_cpu(ssh_)}, {"sshd", process_tree_cpu(sshd_)}};
  }

 private:
  pid_t sshd_ = -1;
  pid_t ssh_ = -1;
  std::uint16_t port_ = 0;
  std::string error_;
};

// stunnel client (plain TCP in, TLS out) -> stunnel server (TLS in, plain TCP to the target).
class StunnelPair {
 public:
  StunnelPair(const std::string& dir, const std::string& target,
              const crypto::NodeCredentials& creds) {
    const char* bin = ::access("/usr/bin/stunnel4", X_OK) == 0  ? "/usr/bin/stunnel4"
                      : ::access("/usr/bin/stunnel", X_OK) == 0 ? "/usr/bin/stunnel"
                                                                : nullptr;
    if (bin == nullptr) {
      error_ = "stunnel not found";
      return;
    }
    write_file(dir + "/st_cert.pem", creds.cert_pem);
    write_file(dir + "/st_key.pem", creds.key_pem);
    const std::uint16_t sport = free_port();
    port_ = free_port();
    const std::string common = "foreground = yes\npid =\nsyslog = no\ndebug = 3\n";
    const std::string nodelay = "socket = l:TCP_NODELAY=1\nsocket = r:TCP_NODELAY=1\n";
    write_file(dir + "/st_server.conf",
               common + "output = " + dir + "/st_server.log\n[s]\n" +
                   "accept = 127.0.0.1:" + std::to_string(sport) + "\nconnect = " + target +
                   "\ncert = " + dir + "/st_cert.pem\nkey = " + dir + "/st_key.pem\n" + nodelay);
    write_file(dir + "/st_client.conf",
               common + "output = " + dir + "/st_client.log\n[c]\n" +
                   "client = yes\naccept = 127.0.0.1:" + std::to_string(port_) +
                   "\nconnect = 127.0.0.1:" + std::to_string(sport) + "\n" + nodelay);
    server_ = spawn({bin, dir + "/st_server.conf"}, dir + "/st_server.out");
    client_ = spawn({bin, dir + "/st_client.conf"}, dir + "/st_client.out");
    if (!wait_listening(sport, 5s) || !wait_listening(port_, 5s))
      error_ = "stunnel did not start: " + tail_of(dir + "/st_server.out") +
               tail_of(dir + "/st_client.out");
  }
  ~StunnelPair() {
    end_process(client_);
    end_process(server_);
  }
  StunnelPair(const StunnelPair&) = delete;
  StunnelPair& operator=(const StunnelPair&) = delete;
  const std::string& error() const { return error_; }
  std::uint16_t port() const { return port_; }
  CpuSnapshot cpu() const {
    return {{"stunnel client", process_tree_cpu(client_)},
            {"stunnel server", process_tree_cpu(server_)}};
  }

 private:
  pid_t server_ = -1;
  pid_t client_ = -1;
  std::uint16_t port_ = 0;
  std::string error_;
};

// ---------------- ours: mesh nodes, each on its own thread ----------------

template <class F>
auto on(asio::io_context& io, F f) {
  return asio::co_spawn(
             io, [&]() -> asio::awaitable<decltype(f())> { co_return f(); }, asio::use_future)
      .get();
}

struct Host {
  explicit Host(std::string node_id) : id(std::move(node_id)) {}
  std::string id;
  std::vector<std::string> roles;
  std::optional<crypto::Ed25519Key> key;
  crypto::NodeCredentials creds;
  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  std::thread thread;
  SystemRandom random;
  std::unique_ptr<mesh::MeshNode> node;
  std::unique_ptr<services::tcp::TcpAccessExit> exit;
  std::unique_ptr<services::tcp::TcpAccessEntry> entry;
  std::unique_ptr<mesh::LocalStreamServer> local;
  std::vector<std::shared_ptr<services::tcp::EntryListener>> listeners;
  std::uint16_t fabric_port = 0;
  // The interactive lane (PROTOCOL.md §15) on its own thread, as rap-node-agent runs it.
  asio::io_context lane_io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> lane_guard;
  std::thread lane_thread;
  std::unique_ptr<mesh::MeshNode> lane_node;
  std::unique_ptr<services::tcp::TcpAccessExit> lane_exit;
  std::unique_ptr<services::tcp::TcpAccessEntry> lane_entry;
};

class Mesh {
 public:
  Mesh()
      : ca_key_(*crypto::Ed25519Key::generate()),
        signer_(kCluster, *crypto::Ed25519Key::generate()) {
    const auto now = std::chrono::system_clock::now();
    ca_pem_ = *crypto::make_ca_certificate(ca_key_, kCluster, {now - 1h, now + 24h});
    trust_ = *config::TrustStore::from_keys({signer_.trusted_key(now - 1h, now + 24h)});
  }
  ~Mesh() {
    for (auto& [id, h] : hosts_) {
      on(h->io, [&] {
        if (h->entry) h->entry->stop();
        if (h->local) h->local->stop();
        for (auto& l : h->listeners) l->stop();
        h->node->stop("bench over");
        return 0;
      });
      if (h->lane_node) {
        on(h->lane_io, [&] {
          h->lane_node->stop("bench over");
          return 0;
        });
      }
    }
    std::this_thread::sleep_for(100ms);
    for (auto& [id, h] : hosts_) {
      h->guard.reset();
      h->io.stop();
      h->thread.join();
      if (h->lane_node) {
        h->lane_guard.reset();
        h->lane_io.stop();
        h->lane_thread.join();
        h->lane_entry.reset();
        h->lane_exit.reset();
        h->lane_node.reset();
      }
    }
  }
  Mesh(const Mesh&) = delete;
  Mesh& operator=(const Mesh&) = delete;

  crypto::NodeCredentials issue(const std::string& id, crypto::Ed25519Key& key) {
    const auto now = std::chrono::system_clock::now();
    auto cert = crypto::issue_node_certificate(ca_key_, ca_pem_, key.public_key(), kCluster, id,
                                               serial_++, {now - 1h, now + 24h});
    return crypto::NodeCredentials{ca_pem_, *cert, key.private_pem()};
  }

  fabric::SessionConfig session;  // fabric session settings of every node (defaults)
  bool lanes = true;              // every node runs an interactive lane (the agent's default)
  bool short_slice = true;        // lane threads ask for a short slice (the agent's default)

  Result<void> add(const std::string& id, std::vector<std::string> roles) {
    auto h = std::make_unique<Host>(id);
    h->roles = std::move(roles);
    h->key = *crypto::Ed25519Key::generate();
    h->creds = issue(id, *h->key);
    h->guard.emplace(asio::make_work_guard(h->io));
    h->thread = std::thread([io = &h->io, name = id.substr(0, 10)] {
      ::pthread_setname_np(::pthread_self(), name.c_str());
      run_loop(*io);
    });
    mesh::MeshOptions o;
    o.fabric_listen = "127.0.0.1:0";
    o.dial_interval = 100ms;
    o.session = session;
    auto m = mesh::MeshNode::create(h->io.get_executor(), h->creds, o, clock_, h->random);
    if (!m) return tl::unexpected(m.error());
    h->node = std::move(*m);
    auto port = on(h->io, [&] { return h->node->start(); });
    if (!port) return tl::unexpected(port.error());
    h->fabric_port = *port;
    h->exit = std::make_unique<services::tcp::TcpAccessExit>(h->io.get_executor(), *h->node,
                                                             services::tcp::AccessSink{});
    auto e = on(h->io, [&] {
      return services::tcp::TcpAccessEntry::start(h->io.get_executor(), *h->node, h->creds,
                                                  "127.0.0.1:0", services::tcp::AccessSink{});
    });
    if (!e) return tl::unexpected(e.error());
    h->entry = std::move(*e);
    if (lanes) {
      h->lane_guard.emplace(asio::make_work_guard(h->lane_io));
      h->lane_thread = std::thread([io = &h->lane_io, ss = short_slice, name = id.substr(0, 10)] {
        ::pthread_setname_np(::pthread_self(), (name + "-il").c_str());
        if (ss) (void)request_thread_slice(kInteractiveThreadSlice);
        run_loop(*io);
      });
      mesh::MeshOptions lo = o;
      lo.lane = "interactive";
      lo.fabric_listen.clear();
      lo.fabric_advertise = "127.0.0.1:" + std::to_string(h->fabric_port);
      auto lm = mesh::MeshNode::create(h->lane_io.get_executor(), h->creds, lo, clock_, h->random);
      if (!lm) return tl::unexpected(lm.error());
      h->lane_node = std::move(*lm);
      if (auto lp = on(h->lane_io, [&] { return h->lane_node->start(); }); !lp)
        return tl::unexpected(lp.error());
      h->lane_exit = std::make_unique<services::tcp::TcpAccessExit>(
          h->lane_io.get_executor(), *h->lane_node, services::tcp::AccessSink{});
      h->lane_entry = services::tcp::TcpAccessEntry::lane(h->lane_io.get_executor(), *h->lane_node,
                                                          services::tcp::AccessSink{});
      on(h->io, [&] {
        h->node->serve_lane(*h->lane_node);
        services::tcp::TcpAccessEntry::pair_lanes(*h->entry, *h->lane_entry);
        return 0;
      });
    }
    hosts_[id] = std::move(h);
    return {};
  }

  // Every node learns every other node (with its endpoint) and the trust store.
  void configure() {
    for (auto& [id, h] : hosts_) {
      mesh::MeshConfig c;
      c.roles = h->roles;
      c.trust.trust = trust_;
      for (auto& [pid, p] : hosts_) {
        if (pid == id) continue;
        c.peers.push_back(mesh::MeshPeer{pid, p->key->public_key(), p->roles,
                                         "127.0.0.1:" + std::to_string(p->fabric_port)});
      }
      on(h->io, [&] {
        h->node->update(c);
        return 0;
      });
      if (h->lane_node) {
        on(h->lane_io, [&] {
          h->lane_node->update(c);
          return 0;
        });
      }
    }
  }
  void set_egress(const std::string& id, const std::string& target) {
    Host& h = *hosts_.at(id);
    on(h.io, [&] {
      h.exit->set_egress({services::tcp::EgressTarget{kResource, kOrg, target}});
      return 0;
    });
    if (h.lane_node) {
      on(h.lane_io, [&] {
        h.lane_exit->set_egress({services::tcp::EgressTarget{kResource, kOrg, target}});
        return 0;
      });
    }
  }
  bool wait_connected(const std::string& a, const std::string& b) {
    Host& h = *hosts_.at(a);
    for (int i = 0; i < 200; ++i) {
      if (on(h.io, [&] { return h.node->session_peers().contains(b); }) &&
          (!h.lane_node || on(h.lane_io, [&] { return h.lane_node->session_peers().contains(b); })))
        return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  std::string sign(config::ArtifactType type, std::vector<std::string> scope, Json payload) {
    std::sort(scope.begin(), scope.end());
    scope.erase(std::unique(scope.begin(), scope.end()), scope.end());
    config::ArtifactDraft d;
    d.type = type;
    d.scope = config::Scope{config::ScopeKind::node, scope};
    d.version = 1;
    d.epoch = 1;
    const auto now = std::chrono::system_clock::now();
    d.issued_at = now;
    d.expires_at = now + 1h;
    d.payload = std::move(payload);
    return *config::encode_artifact(*signer_.sign(std::move(d)));
  }
  std::string lease(const std::string& id, const std::vector<std::string>& hops) {
    Json h = Json::array();
    for (const auto& n : hops)
      h.push_back({{"node", n}, {"public_key", config::to_hex(hosts_.at(n)->key->public_key())}});
    return sign(config::ArtifactType::route_lease, hops,
                Json{{"lease",
                      {{"id", id},
                       {"grant", "grant-1"},
                       {"org", kOrg},
                       {"role", "primary"},
                       {"hops", h},
                       {"classes", {"bulk", "interactive"}},
                       {"fence", 1}}}});
  }
  std::string grant(const std::string& entry, const std::vector<std::string>& exits,
                    const std::string& target) {
    std::vector<std::string> scope = exits;
    scope.push_back(entry);
    return sign(config::ArtifactType::access_grant, scope,
                Json{{"grant",
                      {{"id", "grant-1"},
                       {"user", "user-1"},
                       {"org", kOrg},
                       {"resource", kResource},
                       {"protocol", "tcp"},
                       {"target", target},
                       {"entry", entry},
                       {"exits", exits}}}});
  }
  std::string ticket(const std::string& entry, const std::string& grant_wire,
                     std::vector<std::string> leases) {
    return *mesh::seal_ticket(mesh::Ticket{grant_wire, std::move(leases)},
                              hosts_.at(entry)->key->public_key());
  }
  // Runs f(node) on `id`'s executor and returns its result.
  template <class F>
  auto with(const std::string& id, F f) {
    Host& h = *hosts_.at(id);
    return on(h.io, [&] { return f(*h.node); });
  }
  std::string entry_endpoint(const std::string& id) {
    return "127.0.0.1:" + std::to_string(hosts_.at(id)->entry->port());
  }
  // Both lanes' threads.
  double cpu(const std::string& id) {
    Host& h = *hosts_.at(id);
    return thread_cpu(h.thread) + (h.lane_node ? thread_cpu(h.lane_thread) : 0.0);
  }
  // The node's local stream API on `path`, admitting processes of this user (the bench's
  // workload is a thread of this process).
  Result<void> start_local(const std::string& id, const std::string& path) {
    Host& h = *hosts_.at(id);
    auto l = on(h.io, [&] {
      return mesh::LocalStreamServer::start(h.io.get_executor(), *h.node, path,
                                            [](const mesh::LocalPeer& p) -> Result<std::string> {
                                              if (p.uid != ::getuid())
                                                return fail("not_authorized", "another user");
                                              return std::string("bench-workload");
                                            });
    });
    if (!l) return tl::unexpected(l.error());
    h.local = std::move(*l);
    return {};
  }
  std::string entry_key(const std::string& id) {
    return config::to_hex(hosts_.at(id)->key->public_key());
  }
  // An entry-node listener on `id` for this process's uid (what `rapctl connect --local-entry`
  // asks the agent for); returns its port.
  Result<std::uint16_t> listen_local(const std::string& id, const std::string& ticket,
                                     fabric::TrafficClass cls) {
    Host& h = *hosts_.at(id);
    auto l =
        on(h.io, [&] { return h.entry->listen_local("127.0.0.1:0", ::getuid(), ticket, cls); });
    if (!l) return tl::unexpected(l.error());
    h.listeners.push_back(*l);
    return (*l)->port();
  }

 private:
  SystemClock clock_;
  crypto::Ed25519Key ca_key_;
  std::string ca_pem_;
  std::uint64_t serial_ = 100;
  config::Signer signer_;
  config::TrustStore trust_;
  std::map<std::string, std::unique_ptr<Host>> hosts_;
};

// A thread of its own (like a separate process) serving local TCP listeners.
class ListenerThread {
 public:
  using Serve = std::function<asio::awaitable<void>(asio::ip::tcp::socket)>;
  ListenerThread() : guard_(asio::make_work_guard(io_)), thread_([this] { run_loop(io_); }) {}
  ~ListenerThread() {
    on(io_, [&] {
      boost::system::error_code ec;
      for (auto& a : acceptors_) a->close(ec);
      return 0;
    });
    std::this_thread::sleep_for(100ms);
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  ListenerThread(const ListenerThread&) = delete;
  ListenerThread& operator=(const ListenerThread&) = delete;

  double cpu() { return thread_cpu(thread_); }
  // The listener thread asks for a short time slice (rap/common/thread_slice.h).
  void short_slice() {
    on(io_, [] { return request_thread_slice(kInteractiveThreadSlice).has_value(); });
  }
  void name(const std::string& n) {
    on(io_, [&] { return ::pthread_setname_np(::pthread_self(), n.substr(0, 15).c_str()); });
  }
  // A listener on 127.0.0.1 whose every connection goes to `serve`; returns its port.
  std::uint16_t listen(Serve serve) {
    return on(io_, [&] {
      auto acc = std::make_shared<asio::ip::tcp::acceptor>(
          io_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
      acceptors_.push_back(acc);
      asio::co_spawn(io_, accept_loop(acc, std::move(serve)), asio::detached);
      return acc->local_endpoint().port();
    });
  }

 private:
  asio::awaitable<void> accept_loop(std::shared_ptr<asio::ip::tcp::acceptor> acc, Serve serve) {
    for (;;) {
      auto [ec, sock] = co_await acc->async_accept(kTuple);
      if (ec) co_return;
      asio::co_spawn(io_, serve(std::move(sock)), asio::detached);
    }
  }

  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
  std::vector<std::shared_ptr<asio::ip::tcp::acceptor>> acceptors_;
};

// The client side, as `rapctl connect` runs it (src/cli/src/connect.cpp): a local TCP listener;
// every accepted connection is piped into its own IngressClient to the entry.
class Forwarder {
 public:
  double cpu() { return t_.cpu(); }
  void short_slice() { t_.short_slice(); }
  void name(const std::string& n) { t_.name(n); }
  // A local listener for `ticket` with traffic class `cls`; returns its port.
  std::uint16_t listen(std::string endpoint, std::string key, std::string ticket, std::string cls) {
    services::tcp::ClientHello hello{std::move(ticket), std::move(cls)};
    return t_.listen([endpoint, key, hello](asio::ip::tcp::socket sock) {
      return serve(std::move(sock), endpoint, key, hello);
    });
  }

 private:
  static asio::awaitable<void> serve(asio::ip::tcp::socket sock, std::string endpoint,
                                     std::string key, services::tcp::ClientHello hello) {
    using services::tcp::IngressClient;
    boost::system::error_code ignored;
    sock.set_option(asio::ip::tcp::no_delay(true), ignored);
    auto ex = co_await asio::this_coro::executor;
    auto c = co_await IngressClient::connect(ex, endpoint, key, hello, 10s);
    if (!c) {
      std::fprintf(stderr, "bench_route: ingress refused: %s (%s)\n", c.error().message.c_str(),
                   c.error().code.c_str());
      co_return;
    }
    co_await services::tcp::pipe(sock, **c);
  }

  ListenerThread t_;
};

// A service workload on the entry node, as a TCP listener service would run: every accepted
// connection asks the node's local stream API for the lease's route and pipes bytes both ways
// in chunks (header in place on the way up, views of the read buffer on the way down).
class Workload {
 public:
  double cpu() { return t_.cpu(); }
  std::uint16_t listen(std::string path, std::string lease, std::string grant, std::string cls) {
    Json req{
        {"v", 1}, {"op", "open"}, {"lease", lease}, {"class", cls}, {"hello", {{"grant", grant}}}};
    return t_.listen([path, r = req.dump()](asio::ip::tcp::socket sock) {
      return serve(std::move(sock), path, r);
    });
  }

 private:
  static asio::awaitable<void> serve(asio::ip::tcp::socket sock, std::string path,
                                     std::string req) {
    using local = asio::local::stream_protocol;
    boost::system::error_code ignored;
    sock.set_option(asio::ip::tcp::no_delay(true), ignored);
    local::socket api(co_await asio::this_coro::executor);
    if (auto [ec] = co_await api.async_connect(local::endpoint(path), kTuple); ec) co_return;
    std::string out;
    append_frame(req, out);
    if (auto [ec, n] = co_await asio::async_write(api, asio::buffer(out), kTuple); ec) co_return;
    FrameReader answer(64 * 1024);
    std::vector<char> buf(256 * 1024);
    for (;;) {
      auto f = answer.next();
      if (!f) co_return;
      if (*f) {
        auto j = Json::parse((*f)->begin(), (*f)->end(), nullptr, false);
        if (!j.is_object() || !j.value("ok", false)) {
          std::fprintf(stderr, "bench_route: local stream API refused: %s\n",
                       std::string(**f).c_str());
          co_return;
        }
        break;
      }
      auto [ec, n] = co_await api.async_read_some(asio::buffer(buf), kTuple);
      if (ec) co_return;
      answer.feed(buf.data(), n);
    }
    auto up = [&]() -> asio::awaitable<void> {
      std::vector<char> b(kFrameHeader + 64 * 1024);
      for (;;) {
        auto [ec, n] =
            co_await sock.async_read_some(asio::buffer(b.data() + kFrameHeader, 64 * 1024), kTuple);
        if (ec) n = 0;
        put_frame_header(b.data(), static_cast<std::uint32_t>(n));
        auto [wec, w] =
            co_await asio::async_write(api, asio::buffer(b.data(), kFrameHeader + n), kTuple);
        if (wec || n == 0) co_return;
      }
    };
    auto down = [&]() -> asio::awaitable<void> {
      ChunkDecoder chunks(256 * 1024);
      std::vector<std::string_view> pieces;
      std::string_view in = answer.rest();
      for (;;) {
        pieces.clear();
        if (!chunks.decode(in, pieces)) co_return;
        for (const auto& p : pieces) {
          auto [ec, w] = co_await asio::async_write(sock, asio::buffer(p.data(), p.size()), kTuple);
          if (ec) co_return;
        }
        if (chunks.ended()) {
          boost::system::error_code e;
          sock.shutdown(asio::ip::tcp::socket::shutdown_send, e);
          co_return;
        }
        auto [ec, n] = co_await api.async_read_some(asio::buffer(buf), kTuple);
        if (ec) {
          boost::system::error_code e;
          sock.close(e);
          co_return;
        }
        in = std::string_view(buf.data(), n);
      }
    };
    using namespace asio::experimental::awaitable_operators;
    co_await (up() && down());
  }

  ListenerThread t_;
};

// ---------------- failover ----------------

// Issue 8: a bulk flow runs entry -> relay -> exit with an alternate over relay2; the entry's
// sessions with the relay carrying it are dropped at once (as when the relay dies). Measured at
// the target: the longest pause in arriving bytes after the drop (time until bytes flow again),
// the bytes delivered in the second after it against the steady rate (the dip), and the resend
// buffer the flow held (memory per stream).
struct Failover {
  std::vector<double> gap_ms;       // per kill
  std::vector<double> internal_ms;  // the entry's own figure (failure noticed -> resumed)
  std::vector<double> dip;          // bytes in the second after the kill / steady bytes per second
  double steady_mbps = 0;
  std::size_t peak_resend = 0;
  int failed = 0;
};

Failover run_failover(Mesh& mesh, Sink& sink, std::uint16_t port, int kills) {
  Failover out;
  using Json = nlohmann::json;
  for (int k = 0; k < kills; ++k) {
    if (!mesh.wait_connected("entry", "relay") || !mesh.wait_connected("entry", "relay2") ||
        !mesh.wait_connected("relay", "exit") || !mesh.wait_connected("relay2", "exit")) {
      out.failed++;
      continue;
    }
    const int fd = connect_tcp(port);
    if (fd < 0) {
      out.failed++;
      continue;
    }
    const std::uint64_t hdr[2] = {kDiscardCount, 0};
    std::atomic<bool> stop{false};
    std::thread sender([&] {
      std::vector<char> buf(kChunk, 'x');
      if (!write_full(fd, hdr, sizeof hdr)) return;
      while (!stop.load() && write_full(fd, buf.data(), buf.size())) {
      }
    });
    const std::uint64_t c0 = sink.counted();
    for (int i = 0; i < 5000 && sink.counted() - c0 < (32u << 20); ++i)
      std::this_thread::sleep_for(1ms);
    // Steady rate over 300 ms, and the resend buffer meanwhile.
    const auto s0 = Clk::now();
    const std::uint64_t b0 = sink.counted();
    std::this_thread::sleep_for(300ms);
    const double steady = static_cast<double>(sink.counted() - b0) /
                          std::chrono::duration<double>(Clk::now() - s0).count();
    const Json st = mesh.with("entry", [](mesh::MeshNode& n) { return n.status(); });
    out.peak_resend = std::max<std::size_t>(
        out.peak_resend, st["route_health"].value("resend_bytes", std::size_t{0}));
    std::string carrier;
    for (const auto& f : st.value("open_flows", Json::array()))
      if (f.value("hops", Json::array()).size() == 3) carrier = f["hops"][1].get<std::string>();
    if (carrier.empty()) {
      stop = true;
      ::shutdown(fd, SHUT_RDWR);
      sender.join();
      ::close(fd);
      out.failed++;
      continue;
    }
    const double switches_before = st["route_health"]["recovery_ms"].value("count", 0.0);
    const auto t_drop = Clk::now();
    mesh.with("entry",
              [&](mesh::MeshNode& n) { return n.drop_sessions_with(carrier, "bench kill"); });
    // Sample arrivals for 3 s: the longest pause after the drop.
    std::uint64_t last = sink.counted();
    auto last_t = t_drop;
    double gap = 0;
    std::uint64_t in_first_second = 0;
    const std::uint64_t at_drop = last;
    while (Clk::now() - t_drop < 3s) {
      const std::uint64_t c = sink.counted();
      const auto now = Clk::now();
      if (c != last) {
        gap = std::max(gap, std::chrono::duration<double, std::milli>(now - last_t).count());
        last = c;
        last_t = now;
      }
      if (now - t_drop <= 1s) in_first_second = c - at_drop;
      std::this_thread::sleep_for(100us);
    }
    gap = std::max(gap, std::chrono::duration<double, std::milli>(Clk::now() - last_t).count());
    stop = true;
    ::shutdown(fd, SHUT_RDWR);
    sender.join();
    ::close(fd);
    const Json after = mesh.with("entry", [](mesh::MeshNode& n) { return n.status(); });
    const auto& sw = after["route_health"]["switches"];
    if (after["route_health"]["recovery_ms"].value("count", 0.0) <= switches_before || sw.empty()) {
      out.failed++;
      continue;
    }
    out.gap_ms.push_back(gap);
    out.internal_ms.push_back(sw.back().value("ms", 0.0));
    out.dip.push_back(steady > 0 ? static_cast<double>(in_first_second) / steady : 0);
    out.steady_mbps = std::max(out.steady_mbps, steady / 1e6);
  }
  return out;
}

// ---------------- report ----------------

struct Row {
  std::string name;
  bool ran = false;
  std::string note;       // why it did not run
  double bulk_mbps = -1;  // < 0: failed
  std::vector<double> idle, loaded;
  double loaded_bulk_mbps = 0;
  bool has_loaded = false;
  std::vector<double> paced;  // under a paced bulk transfer (--paced-mbps)
  double paced_bulk_mbps = 0;
  CpuSnapshot cpu;         // CPU seconds per GB moved, by component, during the bulk transfer
  std::string sched_wait;  // our threads' mean runqueue wait under the bulk transfer
  double idle_steal = 0, loaded_steal = 0;  // share of CPU time the hypervisor took meanwhile
};

std::string us(double v) {
  char b[32];
  if (v >= 10000) {
    std::snprintf(b, sizeof b, "%.1f ms", v / 1000);
  } else {
    std::snprintf(b, sizeof b, "%.0f us", v);
  }
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t bytes = 512ull << 20;
  int rounds = 2000;
  bool with_ssh = true;
  bool with_stunnel = true;
  bool lanes = true;
  bool one_forwarder = false;
  bool short_slice = true;
  int kills = 20;
  double paced_mbps = 100;
  std::string ssh_cipher;
  fabric::SessionConfig session_cfg;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--bytes" && has_value)
      bytes = std::stoull(argv[++i]);
    else if (a == "--rounds" && has_value)
      rounds = std::stoi(argv[++i]);
    else if (a == "--ssh-cipher" && has_value)
      ssh_cipher = argv[++i];
    else if (a == "--initial-window" && has_value)
      session_cfg.initial_stream_window = static_cast<std::uint32_t>(std::stoul(argv[++i]));
    else if (a == "--latency-target-us" && has_value)
      session_cfg.latency_target = std::chrono::microseconds(std::stoi(argv[++i]));
    else if (a == "--failover-kills" && has_value)
      kills = std::stoi(argv[++i]);
    else if (a == "--paced-mbps" && has_value)
      paced_mbps = std::stod(argv[++i]);
    else if (a == "--no-ssh")
      with_ssh = false;
    else if (a == "--no-stunnel")
      with_stunnel = false;
    else if (a == "--no-lanes")
      lanes = false;
    else if (a == "--one-forwarder")
      one_forwarder = true;
    else if (a == "--no-short-slice")
      short_slice = false;
    else if (a == "--no-cpu-yield")
      g_cpu_yield_us = 0;
    else if (a == "--cpu-yield-us" && has_value)
      g_cpu_yield_us = std::stol(argv[++i]);
    else {
      std::fprintf(stderr,
                   "usage: bench_route [--bytes N] [--rounds N] [--failover-kills N] "
                   "[--paced-mbps N (0: off)] [--no-ssh] "
                   "[--no-stunnel] [--no-lanes] [--one-forwarder] [--no-short-slice] "
                   "[--no-cpu-yield] [--cpu-yield-us N] "
                   "[--ssh-cipher NAME] [--initial-window BYTES] [--latency-target-us N]\n");
      return 2;
    }
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  spdlog::set_level(spdlog::level::warn);
  const auto started = Clk::now();
  char tmpl[] = "/tmp/bench_route.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  const std::string dir = tmpl;

  Sink sink;
  const std::string target = sink.address();

  // ---- ours: entry, relay, exit; every node peers with every other ----
  Mesh mesh;
  mesh.session = session_cfg;
  mesh.lanes = lanes;
  mesh.short_slice = short_slice;
  for (const auto& [id, roles] :
       std::vector<std::pair<std::string, std::vector<std::string>>>{{"entry", {"entry-node"}},
                                                                     {"relay", {"relay-node"}},
                                                                     {"relay2", {"relay-node"}},
                                                                     {"exit", {"exit-node"}}}) {
    if (auto r = mesh.add(id, roles); !r) {
      std::fprintf(stderr, "node %s: %s\n", id.c_str(), r.error().message.c_str());
      return 1;
    }
  }
  mesh.configure();
  mesh.set_egress("exit", target);
  if (!mesh.wait_connected("entry", "exit") || !mesh.wait_connected("entry", "relay") ||
      !mesh.wait_connected("relay", "exit")) {
    std::fprintf(stderr, "fabric sessions did not come up\n");
    return 1;
  }
  const std::string grant = mesh.grant("entry", {"exit"}, target);
  const std::string direct = mesh.ticket("entry", grant, {mesh.lease("direct", {"entry", "exit"})});
  const std::string relayed =
      mesh.ticket("entry", grant, {mesh.lease("relayed", {"entry", "relay", "exit"})});
  Forwarder fwd;
  std::optional<Forwarder> fwd_inter_own;  // the interactive `rapctl connect` (own process)
  if (!one_forwarder) fwd_inter_own.emplace();
  if (fwd_inter_own && short_slice) fwd_inter_own->short_slice();
  fwd.name("fwd");
  if (fwd_inter_own) fwd_inter_own->name("fwd-inter");
  Forwarder& fwd_inter = one_forwarder ? fwd : *fwd_inter_own;
  auto fwd_cpu = [&] { return fwd.cpu() + (fwd_inter_own ? fwd_inter_own->cpu() : 0.0); };
  const auto ep = mesh.entry_endpoint("entry");
  const auto key = mesh.entry_key("entry");
  const std::uint16_t direct_bulk = fwd.listen(ep, key, direct, "bulk");
  const std::uint16_t direct_inter = fwd_inter.listen(ep, key, direct, "interactive");
  const std::uint16_t relayed_bulk = fwd.listen(ep, key, relayed, "bulk");
  const std::uint16_t relayed_inter = fwd_inter.listen(ep, key, relayed, "interactive");
  const std::string local_path = dir + "/local.sock";
  Workload workload;
  std::uint16_t local_bulk = 0;
  std::uint16_t local_inter = 0;
  std::string local_note;
  if (auto l = mesh.start_local("entry", local_path); l) {
    const std::string direct_lease = mesh.lease("direct-local", {"entry", "exit"});
    local_bulk = workload.listen(local_path, direct_lease, grant, "bulk");
    local_inter = workload.listen(local_path, direct_lease, grant, "interactive");
  } else {
    local_note = l.error().message;
  }
  std::uint16_t listener_bulk = 0;
  std::uint16_t listener_inter = 0;
  std::string listener_note;
  {
    auto b = mesh.listen_local("entry", direct, fabric::TrafficClass::kBulk);
    auto i = mesh.listen_local("entry", direct, fabric::TrafficClass::kInteractive);
    if (b && i) {
      listener_bulk = *b;
      listener_inter = *i;
    } else {
      listener_note = b ? i.error().message : b.error().message;
    }
  }

  // ---- baselines ----
  std::optional<SshForward> ssh;
  if (with_ssh) ssh.emplace(dir, target, ssh_cipher);
  std::optional<StunnelPair> stunnel;
  crypto::Ed25519Key st_key = *crypto::Ed25519Key::generate();
  if (with_stunnel) stunnel.emplace(dir, target, mesh.issue("stunnel", st_key));

  std::printf(
      "== TCP access path (loopback, 2 cores shared by every process; %.0f MB per bulk transfer, "
      "%d x 64 B round trips) ==\n",
      static_cast<double>(bytes) / 1e6, rounds);
  std::vector<Row> rows(7);
  rows[0].name = "(e) raw TCP to the target";
  rows[1].name = "(c) ssh -L (" +
                 (ssh_cipher.empty() ? std::string("OpenSSH default cipher") : ssh_cipher) + ")";
  rows[2].name = "(d) stunnel pair (TLS 1.3)";
  rows[3].name = "(a) ours: entry -> exit";
  rows[4].name = "(b) ours: entry -> relay -> exit";
  rows[5].name = "(f) ours: workload on entry -> exit";
  rows[5].note = local_note;
  rows[6].name = "(g) ours: entry-node listener -> exit";
  rows[6].note = listener_note;
  // Ports: [bulk, interactive] per row; 0 = not available.
  std::uint16_t ports[7][2] = {{sink.port(), sink.port()},
                               {0, 0},
                               {0, 0},
                               {direct_bulk, direct_inter},
                               {relayed_bulk, relayed_inter},
                               {local_bulk, local_inter},
                               {listener_bulk, listener_inter}};
  if (ssh && ssh->error().empty()) {
    ports[1][0] = ports[1][1] = ssh->port();
  } else {
    rows[1].note = ssh ? ssh->error() : "skipped (--no-ssh)";
  }
  if (stunnel && stunnel->error().empty()) {
    ports[2][0] = ports[2][1] = stunnel->port();
  } else {
    rows[2].note = stunnel ? stunnel->error() : "skipped (--no-stunnel)";
  }
  // What each path runs besides the driver and the target (CPU seconds, cumulative).
  std::function<CpuSnapshot()> probes[7] = {
      [] { return CpuSnapshot{}; },
      [&] { return ssh ? ssh->cpu() : CpuSnapshot{}; },
      [&] { return stunnel ? stunnel->cpu() : CpuSnapshot{}; },
      [&] {
        return CpuSnapshot{{"client forwarder", fwd_cpu()},
                           {"entry", mesh.cpu("entry")},
                           {"exit", mesh.cpu("exit")}};
      },
      [&] {
        return CpuSnapshot{{"client forwarder", fwd_cpu()},
                           {"entry", mesh.cpu("entry")},
                           {"relay", mesh.cpu("relay")},
                           {"exit", mesh.cpu("exit")}};
      },
      [&] {
        return CpuSnapshot{
            {"workload", workload.cpu()}, {"entry", mesh.cpu("entry")}, {"exit", mesh.cpu("exit")}};
      },
      [&] {
        return CpuSnapshot{{"entry", mesh.cpu("entry")}, {"exit", mesh.cpu("exit")}};
      }};
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (ports[i][0] == 0) {
      std::printf("%s: not run: %s\n", rows[i].name.c_str(), rows[i].note.c_str());
      continue;
    }
    Row& r = rows[i];
    r.ran = true;
    const CpuSnapshot before = probes[i]();
    const double driver0 = this_thread_cpu();
    const double secs = bulk_once(ports[i][0], bytes);
    const double per_gb = 1e9 / static_cast<double>(bytes);
    r.cpu.emplace_back("driver (sender)", (this_thread_cpu() - driver0) * per_gb);
    r.cpu.emplace_back("target (receiver)", sink.last_cpu() * per_gb);
    const CpuSnapshot after = probes[i]();
    for (std::size_t k = 0; k < after.size(); ++k)
      r.cpu.emplace_back(after[k].first, (after[k].second - before[k].second) * per_gb);
    r.bulk_mbps = secs > 0 ? static_cast<double>(bytes) / secs / 1e6 : -1;
    const auto idle0 = cpu_times();
    r.idle = rtt(ports[i][1], rounds);
    r.idle_steal = steal_share(idle0, cpu_times());
    if (i > 0) {
      const auto w0 = sched_waits();
      const auto c0 = cpu_times();
      const auto l = rtt_under_bulk(ports[i][0], ports[i][1], rounds, sink);
      r.loaded_steal = steal_share(c0, cpu_times());
      if (i >= 3) r.sched_wait = sched_wait_line(w0, sched_waits());
      r.loaded = l.rtt;
      r.loaded_bulk_mbps = l.bulk_mbps;
      r.has_loaded = true;
      if (paced_mbps > 0) {
        const auto p = rtt_under_bulk(ports[i][0], ports[i][1], rounds, sink, paced_mbps);
        r.paced = p.rtt;
        r.paced_bulk_mbps = p.bulk_mbps;
      }
    }
    std::printf("%-36s bulk %8.1f MB/s | idle p50 %s p99 %s", r.name.c_str(), r.bulk_mbps,
                us(pct(r.idle, .5)).c_str(), us(pct(r.idle, .99)).c_str());
    if (r.has_loaded) {
      std::printf(" | under bulk p50 %s p99 %s (bulk meanwhile %.1f MB/s)",
                  us(pct(r.loaded, .5)).c_str(), us(pct(r.loaded, .99)).c_str(),
                  r.loaded_bulk_mbps);
      std::printf(" | CPU stolen by the host: idle %.1f%%, under bulk %.1f%%", r.idle_steal * 100,
                  r.loaded_steal * 100);
    }
    if (!r.paced.empty())
      std::printf(" | under paced bulk p50 %s p99 %s (%.1f MB/s)", us(pct(r.paced, .5)).c_str(),
                  us(pct(r.paced, .99)).c_str(), r.paced_bulk_mbps);
    std::printf("\n");
    if (!r.sched_wait.empty())
      std::printf("  mean runqueue wait per wake-up of our threads under that bulk: %s\n",
                  r.sched_wait.c_str());
    if (r.bulk_mbps < 0 || r.idle.empty() || (r.has_loaded && r.loaded.empty()))
      std::printf("  (a transfer through this path failed; see above)\n");
  }

  // Control: our interactive round trips while a bulk transfer that shares no node, socket or
  // process with them (stunnel) runs: what CPU contention alone costs on this machine.
  std::optional<Loaded> control;
  if (ports[2][0] != 0 && !rows[3].idle.empty()) {
    control = rtt_under_bulk(ports[2][0], direct_inter, rounds, sink);
    std::printf(
        "control: (a) interactive while an unrelated stunnel bulk runs: p50 %s p99 %s (bulk "
        "meanwhile %.1f MB/s)\n",
        us(pct(control->rtt, .5)).c_str(), us(pct(control->rtt, .99)).c_str(), control->bulk_mbps);
  }

  // Control: the same, with the bulk on the relayed route: same entry and exit threads, but not
  // the entry -> exit fabric session.
  std::optional<Loaded> control_other_session;
  if (!rows[3].idle.empty() && !rows[4].idle.empty()) {
    control_other_session = rtt_under_bulk(relayed_bulk, direct_inter, rounds, sink);
    std::printf(
        "control: (a) interactive while a bulk transfer runs entry -> relay -> exit (same nodes, "
        "other fabric sessions): p50 %s p99 %s (bulk meanwhile %.1f MB/s)\n",
        us(pct(control_other_session->rtt, .5)).c_str(),
        us(pct(control_other_session->rtt, .99)).c_str(), control_other_session->bulk_mbps);
  }

  // ---- table ----
  std::printf(
      "\n| path | bulk MB/s | RTT idle p50 / p99 | RTT under bulk p50 / p99 | bulk MB/s meanwhile "
      "|\n| --- | --- | --- | --- | --- |\n");
  for (const auto& r : rows) {
    if (!r.ran) {
      std::printf("| %s | not run: %s | | | |\n", r.name.c_str(), r.note.c_str());
      continue;
    }
    std::printf("| %s | %.1f | %s / %s |", r.name.c_str(), r.bulk_mbps, us(pct(r.idle, .5)).c_str(),
                us(pct(r.idle, .99)).c_str());
    if (r.has_loaded) {
      std::printf(" %s / %s | %.1f |\n", us(pct(r.loaded, .5)).c_str(),
                  us(pct(r.loaded, .99)).c_str(), r.loaded_bulk_mbps);
    } else {
      std::printf(" — | — |\n");
    }
  }

  std::printf(
      "\nCPU seconds per GB moved during the bulk transfer (user + system, by thread or process):\n"
      "| path | path itself (excl. driver and target) | breakdown |\n| --- | --- | --- |\n");
  for (const auto& r : rows) {
    if (!r.ran) continue;
    double own = 0;
    std::string parts;
    for (std::size_t k = 0; k < r.cpu.size(); ++k) {
      if (k >= 2) own += r.cpu[k].second;
      char b[96];
      std::snprintf(b, sizeof b, "%s%s %.2f", parts.empty() ? "" : ", ", r.cpu[k].first.c_str(),
                    r.cpu[k].second);
      parts += b;
    }
    std::printf("| %s | %.2f | %s |\n", r.name.c_str(), own, parts.c_str());
  }

  // ---- RESULT lines ----
  std::printf("\n");
  const Row& raw = rows[0];
  const Row* best = nullptr;  // the better of ssh -L and stunnel for bulk
  for (const Row* b : {&rows[1], &rows[2]}) {
    if (b->ran && b->bulk_mbps > 0 && (best == nullptr || b->bulk_mbps > best->bulk_mbps)) best = b;
  }
  const Row* best_rtt = nullptr;  // the lower idle p99 of ssh -L and stunnel
  for (const Row* b : {&rows[1], &rows[2]}) {
    if (b->ran && !b->idle.empty() &&
        (best_rtt == nullptr || pct(b->idle, .99) < pct(best_rtt->idle, .99)))
      best_rtt = b;
  }
  static const char* const kTags[] = {"",
                                      "ssh",
                                      "stunnel",
                                      "entry_exit",
                                      "entry_relay_exit",
                                      "workload_entry_exit",
                                      "listener_entry_exit"};
  for (std::size_t i : {std::size_t{3}, std::size_t{4}, std::size_t{5}, std::size_t{6}}) {
    const Row& r = rows[i];
    const char* tag = kTags[i];
    if (!r.ran || r.bulk_mbps <= 0) {
      std::printf("RESULT bulk_%s: failed\n", tag);
      continue;
    }
    std::printf("RESULT bulk_%s: %.1f MB/s = %.2fx raw TCP (%.1f MB/s)", tag, r.bulk_mbps,
                r.bulk_mbps / raw.bulk_mbps, raw.bulk_mbps);
    if (best != nullptr) {
      std::printf(", %.2fx the better of ssh -L and stunnel (%s %.1f MB/s)",
                  r.bulk_mbps / best->bulk_mbps, best->name.c_str(), best->bulk_mbps);
      if (i != 4)
        std::printf("; target >= 1.0x: %s", r.bulk_mbps >= best->bulk_mbps ? "met" : "NOT met");
    }
    std::printf("\n");
  }
  // The local hop: a workload on the entry reaching the fabric through the local stream API
  // (Unix socket, one more copy each way) against the client ingress built into the node.
  if (rows[3].ran && rows[5].ran && rows[3].bulk_mbps > 0 && rows[5].bulk_mbps > 0) {
    auto first_hop = [](const Row& r) {  // CPU s/GB of the hop before the entry, and the entry
      double hop = 0;
      double entry = 0;
      for (const auto& [name, v] : r.cpu) {
        if (name == "workload" || name == "client forwarder") hop = v;
        if (name == "entry") entry = v;
      }
      return std::pair{hop, entry};
    };
    const auto [fh, fe] = first_hop(rows[5]);
    const auto [ah, ae] = first_hop(rows[3]);
    std::printf(
        "RESULT local_hop: workload via the local stream API %.1f MB/s = %.2fx the client "
        "ingress path (a); CPU s/GB workload %.2f + entry %.2f vs client forwarder %.2f + entry "
        "%.2f\n",
        rows[5].bulk_mbps, rows[5].bulk_mbps / rows[3].bulk_mbps, fh, fe, ah, ae);
  }
  for (std::size_t i : {std::size_t{3}, std::size_t{4}, std::size_t{5}, std::size_t{6}}) {
    const Row& r = rows[i];
    const char* tag = kTags[i];
    if (r.idle.empty()) continue;
    std::printf("RESULT rtt_idle_%s: p99 %s = %.2fx raw TCP p99 (%s)", tag,
                us(pct(r.idle, .99)).c_str(), pct(r.idle, .99) / pct(raw.idle, .99),
                us(pct(raw.idle, .99)).c_str());
    if (best_rtt != nullptr)
      std::printf(", %.2fx the better baseline's p99 (%s %s)",
                  pct(r.idle, .99) / pct(best_rtt->idle, .99), best_rtt->name.c_str(),
                  us(pct(best_rtt->idle, .99)).c_str());
    std::printf("\n");
  }
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const Row& r = rows[i];
    if (!r.has_loaded || r.loaded.empty() || r.idle.empty()) continue;
    const double ratio = pct(r.loaded, .99) / pct(r.idle, .99);
    std::printf(
        "RESULT rtt_under_bulk_%s: p99 %s = %.2fx its idle p99 (%s), p50 %s, bulk %.1f MB/s",
        kTags[i], us(pct(r.loaded, .99)).c_str(), ratio, us(pct(r.idle, .99)).c_str(),
        us(pct(r.loaded, .5)).c_str(), r.loaded_bulk_mbps);
    if (i >= 3) std::printf("; target <= 3x: %s", ratio <= 3 ? "met" : "NOT met");
    std::printf("\n");
    if (!r.paced.empty()) {
      const double pr = pct(r.paced, .99) / pct(r.idle, .99);
      std::printf(
          "RESULT rtt_under_paced_bulk_%s: p99 %s = %.2fx its idle p99, p50 %s, bulk paced at "
          "%.0f MB/s (delivered %.1f MB/s)",
          kTags[i], us(pct(r.paced, .99)).c_str(), pr, us(pct(r.paced, .5)).c_str(), paced_mbps,
          r.paced_bulk_mbps);
      if (i >= 3) std::printf("; target <= 3x: %s", pr <= 3 ? "met" : "NOT met");
      std::printf("\n");
    }
  }
  if (control && !control->rtt.empty() && !rows[3].idle.empty()) {
    std::printf(
        "RESULT rtt_control_entry_exit: p99 %s = %.2fx its idle p99 while an unrelated stunnel "
        "bulk "
        "(%.1f MB/s) shares only the CPUs\n",
        us(pct(control->rtt, .99)).c_str(), pct(control->rtt, .99) / pct(rows[3].idle, .99),
        control->bulk_mbps);
  }
  if (control_other_session && !control_other_session->rtt.empty()) {
    std::printf(
        "RESULT rtt_control_other_session_entry_exit: p99 %s = %.2fx its idle p99 while a bulk "
        "transfer (%.1f MB/s) runs through the same entry and exit nodes but over the relay\n",
        us(pct(control_other_session->rtt, .99)).c_str(),
        pct(control_other_session->rtt, .99) / pct(rows[3].idle, .99),
        control_other_session->bulk_mbps);
  }
  if (kills > 0) {
    const std::string both = mesh.ticket("entry", grant,
                                         {mesh.lease("via-relay", {"entry", "relay", "exit"}),
                                          mesh.lease("via-relay2", {"entry", "relay2", "exit"})});
    const std::uint16_t fo_port = fwd.listen(ep, key, both, "bulk");
    std::printf("\n== route failover: %d kills of the relay carrying a bulk flow ==\n", kills);
    const Failover f = run_failover(mesh, sink, fo_port, kills);
    if (f.gap_ms.empty()) {
      std::printf("RESULT failover: failed (%d of %d kills did not switch)\n", f.failed, kills);
    } else {
      std::printf(
          "RESULT failover_time_to_bytes: p50 %.1f ms, p99 %.1f ms, max %.1f ms over %zu kills "
          "(longest pause in bytes arriving at the target after the drop; target < 1000 ms: "
          "%s); the entry's own figure (failure noticed -> resumed) p50 %.1f ms p99 %.1f ms; %d "
          "failed\n",
          pct(f.gap_ms, .5), pct(f.gap_ms, .99), pct(f.gap_ms, 1.0), f.gap_ms.size(),
          pct(f.gap_ms, .99) < 1000 ? "met" : "NOT met", pct(f.internal_ms, .5),
          pct(f.internal_ms, .99), f.failed);
      std::printf(
          "RESULT failover_dip: bytes in the second after the kill = %.2fx (p50) / %.2fx (worst) "
          "a steady second (steady %.1f MB/s)\n",
          pct(f.dip, .5), pct(f.dip, 0.0), f.steady_mbps);
      std::printf(
          "RESULT failover_memory: resend buffer per bulk stream peaked at %.2f MB (limit %.1f MB "
          "per direction) + 128 KiB read buffer\n",
          static_cast<double>(f.peak_resend) / 1e6, 4.0 * 1024 * 1024 / 1e6);
    }
  }
  std::printf("total time %.1f s\n", std::chrono::duration<double>(Clk::now() - started).count());

  stunnel.reset();
  ssh.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
