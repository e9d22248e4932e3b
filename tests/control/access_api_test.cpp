// End-to-end: the control-plane side of the TCP access service (docs/PROTOCOL.md §14) against
// the real rap-control binary and a fixture PostgreSQL. Nodes (entry, relays, exit) enroll with
// their own Ed25519 keys and report fabric endpoints, sessions and RTTs in heartbeats; a user's
// connect returns a ticket only the entry can open, whose grant and leases verify with the trust
// bundle nodes receive; routes follow live sessions, avoid customer-managed nodes of other
// organizations, and alternates avoid the primary's relay; exits learn their egress in the signed
// service_assignment_bundle; node access reports are audited.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "cluster_fixture.h"
#include "control_process.h"
#include "rap/common/base64.h"
#include "rap/config/artifact.h"
#include "rap/config/state.h"
#include "rap/config/trust.h"
#include "rap/config/verifier.h"
#include "rap/crypto/keys.h"

using json = nlohmann::json;
using namespace rap::testing::control;

namespace {

using rap::config::ArtifactType;
using rap::config::Scope;

class AccessApiTest : public ClusterApiTest {
 protected:
  void add_member(const std::string& org, const std::string& email) {
    auto m = owner("POST", "/api/v1/orgs/" + org + "/members",
                   json{{"email", email}, {"role", "org_member"}}.dump());
    EXPECT_EQ(m.status, 201) << m;
  }

  std::string make_resource(const std::string& org, const std::string& name, json pool) {
    json body{{"name", name}, {"protocol", "tcp"}, {"address", "10.1.0.5:5432"}};
    if (!pool.is_null()) body["egress_pool"] = pool;
    auto r = owner("POST", "/api/v1/orgs/" + org + "/resources", body.dump());
    EXPECT_EQ(r.status, 201) << r;
    return r.j["resource"]["id"].is_string() ? r.j["resource"]["id"].get<std::string>() : "";
  }

  void allow(const std::string& org, const std::string& name, const std::string& email,
             const std::vector<std::string>& resources) {
    auto p =
        owner("POST", "/api/v1/orgs/" + org + "/policies",
              json{{"name", name}, {"service", "tcp"}, {"users", {email}}, {"resources", resources}}
                  .dump());
    EXPECT_EQ(p.status, 201) << p;
  }

  void set_roles(const std::string& node, json roles) {
    auto r = owner("PUT", "/api/v1/clusters/edge/nodes/" + node + "/roles",
                   json{{"roles", std::move(roles)}}.dump());
    EXPECT_EQ(r.status, 200) << r;
  }

  std::int64_t generation() {
    pqxx::connection conn(pg_->conninfo(dbname_));
    pqxx::read_transaction t(conn);
    return t.exec("SELECT config_generation FROM cluster_authority")[0][0].as<std::int64_t>();
  }

