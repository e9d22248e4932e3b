// Topology: hosts in network namespaces, veth links (cut/restore, tbf rate, nftables loss) and
// links through the userspace wire (delay, jitter, loss, rate). Needs root; skips otherwise.
#include "rap/testing/netns.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>

#include "rap/testing/gtest_support.h"
#include "rap/testing/temp_dir.h"
#include "rap/testing/topology.h"

using namespace std::chrono_literals;
using rap::testing::Fd;
using rap::testing::LinkInfo;
using rap::testing::PingOptions;
using rap::testing::PingStats;
using rap::testing::Subprocess;
using rap::testing::SubprocessOptions;
using rap::testing::TempDir;
using rap::testing::Topology;
using rap::testing::WireParams;

namespace {

class NetnsTopologyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string reason;
    if (!Topology::available(&reason)) GTEST_SKIP() << reason;
  }
};

std::string random_bytes(size_t n) {
  std::mt19937 rng(12345);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

// Sends `payload` over a fresh TCP connection from `from` to addr:port and expects it echoed.
::testing::AssertionResult echo_roundtrip(const Topology& topo, const std::string& from,
                                          const std::string& addr, uint16_t port,
                                          const std::string& payload) {
  auto conn = rap::testing::tcp_connect_in(topo.netns(from), addr, port, 3s);
  if (!conn) return ::testing::AssertionFailure() << conn.error().message;
  if (auto w = rap::testing::write_all(conn->get(), payload, 10s); !w) {
    return ::testing::AssertionFailure() << "write: " << w.error().message;
  }
  auto back = rap::testing::read_exact(conn->get(), payload.size(), 10s);
  if (!back) return ::testing::AssertionFailure() << "read: " << back.error().message;
  if (*back != payload) return ::testing::AssertionFailure() << "echo differs";
  return ::testing::AssertionSuccess();
}

bool ns_listed(const std::string& prefix) {
  auto r = rap::testing::run_command({"ip", "netns", "list"});
  return r.output.find(prefix) != std::string::npos;
}

// Runs an iperf3 client in `from` against an iperf3 server in `to`; returns Mbit/s received.
double iperf_mbit(Topology& topo, const std::string& from, const std::string& to,
                  const std::string& addr, int seconds, std::string* diag) {
  auto r =
      topo.exec(from, {"iperf3", "-c", addr, "-p", "5201", "-t", std::to_string(seconds), "-J"},
                std::chrono::seconds(seconds + 20));
  (void)to;
  if (!r.ok()) {
    *diag = "iperf3 client failed: " + r.output;
    return -1;
  }
  auto j = nlohmann::json::parse(r.output, nullptr, false);
  if (j.is_discarded() || !j.contains("end")) {
    *diag = "bad iperf3 json: " + r.output.substr(0, 500);
    return -1;
  }
  return j["end"]["sum_received"]["bits_per_second"].get<double>() / 1e6;
}

}  // namespace

