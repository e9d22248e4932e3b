// End-to-end: node groups, cluster authority, egress pools and platform admins against the real
// rap-control binary and a fixture PostgreSQL, driven by curl. Nodes are inserted directly with
// SQL (enrollment is covered by cluster_api_test).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>

#include "control_process.h"
#include "rap/testing/gtest_support.h"

using json = nlohmann::json;
using namespace rap::testing::control;

namespace {

class TopologyApiTest : public ControlApiTest {
 protected:
  void start(const std::string& name) {
    auto db = pg_->create_database(name);
    ASSERT_TRUE(db.has_value()) << db.error().message;
    dbname_ = name;
    auto c = ControlProcess::start(*db, name);
    ASSERT_TRUE(c.has_value()) << c.error().message;
    c_ = std::move(*c);
    owner_ = setup_owner(*c_, "owner@example.com", kOwnerPw);
    ASSERT_FALSE(owner_.empty());
    step_up(owner_, kOwnerPw);
  }

  void step_up(const std::string& token, const std::string& pw) {
    auto r = c_->call("POST", "/api/v1/auth/step-up", json{{"password", pw}}.dump(), token);
    EXPECT_EQ(r.status, 200) << r;
  }

  Reply as(const std::string& token, const std::string& method, const std::string& path,
           const json& body = nullptr) {
    return c_->call(method, path, body.is_null() ? "" : body.dump(), token);
  }
  Reply owner(const std::string& method, const std::string& path, const json& body = nullptr) {
    return as(owner_, method, path, body);
  }

  std::string make_user(const std::string& email, const std::string& pw) {
    auto r = c_->call("POST", "/api/v1/users", login_body(email, pw), owner_);
    EXPECT_EQ(r.status, 201) << r;
    return login(*c_, email, pw);
  }

  // A node row in `cluster_id` (as if enrolled and approved); returns its id.
  std::string insert_node(const std::string& cluster_id, const std::string& name, char key) {
    pqxx::connection conn(pg_->conninfo(dbname_));
    pqxx::work w(conn);
    auto r = w.exec_params(
        "INSERT INTO nodes (cluster_id, name, public_key) VALUES ($1::uuid, $2, $3) RETURNING id",
        cluster_id, name, std::string(64, key));
    w.commit();
    return r[0][0].as<std::string>();
  }

