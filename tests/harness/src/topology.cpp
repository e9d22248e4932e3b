#include "rap/testing/topology.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <thread>

namespace rap::testing {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

const char* const kNetnsDir = "/var/run/netns";

RunOptions timeout_opts(std::chrono::milliseconds t) {
  RunOptions o;
  o.timeout = t;
  return o;
}

std::string fmt_num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string subnet_addr(int idx, int host) {
  return "10." + std::to_string(10 + idx / 256) + "." + std::to_string(idx % 256) + "." +
         std::to_string(host);
}

bool valid_host_name(const std::string& n) {
  if (n.empty() || n.size() > 20) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

// Kills every process inside `ns` (except ourselves) and deletes it. Best effort.
void destroy_netns(const std::string& ns) {
  auto pids = run_command({"ip", "netns", "pids", ns}, timeout_opts(std::chrono::seconds(10)));
  if (pids.ok()) {
    std::istringstream in(pids.output);
    long pid;
    while (in >> pid) {
      if (pid > 1 && pid != ::getpid()) ::kill(static_cast<pid_t>(pid), SIGKILL);
    }
  }
  auto del = run_command({"ip", "netns", "del", ns}, timeout_opts(std::chrono::seconds(10)));
  if (!del.ok()) {
    std::fprintf(stderr, "rap::testing::Topology: `ip netns del %s` failed: %s\n", ns.c_str(),
                 del.output.c_str());
  }
}

}  // namespace

Topology::Topology() {
  cleanup_stale();
  prefix_ = "rapt" + std::to_string(::getpid()) + "-";
  TempDir::remove_stale("rap-topo-");
  if (auto d = TempDir::create_owned("rap-topo-")) dir_.emplace(std::move(*d));
}

Topology::~Topology() {
  // Wires first: their TUN devices vanish with them.
  for (auto& l : links_) l->wire.reset();
  for (auto it = host_order_.rbegin(); it != host_order_.rend(); ++it) destroy_netns(hosts_[*it]);
}

bool Topology::available(std::string* reason) {
  static std::once_flag once;
  static bool ok = false;
  static std::string why;
  std::call_once(once, [] {
    if (::geteuid() != 0) {
      why = "network namespace tests need root (euid " + std::to_string(::geteuid()) + ")";
      return;
    }
    std::string probe = "rapt" + std::to_string(::getpid()) + "-probe";
    auto add = run_command({"ip", "netns", "add", probe}, timeout_opts(std::chrono::seconds(10)));
    if (!add.ok()) {
      why = "`ip netns add` failed: " + add.output;
      return;
    }
    run_command({"ip", "netns", "del", probe}, timeout_opts(std::chrono::seconds(10)));
    ok = true;
  });
  if (reason) *reason = why;
  return ok;
}

void Topology::cleanup_stale() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(kNetnsDir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("rapt", 0) != 0) continue;
    auto dash = name.find('-');
    if (dash == std::string::npos || dash == 4) continue;
    const std::string digits = name.substr(4, dash - 4);
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    const long pid = std::strtol(digits.c_str(), nullptr, 10);
    if (pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // owner alive
    std::fprintf(stderr, "rap::testing::Topology: removing stale namespace %s\n", name.c_str());
    destroy_netns(name);
  }
}

Result<void> Topology::ip(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_command(argv, timeout_opts(std::chrono::seconds(20)));
  if (!r.ok()) {
    return fail("ip_failed", "`" + shell_join(argv) + "` exited " + std::to_string(r.exit_code) +
                                 ": " + r.output);
  }
  return {};
}

Result<void> Topology::add_host(const std::string& name) {
  if (!valid_host_name(name))
    return fail("bad_argument", "host name must match [a-z0-9_-]{1,20}: '" + name + "'");
  if (hosts_.count(name)) return fail("exists", "host already exists: " + name);
  const std::string ns = prefix_ + name;
  if (auto r = ip({"netns", "add", ns}); !r) return r;
  hosts_[name] = ns;
  host_order_.push_back(name);
  return ip({"-n", ns, "link", "set", "lo", "up"});
}

std::string Topology::netns(const std::string& host) const {
  auto it = hosts_.find(host);
  return it == hosts_.end() ? std::string() : it->second;
}

