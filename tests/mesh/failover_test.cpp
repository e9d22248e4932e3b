// Open flows survive the death of their relay (issue 8): the entry moves the flow to the ticket's
// alternate route and both ends resend what the other has not received, so the client's stream
// carries every byte exactly once and in order. Real MeshNodes, TLS sessions, leases, the TCP
// access entry and exit and a TCP echo target, in one process (the netns test kills real
// processes).
#include "lab.h"

using namespace mesh_lab;

namespace {

// entry -> relay-a -> exit (route-a) and entry -> relay-b -> exit (route-b).
std::string two_relays(Lab& lab) {
  lab.add("entry", {"entry-node"});
  lab.add("relay-a", {"relay-node"});
  lab.add("relay-b", {"relay-node"});
  lab.add("exit", {"exit-node"});
  lab.configure();
  const auto target = lab.start_echo();
  lab.set_egress("exit", target);
  for (const auto* r : {"relay-a", "relay-b"}) {
    lab.wait_connected("entry", r);
    lab.wait_connected(r, "exit");
  }
  return target;
}

// A ticket with route-a (primary, via relay-a) and route-b (alternate, via relay-b).
std::string both_routes(Lab& lab, const std::string& target) {
  return lab.ticket("entry", lab.grant("entry", {"exit"}, target),
                    {lab.lease("route-a", {"entry", "relay-a", "exit"}),
                     lab.lease("route-b", {"entry", "relay-b", "exit"})});
}

}  // namespace

TEST(MeshFailover, RelayDeathMovesTheOpenFlowAndEveryByteArrivesOnce) {
  Lab lab;
  const auto target = two_relays(lab);
  const auto t = both_routes(lab, target);
  auto c = lab.connect("entry", t, "bulk");
  ASSERT_TRUE(c) << c.error().code << ": " << c.error().message;
  EXPECT_EQ((*c)->route(), "route-a");

  const std::string data = payload(48 * 1024 * 1024);
  std::atomic<std::size_t> progress{0};
  Result<std::string> got = fail("not_run", "");
  std::atomic<bool> done{false};
  std::thread io([&] {
    got = lab.echo(**c, data, &progress);
    done = true;
  });
  for (int i = 0; i < 6000 && progress.load() < data.size() / 3; ++i)
    std::this_thread::sleep_for(10ms);
  // (Checked after the join: a failed ASSERT with the thread running would abort the test.)
  const std::size_t before_kill = progress.load();
  lab.kill("relay-a");
  for (int i = 0; i < 300 && !done.load(); ++i) std::this_thread::sleep_for(100ms);
  if (!done.load()) {
    std::cerr << "STUCK progress=" << progress.load() << "\nentry " << lab.status("entry").dump(1)
              << "\nexit " << lab.status("exit").dump(1) << "\n";
  }
  io.join();
  ASSERT_GE(before_kill, data.size() / 3) << "transfer did not start";

  ASSERT_TRUE(got) << got.error().code << ": " << got.error().message;
  ASSERT_EQ(got->size(), data.size());
  EXPECT_TRUE(*got == data) << "bytes differ after the switch";

  const Json entry = lab.status("entry");
  const Json& sw = entry["route_health"]["switches"];
  ASSERT_EQ(sw.size(), 1u) << entry.dump(2);
  EXPECT_EQ(sw[0]["from"], "route-a");
  EXPECT_EQ(sw[0]["to"], "route-b");
  EXPECT_FALSE(sw[0]["reason"].get<std::string>().empty());
  EXPECT_LT(sw[0]["ms"].get<double>(), 1000.0) << "time to recovery";
  EXPECT_EQ(entry["route_health"]["recovery_ms"]["count"], 1);
  EXPECT_EQ(entry["counters"]["flow_switches"], 1);
  // Peer health from the live session's carrier (TCP_INFO): the kernel measured an RTT.
  bool saw_relay_b = false;
  for (const auto& p : entry["peers"]) {
    if (p.value("id", "") != "relay-b") continue;
    saw_relay_b = true;
    EXPECT_GT(p.value("tcp_rtt_ms", -1.0), 0.0) << p.dump();
    EXPECT_TRUE(p.contains("tcp_retransmits")) << p.dump();
  }
  EXPECT_TRUE(saw_relay_b);
  const Json exit = lab.status("exit");
  EXPECT_EQ(exit["counters"]["flow_resumed_here"], 1) << exit.dump(2);

  // The exit's access record counts each byte once, though some crossed twice.
  for (int i = 0; i < 100 && lab.records().empty(); ++i) std::this_thread::sleep_for(20ms);
  auto recs = lab.records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].outcome, "ok");
  EXPECT_EQ(recs[0].bytes_up, data.size());
  EXPECT_EQ(recs[0].bytes_down, data.size());
  // Nothing is left in resend buffers once the flow is closed.
  EXPECT_EQ(lab.status("entry")["route_health"]["flows"], 0);
}

