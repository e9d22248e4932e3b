#include "rap/agent/host.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace rap::agent {

using json = nlohmann::json;

namespace {

std::string os_name() {
  std::ifstream f("/etc/os-release");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("PRETTY_NAME=", 0) == 0) {
      std::string v = line.substr(12);
      if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
      return v;
    }
  }
  return "linux";
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

json host_facts() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  utsname u{};
  ::uname(&u);
  struct sysinfo si {};
  ::sysinfo(&si);
  json addrs = json::array();
  ifaddrs* ifa = nullptr;
  if (::getifaddrs(&ifa) == 0) {
    for (ifaddrs* i = ifa; i != nullptr && addrs.size() < 16; i = i->ifa_next) {
      if (i->ifa_addr == nullptr || (i->ifa_flags & IFF_LOOPBACK) != 0) continue;
      const int fam = i->ifa_addr->sa_family;
      if (fam != AF_INET && fam != AF_INET6) continue;
      char buf[NI_MAXHOST] = {};
      const socklen_t len = fam == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
      if (::getnameinfo(i->ifa_addr, len, buf, sizeof buf, nullptr, 0, NI_NUMERICHOST) == 0) {
        std::string a = buf;
        if (a.rfind("fe80", 0) == 0) continue;  // link-local
        addrs.push_back(a);
      }
    }
    ::freeifaddrs(ifa);
  }
  return json{{"hostname", std::string(host)},
              {"os", os_name()},
              {"arch", std::string(u.machine)},
              {"cpus", static_cast<std::int64_t>(std::thread::hardware_concurrency())},
              {"memory_mb", static_cast<std::int64_t>(si.totalram * si.mem_unit / (1024 * 1024))},
              {"addresses", addrs}};
}

std::vector<std::string> detect_capabilities(const std::string& profile) {
  std::vector<std::string> caps = {"can_route_mesh", "can_accept_client_ingress",
                                   "can_run_tcp_exit"};
  std::error_code ec;
  if (std::filesystem::exists("/usr/bin/xfreerdp", ec) ||
      std::filesystem::exists("/usr/lib/x86_64-linux-gnu/libfreerdp2.so.2", ec)) {
    caps.emplace_back("can_run_rdp_worker");
  }
  if (profile != "thin") caps.emplace_back("can_store_config");
  return caps;
}

json LoadSampler::sample(std::uint32_t open_sessions) {
  json out = json::object();
  // CPU: busy and total jiffies from the first line of /proc/stat.
  {
    std::ifstream f("/proc/stat");
    std::string cpu;
    std::uint64_t v[8] = {};
    f >> cpu >> v[0] >> v[1] >> v[2] >> v[3] >> v[4] >> v[5] >> v[6] >> v[7];
    const std::uint64_t idle = v[3] + v[4];
    std::uint64_t total = 0;
    for (auto x : v) total += x;
    const std::uint64_t busy = total - idle;
    if (cpu_total_ != 0 && total > cpu_total_) {
      out["cpu_permille"] =
          static_cast<std::int64_t>((busy - cpu_busy_) * 1000 / (total - cpu_total_));
    } else {
      out["cpu_permille"] = 0;
    }
    cpu_busy_ = busy;
    cpu_total_ = total;
  }
  {
    std::ifstream f("/proc/meminfo");
    std::string k;
    std::uint64_t v = 0;
    std::string unit;
    std::uint64_t total = 0, avail = 0;
    while (f >> k >> v >> unit) {
      if (k == "MemTotal:") total = v;
      if (k == "MemAvailable:") avail = v;
    }
    out["memory_kib"] = static_cast<std::int64_t>(total > avail ? total - avail : 0);
  }
  {
    std::ifstream f("/proc/net/dev");
    std::string line;
    std::uint64_t rx = 0, tx = 0;
    while (std::getline(f, line)) {
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      name.erase(0, name.find_first_not_of(' '));
      if (name == "lo") continue;
      std::istringstream is(line.substr(colon + 1));
      std::uint64_t f0 = 0, skip = 0, t0 = 0;
      is >> f0;
      for (int i = 0; i < 7; ++i) is >> skip;
      is >> t0;
      rx += f0;
      tx += t0;
    }
    const double now = now_seconds();
    if (last_ > 0 && now > last_ && rx >= rx_ && tx >= tx_) {
      out["net_rx_bps"] =
          static_cast<std::int64_t>(static_cast<double>(rx - rx_) * 8 / (now - last_));
      out["net_tx_bps"] =
          static_cast<std::int64_t>(static_cast<double>(tx - tx_) * 8 / (now - last_));
    } else {
      out["net_rx_bps"] = 0;
      out["net_tx_bps"] = 0;
    }
    rx_ = rx;
    tx_ = tx;
    last_ = now;
  }
  std::error_code ec;
  std::int64_t fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++fds;
  }
  out["fds"] = fds;
  out["open_sessions"] = open_sessions;
  return out;
}

}  // namespace rap::agent