Result<void> Topology::check_new_link(const std::string& a, const std::string& b) const {
  if (!hosts_.count(a)) return fail("no_such_host", "unknown host: " + a);
  if (!hosts_.count(b)) return fail("no_such_host", "unknown host: " + b);
  if (a == b) return fail("bad_argument", "cannot link a host to itself: " + a);
  if (find_link(a, b)) return fail("exists", "hosts " + a + " and " + b + " are already linked");
  return {};
}

int Topology::next_index(int requested) {
  if (requested >= 0) {
    if (requested >= 245 * 256 || std::count(used_indices_.begin(), used_indices_.end(), requested))
      return -1;
    used_indices_.push_back(requested);
    return requested;
  }
  for (int i = 0;; ++i) {
    if (!std::count(used_indices_.begin(), used_indices_.end(), i)) {
      used_indices_.push_back(i);
      return i;
    }
  }
}

Result<LinkInfo> Topology::link(const std::string& a, const std::string& b, int subnet_index) {
  if (auto r = check_new_link(a, b); !r) return tl::unexpected(r.error());
  const int idx = next_index(subnet_index);
  if (idx < 0)
    return fail("bad_argument",
                "subnet index in use or out of range: " + std::to_string(subnet_index));
  auto l = std::make_unique<Link>();
  LinkInfo& li = l->info;
  li.host_a = a;
  li.host_b = b;
  li.dev_a = li.dev_b = "v" + std::to_string(link_counter_++);
  li.addr_a = subnet_addr(idx, 1);
  li.addr_b = subnet_addr(idx, 2);
  const std::string& na = hosts_[a];
  const std::string& nb = hosts_[b];
  // Both ends are created directly inside their namespaces (never in the root namespace).
  if (auto r = ip({"link", "add", li.dev_a, "netns", na, "type", "veth", "peer", "name", li.dev_b,
                   "netns", nb});
      !r) {
    return tl::unexpected(r.error());
  }
  for (auto [ns, dev, addr] :
       {std::tuple{na, li.dev_a, li.addr_a}, std::tuple{nb, li.dev_b, li.addr_b}}) {
    if (auto r = ip({"-n", ns, "addr", "add", addr + "/24", "dev", dev}); !r)
      return tl::unexpected(r.error());
    if (auto r = ip({"-n", ns, "link", "set", dev, "up"}); !r) return tl::unexpected(r.error());
  }
  LinkInfo out = li;
  links_.push_back(std::move(l));
  return out;
}

Result<std::string> Topology::wire_binary() {
  std::vector<std::string> cands;
  if (const char* e = std::getenv("RAP_TESTWIRE"); e && *e) cands.emplace_back(e);
  if (const char* e = std::getenv("RAP_BUILD_DIR"); e && *e)
    cands.push_back(std::string(e) + "/tests/harness/rap-testwire");
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    cands.push_back((self.parent_path() / "rap-testwire").string());
    cands.push_back((self.parent_path().parent_path() / "harness" / "rap-testwire").string());
  }
#ifdef RAP_TESTWIRE_BUILD_PATH
  cands.emplace_back(RAP_TESTWIRE_BUILD_PATH);
#endif
  for (const auto& c : cands) {
    if (::access(c.c_str(), X_OK) == 0) return c;
  }
  std::string tried;
  for (const auto& c : cands) tried += "\n  " + c;
  return fail("not_found",
              "rap-testwire not found (set RAP_TESTWIRE or RAP_BUILD_DIR); tried:" + tried);
}

