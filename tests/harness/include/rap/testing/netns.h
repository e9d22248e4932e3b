// In-process helpers for network namespaces and small socket utilities.
//
// Sockets stay bound to the namespace they were created in, so a test can create a socket
// "inside" host A via run_in_netns() and then use it from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "rap/common/result.h"

namespace rap::testing {

// Owning file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Runs `fn` on a fresh thread that has joined network namespace /var/run/netns/<netns>
// (setns); the calling thread is unaffected. Returns after `fn` has finished.
Result<void> run_in_netns(const std::string& netns, const std::function<void()>& fn);

// TCP connect to ipv4 `addr`:`port` with a timeout, from the *current* thread's namespace.
Result<Fd> tcp_connect(const std::string& addr, uint16_t port, std::chrono::milliseconds timeout);
// Same, but the socket is created inside `netns`.
Result<Fd> tcp_connect_in(const std::string& netns, const std::string& addr, uint16_t port,
                          std::chrono::milliseconds timeout);
// Listening TCP socket on addr:port (port 0 = ephemeral) inside `netns` ("" = current).
Result<Fd> tcp_listen_in(const std::string& netns, const std::string& addr, uint16_t port);
// Local port of a bound socket.
Result<uint16_t> local_port(int fd);

Result<void> write_all(int fd, std::string_view data, std::chrono::milliseconds timeout);
// Reads exactly n bytes (error on EOF / timeout).
Result<std::string> read_exact(int fd, size_t n, std::chrono::milliseconds timeout);
// Reads until EOF or timeout (error only on read errors; timeout returns what was read).
std::string read_until_eof(int fd, std::chrono::milliseconds timeout);

struct PingOptions {
  PingOptions() = default;
  explicit PingOptions(int n, std::chrono::milliseconds every = std::chrono::milliseconds(200),
                       std::chrono::milliseconds wait = std::chrono::milliseconds(1000))
      : count(n), interval(every), timeout(wait) {}
  int count = 1;
  std::chrono::milliseconds interval{200};
  std::chrono::milliseconds timeout{1000};  // wait for replies after the last request
  size_t payload_bytes = 56;
};

struct PingStats {
  int sent = 0;
  int received = 0;
  double min_ms = 0, avg_ms = 0, max_ms = 0;
  double loss_percent() const { return sent ? 100.0 * (sent - received) / sent : 100.0; }
};

// ICMP echo from inside `netns` ("" = current namespace) to ipv4 `addr` (raw socket: root).
// A request that cannot be sent (e.g. ENETUNREACH while a link is down) counts as lost.
// This replaces `ping` (iputils is not installed on the project machines).
Result<PingStats> ping(const std::string& netns, const std::string& addr,
                       const PingOptions& opts = {});

}  // namespace rap::testing