TEST_F(NetnsTopologyTest, VethEchoCutAndRestore) {
  Topology topo;
  RAP_ASSERT_OK(topo.add_host("a"));
  RAP_ASSERT_OK(topo.add_host("b"));
  RAP_ASSIGN_OR_FAIL(LinkInfo l, topo.link("a", "b"));
  EXPECT_EQ(l.addr_a, "10.10.0.1");
  EXPECT_EQ(l.addr_b, "10.10.0.2");
  RAP_ASSIGN_OR_FAIL(std::string addr_b, topo.address("b", "a"));
  EXPECT_EQ(addr_b, l.addr_b);
  EXPECT_FALSE(topo.address("b", "zzz").has_value());
  EXPECT_LE(l.dev_a.size(), 15u);

  // The namespaces are really separate: b's address is not configured in a.
  auto addrs = topo.exec("a", {"ip", "-4", "-o", "addr"});
  ASSERT_TRUE(addrs.ok()) << addrs.output;
  EXPECT_NE(addrs.output.find(l.addr_a), std::string::npos);
  EXPECT_EQ(addrs.output.find(l.addr_b), std::string::npos);

  RAP_ASSIGN_OR_FAIL(TempDir logs, TempDir::create("rap-netns-"));
  SubprocessOptions so;
  so.output_file = logs.path() / "socat.log";
  RAP_ASSIGN_OR_FAIL(
      Subprocess echo,
      topo.spawn("b", {"socat", "TCP-LISTEN:7000,bind=" + addr_b + ",reuseaddr,fork", "EXEC:cat"},
                 so));
  RAP_ASSERT_OK(topo.wait_listening("b", 7000, 10s));
  // Listening in b only: a's own namespace has nothing on 7000.
  EXPECT_FALSE(rap::testing::tcp_connect_in(topo.netns("a"), "127.0.0.1", 7000, 1s).has_value());

  const std::string payload = random_bytes(256 * 1024);
  EXPECT_TRUE(echo_roundtrip(topo, "a", addr_b, 7000, payload));
  RAP_ASSIGN_OR_FAIL(PingStats up, topo.ping("a", addr_b, PingOptions(2, 50ms)));
  EXPECT_EQ(up.received, 2);

  // An established connection that will live through the cut.
  RAP_ASSIGN_OR_FAIL(Fd held, rap::testing::tcp_connect_in(topo.netns("a"), addr_b, 7000, 3s));

  RAP_ASSERT_OK(topo.set_link_up("a", "b", false));
  RAP_ASSIGN_OR_FAIL(PingStats down, topo.ping("a", addr_b, PingOptions(1, 200ms, 1000ms)));
  EXPECT_EQ(down.received, 0);
  auto refused = rap::testing::tcp_connect_in(topo.netns("a"), addr_b, 7000, 1s);
  EXPECT_FALSE(refused.has_value());
  // Data written during the cut is not echoed...
  RAP_ASSERT_OK(rap::testing::write_all(held.get(), "during-cut", 1s));
  EXPECT_FALSE(rap::testing::read_exact(held.get(), 10, 700ms).has_value());

  RAP_ASSERT_OK(topo.set_link_up("a", "b", true));
  // ...but TCP retransmits it once the link is back.
  auto late = rap::testing::read_exact(held.get(), 10, 15s);
  ASSERT_TRUE(late.has_value()) << late.error().message;
  EXPECT_EQ(*late, "during-cut");
  PingStats again;
  for (int i = 0; i < 30 && again.received == 0; ++i) {
    RAP_ASSIGN_OR_FAIL(again, topo.ping("a", addr_b, PingOptions(1, 200ms, 200ms)));
  }
  EXPECT_EQ(again.received, 1);
  EXPECT_TRUE(echo_roundtrip(topo, "a", addr_b, 7000, payload));
}

TEST_F(NetnsTopologyTest, WireDelayIsAppliedAndAdjustable) {
  Topology topo;
  RAP_ASSERT_OK(topo.add_host("c"));
  RAP_ASSERT_OK(topo.add_host("d"));
  RAP_ASSIGN_OR_FAIL(LinkInfo l, topo.wire_link("c", "d", WireParams().delay(40)));
  EXPECT_TRUE(l.is_wire);

  RAP_ASSIGN_OR_FAIL(PingStats slow, topo.ping("c", l.addr_b, PingOptions(5, 200ms)));
  std::printf("wire 40ms: rtt min/avg/max %.1f/%.1f/%.1f ms\n", slow.min_ms, slow.avg_ms,
              slow.max_ms);
  EXPECT_EQ(slow.received, 5);
  EXPECT_GE(slow.avg_ms, 75.0);  // 2 x 40 ms, minus nothing: the wire never sends early
  EXPECT_GE(slow.min_ms, 79.0);
  EXPECT_LT(slow.avg_ms, 200.0);

  // TCP works through the wire.
  RAP_ASSIGN_OR_FAIL(Subprocess echo,
                     topo.spawn("d", {"socat", "TCP-LISTEN:7001,reuseaddr,fork", "EXEC:cat"}));
  RAP_ASSERT_OK(topo.wait_listening("d", 7001, 10s));
  EXPECT_TRUE(echo_roundtrip(topo, "c", l.addr_b, 7001, random_bytes(64 * 1024)));

  // Adjust at run time: 5 ms +- 2 ms jitter.
  RAP_ASSERT_OK(topo.set_wire("c", "d", WireParams().delay(5).jitter(2)));
  RAP_ASSIGN_OR_FAIL(PingStats fast, topo.ping("c", l.addr_b, PingOptions(5, 50ms)));
  std::printf("wire 5+-2ms: rtt min/avg/max %.1f/%.1f/%.1f ms\n", fast.min_ms, fast.avg_ms,
              fast.max_ms);
  EXPECT_EQ(fast.received, 5);
  EXPECT_GE(fast.min_ms, 6.0);
  EXPECT_LT(fast.avg_ms, 40.0);

  RAP_ASSIGN_OR_FAIL(auto st, topo.wire_stats("c", "d"));
  EXPECT_GE(st.forwarded, 20u);
  EXPECT_EQ(st.dropped_loss, 0u);
}

