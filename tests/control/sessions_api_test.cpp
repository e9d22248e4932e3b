// End-to-end: an organization's open access sessions (issue 9) against the real rap-control
// binary, a fixture PostgreSQL and a fixture Redis (live state), with simulated nodes over mTLS.
// An entry reports its sessions in heartbeats (access.active); GET /orgs/{slug}/sessions lists
// only the organization's own (user email, resource name, bytes; never a node or another
// tenant), DELETE revokes the grant durably, audits access.terminated and hands the revocation to
// the entry in its desired state. Also: access points (entry endpoints, egress pools) and the
// platform-only fabric view of the topology map (404 for tenants).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <thread>

#include "cluster_fixture.h"
#include "rap/testing/redis_fixture.h"

using namespace rap::testing::control;
using namespace std::chrono_literals;

namespace {

class SessionsApiTest : public ClusterApiTest {
 protected:
  void add_member(const std::string& org, const std::string& email, const std::string& role) {
    auto m = owner("POST", "/api/v1/orgs/" + org + "/members",
                   json{{"email", email}, {"role", role}}.dump());
    EXPECT_EQ(m.status, 201) << m;
  }
  std::string make_org(const std::string& slug) {
    EXPECT_EQ(owner("POST", "/api/v1/orgs", json{{"slug", slug}, {"name", slug}}.dump()).status,
              201);
    return owner("GET", "/api/v1/orgs/" + slug).j["org"]["id"].get<std::string>();
  }
  std::string make_resource(const std::string& org, const std::string& name) {
    auto r = owner("POST", "/api/v1/orgs/" + org + "/resources",
                   json{{"name", name}, {"protocol", "tcp"}, {"address", "10.1.0.5:5432"}}.dump());
    EXPECT_EQ(r.status, 201) << r;
    return r.j["resource"]["id"].is_string() ? r.j["resource"]["id"].get<std::string>() : "";
  }
  Reply as(const std::string& token, const std::string& method, const std::string& path) {
    return c_->call(method, path, "", token);
  }
  std::int64_t desired_version(const std::string& node) {
    pqxx::connection conn(conninfo_);
    pqxx::read_transaction t(conn);
    return t.exec_params("SELECT desired_state_version FROM nodes WHERE id = $1::uuid", node)[0][0]
        .as<std::int64_t>();
  }
  // Polls `path` as `token` until `pred` holds (live state is flushed once a second).
  Reply until(const std::string& token, const std::string& path,
              const std::function<bool(const Reply&)>& pred) {
    Reply r;
    for (int i = 0; i < 50; ++i) {
      r = as(token, "GET", path);
      if (pred(r)) return r;
      std::this_thread::sleep_for(200ms);
    }
    ADD_FAILURE() << "condition never held for " << path << ": " << r;
    return r;
  }
};

json session(const std::string& grant, const std::string& user, const std::string& org,
             const std::string& resource, std::int64_t up, std::int64_t down) {
  return json{{"grant", grant},
              {"user", user},
              {"org", org},
              {"resource", resource},
              {"started_at", unix_now() - 30},
              {"expires_at", unix_now() + 600},
              {"bytes_up", up},
              {"bytes_down", down}};
}

TEST_F(SessionsApiTest, OrgSessionsAreTenantIsolatedAndTerminateRevokesAndIsAudited) {
  auto redis = rap::testing::RedisFixture::start();
  ASSERT_TRUE(redis.has_value()) << redis.error().message;
  start("sessions_api",
        {"--heartbeat-write-interval", "0", "--redis-url", "unix://" + (*redis)->socket_path()});
  const std::string cluster_id = make_cluster("edge");
  ASSERT_FALSE(cluster_id.empty());
  const std::string acme = make_org("acme");
  const std::string globex = make_org("globex");
  const std::string alice_id = make_user("alice@acme.io", "alice-password-123");
  const std::string bob_id = make_user("bob@globex.io", "bob-password-1234");
  const std::string carol_id = make_user("carol@acme.io", "carol-password-12");
  add_member("acme", "alice@acme.io", "org_admin");
  add_member("globex", "bob@globex.io", "org_admin");
  add_member("acme", "carol@acme.io", "org_member");
  const std::string alice = login(*c_, "alice@acme.io", "alice-password-123");
  const std::string bob = login(*c_, "bob@globex.io", "bob-password-1234");
  const std::string carol = login(*c_, "carol@acme.io", "carol-password-12");
  const std::string db = make_resource("acme", "db");
  const std::string wiki = make_resource("globex", "wiki");

  auto [tid, token] = make_token("edge", 2);
  TestNode e = TestNode::make(dir_->path(), "e");
  TestNode r = TestNode::make(dir_->path(), "r");
  const std::string E = enroll_and_approve(e, "edge", token);
  const std::string R = enroll_and_approve(r, "edge", token);
  ASSERT_FALSE(E.empty() || R.empty());
  ASSERT_EQ(owner("PUT", "/api/v1/clusters/edge/nodes/" + E + "/roles",
                  json{{"roles", {{{"role", "entry-node"}}}}}.dump())
                .status,
            200);

  const std::string g1 = "11111111-1111-4111-8111-111111111111";  // acme: alice -> db
  const std::string g2 = "22222222-2222-4222-8222-222222222222";  // globex: bob -> wiki
  const std::string g3 = "33333333-3333-4333-8333-333333333333";  // claims acme, globex resource
  json hb = heartbeat_body();
  hb["endpoints"] = {{"client_ingress", "entry.example.net:7443"}, {"fabric", "10.0.0.1:7444"}};
  hb["fabric"] = {{"sessions", {{{"peer", R}}}}};
  hb["load"]["peer_rtt_ms"] = {{R, 12}};
  hb["load"]["peer_retransmits_per_s"] = {{R, 0.0}};
  hb["access"] = {
      {"active",
       {session(g1, alice_id, acme, db, 1000, 5000),
        session(g1, alice_id, acme, db, 10, 20),  // a second connection, same grant
        session(g2, bob_id, globex, wiki, 7, 8), session(g3, carol_id, acme, wiki, 1, 1)}}};
  auto beat = e.call(*c_, "POST", "/api/v1/node/heartbeat", hb.dump());
  ASSERT_EQ(beat.status, 200) << beat;
  json rhb = heartbeat_body();
  rhb["fabric"] = {{"sessions", {{{"peer", E}}}}};
  rhb["load"]["relayed_routes"] = 2;
  ASSERT_EQ(r.call(*c_, "POST", "/api/v1/node/heartbeat", rhb.dump()).status, 200);

  // ---- listing: only the organization's own sessions, nothing of the fabric ----
  const std::string S = "/api/v1/orgs/acme/sessions";
  auto l = until(alice, S,
                 [](const Reply& x) { return x.status == 200 && x.j["sessions"].size() == 1; });
  ASSERT_EQ(l.j["sessions"].size(), 1u) << l;
  const json& s = l.j["sessions"][0];
  EXPECT_EQ(s["grant_id"], g1);
  EXPECT_EQ(s["user"]["email"], "alice@acme.io");
  EXPECT_EQ(s["resource"]["name"], "db");
  EXPECT_EQ(s["connections"], 2);
  EXPECT_EQ(s["bytes_up"], 1010);
  EXPECT_EQ(s["bytes_down"], 5020);
  EXPECT_GE(s["duration_seconds"].get<std::int64_t>(), 29);
  for (const std::string& leak : {E, R, cluster_id, g2, g3, globex, std::string("wiki"),
                                  std::string("entry.example"), std::string("edge")})
    EXPECT_EQ(l.body.find(leak), std::string::npos) << leak << " leaked: " << l;
  // Other tenants and plain members cannot read them.
  EXPECT_EQ(as(bob, "GET", S).status, 404);
  EXPECT_EQ(as(carol, "GET", S).status, 403);
  EXPECT_EQ(as(alice, "GET", S + "?x=1").status, 400);
  auto gl = until(bob, "/api/v1/orgs/globex/sessions",
                  [](const Reply& x) { return x.status == 200 && x.j["sessions"].size() == 1; });
  EXPECT_EQ(gl.j["sessions"][0]["grant_id"], g2) << gl;
  EXPECT_EQ(gl.body.find(g1), std::string::npos) << gl;
  // Sessions are live state only: nothing of them reaches PostgreSQL's node state.
  {
    pqxx::connection conn(conninfo_);
    pqxx::read_transaction t(conn);
    EXPECT_EQ(t.exec_params("SELECT count(*) FROM nodes WHERE last_state::text LIKE $1",
                            "%" + g1 + "%")[0][0]
                  .as<int>(),
              0);
  }

  // ---- terminate ----
  EXPECT_EQ(as(alice, "DELETE", S + "/not-a-uuid").status, 400);
  EXPECT_EQ(as(alice, "DELETE", S + "/" + g2).error_code(), "session_not_found");  // globex's
  EXPECT_EQ(as(alice, "DELETE", S + "/" + g3).error_code(), "session_not_found");  // not shown
  EXPECT_EQ(as(carol, "DELETE", S + "/" + g1).status, 403);
  EXPECT_EQ(as(bob, "DELETE", S + "/" + g1).status, 404);
  const auto v0 = desired_version(E);
  auto del = as(alice, "DELETE", S + "/" + g1);
  ASSERT_EQ(del.status, 200) << del;
  EXPECT_EQ(del.j["terminated"]["grant_id"], g1);
  EXPECT_EQ(del.body.find(E), std::string::npos) << del;
  EXPECT_EQ(desired_version(E), v0 + 1);
  EXPECT_EQ(as(alice, "DELETE", S + "/" + g1).error_code(), "session_not_found");  // once
  {
    pqxx::connection conn(conninfo_);
    pqxx::read_transaction t(conn);
    auto row = t.exec_params(
        "SELECT org_id, entry_node_id, expires_at > now() + interval '5 minutes', revoked_by "
        "FROM revoked_grants WHERE grant_id = $1::uuid",
        g1);
    ASSERT_EQ(row.size(), 1u);
    EXPECT_EQ(row[0][0].as<std::string>(), acme);
    EXPECT_EQ(row[0][1].as<std::string>(), E);
    EXPECT_TRUE(row[0][2].as<bool>());
    EXPECT_EQ(row[0][3].as<std::string>(), alice_id);
    auto ev = t.exec_params(
        "SELECT org_id, actor_user_id, details->>'grant_id' FROM audit_events "
        "WHERE action = 'access.terminated'");
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0][0].as<std::string>(), acme);
    EXPECT_EQ(ev[0][1].as<std::string>(), alice_id);
    EXPECT_EQ(ev[0][2].as<std::string>(), g1);
    EXPECT_TRUE(t.exec("SELECT 1 FROM revoked_grants WHERE grant_id <> '" + g1 + "'").empty());
  }
  // The org's own audit shows it; the entry's desired state carries the revocation.
  auto audit = as(alice, "GET", "/api/v1/audit?org=acme");
  EXPECT_NE(audit.body.find("access.terminated"), std::string::npos) << audit;
  auto ds = e.call(*c_, "GET", "/api/v1/node/desired-state?after=0");
  ASSERT_EQ(ds.status, 200) << ds;
  EXPECT_EQ(ds.j["version"], v0 + 1);
  ASSERT_EQ(ds.j["revoked_grants"].size(), 1u) << ds;
  EXPECT_EQ(ds.j["revoked_grants"][0]["grant"], g1);
  EXPECT_GT(ds.j["revoked_grants"][0]["expires_at"].get<std::int64_t>(), unix_now() + 300);
  EXPECT_TRUE(r.call(*c_, "GET", "/api/v1/node/desired-state?after=0").j["revoked_grants"].empty());
  // The terminated session disappears from the list at once (the entry still reports it).
  ASSERT_EQ(e.call(*c_, "POST", "/api/v1/node/heartbeat", hb.dump()).status, 200);
  std::this_thread::sleep_for(1500ms);
  auto after = as(alice, "GET", S);
  ASSERT_EQ(after.status, 200) << after;
  EXPECT_TRUE(after.j["sessions"].empty()) << after;
  // Sessions that end drop out of live state with the entry's next report.
  json quiet = hb;
  quiet["access"]["active"] = {session(g2, bob_id, globex, wiki, 7, 8)};
  ASSERT_EQ(e.call(*c_, "POST", "/api/v1/node/heartbeat", quiet.dump()).status, 200);
  quiet["access"]["active"] = json::array();
  ASSERT_EQ(e.call(*c_, "POST", "/api/v1/node/heartbeat", quiet.dump()).status, 200);
  until(bob, "/api/v1/orgs/globex/sessions",
        [](const Reply& x) { return x.status == 200 && x.j["sessions"].empty(); });

  // ---- access points: entry endpoints and egress pools, no topology ----
  ASSERT_EQ(owner("POST", "/api/v1/orgs/acme/egress-pools",
                  json{{"name", "office"}, {"description", "Office LAN"}}.dump())
                .status,
            201);
  auto ap = as(alice, "GET", "/api/v1/orgs/acme/access-points");
  ASSERT_EQ(ap.status, 200) << ap;
  ASSERT_EQ(ap.j["entry_points"].size(), 1u) << ap;
  EXPECT_EQ(ap.j["entry_points"][0]["endpoint"], "entry.example.net:7443");
  EXPECT_EQ(ap.j["entry_points"][0]["status"], "online");
  ASSERT_EQ(ap.j["egress_pools"].size(), 1u) << ap;
  EXPECT_EQ(ap.j["egress_pools"][0]["description"], "Office LAN");
  for (const std::string& leak : {E, R, cluster_id, std::string("10.0.0.1")})
    EXPECT_EQ(ap.body.find(leak), std::string::npos) << leak << " leaked: " << ap;
  EXPECT_EQ(as(bob, "GET", "/api/v1/orgs/acme/access-points").status, 404);
  EXPECT_EQ(as(carol, "GET", "/api/v1/orgs/acme/access-points").status, 403);
  EXPECT_TRUE(as(bob, "GET", "/api/v1/orgs/globex/access-points").j["egress_pools"].empty());

  // ---- fabric view of the topology map: platform staff only ----
  auto fab = owner("GET", "/api/v1/clusters/edge/fabric");
  ASSERT_EQ(fab.status, 200) << fab;
  ASSERT_EQ(fab.j["sessions"].size(), 1u) << fab;  // reported by both ends, drawn once
  EXPECT_EQ(fab.j["sessions"][0]["reported_by"], 2);
  EXPECT_EQ(fab.j["sessions"][0]["rtt_ms"], 12);
  EXPECT_EQ(fab.j["sessions"][0]["health"], "good");
  ASSERT_EQ(fab.j["relays"].size(), 1u) << fab;
  EXPECT_EQ(fab.j["relays"][0]["node"], R);
  EXPECT_EQ(fab.j["relays"][0]["relayed_routes"], 2);
  for (const auto& t : {alice, bob, carol}) {
    auto x = as(t, "GET", "/api/v1/clusters/edge/fabric");
    EXPECT_EQ(x.status, 404) << x;
    EXPECT_EQ(x.body.find(E), std::string::npos);
  }
  // A lossy session turns the edge red.
  hb["load"]["peer_retransmits_per_s"] = {{R, 12.5}};
  hb.erase("access");
  ASSERT_EQ(e.call(*c_, "POST", "/api/v1/node/heartbeat", hb.dump()).status, 200);
  EXPECT_EQ(owner("GET", "/api/v1/clusters/edge/fabric").j["sessions"][0]["health"], "bad");
}

