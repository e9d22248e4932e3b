// rap-testwire: a userspace "netem substitute" for tests (this kernel has no sch_netem).
//
// Creates a TUN device (IFF_TUN | IFF_NO_PI) inside network namespace A and another inside
// namespace B (setns into each, open /dev/net/tun there: the device lives in the namespace the
// fd was opened in), then forwards raw IP packets between them, per direction:
//   * drop loss% at random,
//   * serialise through a bottleneck of rate_mbit with a bounded queue (tail drop),
//   * delay each packet by delay +- jitter (uniform), keeping FIFO order
//     (departure = max(tx_done + delay + jitter_sample, previous departure)).
// Prints "ready" on stdout once both devices exist; the caller assigns addresses and brings
// the devices up (`ip -n NS addr add ... dev DEV; ip -n NS link set DEV up`).
//
// Control (optional, --control PATH): a unix stream socket, one command per connection:
//   "set delay=40 jitter=5 loss=1.5 rate=20 queue=1000"  -> "ok"
//   "stats" -> "forwarded=N dropped_loss=N dropped_queue=N write_errors=N"
// The devices disappear when the process exits (SIGTERM/SIGINT exit cleanly).
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using Nanos = std::chrono::nanoseconds;

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

struct Params {
  double delay_ms = 0;
  double jitter_ms = 0;
  double loss_percent = 0;
  double rate_mbit = 0;
  uint64_t queue_packets = 1000;
};

struct Packet {
  Clock::time_point depart;
  std::vector<uint8_t> data;
};

struct Direction {
  const char* name = "";
  int in_fd = -1;
  int out_fd = -1;
  std::deque<Packet> queue;                  // time-ordered (FIFO)
  std::deque<Clock::time_point> bottleneck;  // tx completion times of packets in the rate queue
  Clock::time_point tx_free{};
  Clock::time_point last_depart{};
  std::mt19937_64 rng;
  uint64_t forwarded = 0, dropped_loss = 0, dropped_queue = 0, write_errors = 0;
};

constexpr size_t kHardQueueCap = 200000;

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "rap-testwire: %s\n", msg.c_str());
  std::exit(1);
}

std::string errstr() {
  return std::strerror(errno);
}

int open_ns(const std::string& ns) {
  std::string path = ns.find('/') == std::string::npos ? "/var/run/netns/" + ns : ns;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("cannot open namespace " + path + ": " + errstr());
  return fd;
}

int open_tun_in(int home_ns, const std::string& ns, const std::string& dev) {
  if (dev.empty() || dev.size() >= IFNAMSIZ)
    die("bad device name '" + dev + "' (1.." + std::to_string(IFNAMSIZ - 1) + " chars)");
  int nsfd = open_ns(ns);
  if (::setns(nsfd, CLONE_NEWNET) != 0) die("setns(" + ns + "): " + errstr());
  ::close(nsfd);
  int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) die("open /dev/net/tun in " + ns + ": " + errstr());
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  std::memcpy(ifr.ifr_name, dev.c_str(), dev.size());
  if (::ioctl(fd, TUNSETIFF, &ifr) != 0) die("TUNSETIFF " + dev + " in " + ns + ": " + errstr());
  if (::setns(home_ns, CLONE_NEWNET) != 0) die("setns(back): " + errstr());
  return fd;
}

bool parse_kv(const std::string& tok, Params& p, std::string& err) {
  auto eq = tok.find('=');
  if (eq == std::string::npos) {
    err = "expected key=value, got '" + tok + "'";
    return false;
  }
  std::string k = tok.substr(0, eq);
  char* end = nullptr;
  double v = std::strtod(tok.c_str() + eq + 1, &end);
  if (end == tok.c_str() + eq + 1 || *end != '\0' || v < 0) {
    err = "bad value in '" + tok + "'";
    return false;
  }
  if (k == "delay")
    p.delay_ms = v;
  else if (k == "jitter")
    p.jitter_ms = v;
  else if (k == "loss")
    p.loss_percent = std::min(v, 100.0);
  else if (k == "rate")
    p.rate_mbit = v;
  else if (k == "queue")
    p.queue_packets = static_cast<uint64_t>(std::max(1.0, v));
  else {
    err = "unknown key '" + k + "'";
    return false;
  }
  return true;
}