TEST_F(NetnsTopologyTest, WireLossDropsEachDirection) {
  Topology topo;
  RAP_ASSERT_OK(topo.add_host("e"));
  RAP_ASSERT_OK(topo.add_host("f"));
  RAP_ASSIGN_OR_FAIL(LinkInfo l, topo.wire_link("e", "f", WireParams().loss(30)));
  RAP_ASSIGN_OR_FAIL(PingStats st, topo.ping("e", l.addr_b, PingOptions(200, 10ms, 1000ms)));
  std::printf("wire loss 30%%: %d/%d pings lost (%.1f%%)\n", st.sent - st.received, st.sent,
              st.loss_percent());
  // Round trip survives with 0.7 * 0.7 = 49%: expected loss 51%, sd ~3.5% for 200 pings.
  EXPECT_EQ(st.sent, 200);
  EXPECT_GT(st.loss_percent(), 35.0);
  EXPECT_LT(st.loss_percent(), 67.0);
  RAP_ASSIGN_OR_FAIL(auto ws, topo.wire_stats("e", "f"));
  EXPECT_GT(ws.dropped_loss, 30u);
  EXPECT_GT(ws.forwarded, 100u);

  // Loss off: everything arrives.
  RAP_ASSERT_OK(topo.set_loss("e", "f", 0));
  RAP_ASSIGN_OR_FAIL(PingStats clean, topo.ping("e", l.addr_b, PingOptions(20, 10ms)));
  EXPECT_EQ(clean.received, 20);
}

TEST_F(NetnsTopologyTest, VethNftablesLoss) {
  Topology topo;
  RAP_ASSERT_OK(topo.add_host("g"));
  RAP_ASSERT_OK(topo.add_host("h"));
  RAP_ASSIGN_OR_FAIL(LinkInfo l, topo.link("g", "h"));
  RAP_ASSERT_OK(topo.set_loss("g", "h", 30));
  RAP_ASSIGN_OR_FAIL(PingStats st, topo.ping("g", l.addr_b, PingOptions(200, 10ms, 1000ms)));
  std::printf("nft loss 30%%: %d/%d pings lost (%.1f%%)\n", st.sent - st.received, st.sent,
              st.loss_percent());
  EXPECT_GT(st.loss_percent(), 35.0);
  EXPECT_LT(st.loss_percent(), 67.0);
  auto link = topo.exec("g", {"ip", "-d", "link", "show", l.dev_a});
  EXPECT_NE(link.output.find("gso_max_segs 1 "), std::string::npos) << link.output;

  // TCP still delivers everything over a lossy link (retransmissions).
  RAP_ASSERT_OK(topo.set_loss("g", "h", 5));
  RAP_ASSIGN_OR_FAIL(Subprocess echo,
                     topo.spawn("h", {"socat", "TCP-LISTEN:7002,reuseaddr,fork", "EXEC:cat"}));
  RAP_ASSERT_OK(topo.wait_listening("h", 7002, 10s));
  EXPECT_TRUE(echo_roundtrip(topo, "g", l.addr_b, 7002, random_bytes(128 * 1024)));

  RAP_ASSERT_OK(topo.set_loss("g", "h", 0));
  RAP_ASSIGN_OR_FAIL(PingStats clean, topo.ping("g", l.addr_b, PingOptions(20, 10ms)));
  EXPECT_EQ(clean.received, 20);
  link = topo.exec("g", {"ip", "-d", "link", "show", l.dev_a});
  EXPECT_NE(link.output.find("gso_max_segs 65535"), std::string::npos) << link.output;
}

