// Routes through real MeshNodes in one process: real TLS fabric sessions on loopback, real signed
// leases and grants, the real TCP access entry and exit, a real TCP echo target and the real
// ingress client. Covers relaying with end-to-end encryption (a tap on the relay never sees the
// plaintext), half-close, refusals with clear codes, revocation and falling back to an alternate.
#include "lab.h"

using namespace mesh_lab;

TEST(MeshRoute, RelayedRouteCarriesPayloadAndTheRelaySeesOnlyCiphertext) {
  Lab lab;
  const auto target = lab.three_hops();
  const auto t = lab.ticket("entry", lab.grant("entry", {"exit"}, target),
                            {lab.lease("route-1", {"entry", "relay", "exit"})});
  auto c = lab.connect("entry", t);
  ASSERT_TRUE(c) << c.error().code << ": " << c.error().message;
  EXPECT_EQ((*c)->route(), "route-1");
  const std::string data = payload(4 * 1024 * 1024);
  auto got = lab.echo(**c, data);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_TRUE(*got == data) << "echo differs: " << got->size() << " bytes back";

  const std::string tap = lab.tapped();
  EXPECT_GE(tap.size(), 2 * data.size());  // both directions crossed the relay
  EXPECT_EQ(tap.find("PLAINTEXT-MARKER"), std::string::npos);
  EXPECT_EQ(tap.find("grant-1"), std::string::npos);  // the grant travels encrypted too

  for (int i = 0; i < 50 && lab.records().empty(); ++i) std::this_thread::sleep_for(20ms);
  auto recs = lab.records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].outcome, "ok");
  EXPECT_EQ(recs[0].user, "user-1");
  EXPECT_EQ(recs[0].route, "route-1");
  EXPECT_EQ(recs[0].bytes_up, data.size());
  EXPECT_EQ(recs[0].bytes_down, data.size());
  const Json st = lab.status("relay");
  EXPECT_EQ(st["counters"]["routes_relayed"], 1);
  EXPECT_GE(st["relay_bytes"].get<std::uint64_t>(), 2 * data.size());
}

TEST(MeshRoute, RefusalsCarryClearCodes) {
  Lab lab;
  const auto target = lab.three_hops();
  const auto grant = lab.grant("entry", {"exit"}, target);
  const auto path = std::vector<std::string>{"entry", "relay", "exit"};
  auto code = [&](const std::string& ticket) {
    auto c = lab.connect("entry", ticket);
    return c ? std::string("ok") : c.error().code;
  };
  // Expired lease, forged lease (unknown signing key), expired grant.
  EXPECT_EQ(code(lab.ticket("entry", grant, {lab.lease("r", path, -1s)})), "lease_expired");
  config::Signer forger("cluster-1", *crypto::Ed25519Key::generate());
  EXPECT_EQ(code(lab.ticket("entry", grant, {lab.lease("r", path, 600s, &forger)})),
            "lease_unknown_signer");
  EXPECT_EQ(
      code(lab.ticket("entry", lab.grant("entry", {"exit"}, target, -1s), {lab.lease("r", path)})),
      "grant_expired");
  // A grant for a target the exit's signed configuration does not name.
  EXPECT_EQ(code(lab.ticket("entry", lab.grant("entry", {"exit"}, "127.0.0.1:1"),
                            {lab.lease("r", path)})),
            "target_not_permitted");
  // The same on a direct route (entry -> exit, no second encryption layer).
  EXPECT_EQ(code(lab.ticket("entry", lab.grant("entry", {"exit"}, "127.0.0.1:1"),
                            {lab.lease("r", {"entry", "exit"})})),
            "target_not_permitted");
  // A ticket sealed for another entry, and garbage.
  EXPECT_EQ(code(lab.ticket("relay", grant, {lab.lease("r", path)})), "bad_ticket");
  EXPECT_EQ(code("AAAA"), "bad_ticket");
  auto recs = lab.records();
  EXPECT_GE(recs.size(), 6u);
  // The lab's node thread runs the two-level loop, and status says so.
  EXPECT_EQ(lab.status("entry")["scheduler"]["prioritised"], true);
  for (const auto& r : recs) EXPECT_EQ(r.outcome, "refused");
  // Still works afterwards.
  auto ok = lab.connect("entry", lab.ticket("entry", grant, {lab.lease("r", path)}));
  ASSERT_TRUE(ok) << ok.error().message;
  auto got = lab.echo(**ok, "ping");
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, "ping");
}