void enqueue(Direction& d, const Params& p, std::vector<uint8_t>&& pkt, Clock::time_point now) {
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  if (p.loss_percent > 0 && u01(d.rng) * 100.0 < p.loss_percent) {
    ++d.dropped_loss;
    return;
  }
  if (d.queue.size() >= kHardQueueCap) {
    ++d.dropped_queue;
    return;
  }
  Clock::time_point tx_done = now;
  if (p.rate_mbit > 0) {
    while (!d.bottleneck.empty() && d.bottleneck.front() <= now) d.bottleneck.pop_front();
    if (d.bottleneck.size() >= p.queue_packets) {
      ++d.dropped_queue;
      return;
    }
    auto tx =
        Nanos(static_cast<int64_t>(static_cast<double>(pkt.size()) * 8.0 * 1000.0 / p.rate_mbit));
    tx_done = std::max(now, d.tx_free) + tx;
    d.tx_free = tx_done;
    d.bottleneck.push_back(tx_done);
  }
  double delay_ms = p.delay_ms;
  if (p.jitter_ms > 0) delay_ms += (u01(d.rng) * 2.0 - 1.0) * p.jitter_ms;
  if (delay_ms < 0) delay_ms = 0;
  auto depart = tx_done + Nanos(static_cast<int64_t>(delay_ms * 1e6));
  depart = std::max(depart, d.last_depart);  // FIFO per direction
  d.last_depart = depart;
  d.queue.push_back(Packet{depart, std::move(pkt)});
}

void drain(Direction& d, Clock::time_point now) {
  while (!d.queue.empty() && d.queue.front().depart <= now) {
    auto& pk = d.queue.front();
    ssize_t w = ::write(d.out_fd, pk.data.data(), pk.data.size());
    if (w < 0)
      ++d.write_errors;  // EIO while the device is down: the packet is lost
    else
      ++d.forwarded;
    d.queue.pop_front();
  }
}

void read_side(Direction& d, const Params& p) {
  static uint8_t buf[65536];
  for (int i = 0; i < 256; ++i) {
    ssize_t n = ::read(d.in_fd, buf, sizeof buf);
    if (n <= 0) return;  // EAGAIN, or EIO/EBADFD while down
    enqueue(d, p, std::vector<uint8_t>(buf, buf + n), Clock::now());
  }
}

void handle_control(int lfd, Params& p, Direction* dirs) {
  int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  if (c < 0) return;
  struct timeval tv {
    1, 0
  };
  ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string line;
  char ch;
  while (line.size() < 4096 && ::read(c, &ch, 1) == 1 && ch != '\n') line += ch;
  std::istringstream in(line);
  std::string cmd;
  in >> cmd;
  std::string reply;
  if (cmd == "set") {
    Params np = p;
    std::string tok, err;
    bool ok = true;
    while (ok && in >> tok) ok = parse_kv(tok, np, err);
    if (ok) {
      p = np;
      reply = "ok\n";
    } else {
      reply = "error " + err + "\n";
    }
  } else if (cmd == "stats") {
    uint64_t f = 0, dl = 0, dq = 0, we = 0;
    for (int i = 0; i < 2; ++i) {
      f += dirs[i].forwarded;
      dl += dirs[i].dropped_loss;
      dq += dirs[i].dropped_queue;
      we += dirs[i].write_errors;
    }
    reply = "forwarded=" + std::to_string(f) + " dropped_loss=" + std::to_string(dl) +
            " dropped_queue=" + std::to_string(dq) + " write_errors=" + std::to_string(we) + "\n";
  } else {
    reply = "error unknown command '" + cmd + "'\n";
  }
  ssize_t w = ::write(c, reply.data(), reply.size());
  (void)w;
  ::close(c);
}