Result<LinkInfo> Topology::wire_link(const std::string& a, const std::string& b,
                                     const WireParams& params, int subnet_index) {
  if (auto r = check_new_link(a, b); !r) return tl::unexpected(r.error());
  if (!dir_) return fail("io_error", "Topology has no temp dir for wire control sockets");
  auto bin = wire_binary();
  if (!bin) return tl::unexpected(bin.error());
  const int idx = next_index(subnet_index);
  if (idx < 0)
    return fail("bad_argument",
                "subnet index in use or out of range: " + std::to_string(subnet_index));
  auto l = std::make_unique<Link>();
  LinkInfo& li = l->info;
  li.is_wire = true;
  li.host_a = a;
  li.host_b = b;
  const int n = link_counter_++;
  li.dev_a = li.dev_b = "w" + std::to_string(n);
  li.addr_a = subnet_addr(idx, 1);
  li.addr_b = subnet_addr(idx, 2);
  l->control_path = (dir_->path() / ("wire" + std::to_string(n) + ".sock")).string();
  const std::string& na = hosts_[a];
  const std::string& nb = hosts_[b];

  SubprocessOptions so;
  so.output_file = dir_->path() / ("wire" + std::to_string(n) + ".log");
  so.term_grace = std::chrono::milliseconds(2000);
  auto sp = Subprocess::spawn({*bin,
                               "--ns-a",
                               na,
                               "--dev-a",
                               li.dev_a,
                               "--ns-b",
                               nb,
                               "--dev-b",
                               li.dev_b,
                               "--control",
                               l->control_path,
                               "--delay",
                               fmt_num(params.delay_ms),
                               "--jitter",
                               fmt_num(params.jitter_ms),
                               "--loss",
                               fmt_num(params.loss_percent),
                               "--rate",
                               fmt_num(params.rate_mbit),
                               "--queue",
                               std::to_string(params.queue_packets)},
                              so);
  if (!sp) return tl::unexpected(sp.error());
  l->wire = std::make_unique<Subprocess>(std::move(*sp));
  if (auto r = l->wire->wait_for_output("ready", std::chrono::seconds(10)); !r) {
    return fail("wire_failed", "rap-testwire " + a + "<->" + b + ": " + r.error().message);
  }
  for (auto [ns, dev, addr] :
       {std::tuple{na, li.dev_a, li.addr_a}, std::tuple{nb, li.dev_b, li.addr_b}}) {
    // No IPv6 on the wire: keeps autoconf chatter out of loss/count measurements.
    (void)run_in_netns(ns, [dev = dev] {
      std::string p = "/proc/sys/net/ipv6/conf/" + dev + "/disable_ipv6";
      int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd >= 0) {
        ssize_t w = ::write(fd, "1", 1);
        (void)w;
        ::close(fd);
      }
    });
    if (auto r = ip({"-n", ns, "addr", "add", addr + "/24", "dev", dev}); !r)
      return tl::unexpected(r.error());
    if (auto r = ip({"-n", ns, "link", "set", dev, "up"}); !r) return tl::unexpected(r.error());
  }
  LinkInfo out = li;
  links_.push_back(std::move(l));
  return out;
}

Result<const Topology::Link*> Topology::find_link(const std::string& a,
                                                  const std::string& b) const {
  for (const auto& l : links_) {
    if ((l->info.host_a == a && l->info.host_b == b) ||
        (l->info.host_a == b && l->info.host_b == a)) {
      return l.get();
    }
  }
  return fail("no_such_link", "no link between " + a + " and " + b);
}

Result<LinkInfo> Topology::link_info(const std::string& a, const std::string& b) const {
  auto l = find_link(a, b);
  if (!l) return tl::unexpected(l.error());
  return (*l)->info;
}

Result<std::string> Topology::address(const std::string& host, const std::string& peer) const {
  auto l = find_link(host, peer);
  if (!l) return tl::unexpected(l.error());
  return (*l)->info.host_a == host ? (*l)->info.addr_a : (*l)->info.addr_b;
}

CommandResult Topology::exec(const std::string& host, const std::vector<std::string>& argv,
                             std::chrono::milliseconds timeout) const {
  auto it = hosts_.find(host);
  if (it == hosts_.end()) {
    CommandResult r;
    r.output = "unknown host: " + host;
    return r;
  }
  RunOptions ro;
  ro.netns = it->second;
  ro.timeout = timeout;
  return run_command(argv, ro);
}

Result<Subprocess> Topology::spawn(const std::string& host, std::vector<std::string> argv,
                                   SubprocessOptions opts) const {
  auto it = hosts_.find(host);
  if (it == hosts_.end()) return fail("no_such_host", "unknown host: " + host);
  opts.netns = it->second;
  return Subprocess::spawn(std::move(argv), std::move(opts));
}