// Customer-managed nodes carry only their own organization's routes, whatever a lease says:
// a relay or entry owned by another organization refuses, the entry reports the refusal for the
// audit log, and a node owned by the lease's organization serves it.
TEST(MeshRoute, CustomerManagedNodesRefuseRoutesOfOtherOrganizations) {
  Lab lab;
  const auto target = lab.three_hops();
  const auto grant = lab.grant("entry", {"exit"}, target);
  const auto path = std::vector<std::string>{"entry", "relay", "exit"};
  lab.set_owner("relay", "org-of-someone-else");
  lab.configure();
  auto c = lab.connect("entry", lab.ticket("entry", grant, {lab.lease("r", path)}));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, "foreign_organization");
  auto recs = lab.records();
  ASSERT_FALSE(recs.empty());
  EXPECT_EQ(recs.back().outcome, "refused");
  EXPECT_EQ(recs.back().reason, "foreign_organization");
  // The entry itself owned by another organization: refused before any hop is asked.
  lab.set_owner("relay", kOrg);
  lab.set_owner("entry", "org-of-someone-else");
  lab.configure();
  auto e = lab.connect("entry", lab.ticket("entry", grant, {lab.lease("r", path)}));
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, "foreign_organization");
  // Owned by the lease's organization: served.
  lab.set_owner("entry", kOrg);
  lab.configure();
  auto ok = lab.connect("entry", lab.ticket("entry", grant, {lab.lease("r", path)}));
  ASSERT_TRUE(ok) << ok.error().message;
  auto got = lab.echo(**ok, "ping");
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, "ping");
}

TEST(MeshRoute, RevokedRelayIsCutOffAndTheAlternateRouteIsUsed) {
  Lab lab;
  lab.add("entry", {"entry-node"});
  lab.add("relay", {"relay-node"});
  lab.add("exit", {"exit-node"});
  lab.configure();
  const auto target = lab.start_echo();
  lab.set_egress("exit", target);
  lab.wait_connected("entry", "relay");
  lab.wait_connected("entry", "exit");
  config::Revocations rev;
  rev.node_ids.insert("relay");
  lab.configure(rev);
  for (int i = 0; i < 100 && lab.connected("entry", "relay"); ++i)
    std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(lab.connected("entry", "relay"));
  const auto t = lab.ticket(
      "entry", lab.grant("entry", {"exit"}, target),
      {lab.lease("via-relay", {"entry", "relay", "exit"}), lab.lease("direct", {"entry", "exit"})});
  auto c = lab.connect("entry", t);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ((*c)->route(), "direct");
  auto got = lab.echo(**c, payload(100000));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->size(), 100000u);
  // The relay stays refused: no new session comes up.
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(lab.connected("entry", "relay"));
  bool seen = false;
  const Json entry_status = lab.status("entry");
  for (const auto& p : entry_status["peers"]) {
    if (p["id"] == "relay") {
      EXPECT_EQ(p["state"], "revoked");
      seen = true;
    }
  }
  EXPECT_TRUE(seen);
}

// Regression: the set-up deadline of a route stream used to stay armed for the route's life, so
// relays and exits reset every route after handshake_timeout (an scp of more than 10 s broke).
TEST(MeshRoute, RoutesOutliveTheSetupDeadline) {
  Lab lab;
  lab.handshake_timeout_ = 1s;
  const auto target = lab.three_hops();
  auto c = lab.connect("entry", lab.ticket("entry", lab.grant("entry", {"exit"}, target),
                                           {lab.lease("r", {"entry", "relay", "exit"})}));
  ASSERT_TRUE(c) << c.error().message;
  std::this_thread::sleep_for(2500ms);
  auto got = lab.echo(**c, "still here");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, "still here");
}