  // The mTLS heartbeat of a fabric node: endpoints, live sessions, RTTs.
  void beat(const TestNode& n, const std::vector<std::pair<std::string, int>>& peers,
            const std::string& fabric_endpoint, const std::string& ingress = "",
            const json& extra_load = json::object()) {
    json hb = heartbeat_body();
    for (const auto& [k, v] : extra_load.items()) hb["load"][k] = v;
    // An empty fabric endpoint: a node that only dials out (behind NAT).
    if (!fabric_endpoint.empty()) hb["endpoints"]["fabric"] = fabric_endpoint;
    if (!ingress.empty()) hb["endpoints"]["client_ingress"] = ingress;
    json sessions = json::array();
    json rtt = json::object();
    for (const auto& [peer, ms] : peers) {
      sessions.push_back({{"peer", peer}});
      rtt[peer] = ms;
    }
    hb["fabric"] = {{"sessions", sessions}};
    hb["load"]["peer_rtt_ms"] = rtt;
    auto r = n.call(*c_, "POST", "/api/v1/node/heartbeat", hb.dump());
    EXPECT_EQ(r.status, 200) << r;
  }
};

struct Ticket {
  json grant_payload;
  std::vector<json> lease_payloads;  // primary first
  std::string grant_wire;
  std::vector<std::string> lease_wires;
};

// Opens the ticket with the entry's key and decodes the artifacts (no trust checks here).
rap::Result<Ticket> open_ticket(const rap::crypto::Ed25519Key& entry_key, const std::string& b64) {
  auto sealed = rap::base64_decode(b64);
  if (!sealed) return rap::fail("bad_base64", "ticket is not base64");
  auto plain = entry_key.open_sealed(*sealed);
  if (!plain) return tl::unexpected(plain.error());
  auto j = json::parse(*plain, nullptr, false);
  if (!j.is_object() || !j["grant"].is_string() || !j["leases"].is_array())
    return rap::fail("bad_ticket", *plain);
  Ticket t;
  t.grant_wire = j["grant"].get<std::string>();
  auto g = rap::config::decode_artifact(t.grant_wire);
  if (!g) return tl::unexpected(g.error());
  if (g->header.type != ArtifactType::access_grant) return rap::fail("bad_type", "grant");
  t.grant_payload = g->payload;
  for (const auto& w : j["leases"]) {
    t.lease_wires.push_back(w.get<std::string>());
    auto l = rap::config::decode_artifact(t.lease_wires.back());
    if (!l) return tl::unexpected(l.error());
    if (l->header.type != ArtifactType::route_lease) return rap::fail("bad_type", "lease");
    t.lease_payloads.push_back(l->payload);
  }
  return t;
}

std::vector<std::string> hop_ids(const json& lease) {
  std::vector<std::string> out;
  for (const auto& h : lease["lease"]["hops"]) out.push_back(h["node"].get<std::string>());
  return out;
}

TEST_F(AccessApiTest, ConnectPlansSignsAndSealsRoutesAndNodesReportAccess) {
  start("access_flow");
  const std::string cluster_id = make_cluster("edge");
  ASSERT_FALSE(cluster_id.empty());
  for (const char* slug : {"acme", "other"})
    ASSERT_EQ(owner("POST", "/api/v1/orgs", json{{"slug", slug}, {"name", slug}}.dump()).status,
              201);
  const std::string org_id = owner("GET", "/api/v1/orgs/acme").j["org"]["id"].get<std::string>();
  const std::string alice_pw = "alice-password-123";
  const std::string bob_pw = "bob-password-1234";
  make_user("alice@acme.io", alice_pw);
  make_user("bob@acme.io", bob_pw);
  add_member("acme", "alice@acme.io");
  add_member("acme", "bob@acme.io");
  const std::string alice = login(*c_, "alice@acme.io", alice_pw);
  const std::string bob = login(*c_, "bob@acme.io", bob_pw);

  // Nodes: entry E, platform relays R1 and R2, a relay RB owned by organization "other" (the
  // cheapest path, never to be used for acme), exit X (only in acme's egress pool, no role).
  auto [tid, token] = make_token("edge", 10);
  TestNode e = TestNode::make(dir_->path(), "e");
  TestNode r1 = TestNode::make(dir_->path(), "r1");
  TestNode r2 = TestNode::make(dir_->path(), "r2");
  TestNode rb = TestNode::make(dir_->path(), "rb");
  TestNode x = TestNode::make(dir_->path(), "x");
  const std::string E = enroll_and_approve(e, "edge", token);
  const std::string R1 = enroll_and_approve(r1, "edge", token);
  const std::string R2 = enroll_and_approve(r2, "edge", token);
  const std::string RB = enroll_and_approve(rb, "edge", token, json{{"org", "other"}}.dump());
  const std::string X = enroll_and_approve(x, "edge", token);
  ASSERT_FALSE(E.empty() || R1.empty() || R2.empty() || RB.empty() || X.empty());
  set_roles(E, {{{"role", "entry-node"}}});
  set_roles(R1, {{{"role", "relay-node"}}});
  set_roles(R2, {{{"role", "relay-node"}}});
  set_roles(RB, {{{"role", "relay-node"}}});

  auto pool = owner("POST", "/api/v1/orgs/acme/egress-pools",
                    json{{"name", "office"}, {"description", "Office"}}.dump());
  ASSERT_EQ(pool.status, 201) << pool;
  const std::string pool_id = pool.j["egress_pool"]["id"].get<std::string>();
  const auto gen_before_pool = generation();
  ASSERT_EQ(owner("PUT", "/api/v1/orgs/acme/egress-pools/" + pool_id + "/nodes",
                  json{{"nodes", {{{"cluster", "edge"}, {"node", X}}}}}.dump())
                .status,
            200);
  EXPECT_GT(generation(), gen_before_pool) << "pool membership is a config input";

  const auto gen_before_resource = generation();
  const std::string db = make_resource("acme", "db", "office");
  ASSERT_FALSE(db.empty());
  EXPECT_GT(generation(), gen_before_resource) << "a resource with exits is a config input";
  const std::string nowhere = make_resource("acme", "nowhere", "no-such-pool");
  const std::string no_pool = make_resource("acme", "no-pool", nullptr);
  allow("acme", "alice-db", "alice@acme.io", {db, nowhere, no_pool});
  // Updates and deletions are config inputs too; an organization without possible exits bumps
  // nothing.
  auto gen = generation();
  ASSERT_EQ(owner("PATCH", "/api/v1/orgs/acme/resources/" + nowhere,
                  json{{"address", "10.1.0.6:22"}}.dump())
                .status,
            200);
  EXPECT_GT(generation(), gen);
  const std::string scratch = make_resource("acme", "scratch", nullptr);
  gen = generation();
  ASSERT_EQ(owner("DELETE", "/api/v1/orgs/acme/resources/" + scratch).status, 200);
  EXPECT_GT(generation(), gen);
  gen = generation();
  ASSERT_FALSE(make_resource("other", "elsewhere", nullptr).empty());
  EXPECT_EQ(generation(), gen);

  // Sessions: E-RB-X is the cheapest (1 ms), then E-R1-X (5 ms), then E-R2-X (20 ms).
  beat(e, {{RB, 1}, {R1, 5}, {R2, 20}}, "10.0.0.10:7000", "10.0.0.10:8443");
  beat(rb, {{E, 1}, {X, 1}}, "10.0.0.11:7000");
  beat(r1, {{E, 5}, {X, 5}}, "10.0.0.12:7000");
  beat(r2, {{E, 20}, {X, 20}}, "10.0.0.13:7000");
  beat(x, {{RB, 1}, {R1, 5}, {R2, 20}}, "");
  // Live sessions are planning input, not configuration: no generation bump.
  const auto gen_sessions = generation();
  beat(x, {{R1, 5}, {RB, 1}, {R2, 21}}, "");
  EXPECT_EQ(generation(), gen_sessions);

  // Signed configuration: the exit's egress, fabric endpoints in peer directories.
  NodeConfigView xv;
  auto xf = x.call(*c_, "GET", "/api/v1/node/config");
  auto xa = xv.apply(xf, cluster_id, X);
  ASSERT_TRUE(xa.has_value()) << xa.error().code << ": " << xa.error().message;
  const auto* xsab = xv.state->payload(ArtifactType::service_assignment_bundle, Scope::node(X));
  ASSERT_NE(xsab, nullptr);
  ASSERT_EQ((*xsab)["egress"].size(), 1u) << *xsab;
  EXPECT_EQ((*xsab)["egress"][0]["id"], db);
  EXPECT_EQ((*xsab)["egress"][0]["org"], org_id);
  EXPECT_EQ((*xsab)["egress"][0]["address"], "10.1.0.5:5432");
  EXPECT_EQ((*xsab)["egress"][0]["protocol"], "tcp");
  const auto* xpeers = xv.state->payload(ArtifactType::peer_directory, Scope::node(X));
  ASSERT_NE(xpeers, nullptr);
  EXPECT_EQ((*xpeers)["peers"].size(), 4u) << *xpeers;  // the exit learns the mesh nodes

  NodeConfigView ev;
  auto ef = e.call(*c_, "GET", "/api/v1/node/config");
  auto ea = ev.apply(ef, cluster_id, E);
  ASSERT_TRUE(ea.has_value()) << ea.error().code << ": " << ea.error().message;
  const auto* esab = ev.state->payload(ArtifactType::service_assignment_bundle, Scope::node(E));
  ASSERT_NE(esab, nullptr);
  EXPECT_EQ((*esab)["egress"], json::array());
  EXPECT_FALSE(esab->contains("owner_org")) << "a platform node carries every organization";
  // The customer-managed relay learns its owner from its signed assignment (it refuses routes
  // of other organizations itself: tests/mesh/route_test.cpp).
  NodeConfigView bv;
  auto ba = bv.apply(rb.call(*c_, "GET", "/api/v1/node/config"), cluster_id, RB);
  ASSERT_TRUE(ba.has_value()) << ba.error().code << ": " << ba.error().message;
  const auto* bsab = bv.state->payload(ArtifactType::service_assignment_bundle, Scope::node(RB));
  ASSERT_NE(bsab, nullptr);
  auto other = owner("GET", "/api/v1/orgs/other");
  ASSERT_EQ(other.status, 200) << other;
  EXPECT_EQ((*bsab).value("owner_org", std::string()), other.j["org"]["id"]) << *bsab;
  EXPECT_NE((*bsab).value("owner_org", std::string()), org_id);
  const auto* epeers = ev.state->payload(ArtifactType::peer_directory, Scope::node(E));
  ASSERT_NE(epeers, nullptr);
  bool saw_x = false;
  for (const auto& p : (*epeers)["peers"]) {
    if (p["id"] == R1) {
      EXPECT_EQ(p["fabric_endpoint"], "10.0.0.12:7000");
    }
    if (p["id"] == X) {
      saw_x = true;
      EXPECT_FALSE(p.contains("fabric_endpoint"));  // X advertises none (behind NAT)
      EXPECT_NE(std::find(p["roles"].begin(), p["roles"].end(), "exit-node"), p["roles"].end());
    }
  }
  EXPECT_TRUE(saw_x) << *epeers;
  auto trust = rap::config::TrustStore::from_trust_bundle(ef.j["trust_bundle"]);
  ASSERT_TRUE(trust.has_value());

  // Entitlement and input checks.
  const std::string connect = "/api/v1/orgs/acme/resources/" + db + "/connect";
  {
    auto denied = c_->call("POST", connect, "", bob);
    EXPECT_EQ(denied.status, 403) << denied;
    EXPECT_EQ(denied.error_code(), "not_entitled");
    pqxx::connection conn(pg_->conninfo(dbname_));
    pqxx::read_transaction t(conn);
    auto rows = t.exec_params(
        "SELECT outcome, target, org_id::text FROM audit_events WHERE action = 'access.denied'");
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0][0].as<std::string>(), "denied");
    EXPECT_EQ(rows[0][1].as<std::string>(), "resource:" + db);
    EXPECT_EQ(rows[0][2].as<std::string>(), org_id);
  }
  EXPECT_EQ(c_->call("POST",
                     "/api/v1/orgs/acme/resources/00000000-0000-0000-0000-000000000000"
                     "/connect",
                     "", alice)
                .error_code(),
            "resource_not_found");
  EXPECT_EQ(c_->call("POST", "/api/v1/orgs/other/resources/" + db + "/connect", "", alice).status,
            404);
  EXPECT_EQ(c_->call("POST", connect, json{{"ttl_seconds", 30}}.dump(), alice).error_code(),
            "invalid_ttl");
  EXPECT_EQ(c_->call("POST", connect, json{{"ttl", 600}}.dump(), alice).error_code(),
            "invalid_request");
  for (const auto& id : {nowhere, no_pool}) {
    auto nr = c_->call("POST", "/api/v1/orgs/acme/resources/" + id + "/connect", "", alice);
    EXPECT_EQ(nr.status, 503) << nr;
    EXPECT_EQ(nr.error_code(), "no_route") << nr;
  }

  // Connect: E -> R1 -> X (RB belongs to another organization), alternate through R2.
  const auto now = unix_now();
  auto c1 = c_->call("POST", connect, json{{"ttl_seconds", 900}}.dump(), alice);
  ASSERT_EQ(c1.status, 200) << c1;
  EXPECT_EQ(c1.j["entry"]["endpoint"], "10.0.0.10:8443");
  EXPECT_EQ(c1.j["entry"]["public_key"], e.pub);
  EXPECT_NEAR(c1.j["expires_at"].get<double>(), static_cast<double>(now + 900), 5.0);
  EXPECT_EQ(c1.j["resource"]["id"], db);
  EXPECT_EQ(c1.j["resource"]["protocol"], "tcp");
  EXPECT_EQ(c1.body.find(R1), std::string::npos) << "the user never learns the route";
  EXPECT_EQ(c1.body.find(X), std::string::npos);
  EXPECT_FALSE(open_ticket(r1.key, c1.j["ticket"].get<std::string>()).has_value())
      << "only the entry opens the ticket";
  auto t1 = open_ticket(e.key, c1.j["ticket"].get<std::string>());
  ASSERT_TRUE(t1.has_value()) << t1.error().code << ": " << t1.error().message;
  const json& g = t1->grant_payload["grant"];
  EXPECT_EQ(g["id"], c1.j["grant_id"]);
  EXPECT_EQ(g["org"], org_id);
  EXPECT_EQ(g["resource"], db);
  EXPECT_EQ(g["protocol"], "tcp");
  EXPECT_EQ(g["target"], "10.1.0.5:5432");
  EXPECT_EQ(g["entry"], E);
  EXPECT_EQ(g["exits"], json::array({X}));
  ASSERT_EQ(t1->lease_payloads.size(), 2u);
  EXPECT_EQ(hop_ids(t1->lease_payloads[0]), (std::vector<std::string>{E, R1, X}));
  EXPECT_EQ(hop_ids(t1->lease_payloads[1]), (std::vector<std::string>{E, R2, X}));
  EXPECT_EQ(t1->lease_payloads[0]["lease"]["role"], "primary");
  EXPECT_EQ(t1->lease_payloads[1]["lease"]["role"], "alternate");
  EXPECT_EQ(t1->lease_payloads[0]["lease"]["hops"][0]["public_key"], e.pub);
  EXPECT_EQ(t1->lease_payloads[0]["lease"]["hops"][2]["public_key"], x.pub);
  EXPECT_EQ(t1->lease_payloads[0]["lease"]["grant"], g["id"]);
  EXPECT_EQ(t1->lease_payloads[0]["lease"]["fence"], 1);
  EXPECT_EQ(t1->lease_payloads[0]["lease"]["classes"], json::array({"bulk", "interactive"}));
  for (const auto& l : t1->lease_payloads)
    for (const auto& h : l["lease"]["hops"]) EXPECT_NE(h["node"], RB);
  // The offline horizon (default grace 1 h past expiry) is signed into the grant and every lease,
  // and the user is told it.
  const auto horizon = c1.j["expires_at"].get<std::int64_t>() + 3600;
  EXPECT_EQ(c1.j["offline_until"], horizon);
  EXPECT_EQ(g.at("offline_until"), horizon);
  for (const auto& l : t1->lease_payloads) EXPECT_EQ(l.at("lease").at("offline_until"), horizon);

  // Nodes verify the credentials with the trust they hold (§13.6): the grant at the entry and
  // the exit, each lease at every hop; nodes outside the scope refuse them.
  const auto verify_at = [&](const std::string& wire, const std::string& node) {
    rap::config::VerifyContext vc;
    vc.cluster_id = cluster_id;
    vc.node = rap::config::NodeScope{node, {}, {}};
    vc.trust = &*trust;
    vc.now = std::chrono::system_clock::now();
    return rap::config::verify(wire, vc);
  };
  for (const auto& node : {E, X}) {
    auto v = verify_at(t1->grant_wire, node);
    EXPECT_TRUE(v.has_value()) << v.error().code << ": " << v.error().message;
  }
  EXPECT_EQ(verify_at(t1->grant_wire, R1).error().code, "wrong_scope");
  for (const auto& node : {E, R1, X}) {
    auto v = verify_at(t1->lease_wires[0], node);
    EXPECT_TRUE(v.has_value()) << v.error().code << ": " << v.error().message;
  }
  EXPECT_EQ(verify_at(t1->lease_wires[0], R2).error().code, "wrong_scope");
  {
    auto dg = rap::config::decode_artifact(t1->grant_wire);
    ASSERT_TRUE(dg.has_value());
    EXPECT_EQ(dg->header.version, 1u);
    EXPECT_EQ(dg->header.epoch, 1u);
    EXPECT_EQ(rap::config::to_unix_seconds(dg->header.expires_at),
              c1.j["expires_at"].get<std::int64_t>());
  }
  // The grant is audited without the ticket.
  {
    pqxx::connection conn(pg_->conninfo(dbname_));
    pqxx::read_transaction t(conn);
    auto rows = t.exec_params(
        "SELECT details::text, actor_user_id IS NOT NULL, target FROM audit_events "
        "WHERE action = 'access.granted'");
    ASSERT_EQ(rows.size(), 1u);
    const json d = json::parse(rows[0][0].as<std::string>());
    EXPECT_EQ(d["grant_id"], g["id"]);
    EXPECT_EQ(d["entry_node_id"], E);
    EXPECT_EQ(d["hops"], 3);
    EXPECT_EQ(d["route_id"], t1->lease_payloads[0]["lease"]["id"]);
    EXPECT_TRUE(rows[0][1].as<bool>());
    EXPECT_EQ(rows[0][2].as<std::string>(), "resource:" + db);
    EXPECT_EQ(rows[0][0].as<std::string>().find(c1.j["ticket"].get<std::string>().substr(0, 40)),
              std::string::npos);
  }

  // A direct session between entry and exit is clearly better, but the primary issued before
  // stays until that has held for the hysteresis time (route_planner.h, 10 s): meanwhile the
  // direct route is the first alternate, and the audit says the previous route was kept.
  beat(e, {{RB, 1}, {R1, 5}, {R2, 20}, {X, 2}}, "10.0.0.10:7000", "10.0.0.10:8443");
  auto c2 = c_->call("POST", connect, "", alice);
  ASSERT_EQ(c2.status, 200) << c2;
  auto t2 = open_ticket(e.key, c2.j["ticket"].get<std::string>());
  ASSERT_TRUE(t2.has_value()) << t2.error().message;
  ASSERT_GE(t2->lease_payloads.size(), 2u);
  EXPECT_EQ(hop_ids(t2->lease_payloads[0]), (std::vector<std::string>{E, R1, X}));
  EXPECT_EQ(hop_ids(t2->lease_payloads[1]), (std::vector<std::string>{E, X}));
  {
    pqxx::connection conn(pg_->conninfo(dbname_));
    pqxx::read_transaction t(conn);
    auto rows = t.exec(
        "SELECT details->>'route_choice' FROM audit_events WHERE action = 'access.granted' "
        "ORDER BY id");
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0][0].as<std::string>(), "best");
    EXPECT_EQ(rows[1][0].as<std::string>(),
              "kept previous (better route held back until it stays better)");
  }
  EXPECT_NEAR(c2.j["expires_at"].get<double>(), static_cast<double>(unix_now() + 600), 5.0);
  // entry_node (rapctl connect --local-entry): a node id, and one that is an entry. After the
  // access.granted counts above: a ticket here is one more.
  EXPECT_EQ(c_->call("POST", connect, json{{"entry_node", "e"}}.dump(), alice).error_code(),
            "invalid_entry_node");
  {
    auto not_entry = c_->call("POST", connect, json{{"entry_node", R1}}.dump(), alice);
    EXPECT_EQ(not_entry.status, 503) << not_entry;
    EXPECT_EQ(not_entry.error_code(), "no_route") << not_entry;
    auto at_e = c_->call("POST", connect, json{{"entry_node", E}}.dump(), alice);
    ASSERT_EQ(at_e.status, 200) << at_e;
    EXPECT_EQ(at_e.j["entry"]["endpoint"], "10.0.0.10:8443") << at_e;
  }

  // An entry that stops advertising its client ingress cannot be used: no route.
  beat(e, {{RB, 1}, {R1, 5}, {R2, 20}, {X, 2}}, "10.0.0.10:7000");
  auto c3 = c_->call("POST", connect, "", alice);
  EXPECT_EQ(c3.status, 503) << c3;
  EXPECT_EQ(c3.error_code(), "no_route");
  EXPECT_NE(c3.j["error"]["message"].get<std::string>().find("client ingress"), std::string::npos)
      << c3;
  // An egress pool without nodes: no exit.
  beat(e, {{RB, 1}, {R1, 5}, {R2, 20}, {X, 2}}, "10.0.0.10:7000", "10.0.0.10:8443");
  ASSERT_EQ(owner("PUT", "/api/v1/orgs/acme/egress-pools/" + pool_id + "/nodes",
                  json{{"nodes", json::array()}}.dump())
                .status,
            200);
  auto c4 = c_->call("POST", connect, "", alice);
  EXPECT_EQ(c4.status, 503) << c4;
  EXPECT_EQ(c4.error_code(), "no_route");
  // ... and the former exit's egress is empty again.
  auto xf2 = x.call(*c_, "GET", "/api/v1/node/config?have=" + xv.have());
  auto xa2 = xv.apply(xf2, cluster_id, X);
  ASSERT_TRUE(xa2.has_value()) << xa2.error().code << ": " << xa2.error().message;
  xsab = xv.state->payload(ArtifactType::service_assignment_bundle, Scope::node(X));
  ASSERT_NE(xsab, nullptr);
  EXPECT_EQ((*xsab)["egress"], json::array());

  // Access reports from nodes.
  const json rec{{"grant", g["id"]},
                 {"user", g["user"]},
                 {"org", org_id},
                 {"resource", db},
                 {"route", t1->lease_payloads[0]["lease"]["id"]},
                 {"started_at", now},
                 {"ended_at", now + 5},
                 {"bytes_up", 1200},
                 {"bytes_down", 34000},
                 {"outcome", "ok"}};
  json refused = rec;
  refused["outcome"] = "refused";
  refused["reason"] = "target_unreachable";
  refused["message"] = "connect: connection refused";
  refused["offline_renewal"] = true;  // used past expiry while the exit could not reach us
  auto ok = x.call(*c_, "POST", "/api/v1/node/access",
                   json{{"records", json::array({rec, refused})}}.dump());
  ASSERT_EQ(ok.status, 200) << ok;
  EXPECT_EQ(ok.j["accepted"], 2);
  {
    pqxx::connection conn(pg_->conninfo(dbname_));
    pqxx::read_transaction t(conn);
    auto rows = t.exec_params(
        "SELECT action, outcome, actor_node_id::text, org_id::text, target, details::text "
        "FROM audit_events WHERE action IN ('access.tcp', 'access.refused') ORDER BY id");
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0][0].as<std::string>(), "access.tcp");
    EXPECT_EQ(rows[0][1].as<std::string>(), "success");
    EXPECT_EQ(rows[0][2].as<std::string>(), X);
    EXPECT_EQ(rows[0][3].as<std::string>(), org_id);
    EXPECT_EQ(rows[0][4].as<std::string>(), "resource:" + db);
    const json d = json::parse(rows[0][5].as<std::string>());
    EXPECT_EQ(d["bytes_down"], 34000);
    EXPECT_EQ(d["grant"], g["id"]);
    EXPECT_EQ(rows[1][0].as<std::string>(), "access.refused");
    EXPECT_EQ(rows[1][1].as<std::string>(), "denied");
    EXPECT_EQ(json::parse(rows[1][5].as<std::string>())["reason"], "target_unreachable");
    EXPECT_EQ(json::parse(rows[1][5].as<std::string>())["offline_renewal"], true);
    EXPECT_FALSE(d.contains("offline_renewal"));
  }
  // Strict validation.
  const auto bad = [&](const json& body) {
    auto r = x.call(*c_, "POST", "/api/v1/node/access", body.dump());
    EXPECT_EQ(r.status, 400) << body.dump() << " -> " << r;
    EXPECT_TRUE(r.j.contains("error")) << r;
  };
  bad(json::object());
  bad(json{{"records", "x"}});
  bad(json{{"records", json::array({rec})}, {"extra", 1}});
  bad(json{{"records", json(std::vector<json>(101, rec))}});
  for (const char* key : {"grant", "user", "org", "resource", "route", "started_at", "outcome"}) {
    json r = rec;
    r.erase(key);
    bad(json{{"records", json::array({r})}});
  }
  json r = rec;
  r["grant"] = "not-a-uuid";
  bad(json{{"records", json::array({r})}});
  r = rec;
  r["bytes_up"] = -1;
  bad(json{{"records", json::array({r})}});
  r = rec;
  r["outcome"] = "maybe";
  bad(json{{"records", json::array({r})}});
  r = rec;
  r["message"] = std::string(301, 'm');
  bad(json{{"records", json::array({r})}});
  r = rec;
  r["ended_at"] = now - 10;
  bad(json{{"records", json::array({r})}});
  r = rec;
  r["secret"] = "x";
  bad(json{{"records", json::array({r})}});
  r = rec;
  r["offline_renewal"] = "yes";
  bad(json{{"records", json::array({r})}});
  EXPECT_EQ(x.call(*c_, "POST", "/api/v1/node/access", "{nope").error_code(), "malformed_json");
  // Users cannot report access; nodes need their certificate.
  EXPECT_EQ(c_->call("POST", "/api/v1/node/access", json{{"records", json::array()}}.dump(), alice)
                .status,
            401);
  // An empty batch is fine.
  EXPECT_EQ(x.call(*c_, "POST", "/api/v1/node/access", json{{"records", json::array()}}.dump())
                .j["accepted"],
            0);
}