TEST(MeshFailover, WithoutAnAlternateTheFlowFailsCleanlyInsteadOfHanging) {
  Lab lab;
  lab.flow_resume_timeout_ = 1500ms;
  lab.flow_resume_grace_ = 2s;
  const auto target = two_relays(lab);
  const auto t = lab.ticket("entry", lab.grant("entry", {"exit"}, target),
                            {lab.lease("route-a", {"entry", "relay-a", "exit"})});
  auto c = lab.connect("entry", t, "bulk");
  ASSERT_TRUE(c) << c.error().message;
  const std::string data = payload(64 * 1024 * 1024);
  std::atomic<std::size_t> progress{0};
  Result<std::string> got = fail("not_run", "");
  std::thread io([&] { got = lab.echo(**c, data, &progress); });
  for (int i = 0; i < 6000 && progress.load() < 4 * 1024 * 1024; ++i)
    std::this_thread::sleep_for(10ms);
  const auto killed_at = std::chrono::steady_clock::now();
  lab.kill("relay-a");
  io.join();
  const auto took = std::chrono::steady_clock::now() - killed_at;
  EXPECT_FALSE(got) << "the transfer cannot complete without a route";
  EXPECT_LT(took, 10s) << "the client must learn of the failure, not hang";
  EXPECT_EQ(lab.status("entry")["counters"]["flow_resume_failed"], 1);
  // The exit gives up after its grace period and reports the access.
  for (int i = 0; i < 200 && lab.records().empty(); ++i) std::this_thread::sleep_for(20ms);
  ASSERT_EQ(lab.records().size(), 1u);
  EXPECT_EQ(lab.status("exit")["counters"]["flow_resume_expired"], 1);
}

TEST(MeshFailover, AnInteractiveExchangeContinuesAcrossTheSwitch) {
  Lab lab;
  const auto target = two_relays(lab);
  const auto t = both_routes(lab, target);
  auto c = lab.connect("entry", t, "interactive");
  ASSERT_TRUE(c) << c.error().message;
  // Request/response pairs, as a shell would: each line must come back before the next goes.
  auto roundtrip = [&](const std::string& line) {
    return lab.await([&]() -> asio::awaitable<Result<std::string>> {
      if (auto w = co_await (*c)->write(asio::buffer(line)); !w)
        co_return tl::unexpected(w.error());
      std::string back;
      std::vector<char> buf(4096);
      while (back.size() < line.size()) {
        auto n = co_await (*c)->read_some(asio::buffer(buf));
        if (!n) co_return tl::unexpected(n.error());
        if (*n == 0) co_return rap::fail("eof", "closed");
        back.append(buf.data(), *n);
      }
      co_return back;
    }());
  };
  for (int i = 0; i < 20; ++i) {
    const std::string line = "keystroke " + std::to_string(i) + "\n";
    auto r = roundtrip(line);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, line);
  }
  lab.kill("relay-a");
  for (int i = 20; i < 40; ++i) {
    const std::string line = "keystroke " + std::to_string(i) + "\n";
    auto r = roundtrip(line);
    ASSERT_TRUE(r) << "after the switch: " << r.error().message;
    EXPECT_EQ(*r, line);
  }
  EXPECT_EQ(lab.status("entry")["counters"]["flow_switches"], 1);
}