Result<void> Topology::run_in(const std::string& host, const std::function<void()>& fn) const {
  auto it = hosts_.find(host);
  if (it == hosts_.end()) return fail("no_such_host", "unknown host: " + host);
  return run_in_netns(it->second, fn);
}

Result<PingStats> Topology::ping(const std::string& from, const std::string& to_addr,
                                 const PingOptions& opts) const {
  auto it = hosts_.find(from);
  if (it == hosts_.end()) return fail("no_such_host", "unknown host: " + from);
  return rap::testing::ping(it->second, to_addr, opts);
}

Result<void> Topology::wait_listening(const std::string& host, uint16_t port,
                                      std::chrono::milliseconds timeout) const {
  const auto deadline = Clock::now() + timeout;
  std::string last;
  for (;;) {
    auto r =
        exec(host, {"ss", "-Hltn", "sport = :" + std::to_string(port)}, std::chrono::seconds(5));
    if (r.ok() && r.output.find(':' + std::to_string(port)) != std::string::npos) return {};
    last = r.output;
    if (Clock::now() >= deadline) {
      return fail("timeout", "nothing listening on tcp port " + std::to_string(port) + " in host " +
                                 host + " after " + std::to_string(timeout.count()) + " ms (" +
                                 last + ")");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<void> Topology::set_link_up(const std::string& a, const std::string& b, bool up) {
  auto l = find_link(a, b);
  if (!l) return tl::unexpected(l.error());
  const LinkInfo& li = (*l)->info;
  for (auto [host, dev] : {std::pair{li.host_a, li.dev_a}, std::pair{li.host_b, li.dev_b}}) {
    if (auto r = ip({"-n", hosts_.at(host), "link", "set", dev, up ? "up" : "down"}); !r) return r;
  }
  return {};
}

Result<void> Topology::set_rate(const std::string& a, const std::string& b, double mbit) {
  auto l = find_link(a, b);
  if (!l) return tl::unexpected(l.error());
  const LinkInfo& li = (*l)->info;
  if (li.is_wire) {
    std::string reply;
    return wire_command(**l, "set rate=" + fmt_num(std::max(0.0, mbit)), &reply);
  }
  for (auto [host, dev] : {std::pair{li.host_a, li.dev_a}, std::pair{li.host_b, li.dev_b}}) {
    const std::string& ns = hosts_.at(host);
    std::vector<std::string> argv;
    if (mbit <= 0) {
      // Removing a qdisc that is not there fails; that is fine.
      run_command({"tc", "-n", ns, "qdisc", "del", "dev", dev, "root"});
      continue;
    }
    const double bytes_per_s = mbit * 1e6 / 8;
    const long burst = std::max(32L * 1024, static_cast<long>(bytes_per_s * 0.01));
    argv = {"tc",
            "-n",
            ns,
            "qdisc",
            "replace",
            "dev",
            dev,
            "root",
            "tbf",
            "rate",
            fmt_num(mbit) + "mbit",
            "burst",
            std::to_string(burst),
            "latency",
            "50ms"};
    auto r = run_command(argv, timeout_opts(std::chrono::seconds(20)));
    if (!r.ok()) return fail("tc_failed", "`" + shell_join(argv) + "`: " + r.output);
  }
  return {};
}

Result<void> Topology::set_loss(const std::string& a, const std::string& b, double percent) {
  auto l = find_link(a, b);
  if (!l) return tl::unexpected(l.error());
  const LinkInfo& li = (*l)->info;
  if (li.is_wire) {
    std::string reply;
    return wire_command(**l, "set loss=" + fmt_num(std::clamp(percent, 0.0, 100.0)), &reply);
  }
  if (!dir_) return fail("io_error", "Topology has no temp dir for nft scripts");
  const long pct = std::lround(std::clamp(percent, 0.0, 100.0));
  // Drop on ingress of each end: the sender's stack sees a real loss (no local EPERM).
  // Only IP is dropped, never ARP: lost ARP would stall a whole host for seconds and make
  // the measured loss depend on neighbour-table timing instead of the requested rate.
  for (auto [host, dev] : {std::pair{li.host_a, li.dev_a}, std::pair{li.host_b, li.dev_b}}) {
    const std::string& ns = hosts_.at(host);
    const std::string table = "raptloss_" + dev;
    RunOptions ro;
    ro.netns = ns;
    ro.timeout = std::chrono::seconds(20);
    run_command({"nft", "delete", "table", "netdev", table}, ro);  // may not exist yet
    // With GSO a TCP sender hands 64 KB super-packets to the veth and one "packet" drop
    // would lose ~40 segments at once; one segment per skb keeps loss per wire packet.
    if (auto r = ip({"-n", ns, "link", "set", dev, "gso_max_segs", pct > 0 ? "1" : "65535"}); !r)
      return r;
    if (pct <= 0) continue;
    const std::string script =
        "table netdev " + table + " {\n  chain in {\n    type filter hook ingress device \"" + dev +
        "\" priority 0;\n    meta protocol { ip, ip6 } numgen random mod 100 < " +
        std::to_string(pct) + " drop\n  }\n}\n";
    const fs::path file = dir_->path() / (ns + "-" + dev + ".nft");
    if (auto w = write_text_file(file, script); !w) return w;
    auto r = run_command({"nft", "-f", file.string()}, ro);
    if (!r.ok())
      return fail("nft_failed", "nft -f (" + ns + "): " + r.output + "\nscript:\n" + script);
  }
  return {};
}

Result<void> Topology::set_wire(const std::string& a, const std::string& b, const WireParams& p) {
  auto l = find_link(a, b);
  if (!l) return tl::unexpected(l.error());
  if (!(*l)->info.is_wire)
    return fail("bad_argument", "link " + a + "<->" + b + " is not a wire link");
  std::string reply;
  return wire_command(**l,
                      "set delay=" + fmt_num(p.delay_ms) + " jitter=" + fmt_num(p.jitter_ms) +
                          " loss=" + fmt_num(p.loss_percent) + " rate=" + fmt_num(p.rate_mbit) +
                          " queue=" + std::to_string(p.queue_packets),
                      &reply);
}

Result<WireStats> Topology::wire_stats(const std::string& a, const std::string& b) {
  auto l = find_link(a, b);
  if (!l) return tl::unexpected(l.error());
  if (!(*l)->info.is_wire)
    return fail("bad_argument", "link " + a + "<->" + b + " is not a wire link");
  std::string reply;
  if (auto r = wire_command(**l, "stats", &reply); !r) return tl::unexpected(r.error());
  WireStats st;
  std::istringstream in(reply);
  std::string tok;
  while (in >> tok) {
    auto eq = tok.find('=');
    if (eq == std::string::npos) continue;
    const std::string k = tok.substr(0, eq);
    const uint64_t v = std::strtoull(tok.c_str() + eq + 1, nullptr, 10);
    if (k == "forwarded")
      st.forwarded = v;
    else if (k == "dropped_loss")
      st.dropped_loss = v;
    else if (k == "dropped_queue")
      st.dropped_queue = v;
    else if (k == "write_errors")
      st.write_errors = v;
  }
  return st;
}

Result<void> Topology::wire_command(const Link& l, const std::string& cmd, std::string* reply) {
  if (!l.wire || !l.wire->running()) {
    return fail("wire_failed", "rap-testwire for " + l.info.host_a + "<->" + l.info.host_b +
                                   " is not running; output:\n" +
                                   (l.wire ? l.wire->output() : std::string()));
  }
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, l.control_path.c_str(),
              std::min(l.control_path.size() + 1, sizeof un.sun_path - 1));
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&un), sizeof un) != 0) {
    return fail("wire_failed", "connect " + l.control_path + ": " + std::strerror(errno));
  }
  if (auto w = write_all(fd.get(), cmd + "\n", std::chrono::seconds(5)); !w) return w;
  *reply = read_until_eof(fd.get(), std::chrono::seconds(5));
  if (reply->rfind("error", 0) == 0 || reply->empty()) {
    return fail("wire_failed",
                "wire command '" + cmd + "' failed: " + (reply->empty() ? "no reply" : *reply));
  }
  return {};
}

}  // namespace rap::testing
