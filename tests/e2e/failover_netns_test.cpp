// End to end, issue 8: open TCP access streams survive the death of their relay. Hosts client,
// entry, relay-a, relay-b, exit and target in network namespaces; real rap-control, agents,
// rapctl, OpenSSH. A 1 GB scp and an interactive ssh session run through the same route while the
// relay carrying them is killed with SIGKILL at a third of the transfer; both finish (ssh never
// reconnects: scp and ssh have no reconnect) and the file's sha256 matches. Then, with the control
// plane stopped, the link between the entry and the relay carrying a new transfer is taken down:
// the transfer still completes on the cached alternate.
#include "access_netns.h"

using namespace access_netns;

namespace {

class FailoverNetns : public AccessNetns {
 protected:
  FailoverNetns() { name_ = "failover-netns"; }

  // The relay host carrying the entry's first open flow ("" when none).
  std::string carrying_relay() {
    for (const auto& f : status("entry").value("open_flows", json::array())) {
      const auto hops = f.value("hops", json::array());
      if (hops.size() != 3) continue;
      for (const auto& [h, id] : ids_)
        if (id == hops[1].get<std::string>()) return h;
    }
    return "";
  }
  std::uintmax_t size_of(const std::filesystem::path& p) {
    std::error_code ec;
    const auto n = std::filesystem::file_size(p, ec);
    return ec ? 0 : n;
  }
  std::string sha256(const std::filesystem::path& p) {
    auto r = rap::testing::run_command({"sha256sum", p.string()}, RunOptions{.timeout = 120s});
    return r.output.substr(0, 64);
  }
  // Bulk data (up to 2 GiB at once) lives in memory when the machine has little disk.
  const std::filesystem::path& bulk() {
    if (!bulk_) {
      auto d = TempDir::create_for_bytes("failover-bulk-", 2ull << 30);
      EXPECT_TRUE(d.has_value()) << d.error().message;
      if (!d) d = TempDir::create("failover-bulk-");
      bulk_.emplace(std::move(*d));
    }
    return bulk_->path();
  }
  std::filesystem::path make_file(const std::string& name, int mb) {
    const auto p = bulk() / name;
    EXPECT_TRUE(rap::testing::run_command({"dd", "if=/dev/urandom", "of=" + p.string(), "bs=1M",
                                           "count=" + std::to_string(mb), "status=none"},
                                          RunOptions{.timeout = 120s})
                    .ok());
    return p;
  }
  // Waits until `p` holds at least `bytes` (the scp is under way); false on timeout.
  bool wait_size(const std::filesystem::path& p, std::uintmax_t bytes, std::chrono::seconds t) {
    return eventually([&] { return size_of(p) >= bytes; }, t);
  }
  // Control plane, sshd on the target, the mesh, resource "ssh" (ssh_res_) that alice may use;
  // returns the ssh client options.
  std::vector<std::string> ssh_lab() {
    start_control();
    auto opts = start_sshd();
    setup_mesh();
    ssh_res_ = add_resource("ssh", "ssh", 22);
    api("POST", "/api/v1/orgs/acme/policies",
        json{{"name", "ssh"},
             {"service", "ssh"},
             {"users", {"alice@acme.io"}},
             {"resources", {ssh_res_}}});
    wait_mesh();
    return opts;
  }
  std::string ssh_res_;
  std::optional<TempDir> bulk_;

  double switches() {
    return status("entry")
        .value("route_health", json::object())
        .value("switches", json::array())
        .size();
  }
};

}  // namespace