// Loss reported in heartbeats (TCP retransmits on the carrier, measured by the nodes) makes the
// planner prefer the clean relay even when the lossy one has the lower RTT.
TEST_F(AccessApiTest, ReportedRetransmitsSteerRoutesAwayFromALossyRelay) {
  start("access_loss");
  ASSERT_FALSE(make_cluster("edge").empty());
  ASSERT_EQ(owner("POST", "/api/v1/orgs", json{{"slug", "acme"}, {"name", "acme"}}.dump()).status,
            201);
  make_user("alice@acme.io", "alice-password-123");
  add_member("acme", "alice@acme.io");
  const std::string alice = login(*c_, "alice@acme.io", "alice-password-123");
  auto [tid, token] = make_token("edge", 4);
  TestNode e = TestNode::make(dir_->path(), "e");
  TestNode r1 = TestNode::make(dir_->path(), "r1");
  TestNode r2 = TestNode::make(dir_->path(), "r2");
  TestNode x = TestNode::make(dir_->path(), "x");
  const std::string E = enroll_and_approve(e, "edge", token);
  const std::string R1 = enroll_and_approve(r1, "edge", token);
  const std::string R2 = enroll_and_approve(r2, "edge", token);
  const std::string X = enroll_and_approve(x, "edge", token);
  ASSERT_FALSE(E.empty() || R1.empty() || R2.empty() || X.empty());
  set_roles(E, {{{"role", "entry-node"}}});
  set_roles(R1, {{{"role", "relay-node"}}});
  set_roles(R2, {{{"role", "relay-node"}}});
  auto pool = owner("POST", "/api/v1/orgs/acme/egress-pools", json{{"name", "office"}}.dump());
  ASSERT_EQ(pool.status, 201) << pool;
  ASSERT_EQ(owner("PUT",
                  "/api/v1/orgs/acme/egress-pools/" +
                      pool.j["egress_pool"]["id"].get<std::string>() + "/nodes",
                  json{{"nodes", {{{"cluster", "edge"}, {"node", X}}}}}.dump())
                .status,
            200);
  const std::string db = make_resource("acme", "db", "office");
  allow("acme", "alice-db", "alice@acme.io", {db});
  // R1 is 10 ms faster each way, but its sessions retransmit 30 segments a second (R1 reports
  // it towards X, the entry towards R1): 150 ms of penalty each, so R2 wins.
  beat(e, {{R1, 5}, {R2, 15}}, "10.0.0.10:7000", "10.0.0.10:8443",
       json{{"peer_retransmits_per_s", {{R1, 30}}}});
  beat(r1, {{E, 5}, {X, 5}}, "10.0.0.12:7000", "", json{{"peer_retransmits_per_s", {{X, 30.25}}}});
  beat(r2, {{E, 15}, {X, 15}}, "10.0.0.13:7000");
  beat(x, {{R1, 5}, {R2, 15}}, "", "", json{{"peer_retransmits_per_s", {{R1, 30}}}});
  auto node = owner("GET", "/api/v1/clusters/edge/nodes/" + R1);
  EXPECT_DOUBLE_EQ(node.j["node"]["last_state"]["load"]["peer_retransmits_per_s"][X].get<double>(),
                   30.3)
      << node;  // stored to a tenth
  auto c = c_->call("POST", "/api/v1/orgs/acme/resources/" + db + "/connect", "", alice);
  ASSERT_EQ(c.status, 200) << c;
  auto t = open_ticket(e.key, c.j["ticket"].get<std::string>());
  ASSERT_TRUE(t.has_value()) << t.error().message;
  ASSERT_EQ(t->lease_payloads.size(), 2u);
  EXPECT_EQ(hop_ids(t->lease_payloads[0]), (std::vector<std::string>{E, R2, X}));
  EXPECT_EQ(hop_ids(t->lease_payloads[1]), (std::vector<std::string>{E, R1, X}));
}

