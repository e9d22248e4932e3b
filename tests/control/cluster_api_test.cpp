// End-to-end: clusters, join tokens, node enrollment, node certificates (mTLS), heartbeats and
// desired state, against the real rap-control binary and a fixture PostgreSQL, driven by curl
// (node requests use `curl --cert --key` with certificates the control plane issued).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cluster_fixture.h"
#include "control_process.h"
#include "rap/config/state.h"
#include "rap/config/trust.h"
#include "rap/crypto/certs.h"
#include "rap/crypto/keys.h"
#include "rap/testing/gtest_support.h"
#include "rap/testing/redis_fixture.h"
#include "rap/testing/temp_dir.h"

using json = nlohmann::json;
using rap::testing::TempDir;
using namespace rap::testing::control;

namespace {

TEST_F(ClusterApiTest, EnrollApproveHeartbeatDesiredStateRevoke) {
  start("cluster_flow");
  const std::string cluster_id = make_cluster("edge");
  ASSERT_FALSE(cluster_id.empty());
  {
    auto r = owner("GET", "/api/v1/clusters");
    ASSERT_EQ(r.status, 200) << r;
    ASSERT_EQ(r.j["clusters"].size(), 1u);
    EXPECT_EQ(r.j["clusters"][0]["slug"], "edge");
    auto g = owner("GET", "/api/v1/clusters/edge");
    ASSERT_EQ(g.status, 200) << g;
    EXPECT_NE(g.j["cluster"]["ca_pem"].get<std::string>().find("BEGIN CERTIFICATE"),
              std::string::npos);
    EXPECT_EQ(owner("POST", "/api/v1/clusters", json{{"slug", "edge"}, {"name", "x"}}.dump())
                  .error_code(),
              "slug_taken");
  }
  auto [token_id, token] = make_token("edge", 2);
  ASSERT_EQ(token.size(), 64u);
  {
    auto l = owner("GET", "/api/v1/clusters/edge/join-tokens");
    ASSERT_EQ(l.status, 200) << l;
    ASSERT_EQ(l.j["join_tokens"].size(), 1u);
    EXPECT_EQ(l.j["join_tokens"][0]["state"], "active");
    EXPECT_EQ(l.body.find(token), std::string::npos) << "raw token must not be listed";
  }

  TestNode n = TestNode::make(dir_->path(), "n1");
  auto e = c_->call("POST", "/api/v1/enroll", n.enroll_body("edge", token).dump());
  ASSERT_EQ(e.status, 202) << e;
  EXPECT_EQ(e.j["status"], "pending");
  const std::string rid = e.j["request_id"].get<std::string>();
  // Replay: same request, no use consumed.
  {
    auto again = c_->call("POST", "/api/v1/enroll", n.enroll_body("edge", token).dump());
    ASSERT_EQ(again.status, 202) << again;
    EXPECT_EQ(again.j["request_id"], rid);
    EXPECT_EQ(again.j["replayed"], true);
    auto l = owner("GET", "/api/v1/clusters/edge/join-tokens");
    EXPECT_EQ(l.j["join_tokens"][0]["uses"], 1);
  }
  {
    auto p = n.poll(*c_, rid);
    ASSERT_EQ(p.status, 200) << p;
    EXPECT_EQ(p.j["status"], "pending");
    EXPECT_FALSE(p.j.contains("certificate_pem"));
    auto l = owner("GET", "/api/v1/clusters/edge/join-requests?status=pending");
    ASSERT_EQ(l.status, 200) << l;
    ASSERT_EQ(l.j["join_requests"].size(), 1u);
    EXPECT_EQ(l.j["join_requests"][0]["public_key"], n.pub);
    EXPECT_EQ(l.j["join_requests"][0]["capabilities"],
              json::array({"can_route_mesh", "can_run_tcp_exit"}));
  }
  // Unsigned, badly signed, stale and foreign-key proofs.
  {
    auto r = c_->call("GET", "/api/v1/enroll/" + rid);
    EXPECT_EQ(r.status, 401) << r;
    EXPECT_EQ(r.error_code(), "proof_required");
    auto h = n.proof(rid, unix_now());
    h[3] = "X-RAP-Proof: " + std::string(128, '0');
    auto bad = c_->call("GET", "/api/v1/enroll/" + rid, "", "", h);
    EXPECT_EQ(bad.status, 401) << bad;
    EXPECT_EQ(bad.error_code(), "invalid_proof");
    auto stale = c_->call("GET", "/api/v1/enroll/" + rid, "", "", n.proof(rid, unix_now() - 1000));
    EXPECT_EQ(stale.status, 401) << stale;
    EXPECT_EQ(stale.error_code(), "stale_proof");
    TestNode other = TestNode::make(dir_->path(), "other");
    auto foreign = other.poll(*c_, rid);
    EXPECT_EQ(foreign.status, 401) << foreign;
    EXPECT_EQ(foreign.error_code(), "invalid_proof");
    auto unknown = n.poll(*c_, "00000000-0000-0000-0000-000000000000");
    EXPECT_EQ(unknown.status, 404) << unknown;
  }
  // Approve: the node certificate arrives on the next poll.
  {
    auto a = owner("POST", "/api/v1/clusters/edge/join-requests/" + rid + "/approve",
                   json{{"name", "edge-1"}}.dump());
    ASSERT_EQ(a.status, 200) << a;
    EXPECT_EQ(a.j["join_request"]["status"], "approved");
    auto again = owner("POST", "/api/v1/clusters/edge/join-requests/" + rid + "/approve");
    EXPECT_EQ(again.status, 409) << again;
    EXPECT_EQ(again.error_code(), "join_request_not_pending");
  }
  auto p = n.poll(*c_, rid);
  ASSERT_EQ(p.status, 200) << p;
  ASSERT_EQ(p.j["status"], "approved") << p;
  const std::string node_id = p.j["node_id"].get<std::string>();
  const std::string cert_pem = p.j["certificate_pem"].get<std::string>();
  {
    RAP_ASSIGN_OR_FAIL(auto id, rap::crypto::identity_from_pem(cert_pem));
    EXPECT_EQ(id.cluster_id, cluster_id);
    EXPECT_EQ(id.node_id, node_id);
    EXPECT_EQ(hex(id.public_key), n.pub);
    EXPECT_EQ(std::to_string(id.serial), p.j["serial"].get<std::string>());
    // Chain: openssl verify against the cluster CA.
    write_file(dir_->path() / "ca.pem", p.j["ca_pem"].get<std::string>());
    write_file(n.cert_path, cert_pem);
    auto v = rap::testing::run_command(
        {"openssl", "verify", "-CAfile", (dir_->path() / "ca.pem").string(), n.cert_path.string()},
        run_options(10));
    EXPECT_TRUE(v.ok()) << v.output;
  }

  // Node API over mTLS.
  {
    auto no_cert = c_->call("POST", "/api/v1/node/heartbeat", heartbeat_body().dump());
    EXPECT_EQ(no_cert.status, 401) << no_cert;
    EXPECT_EQ(no_cert.error_code(), "client_certificate_required");
    auto hb = n.call(*c_, "POST", "/api/v1/node/heartbeat", heartbeat_body().dump());
    ASSERT_EQ(hb.status, 200) << hb;
    EXPECT_EQ(hb.j["desired_state_version"], 1);
    EXPECT_TRUE(hb.j["server_time"].is_string());
    json bad = heartbeat_body();
    bad["extra"] = 1;
    EXPECT_EQ(n.call(*c_, "POST", "/api/v1/node/heartbeat", bad.dump()).status, 400);
    bad = heartbeat_body();
    bad["load"]["cpu_permille"] = "high";
    EXPECT_EQ(n.call(*c_, "POST", "/api/v1/node/heartbeat", bad.dump()).status, 400);
    bad = heartbeat_body();
    bad["capabilities"] = {"can_fly"};
    EXPECT_EQ(n.call(*c_, "POST", "/api/v1/node/heartbeat", bad.dump()).error_code(),
              "unknown_capability");
    EXPECT_EQ(n.call(*c_, "POST", "/api/v1/node/heartbeat", "{nope").error_code(),
              "malformed_json");

    auto node = owner("GET", "/api/v1/clusters/edge/nodes/" + node_id);
    ASSERT_EQ(node.status, 200) << node;
    EXPECT_EQ(node.j["node"]["name"], "edge-1");
    EXPECT_EQ(node.j["node"]["health"], "online");
    EXPECT_EQ(node.j["node"]["agent_version"], "0.1.0");
    EXPECT_EQ(node.j["node"]["last_state"]["load"]["open_sessions"], 3);
    auto hbs = owner("GET", "/api/v1/clusters/edge/nodes/" + node_id + "/heartbeats");
    ASSERT_EQ(hbs.status, 200) << hbs;
    EXPECT_EQ(hbs.j["heartbeats"].size(), 1u);
    // The history keeps the newest 100 per node: 104 more heartbeats over one keep-alive
    // connection (curl sends the same body to every URL).
    std::vector<std::string> argv = {"curl",
                                     "-sS",
                                     "-k",
                                     "--tlsv1.3",
                                     "--cert",
                                     n.cert_path.string(),
                                     "--key",
                                     n.key_path.string(),
                                     "-w",
                                     "\n%{http_code}\n",
                                     "-H",
                                     "Content-Type: application/json",
                                     "--data-binary",
                                     heartbeat_body("0.1.1").dump()};
    for (int i = 0; i < 104; ++i)
      argv.push_back("https://127.0.0.1:" + std::to_string(c_->port()) + "/api/v1/node/heartbeat");
    const auto t0 = std::chrono::steady_clock::now();
    auto burst = rap::testing::run_command(argv, run_options(60));
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    ASSERT_TRUE(burst.ok()) << burst.output;
    int ok = 0;
    for (std::size_t pos = 0; (pos = burst.output.find("\n200\n", pos)) != std::string::npos; ++pos)
      ++ok;
    EXPECT_EQ(ok, 104);
    std::cout << "[ perf ] 104 sequential mTLS heartbeats (one connection) in " << ms << " ms"
              << std::endl;
    auto bounded = owner("GET", "/api/v1/clusters/edge/nodes/" + node_id + "/heartbeats");
    ASSERT_EQ(bounded.status, 200) << bounded;
    EXPECT_EQ(bounded.j["heartbeats"].size(), 100u);
    EXPECT_EQ(bounded.j["heartbeats"][0]["state"]["version"], "0.1.1");
    {
      pqxx::connection conn(pg_->conninfo(dbname_));
      pqxx::read_transaction t(conn);
      EXPECT_EQ(t.exec("SELECT count(*) FROM node_heartbeats")[0][0].as<int>(), 100);
    }
    auto list = owner("GET", "/api/v1/clusters/edge/nodes");
    ASSERT_EQ(list.status, 200) << list;
    EXPECT_EQ(list.j["nodes"].size(), 1u);
  }

  // Desired state: immediate read, then a long poll woken by a role change.
  {
    auto ds = n.call(*c_, "GET", "/api/v1/node/desired-state");
    ASSERT_EQ(ds.status, 200) << ds;
    const long long v0 = ds.j["version"].get<long long>();
    EXPECT_EQ(ds.j["roles"], json::array());
    std::thread changer([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      auto r = c_->call(
          "PUT", "/api/v1/clusters/edge/nodes/" + node_id + "/roles",
          json{{"roles", {{{"role", "relay-node"}}, {{"role", "entry-node"}}}}}.dump(), owner_);
      EXPECT_EQ(r.status, 200) << r;
    });
    const auto t0 = std::chrono::steady_clock::now();
    auto lp =
        n.call(*c_, "GET", "/api/v1/node/desired-state?after=" + std::to_string(v0) + "&wait=20");
    const auto waited = std::chrono::steady_clock::now() - t0;
    changer.join();
    ASSERT_EQ(lp.status, 200) << lp;
    EXPECT_GT(lp.j["version"].get<long long>(), v0);
    EXPECT_EQ(lp.j["roles"].size(), 2u);
    EXPECT_GE(waited, std::chrono::milliseconds(1000));
    EXPECT_LT(waited, std::chrono::seconds(10));
    // A long poll with nothing new returns the unchanged state after `wait`.
    const long long v1 = lp.j["version"].get<long long>();
    auto idle =
        n.call(*c_, "GET", "/api/v1/node/desired-state?after=" + std::to_string(v1) + "&wait=1");
    ASSERT_EQ(idle.status, 200) << idle;
    EXPECT_EQ(idle.j["version"].get<long long>(), v1);
    EXPECT_EQ(n.call(*c_, "GET", "/api/v1/node/desired-state?wait=99").status, 400);
    EXPECT_EQ(owner("PUT", "/api/v1/clusters/edge/nodes/" + node_id + "/roles",
                    json{{"roles", {{{"role", "superuser"}}}}}.dump())
                  .error_code(),
              "unknown_role");
    auto wl =
        owner("PUT", "/api/v1/clusters/edge/nodes/" + node_id + "/workloads",
              json{{"workloads",
                    {{{"name", "relay"}, {"kind", "container"}, {"spec", {{"image", "r:1"}}}}}}}
                  .dump());
    ASSERT_EQ(wl.status, 200) << wl;
    auto ds2 = n.call(*c_, "GET", "/api/v1/node/desired-state?after=" + std::to_string(v1));
    ASSERT_EQ(ds2.status, 200) << ds2;
    EXPECT_GT(ds2.j["version"].get<long long>(), v1);
    ASSERT_EQ(ds2.j["workloads"].size(), 1u);
    EXPECT_EQ(ds2.j["workloads"][0]["spec"]["image"], "r:1");
  }

  // Renew: a new certificate for the same key; the old one keeps working until expiry.
  {
    auto rn = n.call(*c_, "POST", "/api/v1/node/renew");
    ASSERT_EQ(rn.status, 201) << rn;
    RAP_ASSIGN_OR_FAIL(auto id2, rap::crypto::identity_from_pem(rn.j["certificate_pem"]));
    EXPECT_EQ(id2.node_id, node_id);
    EXPECT_EQ(hex(id2.public_key), n.pub);
    EXPECT_EQ(n.call(*c_, "POST", "/api/v1/node/heartbeat", heartbeat_body().dump()).status, 200);
    TestNode renewed = n;
    renewed.cert_path = dir_->path() / "n1-renewed.crt";
    write_file(renewed.cert_path, rn.j["certificate_pem"].get<std::string>());
    EXPECT_EQ(renewed.call(*c_, "POST", "/api/v1/node/heartbeat", heartbeat_body().dump()).status,
              200);
  }

  // A certificate for this node's identity signed by another CA is refused.
  {
    RAP_ASSIGN_OR_FAIL(auto fake_ca, rap::crypto::Ed25519Key::generate());
    const auto now = std::chrono::system_clock::now();
    rap::crypto::Validity val{now - std::chrono::hours(1), now + std::chrono::hours(1)};
    RAP_ASSIGN_OR_FAIL(auto ca_pem, rap::crypto::make_ca_certificate(fake_ca, cluster_id, val));
    RAP_ASSIGN_OR_FAIL(auto id, rap::crypto::identity_from_pem(cert_pem));
    RAP_ASSIGN_OR_FAIL(auto forged,
                       rap::crypto::issue_node_certificate(fake_ca, ca_pem, n.key.public_key(),
                                                           cluster_id, node_id, id.serial, val));
    TestNode f = n;
    f.cert_path = dir_->path() / "forged.crt";
    write_file(f.cert_path, forged);
    auto r = f.call(*c_, "POST", "/api/v1/node/heartbeat", heartbeat_body().dump());
    EXPECT_EQ(r.status, 401) << r;
    EXPECT_EQ(r.error_code(), "invalid_client_certificate");
  }

  // Revoke: every mTLS request of the node now gets 403 node_revoked.
  {
    auto rv = owner("POST", "/api/v1/clusters/edge/nodes/" + node_id + "/revoke",
                    json{{"reason", "decommissioned"}}.dump());
    ASSERT_EQ(rv.status, 200) << rv;
    EXPECT_EQ(rv.j["node"]["status"], "revoked");
    EXPECT_EQ(rv.j["revoked_certificates"].size(), 2u);
    auto hb = n.call(*c_, "POST", "/api/v1/node/heartbeat", heartbeat_body().dump());
    EXPECT_EQ(hb.status, 403) << hb;
    EXPECT_EQ(hb.error_code(), "node_revoked");
    EXPECT_EQ(n.call(*c_, "GET", "/api/v1/node/desired-state").error_code(), "node_revoked");
    EXPECT_EQ(owner("POST", "/api/v1/clusters/edge/nodes/" + node_id + "/revoke").status, 409);
  }

  // Audit: mutations carry the cluster, heartbeats are not audited, the chain verifies.
  {
    auto a = owner("GET", "/api/v1/audit?limit=1000");
    ASSERT_EQ(a.status, 200) << a;
    std::set<std::string> actions;
    for (const auto& ev : a.j["events"]) actions.insert(ev["action"].get<std::string>());
    for (const char* want :
         {"cluster.created", "cluster.join_token_created", "node.join_requested",
          "node.join_request_approved", "node.certificate_issued", "node.roles_set",
          "node.workloads_set", "node.certificate_renewed", "node.revoked"})
      EXPECT_TRUE(actions.contains(want)) << want;
    EXPECT_FALSE(actions.contains("node.heartbeat"));
    auto v = owner("GET", "/api/v1/audit/verify");
    EXPECT_EQ(v.j["ok"], true) << v;
  }
}

TEST_F(ClusterApiTest, NegativeCasesTokensAndTenants) {
  start("cluster_neg");
  make_cluster("core");
  auto [tid, token] = make_token("core", 1);
  TestNode n = TestNode::make(dir_->path(), "n");

  // Malformed enrollment input.
  {
    auto r = c_->call("POST", "/api/v1/enroll", "{\"cluster\":");
    EXPECT_EQ(r.error_code(), "malformed_json") << r;
    json b = n.enroll_body("core", token);
    b["public_key"] = 42;
    EXPECT_EQ(c_->call("POST", "/api/v1/enroll", b.dump()).status, 400);
    b = n.enroll_body("core", token);
    b["public_key"] = "abcd";
    EXPECT_EQ(c_->call("POST", "/api/v1/enroll", b.dump()).error_code(), "invalid_public_key");
    b = n.enroll_body("core", token, {"can_fly"});
    EXPECT_EQ(c_->call("POST", "/api/v1/enroll", b.dump()).error_code(), "unknown_capability");
    b = n.enroll_body("core", token);
    b["facts"]["cpus"] = "four";
    EXPECT_EQ(c_->call("POST", "/api/v1/enroll", b.dump()).status, 400);
    b = n.enroll_body("core", token);
    b["role"] = "admin";
    EXPECT_EQ(c_->call("POST", "/api/v1/enroll", b.dump()).status, 400);
    b = n.enroll_body("core", std::string(64, 'a'));
    auto bad_tok = c_->call("POST", "/api/v1/enroll", b.dump());
    EXPECT_EQ(bad_tok.status, 401) << bad_tok;
    EXPECT_EQ(bad_tok.error_code(), "invalid_join_token");
    b = n.enroll_body("elsewhere", token);
    EXPECT_EQ(c_->call("POST", "/api/v1/enroll", b.dump()).error_code(), "invalid_join_token");
  }
  // Token validation on creation.
  {
    auto mk = [&](const json& body) {
      return owner("POST", "/api/v1/clusters/core/join-tokens", body.dump());
    };
    EXPECT_EQ(mk({{"ttl_seconds", 10}, {"max_uses", 1}}).error_code(), "invalid_ttl");
    EXPECT_EQ(mk({{"ttl_seconds", 3600}, {"max_uses", 0}}).error_code(), "invalid_max_uses");
    EXPECT_EQ(mk({{"ttl_seconds", "3600"}, {"max_uses", 1}}).status, 400);
    EXPECT_EQ(mk({{"ttl_seconds", 3600}, {"max_uses", 1}, {"x", 1}}).status, 400);
    EXPECT_EQ(owner("POST", "/api/v1/clusters/nope/join-tokens",
                    json{{"ttl_seconds", 3600}, {"max_uses", 1}}.dump())
                  .error_code(),
              "cluster_not_found");
  }
  // Used up: the one use goes to n, another key is refused; n's replay still works.
  {
    ASSERT_EQ(c_->call("POST", "/api/v1/enroll", n.enroll_body("core", token).dump()).status, 202);
    TestNode m = TestNode::make(dir_->path(), "m");
    auto r = c_->call("POST", "/api/v1/enroll", m.enroll_body("core", token).dump());
    EXPECT_EQ(r.status, 403) << r;
    EXPECT_EQ(r.error_code(), "join_token_exhausted");
    EXPECT_EQ(c_->call("POST", "/api/v1/enroll", n.enroll_body("core", token).dump()).status, 202);
  }
  // Revoked.
  {
    auto [rid, rtok] = make_token("core", 5);
    auto rv = owner("POST", "/api/v1/clusters/core/join-tokens/" + rid + "/revoke");
    ASSERT_EQ(rv.status, 200) << rv;
    EXPECT_EQ(rv.j["join_token"]["state"], "revoked");
    EXPECT_EQ(owner("POST", "/api/v1/clusters/core/join-tokens/" + rid + "/revoke").status, 409);
    TestNode m = TestNode::make(dir_->path(), "m2");
    auto r = c_->call("POST", "/api/v1/enroll", m.enroll_body("core", rtok).dump());
    EXPECT_EQ(r.status, 403) << r;
    EXPECT_EQ(r.error_code(), "join_token_revoked");
  }
  // Expired (a 60 s token cannot be waited out here: age it in the database).
  {
    auto [eid, etok] = make_token("core", 5, 60);
    auto aged = pg_->exec(
        "UPDATE join_tokens SET expires_at = now() - interval '1 second' WHERE id = '" + eid + "'",
        dbname_);
    ASSERT_TRUE(aged.has_value()) << aged.error().message;
    TestNode m = TestNode::make(dir_->path(), "m3");
    auto r = c_->call("POST", "/api/v1/enroll", m.enroll_body("core", etok).dump());
    EXPECT_EQ(r.status, 403) << r;
    EXPECT_EQ(r.error_code(), "join_token_expired");
  }
  // Denied enrollments are audited.
  {
    auto a = owner("GET", "/api/v1/audit?limit=1000");
    ASSERT_EQ(a.status, 200) << a;
    int denied = 0;
    for (const auto& ev : a.j["events"])
      if (ev["action"] == "node.join_requested" && ev["details"].contains("reason")) ++denied;
    EXPECT_GE(denied, 4);
  }
  // A second instance with another master key cannot use the cluster CA: 503, nothing changes.
  {
    auto other = ControlProcess::start(conninfo_, "cluster_neg_other_key");
    ASSERT_TRUE(other.has_value()) << other.error().message;
    const std::string tok = login(**other, "owner@example.com", kOwnerPw);
    step_up(**other, tok, kOwnerPw);
    auto l = owner("GET", "/api/v1/clusters/core/join-requests?status=pending");
    ASSERT_EQ(l.j["join_requests"].size(), 1u) << l;
    const std::string rid = l.j["join_requests"][0]["id"].get<std::string>();
    auto a =
        (*other)->call("POST", "/api/v1/clusters/core/join-requests/" + rid + "/approve", "", tok);
    EXPECT_EQ(a.status, 503) << a;
    EXPECT_EQ(a.error_code(), "master_key_mismatch");
    auto still = owner("GET", "/api/v1/clusters/core/join-requests?status=pending");
    EXPECT_EQ(still.j["join_requests"].size(), 1u) << still;
  }
  // Reject flow.
  {
    auto l = owner("GET", "/api/v1/clusters/core/join-requests?status=pending");
    ASSERT_EQ(l.j["join_requests"].size(), 1u) << l;
    const std::string rid = l.j["join_requests"][0]["id"].get<std::string>();
    EXPECT_EQ(owner("GET", "/api/v1/clusters/core/join-requests?status=bogus").status, 400);
    auto rj = owner("POST", "/api/v1/clusters/core/join-requests/" + rid + "/reject",
                    json{{"reason", "unknown host"}}.dump());
    ASSERT_EQ(rj.status, 200) << rj;
    auto p = n.poll(*c_, rid);
    ASSERT_EQ(p.status, 200) << p;
    EXPECT_EQ(p.j["status"], "rejected");
    EXPECT_EQ(p.j["reason"], "unknown host");
  }

  // Tenants (an org admin) see none of it: 404 everywhere, audited as denied.
  {
    step_up(*c_, owner_, kOwnerPw);
    ASSERT_EQ(owner("POST", "/api/v1/orgs", json{{"slug", "acme"}, {"name", "Acme"}}.dump()).status,
              201);
    ASSERT_EQ(owner("POST", "/api/v1/users",
                    json{{"email", "admin@acme.test"}, {"password", kAdminPw}}.dump())
                  .status,
              201);
    ASSERT_EQ(owner("POST", "/api/v1/orgs/acme/members",
                    json{{"email", "admin@acme.test"}, {"role", "org_admin"}}.dump())
                  .status,
              201);
    const std::string tenant = login(*c_, "admin@acme.test", kAdminPw);
    step_up(*c_, tenant, kAdminPw);
    const std::string nid = "00000000-0000-0000-0000-000000000001";
    const std::vector<std::pair<std::string, std::string>> routes = {
        {"GET", "/api/v1/clusters"},
        {"POST", "/api/v1/clusters"},
        {"GET", "/api/v1/clusters/core"},
        {"POST", "/api/v1/clusters/core/join-tokens"},
        {"GET", "/api/v1/clusters/core/join-tokens"},
        {"POST", "/api/v1/clusters/core/join-tokens/" + tid + "/revoke"},
        {"GET", "/api/v1/clusters/core/join-requests"},
        {"POST", "/api/v1/clusters/core/join-requests/" + nid + "/approve"},
        {"POST", "/api/v1/clusters/core/join-requests/" + nid + "/reject"},
        {"GET", "/api/v1/clusters/core/nodes"},
        {"GET", "/api/v1/clusters/core/nodes/" + nid},
        {"POST", "/api/v1/clusters/core/nodes/" + nid + "/revoke"},
        {"PUT", "/api/v1/clusters/core/nodes/" + nid + "/roles"},
        {"PUT", "/api/v1/clusters/core/nodes/" + nid + "/workloads"},
        {"GET", "/api/v1/clusters/core/nodes/" + nid + "/heartbeats"},
    };
    for (const auto& [m, path] : routes) {
      const std::string body =
          m == "GET" ? "" : json{{"ttl_seconds", 3600}, {"max_uses", 1}}.dump();
      auto r = c_->call(m, path, body, tenant);
      EXPECT_EQ(r.status, 404) << m << " " << path << " " << r;
      EXPECT_EQ(r.error_code(), "not_found") << r;
    }
    auto a = owner("GET", "/api/v1/audit?limit=1000");
    int denied = 0;
    for (const auto& ev : a.j["events"])
      if (ev["details"].value("reason", "") == "not_platform_owner") ++denied;
    EXPECT_EQ(denied, static_cast<int>(routes.size()));
    auto l = owner("GET", "/api/v1/clusters/core/join-tokens");
    EXPECT_EQ(l.j["join_tokens"].size(), 3u) << "tenant must not have created a token";
  }
}

TEST_F(ClusterApiTest, ConcurrentEnrollmentsRespectMaxUses) {
  start("cluster_conc");
  make_cluster("burst");
  auto [tid, token] = make_token("burst", 10);
  constexpr int kNodes = 50;
  std::vector<TestNode> nodes;
  for (int i = 0; i < kNodes; ++i)
    nodes.push_back(TestNode::make(dir_->path(), "c" + std::to_string(i)));
  std::atomic<int> accepted{0}, exhausted{0}, other{0};
  std::vector<std::thread> threads;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kNodes; ++i) {
    threads.emplace_back([&, i] {
      auto r = c_->call("POST", "/api/v1/enroll", nodes[i].enroll_body("burst", token).dump());
      if (r.status == 202)
        ++accepted;
      else if (r.status == 403 && r.error_code() == "join_token_exhausted")
        ++exhausted;
      else
        ++other;
    });
  }
  for (auto& t : threads) t.join();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  std::cout << "[ perf ] 50 concurrent enrollments in " << ms << " ms" << std::endl;
  EXPECT_EQ(accepted.load(), 10);
  EXPECT_EQ(exhausted.load(), kNodes - 10);
  EXPECT_EQ(other.load(), 0);
  auto l = owner("GET", "/api/v1/clusters/burst/join-requests");
  EXPECT_EQ(l.j["join_requests"].size(), 10u);
  auto t = owner("GET", "/api/v1/clusters/burst/join-tokens");
  EXPECT_EQ(t.j["join_tokens"][0]["uses"], 10);
  EXPECT_EQ(t.j["join_tokens"][0]["state"], "exhausted");
}