TEST_F(FailoverNetns, ScpAndSshSurviveRelayKillAndLinkDownEvenWithoutControlPlane) {
  const auto ssh_opts = ssh_lab();
  const auto& ssh_res = ssh_res_;
  const auto alice = user_token("alice@acme.io");
  // Tickets carry an alternate route once the control plane has seen both relays' sessions in
  // heartbeats (the owner's audit log says how many; the tenant's answer never does).
  ASSERT_TRUE(eventually(
      [&] {
        int st = 0;
        api("POST", "/api/v1/orgs/acme/resources/" + ssh_res + "/connect", json::object(), alice,
            &st);
        if (st != 200) return false;
        const auto audit = api("GET", "/api/v1/audit?org=acme&limit=50");
        for (const auto& e : audit.value("events", json::array()))
          if (e.value("action", "") == "access.granted" && e["details"].value("alternates", 0) >= 1)
            return true;
        return false;
      },
      60s));
  // One-minute tickets: by the second part the ticket has expired and the control plane is gone,
  // so the nodes renew it from their cached policy (offline horizon, 1 h by default).
  auto fwd = rapctl_connect(alice, "ssh", 2222, "rapctl-ssh.log", {"--ttl", "60"});
  ASSERT_TRUE(fwd.wait_for_output("forwarding", 30s)) << fwd.output();
  auto ssh_argv = [&](std::vector<std::string> tail) {
    std::vector<std::string> a = {"ssh", "-p", "2222"};
    a.insert(a.end(), ssh_opts.begin(), ssh_opts.end());
    a.push_back("root@127.0.0.1");
    a.insert(a.end(), tail.begin(), tail.end());
    return a;
  };
  auto scp_argv = [&](const std::filesystem::path& from, const std::filesystem::path& to) {
    std::vector<std::string> a = {"scp", "-q", "-P", "2222"};
    a.insert(a.end(), ssh_opts.begin(), ssh_opts.end());
    a.insert(a.end(), {from.string(), "root@127.0.0.1:" + to.string()});
    return a;
  };

  // --- 1: kill -9 of the relay carrying a 1 GB scp and an interactive session ---
  const auto big = make_file("big.bin", 1024);
  const auto received = bulk() / "received.bin";
  // The interactive session: a shell printing a numbered line every 100 ms until told to stop
  // (after the kill and the scp), so it is open across the switch however slow the machine.
  const auto stop_ticks = dir_->path() / "stop-ticks";
  auto ticks = spawn("client",
                     ssh_argv({"i=0; while [ ! -e " + stop_ticks.string() +
                               " ]; do i=$((i+1)); echo tick $i; sleep 0.1; done; echo done $i"}),
                     "ssh-ticks.log");
  ASSERT_TRUE(ticks.wait_for_output("tick 5\n", 30s)) << ticks.output() << fwd.output();
  const auto last_ticket_fetch = std::chrono::steady_clock::now();
  auto scp = spawn("client", scp_argv(big, received), "scp-1.log");
  ASSERT_TRUE(wait_size(received, 340ull << 20, 180s)) << scp.output() << fwd.output();
  const std::string victim = carrying_relay();
  ASSERT_FALSE(victim.empty()) << status("entry");
  const std::string survivor = victim == "relaya" ? "relayb" : "relaya";
  std::cout << "killing " << victim << " (SIGKILL) at " << (size_of(received) >> 20) << " MB\n";
  agents_.at(victim).kill(SIGKILL);
  const auto code = scp.wait_exit(300s);
  ASSERT_TRUE(code.has_value()) << "scp did not finish";
  EXPECT_EQ(*code, 0) << scp.output();
  EXPECT_EQ(sha256(big), sha256(received));
  std::filesystem::remove(big);
  std::filesystem::remove(received);
  write_file(stop_ticks, "");
  const auto tcode = ticks.wait_exit(60s);
  ASSERT_TRUE(tcode.has_value());
  EXPECT_EQ(*tcode, 0) << ticks.output();
  const std::string out = ticks.output();
  std::smatch done;
  ASSERT_TRUE(std::regex_search(out, done, std::regex("done ([0-9]+)"))) << out;
  const int last = std::stoi(done[1].str());
  EXPECT_GT(last, 20);
  std::size_t pos = 0;
  for (int i = 1; i <= last; ++i) {
    pos = out.find("tick " + std::to_string(i) + "\n", pos);
    ASSERT_NE(pos, std::string::npos) << "missing or out of order: tick " << i << "\n" << out;
  }
  json st = status("entry");
  const auto sw = st["route_health"]["switches"];
  ASSERT_GE(sw.size(), 2u) << st.dump(2);  // both flows moved
  for (const auto& s : sw) {
    EXPECT_LT(s.value("ms", 1e9), 1000.0) << s;
    std::cout << "route switch " << s.dump() << "\n";
  }
  // Both flows close (the status is refreshed every heartbeat).
  EXPECT_TRUE(eventually([&] { return carrying_relay().empty(); }, 10s)) << status("entry");

  // --- 2: control plane stopped; link down between entry and the carrying relay ---
  restart_agent(victim);
  wait_mesh();
  control_->terminate();
  const auto mid = make_file("mid.bin", 300);
  // The nodes notice that the control plane is gone (their partition state turns degraded), and
  // the rapctl ticket (fetched at the latest when scp 1 started) has expired.
  ASSERT_TRUE(eventually([&] { return status("entry").value("authority_offline", false); }, 30s))
      << status("entry");
  ASSERT_TRUE(eventually([&] { return status(survivor).value("authority_offline", false); }, 30s));
  std::this_thread::sleep_until(last_ticket_fetch + 65s);
  const auto received2 = bulk() / "received2.bin";
  const double before = switches();
  auto scp2 = spawn("client", scp_argv(mid, received2), "scp-2.log");
  ASSERT_TRUE(wait_size(received2, 100ull << 20, 180s)) << scp2.output() << fwd.output();
  const std::string carrier = carrying_relay();
  ASSERT_FALSE(carrier.empty());
  std::cout << "link entry <-> " << carrier << " down at " << (size_of(received2) >> 20)
            << " MB (control plane stopped)\n";
  ASSERT_TRUE(topo_->set_link_up("entry", carrier, false));
  const auto code2 = scp2.wait_exit(300s);
  ASSERT_TRUE(code2.has_value()) << "scp did not finish";
  EXPECT_EQ(*code2, 0) << scp2.output();
  EXPECT_EQ(sha256(mid), sha256(received2));
  EXPECT_GT(switches(), before);
  const json after = status("entry");
  // Entry and exit honoured the expired ticket from cached policy, and said so.
  EXPECT_GE(after["tcp_access"]["entry"].value("offline_renewals", 0), 1) << after.dump();
  EXPECT_GE(status("exit")["tcp_access"]["exit"].value("offline_renewals", 0), 1);
  EXPECT_NE(fwd.output().find("control plane is unreachable"), std::string::npos) << fwd.output();
  for (const auto& s : after["route_health"]["switches"])
    std::cout << "route switch " << s.dump() << "\n";
}

