// Topology: a little network of hosts, each its own network namespace, joined by links.
//
//   Topology topo;                                  // needs root; see available()
//   topo.add_host("a"); topo.add_host("b");
//   auto l = topo.link("a", "b");                   // veth, 10.x.y.1/24 <-> 10.x.y.2/24
//   topo.exec("a", {"ip", "addr"});                 // run_command inside a's namespace
//   auto srv = topo.spawn("b", {"socat", ...});     // Subprocess inside b's namespace
//   topo.set_link_up("a", "b", false);              // cut / restore
//   topo.set_rate("a", "b", 20);                    // tbf, both directions
//   topo.set_loss("a", "b", 5);                     // nftables numgen drop, both directions
//   topo.wire_link("c", "d", WireParams().delay(40)); // userspace wire: delay/jitter/loss/rate
//
// Namespace names are "rapt<pid>-<host>"; interface names are short ("v<N>" for veth,
// "w<N>" for wires) and are the same on both ends. The destructor kills the wires, kills every
// process left inside the namespaces and deletes the namespaces, also when a test failed.
// Namespaces left behind by crashed earlier runs (dead <pid>) are removed on construction.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rap/common/result.h"
#include "rap/testing/netns.h"
#include "rap/testing/subprocess.h"
#include "rap/testing/temp_dir.h"

namespace rap::testing {

// Impairments of a wire link, applied independently in each direction.
struct WireParams {
  double delay_ms = 0;      // one-way propagation delay
  double jitter_ms = 0;     // uniform in [-jitter, +jitter] (never reorders: FIFO per direction)
  double loss_percent = 0;  // random drop per packet
  double rate_mbit = 0;     // bottleneck rate (0 = unlimited)
  uint32_t queue_packets = 1000;  // bottleneck queue limit; tail drop beyond it

  // Chainable setters: WireParams().delay(40).jitter(5).loss(1).rate(20)
  WireParams& delay(double ms) {
    delay_ms = ms;
    return *this;
  }
  WireParams& jitter(double ms) {
    jitter_ms = ms;
    return *this;
  }
  WireParams& loss(double percent) {
    loss_percent = percent;
    return *this;
  }
  WireParams& rate(double mbit) {
    rate_mbit = mbit;
    return *this;
  }
  WireParams& queue(uint32_t packets) {
    queue_packets = packets;
    return *this;
  }
};

struct LinkInfo {
  std::string host_a, host_b;
  std::string dev_a, dev_b;    // interface names inside each namespace
  std::string addr_a, addr_b;  // ipv4 addresses without prefix, e.g. "10.0.3.1"
  int prefix_len = 24;
  bool is_wire = false;
};

struct WireStats {
  uint64_t forwarded = 0, dropped_loss = 0, dropped_queue = 0, write_errors = 0;
};

class Topology {
 public:
  Topology();
  ~Topology();
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  // True when namespaces can be created here (root, `ip netns add` works). Otherwise false,
  // with *reason set; tests then GTEST_SKIP() << reason. Cached after the first call.
  static bool available(std::string* reason = nullptr);

  // Creates namespace rapt<pid>-<name> with lo up. name: [a-z0-9_-]{1,20}.
  Result<void> add_host(const std::string& name);
  std::string netns(const std::string& host) const;  // namespace name (for SubprocessOptions)

  // veth pair between a and b: 10.<10+idx/256>.<idx%256>.1/24 on a and .2/24 on b.
  // subnet_index < 0 picks the next unused one. One link per host pair.
  Result<LinkInfo> link(const std::string& a, const std::string& b, int subnet_index = -1);
  // Link through the userspace wire (rap-testwire): a TUN device in each namespace.
  Result<LinkInfo> wire_link(const std::string& a, const std::string& b,
                             const WireParams& params = {}, int subnet_index = -1);

  Result<LinkInfo> link_info(const std::string& a, const std::string& b) const;
  // Address of `host` on its link to `peer`.
  Result<std::string> address(const std::string& host, const std::string& peer) const;

  CommandResult exec(const std::string& host, const std::vector<std::string>& argv,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;
  Result<Subprocess> spawn(const std::string& host, std::vector<std::string> argv,
                           SubprocessOptions opts = {}) const;
  // Runs fn on a thread inside host's namespace (sockets created there stay there).
  Result<void> run_in(const std::string& host, const std::function<void()>& fn) const;
  Result<PingStats> ping(const std::string& from, const std::string& to_addr,
                         const PingOptions& opts = {}) const;
  // Waits until something listens on TCP `port` inside host (polls `ss -ltn`).
  Result<void> wait_listening(const std::string& host, uint16_t port,
                              std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

  // Link cut / restore: `ip -n NS link set DEV down|up` on both ends.
  Result<void> set_link_up(const std::string& a, const std::string& b, bool up);
  // veth: tbf on both ends (0 = remove). wire: the wire's bottleneck rate.
  Result<void> set_rate(const std::string& a, const std::string& b, double mbit);
  // veth: nftables netdev-ingress `numgen random mod 100 < N drop` on both ends (0 = remove);
  // IPv4/IPv6 packets only (ARP is never dropped). Also sets gso_max_segs 1 on both devices
  // while loss is on, so a drop loses one MTU-sized packet, not a 64 KB GSO burst; sockets pick
  // that up when they connect, so set loss before opening the connections under test.
  // wire: the wire's loss (always per packet; TUN devices carry no GSO).
  // Integer percent for veth (nftables granularity).
  Result<void> set_loss(const std::string& a, const std::string& b, double percent);
  // Wire links only: replace all impairments at once (takes effect for new packets).
  Result<void> set_wire(const std::string& a, const std::string& b, const WireParams& params);
  Result<WireStats> wire_stats(const std::string& a, const std::string& b);

  // Path of rap-testwire: $RAP_TESTWIRE, $RAP_BUILD_DIR/tests/harness/rap-testwire, next to
  // the test executable, ../harness/ of it, or the build-time path.
  static Result<std::string> wire_binary();

  // Removes namespaces rapt<pid>-* whose <pid> is no longer alive.
  static void cleanup_stale();

  const std::vector<std::string>& hosts() const { return host_order_; }

 private:
  struct Link {
    LinkInfo info;
    std::unique_ptr<Subprocess> wire;  // wire links only
    std::string control_path;          // wire control socket
  };
  Result<const Link*> find_link(const std::string& a, const std::string& b) const;
  Result<void> check_new_link(const std::string& a, const std::string& b) const;
  int next_index(int requested);
  Result<void> wire_command(const Link& l, const std::string& cmd, std::string* reply);
  Result<void> ip(const std::vector<std::string>& args) const;

  std::string prefix_;
  std::map<std::string, std::string> hosts_;  // host -> namespace
  std::vector<std::string> host_order_;
  std::vector<std::unique_ptr<Link>> links_;
  std::vector<int> used_indices_;
  int link_counter_ = 0;
  std::optional<TempDir> dir_;  // control sockets, nft scripts, wire logs
};

}  // namespace rap::testing