// The production write throttle: heartbeats whose durable state is unchanged are answered from
// memory (no database), and their access sessions still reach live state (here the in-memory
// LiveState of a rap-control without Redis).
TEST_F(SessionsApiTest, HeartbeatsAnsweredFromMemoryStillReportSessions) {
  start("sessions_fast", {"--heartbeat-write-interval", "20"});
  ASSERT_FALSE(make_cluster("edge").empty());
  const std::string acme = make_org("acme");
  const std::string alice_id = make_user("alice@acme.io", "alice-password-123");
  add_member("acme", "alice@acme.io", "org_admin");
  const std::string alice = login(*c_, "alice@acme.io", "alice-password-123");
  const std::string db = make_resource("acme", "db");
  auto [tid, token] = make_token("edge", 1);
  TestNode e = TestNode::make(dir_->path(), "e");
  ASSERT_FALSE(enroll_and_approve(e, "edge", token).empty());
  const std::string g = "44444444-4444-4444-8444-444444444444";
  for (const std::int64_t up : {1, 2, 3, 777}) {
    json hb = heartbeat_body();
    hb["access"] = {{"active", {session(g, alice_id, acme, db, up, 5)}}};
    ASSERT_EQ(e.call(*c_, "POST", "/api/v1/node/heartbeat", hb.dump()).status, 200);
  }
  auto l = until(alice, "/api/v1/orgs/acme/sessions", [](const Reply& x) {
    return x.status == 200 && x.j["sessions"].size() == 1 && x.j["sessions"][0]["bytes_up"] == 777;
  });
  EXPECT_EQ(l.j["live_state"], "ok");
  // At least one of them was answered from memory (the auth row cache lasts 2 s, so a slow
  // machine may send some through the database path).
  auto metrics = c_->call("GET", "/metrics");
  const std::string key = "rap_control_node_heartbeats_total{path=\"memory\"} ";
  const auto at = metrics.body.find(key);
  ASSERT_NE(at, std::string::npos) << metrics.body;
  EXPECT_GE(std::stoi(metrics.body.substr(at + key.size())), 1) << metrics.body;
}