namespace {

class RouteChoiceNetns : public FailoverNetns {
 protected:
  RouteChoiceNetns() {
    name_ = "route-choice-netns";
    wired_ = true;
  }
};

}  // namespace

// New connections get their route from the planner: delay and loss on one relay's link move new
// routes to the other relay (after the hysteresis hold), while a difference within the margin
// never moves them.
TEST_F(RouteChoiceNetns, ImpairedPathIsAvoidedAndNearEqualPathsDoNotFlap) {
  const auto ssh_opts = ssh_lab();
  const auto alice = user_token("alice@acme.io");
  // Which relay does a brand-new ticket's route use? (A fresh rapctl fetches a fresh ticket; an
  // ssh session holds the flow open while the entry's status is read.)
  int port = 2300;
  auto probe = [&]() -> std::string {
    const int p = port++;
    auto fwd = rapctl_connect(alice, "ssh", p, "rapctl-probe-" + std::to_string(p) + ".log");
    if (!fwd.wait_for_output("forwarding", 30s)) return "no-forward";
    std::vector<std::string> a = {"ssh", "-p", std::to_string(p)};
    a.insert(a.end(), ssh_opts.begin(), ssh_opts.end());
    a.insert(a.end(), {"root@127.0.0.1", "echo held; sleep 6"});
    auto s = spawn("client", a, "ssh-probe-" + std::to_string(p) + ".log");
    if (!s.wait_for_output("held", 30s)) return "no-ssh";
    std::string relay;  // the agent's status is refreshed every heartbeat (1 s here)
    eventually(
        [&] {
          relay = carrying_relay();
          return !relay.empty();
        },
        5s);
    if (relay.empty()) std::cout << "probe: no relayed flow in " << status("entry").dump() << "\n";
    s.wait_exit(20s);
    fwd.terminate();
    return relay;
  };
  std::string first;
  ASSERT_TRUE(eventually(
      [&] {
        first = probe();
        return first == "relaya" || first == "relayb";
      },
      60s))
      << first;
  ASSERT_TRUE(first == "relaya" || first == "relayb") << first;
  const std::string other = first == "relaya" ? "relayb" : "relaya";
  std::cout << "initial primary: " << first << "\n";

  // Within the margin: 1 ms each way on the primary's link makes the other relay marginally
  // cheaper; new routes stay on the first one.
  ASSERT_TRUE(topo_->set_wire("entry", first, rap::testing::WireParams().delay(1)));
  std::this_thread::sleep_for(4s);  // heartbeats carry the new RTTs
  for (int i = 0; i < 3; ++i) {
    const auto got = probe();
    EXPECT_EQ(got, first) << "flapped on probe " << i;
    if (got != first) {
      const auto audit = api("GET", "/api/v1/audit?org=acme&limit=20");
      for (const auto& e : audit.value("events", json::array()))
        if (e.value("action", "") == "access.granted") std::cout << e["details"].dump() << "\n";
      std::cout << "entry: " << status("entry").value("peers", json::array()).dump() << "\n";
    }
  }

  // Clearly worse: 40 ms and 3 % loss. New routes move to the other relay once that has held for
  // the hysteresis hold time (10 s).
  ASSERT_TRUE(topo_->set_wire("entry", first, rap::testing::WireParams().delay(40).loss(3)));
  std::string now;
  ASSERT_TRUE(eventually(
      [&] {
        now = probe();
        return now == other;
      },
      90s))
      << "still " << now;
  // And it stays there.
  EXPECT_EQ(probe(), other);
  // The loss is visible in the entry's peer health (TCP retransmits on the live session).
  std::uint64_t retrans = 0;
  for (const auto& p : status("entry").value("peers", json::array()))
    if (p.value("id", "") == ids_[first]) retrans = p.value("tcp_retransmits", std::uint64_t{0});
  EXPECT_GT(retrans, 0u) << status("entry").dump();
}