// The production default (--heartbeat-write-interval 10): a heartbeat whose durable part is
// unchanged is answered without a write; a changed durable part is written at once; revocation
// still takes effect on the next request.
TEST_F(ClusterApiTest, NodeApiHeartbeatThrottle) {
  start("cluster_hb_throttle", {});
  ASSERT_FALSE(make_cluster("edge").empty());
  auto [tid, token] = make_token("edge", 1);
  TestNode n = TestNode::make(dir_->path(), "n1");
  const std::string node_id = enroll_and_approve(n, "edge", token);
  ASSERT_FALSE(node_id.empty());
  const std::string node_path = "/api/v1/clusters/edge/nodes/" + node_id;
  json body = heartbeat_body();
  for (int i = 0; i < 3; ++i) {
    body["load"]["open_sessions"] = i;  // load alone is not durable
    auto hb = n.call(*c_, "POST", "/api/v1/node/heartbeat", body.dump());
    ASSERT_EQ(hb.status, 200) << hb;
    EXPECT_EQ(hb.j["desired_state_version"], 1);
    EXPECT_TRUE(hb.j["server_time"].is_string());
  }
  auto hbs = owner("GET", node_path + "/heartbeats");
  ASSERT_EQ(hbs.status, 200) << hbs;
  EXPECT_EQ(hbs.j["heartbeats"].size(), 1u);
  // The two unchanged heartbeats were answered without the database (the authentication row
  // cached by the first one, on the I/O thread), the first one wrote.
  auto metrics = c_->call("GET", "/metrics");
  EXPECT_NE(metrics.body.find("rap_control_node_heartbeats_total{path=\"memory\"} 2"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("rap_control_node_heartbeats_total{path=\"db\"} 1"),
            std::string::npos)
      << metrics.body;
  auto node = owner("GET", node_path);
  EXPECT_EQ(node.j["node"]["health"], "online");
  EXPECT_EQ(node.j["node"]["last_state"]["load"]["open_sessions"], 0);

  body["workloads"][0]["state"] = "crash_loop";
  ASSERT_EQ(n.call(*c_, "POST", "/api/v1/node/heartbeat", body.dump()).status, 200);
  hbs = owner("GET", node_path + "/heartbeats");
  ASSERT_EQ(hbs.j["heartbeats"].size(), 2u) << hbs;
  EXPECT_EQ(hbs.j["heartbeats"][0]["state"]["workloads"][0]["state"], "crash_loop");

  ASSERT_EQ(owner("POST", node_path + "/revoke").status, 200);
  auto hb = n.call(*c_, "POST", "/api/v1/node/heartbeat", body.dump());
  EXPECT_EQ(hb.status, 403) << hb;
  EXPECT_EQ(hb.error_code(), "node_revoked");
}

// Two instances on one database and one Redis, with a long node cache TTL (60 s) so that only
// the change notification can explain a prompt effect: a node heartbeating through B is seen as
// present through A (Redis presence), gets new desired state and is refused after a revocation
// made through A on its next request to B.
TEST_F(ClusterApiTest, NodeCacheInvalidationAndPresenceAcrossInstances) {
  auto redis = rap::testing::RedisFixture::start();
  ASSERT_TRUE(redis.has_value()) << redis.error().message;
  const std::string redis_url = "unix://" + (*redis)->socket_path();
  start("cluster_hb_two", {"--redis-url", redis_url, "--node-auth-cache-ms", "60000"});
  auto b = ControlProcess::start(conninfo_, "cluster_hb_two_b",
                                 {"--redis-url", redis_url, "--node-auth-cache-ms", "60000"});
  ASSERT_TRUE(b.has_value()) << b.error().message;
  ASSERT_FALSE(make_cluster("edge").empty());
  auto [tid, token] = make_token("edge", 1);
  TestNode n = TestNode::make(dir_->path(), "n1");
  const std::string node_id = enroll_and_approve(n, "edge", token);
  ASSERT_FALSE(node_id.empty());
  const std::string node_path = "/api/v1/clusters/edge/nodes/" + node_id;
  json body = heartbeat_body();
  for (int i = 0; i < 3; ++i) {
    auto hb = n.call(**b, "POST", "/api/v1/node/heartbeat", body.dump());
    ASSERT_EQ(hb.status, 200) << hb;
    EXPECT_EQ(hb.j["desired_state_version"], 1);
  }
  // Presence (flushed once a second by B) is visible through A.
  bool seen = false;
  for (int i = 0; i < 40 && !seen; ++i) {
    auto node = owner("GET", node_path);
    seen = node.j["node"].contains("last_seen_at");
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(seen);
  auto list = owner("GET", "/api/v1/clusters/edge/nodes");
  ASSERT_EQ(list.status, 200) << list;
  EXPECT_EQ(list.j["nodes"][0]["health"], "online");
  EXPECT_TRUE(list.j["nodes"][0]["last_seen_at"].is_string()) << list;

  // New desired state through A reaches the node's next heartbeat on B.
  ASSERT_EQ(
      owner("PUT", node_path + "/roles", json{{"roles", {{{"role", "relay-node"}}}}}.dump()).status,
      200);
  int version = 0;
  for (int i = 0; i < 20 && version != 2; ++i) {
    auto hb = n.call(**b, "POST", "/api/v1/node/heartbeat", body.dump());
    ASSERT_EQ(hb.status, 200) << hb;
    version = hb.j["desired_state_version"].get<int>();
    if (version != 2) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(version, 2);

  // Revocation through A: B refuses the node promptly (well before the 60 s cache TTL).
  ASSERT_EQ(owner("POST", node_path + "/revoke").status, 200);
  int status = 0;
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
    status = n.call(**b, "POST", "/api/v1/node/heartbeat", body.dump()).status;
    if (status == 403) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(status, 403);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  auto mb = (*b)->call("GET", "/metrics");
  EXPECT_EQ(mb.body.find("rap_control_node_presence_writes_total{result=\"ok\"} 0"),
            std::string::npos)
      << mb.body;
}

}  // namespace

// Signed configuration end to end: the compiler publishes per-node artifacts that a node's
// ConfigState verifies and applies; a role change reaches the node through the heartbeat's
// config_generation and arrives as an increment; revocation reaches every node through the
// revocation list; a key rotation is followed; a node serving organization A never receives
// anything of organization B; rejections are audited.
TEST_F(ClusterApiTest, SignedConfigCompileVerifyApplyIncrementsRotationIsolation) {
  using rap::config::ArtifactType;
  using rap::config::Scope;
  start("cluster_config", {});
  const std::string cluster_id = make_cluster("edge");
  ASSERT_FALSE(cluster_id.empty());
  for (const char* slug : {"org-a", "org-b"})
    ASSERT_EQ(owner("POST", "/api/v1/orgs", json{{"slug", slug}, {"name", slug}}.dump()).status,
              201);
  auto [tid, token] = make_token("edge", 3);
  TestNode n1 = TestNode::make(dir_->path(), "n1");
  TestNode n2 = TestNode::make(dir_->path(), "n2");
  TestNode n3 = TestNode::make(dir_->path(), "n3");
  const std::string id1 = enroll_and_approve(n1, "edge", token);
  const std::string id2 = enroll_and_approve(n2, "edge", token);
  const std::string id3 = enroll_and_approve(n3, "edge", token);
  ASSERT_FALSE(id1.empty() || id2.empty() || id3.empty());
  const std::string nodes = "/api/v1/clusters/edge/nodes/";
  ASSERT_EQ(owner("PUT", nodes + id1 + "/roles",
                  json{{"roles", {{{"role", "relay-node"}, {"org", "org-a"}}}}}.dump())
                .status,
            200);
  ASSERT_EQ(owner("PUT", nodes + id2 + "/roles",
                  json{{"roles", {{{"role", "rdp-worker"}, {"org", "org-b"}}}}}.dump())
                .status,
            200);
  auto org_b = owner("GET", "/api/v1/orgs/org-b");
  ASSERT_EQ(org_b.status, 200) << org_b;
  const std::string org_b_id = org_b.j["org"]["id"].get<std::string>();

  // First fetch: everything verifies and applies.
  NodeConfigView v1;
  auto f1 = n1.call(*c_, "GET", "/api/v1/node/config");
  ASSERT_EQ(f1.status, 200) << f1;
  EXPECT_EQ(f1.j["artifacts"].size(), 6u);
  auto a1 = v1.apply(f1, cluster_id, id1);
  ASSERT_TRUE(a1.has_value()) << a1.error().code << ": " << a1.error().message;
  EXPECT_EQ(v1.version(ArtifactType::cluster_snapshot, Scope::node(id1)), 1u);
  const auto* sab = v1.state->payload(ArtifactType::service_assignment_bundle, Scope::node(id1));
  ASSERT_NE(sab, nullptr);
  EXPECT_EQ((*sab)["roles"][0]["role"], "relay-node");
  const auto* peers = v1.state->payload(ArtifactType::peer_directory, Scope::node(id1));
  ASSERT_NE(peers, nullptr);
  ASSERT_EQ((*peers)["peers"].size(), 1u);  // n2 holds a role; n3 none
  EXPECT_EQ((*peers)["peers"][0]["id"], id2);
  // Isolation: node 1 serves org A only; nothing of org B reaches it (slug, id), although its
  // peer directory names node 2, which serves org B.
  EXPECT_EQ(v1.raw.find("org-b"), std::string::npos);
  EXPECT_EQ(v1.raw.find(org_b_id), std::string::npos);
  // Same answer again: the same artifacts (immutable, nothing re-signed).
  auto again = n1.call(*c_, "GET", "/api/v1/node/config");
  EXPECT_EQ(again.j["artifacts"], f1.j["artifacts"]);
  // Nothing new for a node that has everything.
  auto none = n1.call(*c_, "GET", "/api/v1/node/config?have=" + v1.have());
  ASSERT_EQ(none.status, 200) << none;
  EXPECT_EQ(none.j["artifacts"].size(), 0u) << none;

  // A role change bumps the generation the heartbeat reports; the node gets an increment.
  auto hb = n1.call(*c_, "POST", "/api/v1/node/heartbeat", heartbeat_body().dump());
  ASSERT_EQ(hb.status, 200) << hb;
  const auto gen = hb.j["config_generation"].get<std::int64_t>();
  ASSERT_EQ(owner("PUT", nodes + id1 + "/workloads",
                  json{{"workloads",
                        {{{"name", "relay"},
                          {"kind", "native"},
                          {"spec", {{"program", "relay"}, {"env", {{"TOKEN", "s3cret"}}}}}}}}}
                      .dump())
                .status,
            200);
  std::int64_t gen2 = gen;
  for (int i = 0; i < 40 && gen2 == gen; ++i) {
    hb = n1.call(*c_, "POST", "/api/v1/node/heartbeat", heartbeat_body().dump());
    gen2 = hb.j.value("config_generation", gen);
    if (gen2 == gen) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_GT(gen2, gen);
  auto f2 = n1.call(*c_, "GET", "/api/v1/node/config?have=" + v1.have());
  ASSERT_EQ(f2.status, 200) << f2;
  EXPECT_EQ(f2.j["increments"], 1) << f2;
  auto a2 = v1.apply(f2, cluster_id, id1);
  ASSERT_TRUE(a2.has_value()) << a2.error().code << ": " << a2.error().message;
  EXPECT_EQ(v1.version(ArtifactType::service_assignment_bundle, Scope::node(id1)), 2u);
  sab = v1.state->payload(ArtifactType::service_assignment_bundle, Scope::node(id1));
  EXPECT_EQ((*sab)["workloads"][0]["id"], "relay");
  EXPECT_EQ(v1.raw.find("s3cret"), std::string::npos);  // specs never travel in artifacts

  // Revocation of node 3 reaches node 1 through the revocation list.
  ASSERT_EQ(owner("POST", nodes + id3 + "/revoke").status, 200);
  auto f3 = n1.call(*c_, "GET", "/api/v1/node/config?have=" + v1.have());
  auto a3 = v1.apply(f3, cluster_id, id1);
  ASSERT_TRUE(a3.has_value()) << a3.error().code << ": " << a3.error().message;
  EXPECT_EQ(v1.state->revocations().node_ids.count(id3), 1u);
  EXPECT_EQ(n3.call(*c_, "GET", "/api/v1/node/config").status, 403);

  // Key rotation: the new key arrives in a trust bundle signed by the old one; everything is
  // re-signed by the new key and still applies.
  auto rot = owner("POST", "/api/v1/clusters/edge/config/rotate-key");
  ASSERT_EQ(rot.status, 200) << rot;
  const std::string new_key = rot.j["key_id"].get<std::string>();
  auto f4 = n1.call(*c_, "GET", "/api/v1/node/config?have=" + v1.have());
  auto a4 = v1.apply(f4, cluster_id, id1);
  ASSERT_TRUE(a4.has_value()) << a4.error().code << ": " << a4.error().message;
  const auto* snap = v1.state->find(ArtifactType::cluster_snapshot, Scope::node(id1));
  ASSERT_NE(snap, nullptr);
  auto cfg = owner("GET", "/api/v1/clusters/edge/config");
  ASSERT_EQ(cfg.status, 200) << cfg;
  ASSERT_EQ(cfg.j["signing_keys"].size(), 2u) << cfg;
  EXPECT_EQ(cfg.j["signing_keys"][1]["key_id"], new_key);
  EXPECT_EQ(cfg.j["signing_keys"][0]["status"], "retired");
  EXPECT_EQ(cfg.j.dump().find("key_sealed"), std::string::npos);

  // A tampered artifact is refused by the node, which reports it: audited.
  auto f5 = n2.call(*c_, "GET", "/api/v1/node/config");
  ASSERT_EQ(f5.status, 200) << f5;
  std::string bad = f5.j["artifacts"][0].get<std::string>();
  bad[bad.find("\"version\":") + 10] = '9';
  NodeConfigView v2;
  Reply tampered = f5;
  tampered.j["artifacts"] = json::array({bad});
  auto rejected = v2.apply(tampered, cluster_id, id2);
  ASSERT_FALSE(rejected.has_value());
  auto rep = n2.call(*c_, "POST", "/api/v1/node/config/rejections",
                     json{{"code", rejected.error().code}, {"message", "test"}}.dump());
  EXPECT_EQ(rep.status, 204) << rep;
  EXPECT_EQ(n2.call(*c_, "POST", "/api/v1/node/config/rejections", "{\"code\":5}").status, 400);
  auto audit = owner("GET", "/api/v1/audit?limit=50");
  ASSERT_EQ(audit.status, 200) << audit;
  EXPECT_NE(audit.body.find("node.config_rejected"), std::string::npos) << audit;

  // Compile all: every active node (2 after the revocation).
  auto all = owner("POST", "/api/v1/clusters/edge/config/compile");
  ASSERT_EQ(all.status, 200) << all;
  EXPECT_EQ(all.j["nodes"], 2);
}

// Concurrent publishing while nodes fetch: every answer a node gets applies on top of what it
// applied before (versions never collide or go back), whatever the interleaving with
// compilations and changes made by the owner at the same time.
TEST_F(ClusterApiTest, SignedConfigConcurrentPublishWhileFetching) {
  start("cluster_config_conc", {});
  const std::string cluster_id = make_cluster("edge");
  ASSERT_FALSE(cluster_id.empty());
  auto [tid, token] = make_token("edge", 3);
  std::vector<TestNode> ns;
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ns.push_back(TestNode::make(dir_->path(), "c" + std::to_string(i)));
    ids.push_back(enroll_and_approve(ns.back(), "edge", token));
    ASSERT_FALSE(ids.back().empty());
  }
  std::atomic<int> failures{0};
  std::vector<std::string> errors(3);
  std::vector<std::thread> fetchers;
  for (int i = 0; i < 3; ++i) {
    fetchers.emplace_back([&, i] {
      NodeConfigView v;
      for (int round = 0; round < 8; ++round) {
        const std::string q = v.state ? "?have=" + v.have() : "";
        auto r = ns[static_cast<std::size_t>(i)].call(*c_, "GET", "/api/v1/node/config" + q);
        auto a = v.apply(r, cluster_id, ids[static_cast<std::size_t>(i)]);
        if (!a) {
          ++failures;
          errors[static_cast<std::size_t>(i)] = a.error().code + ": " + a.error().message;
          return;
        }
      }
    });
  }
  const char* roles[] = {"relay-node", "entry-node", "rdp-worker"};
  for (int round = 0; round < 6; ++round) {
    const std::string& id = ids[static_cast<std::size_t>(round % 3)];
    EXPECT_EQ(owner("PUT", "/api/v1/clusters/edge/nodes/" + id + "/roles",
                    json{{"roles", {{{"role", roles[round % 3]}}}}}.dump())
                  .status,
              200);
    EXPECT_EQ(owner("POST", "/api/v1/clusters/edge/config/compile").status, 200);
  }
  for (auto& t : fetchers) t.join();
  EXPECT_EQ(failures.load(), 0) << errors[0] << " | " << errors[1] << " | " << errors[2];
}

// The config-storage role: a storage node advertises its endpoint in heartbeats, every node's
// storage_directory lists it (the generation moves), and only a storage node gets the bundle of
// every node's current artifacts, which verify for their nodes.
// The signed artifacts carry their lapse policy (service assignments stop, peer directories
// keep); the config reply names the cluster's authority epoch (the nodes' fence); a heartbeat
// reports lapsed artifacts, stored with the node's state; malformed reports are refused.
TEST_F(ClusterApiTest, ConfigLapsePolicyAuthorityEpochAndLapsedReports) {
  using rap::config::ArtifactType;
  using rap::config::Scope;
  start("cluster_config_lapse", {});
  const std::string cluster_id = make_cluster("edge");
  ASSERT_FALSE(cluster_id.empty());
  auto [tid, token] = make_token("edge", 1);
  TestNode n1 = TestNode::make(dir_->path(), "n1");
  const std::string id1 = enroll_and_approve(n1, "edge", token);
  ASSERT_FALSE(id1.empty());
  ASSERT_EQ(owner("PUT", "/api/v1/clusters/edge/nodes/" + id1 + "/roles",
                  json{{"roles", {{{"role", "relay-node"}}}}}.dump())
                .status,
            200);
  auto f = n1.call(*c_, "GET", "/api/v1/node/config");
  ASSERT_EQ(f.status, 200) << f;
  EXPECT_EQ(f.j["authority_epoch"], 1) << f;
  NodeConfigView v;
  auto a = v.apply(f, cluster_id, id1);
  ASSERT_TRUE(a.has_value()) << a.error().code << ": " << a.error().message;
  const auto* sab = v.state->payload(ArtifactType::service_assignment_bundle, Scope::node(id1));
  ASSERT_NE(sab, nullptr);
  EXPECT_EQ((*sab)["lapse_policy"], "stop");
  const auto* pd = v.state->payload(ArtifactType::peer_directory, Scope::node(id1));
  ASSERT_NE(pd, nullptr);
  EXPECT_EQ((*pd)["lapse_policy"], "keep");

  json hb = heartbeat_body();
  hb["config_lapsed"] = json::array({{{"artifact", "service_assignment_bundle@node:" + id1},
                                      {"policy", "stop"},
                                      {"expires_at", 1700000000}}});
  auto r = n1.call(*c_, "POST", "/api/v1/node/heartbeat", hb.dump());
  ASSERT_EQ(r.status, 200) << r;
  auto node = owner("GET", "/api/v1/clusters/edge/nodes/" + id1);
  ASSERT_EQ(node.status, 200) << node;
  EXPECT_EQ(node.j["node"]["last_state"]["config_lapsed"], hb["config_lapsed"]) << node;
  json bad = hb;
  bad["config_lapsed"][0]["policy"] = "ignore";
  EXPECT_EQ(n1.call(*c_, "POST", "/api/v1/node/heartbeat", bad.dump()).status, 400);
  bad = hb;
  bad["config_lapsed"][0]["extra"] = 1;
  EXPECT_EQ(n1.call(*c_, "POST", "/api/v1/node/heartbeat", bad.dump()).status, 400);
}

TEST_F(ClusterApiTest, ConfigStorageDirectoryAndBundle) {
  using rap::config::ArtifactType;
  using rap::config::Scope;
  start("cluster_config_storage", {});
  const std::string cluster_id = make_cluster("edge");
  ASSERT_FALSE(cluster_id.empty());
  auto [tid, token] = make_token("edge", 2);
  TestNode s = TestNode::make(dir_->path(), "s");
  TestNode n = TestNode::make(dir_->path(), "n");
  const std::string sid = enroll_and_approve(s, "edge", token);
  const std::string nid = enroll_and_approve(n, "edge", token);
  ASSERT_FALSE(sid.empty() || nid.empty());
  EXPECT_EQ(s.call(*c_, "GET", "/api/v1/node/storage/bundle").error_code(), "not_a_storage_node");
  ASSERT_EQ(owner("PUT", "/api/v1/clusters/edge/nodes/" + sid + "/roles",
                  json{{"roles", {{{"role", "config-storage"}}}}}.dump())
                .status,
            200);
  json hb = heartbeat_body();
  hb["endpoints"] = {{"config_storage", 5}};
  EXPECT_EQ(s.call(*c_, "POST", "/api/v1/node/heartbeat", hb.dump()).status, 400);
  hb["endpoints"] = {{"config_storage", "10.0.0.5:7443"}};
  auto h = s.call(*c_, "POST", "/api/v1/node/heartbeat", hb.dump());
  ASSERT_EQ(h.status, 200) << h;

  NodeConfigView v;
  auto f = n.call(*c_, "GET", "/api/v1/node/config");
  auto a = v.apply(f, cluster_id, nid);
  ASSERT_TRUE(a.has_value()) << a.error().code << ": " << a.error().message;
  const auto* dir = v.state->payload(ArtifactType::storage_directory, Scope::cluster());
  ASSERT_NE(dir, nullptr);
  ASSERT_EQ((*dir)["storages"].size(), 1u) << *dir;
  EXPECT_EQ((*dir)["storages"][0]["id"], sid);
  EXPECT_EQ((*dir)["storages"][0]["endpoint"], "10.0.0.5:7443");

  auto b = s.call(*c_, "GET", "/api/v1/node/storage/bundle");
  ASSERT_EQ(b.status, 200) << b;
  ASSERT_TRUE(b.j["nodes"].contains(nid)) << b;
  // What the storage node would serve verifies for the node (same bytes as from the control
  // plane: nothing to re-apply).
  NodeConfigView fresh;
  Reply served = f;
  served.j["artifacts"] = b.j["nodes"][nid];
  auto again = fresh.apply(served, cluster_id, nid);
  ASSERT_TRUE(again.has_value()) << again.error().code << ": " << again.error().message;
  EXPECT_EQ(fresh.version(ArtifactType::cluster_snapshot, Scope::node(nid)),
            v.version(ArtifactType::cluster_snapshot, Scope::node(nid)));
  EXPECT_EQ(n.call(*c_, "GET", "/api/v1/node/storage/bundle").error_code(), "not_a_storage_node");
}