void usage() {
  std::fprintf(stderr,
               "usage: rap-testwire --ns-a NS --dev-a DEV --ns-b NS --dev-b DEV [--control PATH]\n"
               "                    [--delay MS] [--jitter MS] [--loss PCT] [--rate MBIT] [--queue "
               "PKTS] [--seed N]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string ns_a, ns_b, dev_a, dev_b, control;
  Params p;
  uint64_t seed = std::random_device{}();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) usage();
    std::string v = argv[++i];
    std::string err;
    if (a == "--ns-a")
      ns_a = v;
    else if (a == "--ns-b")
      ns_b = v;
    else if (a == "--dev-a")
      dev_a = v;
    else if (a == "--dev-b")
      dev_b = v;
    else if (a == "--control")
      control = v;
    else if (a == "--seed")
      seed = std::strtoull(v.c_str(), nullptr, 10);
    else if (a == "--delay" || a == "--jitter" || a == "--loss" || a == "--rate" ||
             a == "--queue") {
      if (!parse_kv(a.substr(2) + "=" + v, p, err)) die(err);
    } else {
      usage();
    }
  }
  if (ns_a.empty() || ns_b.empty() || dev_a.empty() || dev_b.empty()) usage();

  struct sigaction sa {};
  sa.sa_handler = on_signal;  // no SA_RESTART: ppoll returns EINTR
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  int home = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) die("open /proc/self/ns/net: " + errstr());
  int fd_a = open_tun_in(home, ns_a, dev_a);
  int fd_b = open_tun_in(home, ns_b, dev_b);
  ::close(home);

  int lfd = -1;
  if (!control.empty()) {
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    if (control.size() >= sizeof un.sun_path) die("control path too long: " + control);
    std::memcpy(un.sun_path, control.c_str(), control.size() + 1);
    ::unlink(control.c_str());
    lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (lfd < 0 || ::bind(lfd, reinterpret_cast<const sockaddr*>(&un), sizeof un) != 0 ||
        ::listen(lfd, 16) != 0) {
      die("control socket " + control + ": " + errstr());
    }
  }

  Direction dirs[2];
  dirs[0].name = "a->b";
  dirs[0].in_fd = fd_a;
  dirs[0].out_fd = fd_b;
  dirs[0].rng.seed(seed);
  dirs[1].name = "b->a";
  dirs[1].in_fd = fd_b;
  dirs[1].out_fd = fd_a;
  dirs[1].rng.seed(seed ^ 0x9e3779b97f4a7c15ULL);

  std::printf("ready\n");
  std::fflush(stdout);

  while (!g_stop) {
    auto now = Clock::now();
    Clock::time_point next = Clock::time_point::max();
    for (auto& d : dirs) {
      if (!d.queue.empty()) next = std::min(next, d.queue.front().depart);
    }
    timespec ts{};
    timespec* tsp = nullptr;
    if (next != Clock::time_point::max()) {
      auto wait = std::max(Nanos(0), std::chrono::duration_cast<Nanos>(next - now));
      ts.tv_sec = static_cast<time_t>(wait.count() / 1000000000);
      ts.tv_nsec = static_cast<long>(wait.count() % 1000000000);
      tsp = &ts;
    } else {
      ts.tv_sec = 1;  // wake up now and then even when idle
      tsp = &ts;
    }
    pollfd pfds[3] = {{fd_a, POLLIN, 0}, {fd_b, POLLIN, 0}, {lfd, POLLIN, 0}};
    int n = ::ppoll(pfds, lfd >= 0 ? 3 : 2, tsp, nullptr);
    if (n < 0 && errno != EINTR) die("ppoll: " + errstr());
    if (n > 0) {
      for (int i = 0; i < 2; ++i) {
        if (pfds[i].revents & (POLLERR | POLLHUP | POLLNVAL))
          die("tun device error on side " + std::to_string(i));
      }
      if (pfds[0].revents & POLLIN) read_side(dirs[0], p);
      if (pfds[1].revents & POLLIN) read_side(dirs[1], p);
      if (lfd >= 0 && (pfds[2].revents & POLLIN)) handle_control(lfd, p, dirs);
    }
    now = Clock::now();
    drain(dirs[0], now);
    drain(dirs[1], now);
  }
  if (!control.empty()) ::unlink(control.c_str());
  ::close(fd_a);
  ::close(fd_b);
  return 0;
}