  std::unique_ptr<ControlProcess> c_;
  std::string dbname_;
  std::string owner_;
};

TEST_F(TopologyApiTest, NodeGroupsAuthorityEgressPoolsPlatformAdmins) {
  start("topology_flow");
  auto cl = owner("POST", "/api/v1/clusters", {{"slug", "edge"}, {"name", "Edge"}});
  ASSERT_EQ(cl.status, 201) << cl;
  const std::string cluster_id = cl.j["cluster"]["id"].get<std::string>();
  const std::string node_id = insert_node(cluster_id, "n1", 'a');
  const std::string G = "/api/v1/clusters/edge/node-groups";

  // ---- node group tree ----
  auto eu = owner("POST", G, {{"name", "eu"}});
  ASSERT_EQ(eu.status, 201) << eu;
  const std::string eu_id = eu.j["node_group"]["id"].get<std::string>();
  EXPECT_TRUE(eu.j["node_group"]["parent_id"].is_null());
  auto de = owner("POST", G, {{"name", "de"}, {"parent", eu_id}});
  ASSERT_EQ(de.status, 201) << de;
  const std::string de_id = de.j["node_group"]["id"].get<std::string>();
  auto ber = owner("POST", G, {{"name", "berlin"}, {"parent", de_id}});
  ASSERT_EQ(ber.status, 201) << ber;
  const std::string ber_id = ber.j["node_group"]["id"].get<std::string>();
  EXPECT_EQ(owner("POST", G, {{"name", "de"}, {"parent", eu_id}}).error_code(), "name_taken");
  EXPECT_EQ(owner("POST", G, {{"name", "de"}}).status, 201);  // same name, other parent
  EXPECT_EQ(owner("POST", G, {{"name", "x"}, {"color", "red"}}).status, 400);
  EXPECT_EQ(owner("POST", G, {{"name", ""}}).error_code(), "invalid_name");
  EXPECT_EQ(owner("POST", G, {{"name", "x"}, {"parent", "not-a-uuid"}}).status, 400);
  EXPECT_EQ(owner("POST", G, {{"name", "x"}, {"parent", node_id}}).error_code(),
            "parent_not_found");
  {
    auto l = owner("GET", G);
    ASSERT_EQ(l.status, 200) << l;
    EXPECT_EQ(l.j["node_groups"].size(), 4u);
  }
  // Cycles are refused: eu under berlin (its grandchild), and a group under itself.
  EXPECT_EQ(owner("PUT", G + "/" + eu_id + "/parent", {{"parent", ber_id}}).error_code(),
            "node_group_cycle");
  EXPECT_EQ(owner("PUT", G + "/" + de_id + "/parent", {{"parent", de_id}}).error_code(),
            "node_group_cycle");
  {
    auto mv = owner("PUT", G + "/" + ber_id + "/parent", {{"parent", eu_id}});
    ASSERT_EQ(mv.status, 200) << mv;
    EXPECT_EQ(mv.j["node_group"]["parent_id"], eu_id);
  }
  // Node membership.
  const std::string N = "/api/v1/clusters/edge/nodes/" + node_id + "/group";
  {
    auto s = owner("PUT", N, {{"group", ber_id}});
    ASSERT_EQ(s.status, 200) << s;
    EXPECT_EQ(s.j["group_id"], ber_id);
    EXPECT_EQ(owner("PUT", N, json::object()).status, 400);
    EXPECT_EQ(owner("PUT", N, {{"group", node_id}}).error_code(), "node_group_not_found");
    EXPECT_EQ(owner("PUT", "/api/v1/clusters/edge/nodes/" + eu_id + "/group", {{"group", ber_id}})
                  .error_code(),
              "node_not_found");
  }
  EXPECT_EQ(owner("DELETE", G + "/" + eu_id).error_code(), "node_group_not_empty");   // children
  EXPECT_EQ(owner("DELETE", G + "/" + ber_id).error_code(), "node_group_not_empty");  // a node
  ASSERT_EQ(owner("PUT", N, {{"group", nullptr}}).status, 200);
  EXPECT_EQ(owner("DELETE", G + "/" + ber_id).status, 200);
  EXPECT_EQ(owner("DELETE", G + "/" + ber_id).error_code(), "node_group_not_found");

  // ---- authority ----
  const std::string A = "/api/v1/clusters/edge/authority";
  {
    auto g = owner("GET", A);
    ASSERT_EQ(g.status, 200) << g;
    EXPECT_EQ(g.j["authority"]["authority_epoch"], 1);
    EXPECT_EQ(g.j["authority"]["partition_state"], "normal");
    auto b = owner("PUT", A, {{"bump_epoch", true}, {"partition_state", "recovering"}});
    ASSERT_EQ(b.status, 200) << b;
    EXPECT_EQ(b.j["authority"]["authority_epoch"], 2);
    EXPECT_EQ(b.j["authority"]["partition_state"], "recovering");
    EXPECT_EQ(owner("PUT", A, {{"authority_epoch", 2}}).error_code(), "epoch_not_increasing");
    EXPECT_EQ(owner("PUT", A, {{"authority_epoch", 9}}).j["authority"]["authority_epoch"], 9);
    EXPECT_EQ(owner("PUT", A, {{"partition_state", "split"}}).error_code(),
              "invalid_partition_state");
    EXPECT_EQ(owner("PUT", A, json::object()).status, 400);
    EXPECT_EQ(owner("PUT", A, {{"epoch", 10}}).status, 400);
  }

  // ---- users, orgs ----
  const std::string member = make_user("member@x.io", kMemberPw);
  const std::string other = make_user("other@x.io", kMemberPw);
  const std::string padmin = make_user("padmin@x.io", kAdminPw);
  for (const auto& [slug, email] : {std::pair<std::string, std::string>{"acme", "member@x.io"},
                                    std::pair<std::string, std::string>{"beta", "other@x.io"}}) {
    ASSERT_EQ(owner("POST", "/api/v1/orgs", {{"slug", slug}, {"name", slug}}).status, 201);
    ASSERT_EQ(owner("POST", "/api/v1/orgs/" + slug + "/members",
                    {{"email", email}, {"role", "org_member"}})
                  .status,
              201);
  }

  // ---- egress pools ----
  const std::string P = "/api/v1/orgs/acme/egress-pools";
  auto pool = owner("POST", P, {{"name", "Office Berlin"}, {"description", "exit in Berlin"}});
  ASSERT_EQ(pool.status, 201) << pool;
  const std::string pool_id = pool.j["egress_pool"]["id"].get<std::string>();
  EXPECT_EQ(owner("POST", P, {{"name", "Office Berlin"}}).error_code(), "name_taken");
  EXPECT_EQ(owner("POST", P, {{"name", "x"}, {"nodes", json::array()}}).status, 400);
  {
    auto s = owner("PUT", P + "/" + pool_id + "/nodes",
                   {{"nodes", {{{"cluster", "edge"}, {"node", node_id}}}}});
    ASSERT_EQ(s.status, 200) << s;
    ASSERT_EQ(s.j["egress_pool"]["nodes"].size(), 1u);
    EXPECT_EQ(s.j["egress_pool"]["nodes"][0]["node_id"], node_id);
    EXPECT_EQ(owner("PUT", P + "/" + pool_id + "/nodes",
                    {{"nodes", {{{"cluster", "edge"}, {"node", eu_id}}}}})
                  .error_code(),
              "node_not_found");
    auto o = owner("GET", P);
    ASSERT_EQ(o.status, 200) << o;
    ASSERT_EQ(o.j["egress_pools"].size(), 1u);
    EXPECT_EQ(o.j["egress_pools"][0]["nodes"].size(), 1u);
  }
  {
    // The org member sees the pool, but no topology.
    auto m = as(member, "GET", P);
    ASSERT_EQ(m.status, 200) << m;
    ASSERT_EQ(m.j["egress_pools"].size(), 1u);
    EXPECT_EQ(m.j["egress_pools"][0]["name"], "Office Berlin");
    EXPECT_FALSE(m.j["egress_pools"][0].contains("nodes")) << m;
    EXPECT_EQ(m.body.find(node_id), std::string::npos);
    EXPECT_EQ(m.body.find("edge"), std::string::npos);
    // Members cannot create or back pools; another org's member does not see the org at all.
    EXPECT_EQ(as(member, "POST", P, {{"name", "mine"}}).status, 404);
    EXPECT_EQ(as(member, "PUT", P + "/" + pool_id + "/nodes", {{"nodes", json::array()}}).status,
              404);
    EXPECT_EQ(as(other, "GET", P).error_code(), "org_not_found");
    EXPECT_EQ(owner("PUT", "/api/v1/orgs/beta/egress-pools/" + pool_id + "/nodes",
                    {{"nodes", json::array()}})
                  .error_code(),
              "egress_pool_not_found");
  }

  // ---- platform admins ----
  const std::string PA = "/api/v1/users/padmin@x.io/platform-admin";
  // Not yet an admin: topology routes are 404.
  EXPECT_EQ(as(padmin, "GET", "/api/v1/clusters").error_code(), "not_found");
  EXPECT_EQ(as(member, "GET", G).error_code(), "not_found");
  EXPECT_EQ(as(member, "GET", A).error_code(), "not_found");
  EXPECT_EQ(as(member, "PUT", N, {{"group", nullptr}}).error_code(), "not_found");
  EXPECT_EQ(owner("POST", PA, {{"enabled", "yes"}}).status, 400);
  EXPECT_EQ(owner("POST", PA, {{"enabled", true}, {"x", 1}}).status, 400);
  EXPECT_EQ(
      owner("POST", "/api/v1/users/nobody@x.io/platform-admin", {{"enabled", true}}).error_code(),
      "user_not_found");
  {
    auto g = owner("POST", PA, {{"enabled", true}});
    ASSERT_EQ(g.status, 200) << g;
    EXPECT_EQ(g.j["user"]["is_platform_admin"], true);
  }
  {
    auto l = as(padmin, "GET", "/api/v1/clusters");
    ASSERT_EQ(l.status, 200) << l;
    EXPECT_EQ(l.j["clusters"].size(), 1u);
    EXPECT_EQ(as(padmin, "POST", G, {{"name", "asia"}}).status, 201);
    // Step-up still applies to platform admins.
    EXPECT_EQ(as(padmin, "PUT", A, {{"bump_epoch", true}}).error_code(), "step_up_required");
    step_up(padmin, kAdminPw);
    EXPECT_EQ(as(padmin, "PUT", A, {{"bump_epoch", true}}).j["authority"]["authority_epoch"], 10);
    // Platform admins see every org's pools with their nodes.
    auto p = as(padmin, "GET", P);
    ASSERT_EQ(p.status, 200) << p;
    EXPECT_EQ(p.j["egress_pools"][0]["nodes"].size(), 1u);
    // ...but cannot manage platform admins.
    EXPECT_EQ(as(padmin, "POST", "/api/v1/users/member@x.io/platform-admin", {{"enabled", true}})
                  .error_code(),
              "not_found");
  }
  {
    // Percent-encoded email (as rapctl sends it).
    auto r = owner("POST", "/api/v1/users/padmin%40x.io/platform-admin", {{"enabled", false}});
    ASSERT_EQ(r.status, 200) << r;
    EXPECT_EQ(as(padmin, "GET", "/api/v1/clusters").error_code(), "not_found");
  }
  // Every mutation is audited and the chain verifies.
  {
    auto v = owner("GET", "/api/v1/audit/verify");
    ASSERT_EQ(v.status, 200) << v;
    EXPECT_EQ(v.j["ok"], true) << v;
    pqxx::connection conn(pg_->conninfo(dbname_));
    pqxx::read_transaction t(conn);
    for (const char* action :
         {"node_group.created", "node_group.moved", "node_group.deleted", "node.group_set",
          "cluster.authority_set", "egress_pool.created", "egress_pool.nodes_set",
          "user.platform_admin_granted", "user.platform_admin_revoked"}) {
      auto n = t.exec_params(
          "SELECT count(*) FROM audit_events WHERE action = $1 AND outcome = 'success'",
          std::string(action));
      EXPECT_GE(n[0][0].as<long long>(), 1) << action;
    }
  }
}

TEST_F(TopologyApiTest, AuthorityRowForEveryClusterAndStepUp) {
  start("topology_authority");
  ASSERT_EQ(owner("POST", "/api/v1/clusters", {{"slug", "c1"}, {"name", "C1"}}).status, 201);
  {
    pqxx::connection conn(pg_->conninfo(dbname_));
    pqxx::read_transaction t(conn);
    auto n = t.exec(
        "SELECT count(*) FROM clusters c LEFT JOIN cluster_authority a ON a.cluster_id = c.id "
        "WHERE a.cluster_id IS NULL");
    EXPECT_EQ(n[0][0].as<long long>(), 0);
  }
  // A fresh session without step-up cannot change the authority.
  const std::string fresh = login(*c_, "owner@example.com", kOwnerPw);
  EXPECT_EQ(as(fresh, "GET", "/api/v1/clusters/c1/authority").status, 200);
  EXPECT_EQ(as(fresh, "PUT", "/api/v1/clusters/c1/authority", {{"bump_epoch", true}}).error_code(),
            "step_up_required");
  EXPECT_EQ(as(fresh, "POST", "/api/v1/users/owner@example.com/platform-admin", {{"enabled", true}})
                .error_code(),
            "step_up_required");
  EXPECT_EQ(owner("POST", "/api/v1/users/owner@example.com/platform-admin", {{"enabled", true}})
                .error_code(),
            "is_platform_owner");
  EXPECT_EQ(owner("GET", "/api/v1/clusters/nope/authority").error_code(), "cluster_not_found");
}

}  // namespace