TEST_F(SessionsApiTest, HeartbeatAccessSessionsAreValidated) {
  start("sessions_heartbeat");
  ASSERT_FALSE(make_cluster("edge").empty());
  auto [tid, token] = make_token("edge", 1);
  TestNode n = TestNode::make(dir_->path(), "n");
  ASSERT_FALSE(enroll_and_approve(n, "edge", token).empty());
  const std::string u = "00000000-0000-4000-8000-000000000001";
  const json good = session(u, u, u, u, 1, 2);
  {
    json b = heartbeat_body();
    b["access"] = {{"active", {good}}};
    EXPECT_EQ(n.call(*c_, "POST", "/api/v1/node/heartbeat", b.dump()).status, 200);
  }
  json too_many = json::array();
  for (int i = 0; i < 129; ++i) too_many.push_back(good);
  auto with = [&](const char* k, json v) {
    json s = good;
    s[k] = std::move(v);
    return json{{"active", {s}}};
  };
  json extra = good;
  extra["route"] = "r";
  const std::vector<json> bad = {json("x"),
                                 json{{"active", "x"}},
                                 json{{"active", too_many}},
                                 json{{"other", json::array()}},
                                 json{{"active", {1}}},
                                 json{{"active", {extra}}},
                                 with("grant", "nope"),
                                 with("org", 5),
                                 with("bytes_up", -1),
                                 with("bytes_down", "1"),
                                 with("started_at", nullptr),
                                 with("expires_at", 1e15)};
  for (const auto& a : bad) {
    json b = heartbeat_body();
    b["access"] = a;
    auto r = n.call(*c_, "POST", "/api/v1/node/heartbeat", b.dump());
    EXPECT_EQ(r.status, 400) << a.dump().substr(0, 300);
    EXPECT_FALSE(r.error_code().empty()) << r;
  }
  json b = heartbeat_body();
  b["load"]["relayed_routes"] = -1;
  EXPECT_EQ(n.call(*c_, "POST", "/api/v1/node/heartbeat", b.dump()).status, 400);
}

}  // namespace
