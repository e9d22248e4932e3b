#include "rap/testing/netns.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <limits>
#include <thread>
#include <vector>

namespace rap::testing {

namespace {
using Clock = std::chrono::steady_clock;

std::string errno_str(int e) {
  return std::strerror(e);
}

int remaining_ms(Clock::time_point deadline) {
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left < 0) return 0;
  return static_cast<int>(std::min<long long>(left, std::numeric_limits<int>::max()));
}

Result<sockaddr_in> make_addr(const std::string& addr, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (::inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1) {
    return fail("bad_argument", "not an IPv4 address: " + addr);
  }
  return sa;
}

// Creates a socket inside `netns` ("" = current namespace).
Result<Fd> socket_in(const std::string& netns, int domain, int type, int proto) {
  int fd = -1;
  int err = 0;
  auto mk = [&] {
    fd = ::socket(domain, type | SOCK_CLOEXEC, proto);
    err = errno;
  };
  if (netns.empty()) {
    mk();
  } else if (auto r = run_in_netns(netns, mk); !r) {
    return tl::unexpected(r.error());
  }
  if (fd < 0) return fail("socket_error", "socket(): " + errno_str(err));
  return Fd(fd);
}

uint16_t icmp_checksum(const uint8_t* data, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
  if (len & 1) sum += static_cast<uint32_t>(data[len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

std::atomic<uint16_t> g_ping_counter{0};
}  // namespace

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Result<void> run_in_netns(const std::string& netns, const std::function<void()>& fn) {
  std::string path = "/var/run/netns/" + netns;
  Fd nsfd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!nsfd) return fail("netns_error", "cannot open " + path + ": " + errno_str(errno));
  int setns_err = 0;
  std::exception_ptr ex;
  std::thread t([&] {
    if (::setns(nsfd.get(), CLONE_NEWNET) != 0) {
      setns_err = errno;
      return;
    }
    try {
      fn();
    } catch (...) {
      ex = std::current_exception();
    }
  });
  t.join();
  if (setns_err != 0) return fail("netns_error", "setns(" + netns + "): " + errno_str(setns_err));
  if (ex) std::rethrow_exception(ex);
  return {};
}

Result<Fd> tcp_connect(const std::string& addr, uint16_t port, std::chrono::milliseconds timeout) {
  return tcp_connect_in("", addr, port, timeout);
}

Result<Fd> tcp_connect_in(const std::string& netns, const std::string& addr, uint16_t port,
                          std::chrono::milliseconds timeout) {
  auto sa = make_addr(addr, port);
  if (!sa) return tl::unexpected(sa.error());
  auto fd = socket_in(netns, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (!fd) return fd;
  const std::string where =
      addr + ":" + std::to_string(port) + (netns.empty() ? "" : " from " + netns);
  if (::connect(fd->get(), reinterpret_cast<const sockaddr*>(&*sa), sizeof *sa) != 0) {
    if (errno != EINPROGRESS)
      return fail("connect_failed", "connect " + where + ": " + errno_str(errno));
    pollfd p{fd->get(), POLLOUT, 0};
    int n;
    do {
      n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (n < 0 && errno == EINTR);
    if (n == 0)
      return fail("timeout", "connect " + where + ": timed out after " +
                                 std::to_string(timeout.count()) + " ms");
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd->get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return fail("connect_failed", "connect " + where + ": " + errno_str(err));
  }
  int flags = ::fcntl(fd->get(), F_GETFL);
  ::fcntl(fd->get(), F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

Result<Fd> tcp_listen_in(const std::string& netns, const std::string& addr, uint16_t port) {
  auto sa = make_addr(addr, port);
  if (!sa) return tl::unexpected(sa.error());
  auto fd = socket_in(netns, AF_INET, SOCK_STREAM, 0);
  if (!fd) return fd;
  int one = 1;
  ::setsockopt(fd->get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd->get(), reinterpret_cast<const sockaddr*>(&*sa), sizeof *sa) != 0) {
    return fail("bind_failed",
                "bind " + addr + ":" + std::to_string(port) + ": " + errno_str(errno));
  }
  if (::listen(fd->get(), 128) != 0) return fail("listen_failed", "listen: " + errno_str(errno));
  return fd;
}

Result<uint16_t> local_port(int fd) {
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    return fail("socket_error", "getsockname: " + errno_str(errno));
  }
  return ntohs(sa.sin_port);
}

Result<void> write_all(int fd, std::string_view data, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  size_t off = 0;
  while (off < data.size()) {
    pollfd p{fd, POLLOUT, 0};
    int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("io_error", "poll: " + errno_str(errno));
    if (n == 0) return fail("timeout", "write timed out after " + std::to_string(off) + " bytes");
    ssize_t w = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return fail("io_error", "send: " + errno_str(errno));
    }
    off += static_cast<size_t>(w);
  }
  return {};
}

Result<std::string> read_exact(int fd, size_t n, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string out;
  out.resize(n);
  size_t off = 0;
  while (off < n) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return fail("io_error", "poll: " + errno_str(errno));
    if (r == 0) {
      return fail("timeout", "read timed out after " + std::to_string(off) + " of " +
                                 std::to_string(n) + " bytes");
    }
    ssize_t got = ::recv(fd, out.data() + off, n - off, MSG_DONTWAIT);
    if (got < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return fail("io_error", "recv: " + errno_str(errno));
    }
    if (got == 0)
      return fail("eof",
                  "EOF after " + std::to_string(off) + " of " + std::to_string(n) + " bytes");
    off += static_cast<size_t>(got);
  }
  return out;
}

std::string read_until_eof(int fd, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string out;
  char buf[16384];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    ssize_t got = ::read(fd, buf, sizeof buf);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (got <= 0) break;
    out.append(buf, static_cast<size_t>(got));
  }
  return out;
}

Result<PingStats> ping(const std::string& netns, const std::string& addr, const PingOptions& opts) {
  auto dst = make_addr(addr, 0);
  if (!dst) return tl::unexpected(dst.error());
  if (opts.count <= 0) return fail("bad_argument", "ping count must be > 0");
  auto sock = socket_in(netns, AF_INET, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_ICMP);
  if (!sock) {
    return fail(sock.error().code,
                "ping needs a raw ICMP socket (root / CAP_NET_RAW): " + sock.error().message);
  }
  const uint16_t id =
      static_cast<uint16_t>((::getpid() * 31 + g_ping_counter.fetch_add(1)) & 0xffff);
  const size_t count = static_cast<size_t>(opts.count);
  std::vector<Clock::time_point> sent_at(count);
  std::vector<double> rtt(count, -1.0);
  PingStats st;

  auto receive = [&](int wait_ms) {
    pollfd p{sock->get(), POLLIN, 0};
    int n = ::poll(&p, 1, wait_ms);
    if (n <= 0) return;
    uint8_t buf[65536];
    for (;;) {
      ssize_t got = ::recv(sock->get(), buf, sizeof buf, MSG_DONTWAIT);
      if (got <= 0) return;
      auto now = Clock::now();
      size_t len = static_cast<size_t>(got);
      if (len < 20) continue;
      size_t ihl = static_cast<size_t>(buf[0] & 0x0f) * 4;
      if (len < ihl + 8) continue;
      const uint8_t* icmp = buf + ihl;
      uint16_t rid = static_cast<uint16_t>(icmp[4] << 8 | icmp[5]);
      uint16_t rseq = static_cast<uint16_t>(icmp[6] << 8 | icmp[7]);
      if (icmp[0] != ICMP_ECHOREPLY || rid != id || rseq >= count || rtt[rseq] >= 0) continue;
      rtt[rseq] = std::chrono::duration<double, std::milli>(now - sent_at[rseq]).count();
    }
  };

  const auto start = Clock::now();
  for (size_t seq = 0; seq < count; ++seq) {
    auto when = start + opts.interval * static_cast<long>(seq);
    while (Clock::now() < when) receive(std::max(1, remaining_ms(when)));
    std::vector<uint8_t> pkt(8 + opts.payload_bytes, 0);
    pkt[0] = ICMP_ECHO;
    pkt[4] = static_cast<uint8_t>(id >> 8);
    pkt[5] = static_cast<uint8_t>(id & 0xff);
    pkt[6] = static_cast<uint8_t>(seq >> 8);
    pkt[7] = static_cast<uint8_t>(seq & 0xff);
    for (size_t i = 8; i < pkt.size(); ++i) pkt[i] = static_cast<uint8_t>(i);
    uint16_t ck = icmp_checksum(pkt.data(), pkt.size());
    pkt[2] = static_cast<uint8_t>(ck >> 8);
    pkt[3] = static_cast<uint8_t>(ck & 0xff);
    sent_at[seq] = Clock::now();
    ++st.sent;
    // Send errors (ENETUNREACH while a link is down, EPERM from a firewall) count as loss.
    (void)::sendto(sock->get(), pkt.data(), pkt.size(), 0, reinterpret_cast<const sockaddr*>(&*dst),
                   sizeof *dst);
  }
  const auto deadline = Clock::now() + opts.timeout;
  while (Clock::now() < deadline) {
    if (std::all_of(rtt.begin(), rtt.end(), [](double r) { return r >= 0; })) break;
    receive(std::max(1, remaining_ms(deadline)));
  }
  double sum = 0;
  st.min_ms = std::numeric_limits<double>::max();
  for (double r : rtt) {
    if (r < 0) continue;
    ++st.received;
    sum += r;
    st.min_ms = std::min(st.min_ms, r);
    st.max_ms = std::max(st.max_ms, r);
  }
  if (st.received) {
    st.avg_ms = sum / st.received;
  } else {
    st.min_ms = 0;
  }
  return st;
}

}  // namespace rap::testing