TEST_F(NetnsTopologyTest, TbfRateLimitsThroughput) {
  Topology topo;
  RAP_ASSERT_OK(topo.add_host("i"));
  RAP_ASSERT_OK(topo.add_host("j"));
  RAP_ASSIGN_OR_FAIL(LinkInfo l, topo.link("i", "j"));
  RAP_ASSIGN_OR_FAIL(TempDir logs, TempDir::create("rap-netns-"));
  SubprocessOptions so;
  so.output_file = logs.path() / "iperf3-server.log";
  RAP_ASSIGN_OR_FAIL(Subprocess server,
                     topo.spawn("j", {"iperf3", "-s", "-p", "5201", "-B", l.addr_b}, so));
  RAP_ASSERT_OK(topo.wait_listening("j", 5201, 10s));

  std::string diag;
  const double unlimited = iperf_mbit(topo, "i", "j", l.addr_b, 1, &diag);
  ASSERT_GT(unlimited, 0) << diag;

  RAP_ASSERT_OK(topo.set_rate("i", "j", 20));
  auto q = topo.exec("i", {"tc", "qdisc", "show", "dev", l.dev_a});
  EXPECT_NE(q.output.find("tbf"), std::string::npos) << q.output;
  const double limited = iperf_mbit(topo, "i", "j", l.addr_b, 2, &diag);
  ASSERT_GT(limited, 0) << diag;
  std::printf("veth: unlimited %.0f Mbit/s, tbf 20mbit %.1f Mbit/s\n", unlimited, limited);
  EXPECT_GT(limited, 5.0);
  EXPECT_LT(limited, 30.0);
  EXPECT_GT(unlimited, 3 * limited)
      << "unlimited " << unlimited << " Mbit/s vs limited " << limited;

  RAP_ASSERT_OK(topo.set_rate("i", "j", 0));
  q = topo.exec("i", {"tc", "qdisc", "show", "dev", l.dev_a});
  EXPECT_EQ(q.output.find("tbf"), std::string::npos) << q.output;
}

TEST_F(NetnsTopologyTest, WireRateLimitsThroughput) {
  Topology topo;
  RAP_ASSERT_OK(topo.add_host("k"));
  RAP_ASSERT_OK(topo.add_host("m"));
  RAP_ASSIGN_OR_FAIL(LinkInfo l, topo.wire_link("k", "m", WireParams().delay(2).rate(10)));
  SubprocessOptions quiet;
  quiet.output_file = "/dev/null";
  RAP_ASSIGN_OR_FAIL(Subprocess server,
                     topo.spawn("m", {"iperf3", "-s", "-p", "5201", "-B", l.addr_b}, quiet));
  RAP_ASSERT_OK(topo.wait_listening("m", 5201, 10s));
  std::string diag;
  const double mbit = iperf_mbit(topo, "k", "m", l.addr_b, 2, &diag);
  ASSERT_GT(mbit, 0) << diag;
  std::printf("wire rate 10mbit: %.1f Mbit/s\n", mbit);
  EXPECT_GT(mbit, 4.0);
  EXPECT_LT(mbit, 15.0);
}

TEST_F(NetnsTopologyTest, DestructorRemovesNamespacesWiresAndProcesses) {
  const std::string prefix = "rapt" + std::to_string(::getpid()) + "-";
  pid_t wire_pid = -1;
  pid_t sleeper_pid = -1;
  {
    Topology topo;
    RAP_ASSERT_OK(topo.add_host("x"));
    RAP_ASSERT_OK(topo.add_host("y"));
    EXPECT_FALSE(topo.add_host("x").has_value());
    EXPECT_FALSE(topo.add_host("Bad Name").has_value());
    RAP_ASSERT_OK(topo.wire_link("x", "y"));
    EXPECT_FALSE(topo.link("x", "y").has_value());  // one link per pair
    EXPECT_TRUE(ns_listed(prefix + "x"));
    // A daemon left running inside a namespace, owned by nobody: only the Topology can stop it.
    // (Waits until the sleeper has its own session, i.e. has left run_command's process group.)
    auto bg = topo.exec(
        "y",
        {"sh", "-c",
         "setsid sleep 301 </dev/null >/dev/null 2>&1 & p=$!; "
         "until [ \"$(cut -d' ' -f6 /proc/$p/stat)\" = \"$p\" ]; do sleep 0.01; done; echo $p"});
    ASSERT_TRUE(bg.ok()) << bg.output;
    sleeper_pid = static_cast<pid_t>(std::stol(bg.output));
    EXPECT_TRUE(rap::testing::process_alive(sleeper_pid));
    auto pids = rap::testing::run_command({"pgrep", "-f", "rap-testwire.*" + prefix + "x"});
    ASSERT_TRUE(pids.ok()) << pids.output;
    wire_pid = static_cast<pid_t>(std::stol(pids.output));
    EXPECT_TRUE(rap::testing::process_alive(wire_pid));
  }
  EXPECT_FALSE(ns_listed(prefix));
  for (int i = 0; i < 200 && (rap::testing::process_alive(wire_pid) ||
                              rap::testing::process_alive(sleeper_pid));
       ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_FALSE(rap::testing::process_alive(wire_pid));
  EXPECT_FALSE(rap::testing::process_alive(sleeper_pid));
}