// Peer selection: a node keeps at most its active budget of sessions, dials the best-scored
// candidates (relays first) and keeps the others warm; when an active peer goes away (revoked),
// the best warm candidate takes its place.
TEST(MeshRoute, ActivePeerBudgetKeepsTheRestWarmAndPromotesOnLoss) {
  Lab lab;
  lab.add("relay1", {"relay-node"});
  lab.add("relay2", {"relay-node"});
  lab.add("entry", {"entry-node"});
  lab.max_active_ = 1;
  lab.add("exit", {"exit-node"});
  lab.configure();
  for (int i = 0; i < 100 && !lab.connected("exit", "relay1") && !lab.connected("exit", "relay2");
       ++i)
    std::this_thread::sleep_for(50ms);
  std::this_thread::sleep_for(500ms);  // a second dial would have happened by now
  const bool r1 = lab.connected("exit", "relay1");
  const bool r2 = lab.connected("exit", "relay2");
  ASSERT_NE(r1, r2) << "exactly one active session within a budget of 1";
  EXPECT_FALSE(lab.connected("exit", "entry"));
  const std::string active = r1 ? "relay1" : "relay2";
  const std::string warm = r1 ? "relay2" : "relay1";
  auto tier_of = [&](const std::string& id) {
    const Json st = lab.status("exit");
    for (const auto& p : st["peers"])
      if (p["id"] == id) return p.value("tier", std::string()) + "/" + p.value("state", "");
    return std::string("missing");
  };
  EXPECT_EQ(tier_of(active), "active/connected");
  EXPECT_EQ(tier_of(warm), "warm/warm");
  EXPECT_EQ(tier_of("entry"), "warm/warm");  // relays score better than entries
  config::Revocations rev;
  rev.node_ids.insert(active);
  lab.configure(rev);
  for (int i = 0; i < 100 && !lab.connected("exit", warm); ++i) std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(lab.connected("exit", warm));
  EXPECT_EQ(tier_of(active), "cold/revoked");
}

// The local stream API: a workload process on the entry node opens a route with a lease through
// the node's Unix socket (it never holds a peer session); peers that the agent does not
// authorize are refused; the socket file is not world-accessible.
TEST(MeshRoute, LocalStreamApiGivesAuthorizedWorkloadsRoutes) {
  Lab lab;
  const auto target = lab.three_hops();
  const std::string path = ::testing::TempDir() + "/rap-local-" + std::to_string(::getpid());
  std::atomic<bool> allow{true};
  lab.start_local("entry", path, [&](const LocalPeer& p) -> Result<std::string> {
    if (!allow || p.pid != ::getpid()) return fail("not_authorized", "not a workload of this node");
    return std::string("test-workload");
  });
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  const auto grant = lab.grant("entry", {"exit"}, target);
  const auto lease = lab.lease("local-route", {"entry", "relay", "exit"});
  const std::string data = payload(300000);
  auto [reply, got] = lab.local_exchange(path, lease, Json{{"grant", grant}}, data);
  ASSERT_TRUE(reply.value("ok", false)) << reply;
  EXPECT_EQ(reply["route"], "local-route");
  EXPECT_TRUE(got == data) << got.size();
  // A chunk above the limit (256 KiB) ends the connection; the workload is not left hanging.
  auto [over, partial] =
      lab.local_exchange(path, lease, Json{{"grant", grant}}, payload(300000), 300000);
  EXPECT_TRUE(over.value("ok", false)) << over;
  EXPECT_TRUE(partial.empty());
  allow = false;
  auto [refused, none] = lab.local_exchange(path, lease, Json{{"grant", grant}}, data);
  EXPECT_EQ(refused["error"]["code"], "not_authorized") << refused;
  allow = true;
  auto [bad, none2] = lab.local_exchange(path, lab.lease("x", {"entry", "relay", "exit"}, -1s),
                                         Json::object(), data);
  EXPECT_EQ(bad["error"]["code"], "lease_expired") << bad;
}