// Tickets outliving their expiry (issue 8). An open flow keeps failing over to the ticket's
// alternates after expiry, up to the offline horizon signed into its leases. New connections on an
// expired ticket are renewed from the cached signed policy up to that horizon, and only while the
// nodes cannot reach their control plane.
TEST(MeshFailover, ExpiredTicketsServeOpenFlowsAndOfflineNodesUpToTheirSignedHorizon) {
  Lab lab;
  const auto target = two_relays(lab);
  const auto path_a = std::vector<std::string>{"entry", "relay-a", "exit"};
  const auto path_b = std::vector<std::string>{"entry", "relay-b", "exit"};
  // 10 minutes valid, renewable offline for an hour after that.
  const auto t = lab.ticket("entry", lab.grant("entry", {"exit"}, target, 600s, 3600s),
                            {lab.lease("route-a", path_a, 600s, nullptr, 3600s),
                             lab.lease("route-b", path_b, 600s, nullptr, 3600s)});
  // A ticket with the same lifetime but no horizon.
  const auto plain = lab.ticket("entry", lab.grant("entry", {"exit"}, target),
                                {lab.lease("route-a", path_a), lab.lease("route-b", path_b)});
  auto code = [&](const std::string& ticket) {
    auto c = lab.connect("entry", ticket);
    if (!c) return c.error().code;
    auto got = lab.echo(**c, "ping");
    return got && *got == "ping" ? std::string("ok") : std::string("echo_failed");
  };

  // A bulk flow admitted while the ticket is valid...
  auto c = lab.connect("entry", t, "bulk");
  ASSERT_TRUE(c) << c.error().code << ": " << c.error().message;
  EXPECT_EQ((*c)->route(), "route-a");
  const std::string data = payload(16 * 1024 * 1024);
  std::atomic<std::size_t> progress{0};
  Result<std::string> got = fail("not_run", "");
  std::thread io([&] { got = lab.echo(**c, data, &progress); });
  for (int i = 0; i < 6000 && progress.load() < data.size() / 4; ++i)
    std::this_thread::sleep_for(10ms);
  // ...is 11 minutes later still moved when its relay dies, control plane reachable or not.
  lab.set_wall_offset(660s);
  lab.kill("relay-a");
  io.join();
  ASSERT_TRUE(got) << got.error().code << ": " << got.error().message;
  EXPECT_TRUE(*got == data) << "bytes differ after the switch";
  EXPECT_EQ(lab.status("entry")["counters"]["flow_switches"], 1);
  EXPECT_GE(lab.status("relay-b")["counters"]["leases_renewed_for_resume"].get<int>(), 1);

  // With the control plane reachable, a new connection needs a fresh ticket.
  EXPECT_EQ(code(t), "grant_expired");
  // Control plane unreachable: renewed from cached policy, counted by every hop.
  lab.configure({}, /*offline=*/true);
  EXPECT_EQ(code(t), "ok");
  EXPECT_EQ(code(plain), "grant_offline_horizon_passed");
  EXPECT_EQ(lab.status("entry")["authority_offline"], true);
  EXPECT_GE(lab.status("relay-b")["counters"]["leases_renewed_offline"].get<int>(), 1);
  EXPECT_GE(lab.status("exit")["counters"]["leases_renewed_offline"].get<int>(), 1);
  bool renewed = false;
  for (const auto& r : lab.records())
    if (r.outcome == "ok" && r.offline_renewal) renewed = true;
  EXPECT_TRUE(renewed) << "the access record says the grant was renewed offline";

  // Past the horizon nothing is renewed, offline or not.
  lab.set_wall_offset(600s + 3600s + 60s);
  EXPECT_EQ(code(t), "grant_offline_horizon_passed");
}