// Heartbeat shape of the fabric additions: fabric.sessions and load.peer_rtt_ms are validated.
TEST_F(AccessApiTest, HeartbeatFabricFieldsAreValidated) {
  start("access_heartbeat");
  ASSERT_FALSE(make_cluster("edge").empty());
  auto [tid, token] = make_token("edge", 1);
  TestNode n = TestNode::make(dir_->path(), "n");
  const std::string id = enroll_and_approve(n, "edge", token);
  ASSERT_FALSE(id.empty());
  const std::string peer = "00000000-0000-4000-8000-000000000001";
  json hb = heartbeat_body();
  hb["fabric"] = {{"sessions", {{{"peer", peer}}}}};
  hb["load"]["peer_rtt_ms"] = {{peer, 12}};
  auto ok = n.call(*c_, "POST", "/api/v1/node/heartbeat", hb.dump());
  ASSERT_EQ(ok.status, 200) << ok;
  auto node = owner("GET", "/api/v1/clusters/edge/nodes/" + id);
  EXPECT_EQ(node.j["node"]["last_state"]["fabric"]["sessions"][0]["peer"], peer) << node;
  EXPECT_EQ(node.j["node"]["last_state"]["load"]["peer_rtt_ms"][peer], 12) << node;
  const std::vector<json> bad_fabric = {
      json("x"), json{{"sessions", "x"}}, json{{"sessions", {{{"peer", "nope"}}}}},
      json{{"sessions", {{{"peer", peer}, {"x", 1}}}}}, json{{"other", 1}}};
  for (const auto& f : bad_fabric) {
    json b = heartbeat_body();
    b["fabric"] = f;
    EXPECT_EQ(n.call(*c_, "POST", "/api/v1/node/heartbeat", b.dump()).status, 400) << f.dump();
  }
  for (const char* field : {"peer_rtt_ms", "peer_jitter_ms", "peer_retransmits_per_s"}) {
    for (const json& v :
         {json{{peer, -1}}, json{{"nope", 1}}, json{{peer, "1"}}, json(5), json{{peer, 2e6}}}) {
      json b = heartbeat_body();
      b["load"][field] = v;
      auto r = n.call(*c_, "POST", "/api/v1/node/heartbeat", b.dump());
      EXPECT_EQ(r.status, 400) << field << " " << v.dump();
      EXPECT_NE(r.j["error"]["message"].get<std::string>().find(field), std::string::npos) << r;
    }
  }
}

}  // namespace
