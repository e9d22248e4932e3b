// End-to-end: the web console's server side against the real rap-control binary and a fixture
// PostgreSQL, driven by curl: static file serving (content types, security headers, SPA
// fallback, no path traversal) and the console views (platform staff only, tenant-safe
// organization status). The browser test is tests/web/console_e2e.mjs.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>
#include <string>

#include "control_process.h"
#include "rap/testing/gtest_support.h"
#include "rap/testing/temp_dir.h"

using json = nlohmann::json;
using namespace rap::testing::control;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << s;
}

class ConsoleApiTest : public ControlApiTest {
 protected:
  void start(const std::string& name, const std::vector<std::string>& extra = {}) {
    auto db = pg_->create_database(name);
    ASSERT_TRUE(db.has_value()) << db.error().message;
    dbname_ = name;
    auto c = ControlProcess::start(*db, name, extra);
    ASSERT_TRUE(c.has_value()) << c.error().message;
    c_ = std::move(*c);
    owner_ = setup_owner(*c_, "owner@example.com", kOwnerPw);
    ASSERT_FALSE(owner_.empty());
    auto r = c_->call("POST", "/api/v1/auth/step-up", json{{"password", kOwnerPw}}.dump(), owner_);
    ASSERT_EQ(r.status, 200) << r;
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
  // A node row (as if enrolled and approved), optionally heartbeating now with `state`.
  std::string insert_node(const std::string& cluster_id, const std::string& name, char key,
                          const json& state) {
    pqxx::connection conn(pg_->conninfo(dbname_));
    pqxx::work w(conn);
    auto r = w.exec_params(
        "INSERT INTO nodes (cluster_id, name, public_key, last_heartbeat_at, last_state) "
        "VALUES ($1::uuid, $2, $3, CASE WHEN $4 THEN now() END, $5::jsonb) RETURNING id",
        cluster_id, name, std::string(64, key), !state.is_null(),
        state.is_null() ? std::optional<std::string>() : std::optional<std::string>(state.dump()));
    w.commit();
    return r[0][0].as<std::string>();
  }
  long long count_sql(const std::string& sql) {
    pqxx::connection conn(pg_->conninfo(dbname_));
    pqxx::nontransaction t(conn);
    return t.exec(sql)[0][0].as<long long>();
  }

  std::unique_ptr<ControlProcess> c_;
  std::string dbname_;
  std::string owner_;
};

TEST_F(ConsoleApiTest, ViewsArePlatformStaffOnlyAndOrgStatusIsTenantSafe) {
  start("console_views", {"--web-dir", "none"});
  auto cl = owner("POST", "/api/v1/clusters", {{"slug", "edge"}, {"name", "Edge"}});
  ASSERT_EQ(cl.status, 201) << cl;
  const std::string cluster_id = cl.j["cluster"]["id"].get<std::string>();
  const std::string n1 =
      insert_node(cluster_id, "n1", 'a',
                  {{"version", "0.1.0"},
                   {"load", {{"cpu_permille", 250}}},
                   {"workloads", json::array({{{"name", "w1"}, {"state", "running"}},
                                              {{"name", "w2"}, {"state", "backoff"}}})}});
  const std::string n2 = insert_node(cluster_id, "n2", 'b', nullptr);
  const std::string N1 = "/api/v1/clusters/edge/nodes/" + n1;
  ASSERT_EQ(
      owner("PUT", N1 + "/roles", {{"roles", json::array({{{"role", "relay-node"}}})}}).status,
      200);
  ASSERT_EQ(owner("PUT", N1 + "/workloads",
                  {{"workloads", json::array({{{"name", "w1"}, {"kind", "native"}},
                                              {{"name", "w2"}, {"kind", "native"}}})}})
                .status,
            200);

  // ---- owner: every view ----
  auto s = owner("GET", "/api/v1/console/session");
  ASSERT_EQ(s.status, 200) << s;
  EXPECT_EQ(s.j["platform_staff"], true);
  EXPECT_EQ(s.j["platform_owner"], true);

  auto ov = owner("GET", "/api/v1/console/overview");
  ASSERT_EQ(ov.status, 200) << ov;
  EXPECT_EQ(ov.j["totals"]["clusters"], 1);
  EXPECT_EQ(ov.j["totals"]["nodes"], 2);
  EXPECT_EQ(ov.j["totals"]["online"], 1);
  EXPECT_EQ(ov.j["totals"]["offline"], 1);
  ASSERT_EQ(ov.j["clusters"].size(), 1u);
  const json& c0 = ov.j["clusters"][0];
  EXPECT_EQ(c0["slug"], "edge");
  EXPECT_EQ(c0["partition_state"], "normal");
  EXPECT_EQ(c0["role_coverage"]["relay-node"]["online"], 1);
  EXPECT_EQ(c0["role_gaps"], json::array({"entry-node"}));  // relay-node is covered
  EXPECT_EQ(c0["workloads"]["desired"], 2);
  EXPECT_EQ(c0["workloads"]["running"], 1);
  EXPECT_TRUE(c0["ca_not_after"].is_string()) << c0;
  std::set<std::string> kinds;
  for (const auto& r : ov.j["risky"]) kinds.insert(r["kind"].get<std::string>());
  EXPECT_TRUE(kinds.count("role_gap")) << ov.j["risky"];
  EXPECT_TRUE(kinds.count("workload_unhealthy")) << ov.j["risky"];
  EXPECT_EQ(owner("GET", "/api/v1/console/overview?x=1").status, 400);

  auto nodes = owner("GET", "/api/v1/console/nodes");
  ASSERT_EQ(nodes.status, 200) << nodes;
  ASSERT_EQ(nodes.j["nodes"].size(), 2u);
  const json& a = nodes.j["nodes"][0];
  EXPECT_EQ(a["id"], n1);
  EXPECT_EQ(a["health"], "online");
  EXPECT_EQ(a["roles"], json::array({{{"role", "relay-node"}, {"org", nullptr}}}));
  EXPECT_EQ(a["workloads"], json({{"desired", 2}, {"running", 1}}));
  EXPECT_EQ(a["load"]["cpu_permille"], 250);
  EXPECT_EQ(nodes.j["nodes"][1]["health"], "offline");
  EXPECT_TRUE(nodes.j["nodes"][1]["heartbeat_age_seconds"].is_null());
  EXPECT_EQ(owner("GET", "/api/v1/console/nodes?cluster=edge").j["nodes"].size(), 2u);
  EXPECT_EQ(owner("GET", "/api/v1/console/nodes?cluster=nope").error_code(), "cluster_not_found");
  EXPECT_EQ(owner("GET", "/api/v1/console/nodes?bogus=1").status, 400);
  {
    auto one = owner("GET", "/api/v1/console/nodes?cluster=edge&node=" + n1);
    ASSERT_EQ(one.status, 200) << one;
    ASSERT_EQ(one.j["nodes"].size(), 1u);
    EXPECT_EQ(one.j["nodes"][0]["id"], n1);
    EXPECT_EQ(owner("GET", "/api/v1/console/nodes?node=" + n2).j["nodes"][0]["name"], "n2");
    EXPECT_EQ(owner("GET", "/api/v1/console/nodes?cluster=nope&node=" + n1).error_code(),
              "node_not_found");
    EXPECT_EQ(owner("GET", "/api/v1/console/nodes?node=" + cluster_id).error_code(),
              "node_not_found");
    EXPECT_EQ(owner("GET", "/api/v1/console/nodes?node=x").error_code(), "node_not_found");
  }

  auto trust = owner("GET", "/api/v1/console/trust");
  ASSERT_EQ(trust.status, 200) << trust;
  ASSERT_EQ(trust.j["clusters"].size(), 1u);
  EXPECT_TRUE(trust.j["clusters"][0]["ca"]["not_after"].is_string()) << trust;
  EXPECT_EQ(trust.j["revocations"], json::array());

  auto na = owner("GET", "/api/v1/console/nodes/" + n1 + "/audit");
  ASSERT_EQ(na.status, 200) << na;
  std::set<std::string> actions;
  for (const auto& e : na.j["events"]) actions.insert(e["action"].get<std::string>());
  EXPECT_TRUE(actions.count("node.roles_set")) << na;
  EXPECT_TRUE(actions.count("node.workloads_set")) << na;
  EXPECT_EQ(owner("GET", "/api/v1/console/nodes/not-a-uuid/audit").status, 404);
  EXPECT_EQ(owner("GET", "/api/v1/console/nodes/" + n2 + "/audit?limit=0").status, 400);

  // ---- organization admin, member, other tenant ----
  ASSERT_EQ(owner("POST", "/api/v1/orgs", {{"slug", "acme"}, {"name", "Acme"}}).status, 201);
  ASSERT_EQ(owner("POST", "/api/v1/orgs", {{"slug", "beta"}, {"name", "Beta"}}).status, 201);
  const std::string admin = make_user("admin@acme.io", kAdminPw);
  const std::string member = make_user("member@acme.io", kMemberPw);
  const std::string other = make_user("admin@beta.io", kAdminPw);
  ASSERT_EQ(owner("POST", "/api/v1/orgs/acme/members",
                  {{"email", "admin@acme.io"}, {"role", "org_admin"}})
                .status,
            201);
  ASSERT_EQ(owner("POST", "/api/v1/orgs/acme/members",
                  {{"email", "member@acme.io"}, {"role", "org_member"}})
                .status,
            201);
  ASSERT_EQ(owner("POST", "/api/v1/orgs/beta/members",
                  {{"email", "admin@beta.io"}, {"role", "org_admin"}})
                .status,
            201);
  ASSERT_EQ(owner("POST", "/api/v1/orgs/acme/resources",
                  {{"name", "db"}, {"protocol", "tcp"}, {"address", "10.0.0.5:5432"}})
                .status,
            201);

  EXPECT_EQ(as(admin, "GET", "/api/v1/console/session").j["platform_staff"], false);
  const long long denied_before =
      count_sql("SELECT count(*) FROM audit_events WHERE action = 'console.read'");
  for (const std::string p : {"/api/v1/console/overview", "/api/v1/console/nodes",
                              "/api/v1/console/nodes?cluster=edge", "/api/v1/console/trust"}) {
    for (const auto& tok : {admin, member}) {
      auto r = as(tok, "GET", p);
      EXPECT_EQ(r.status, 403) << p << " " << r;
      EXPECT_EQ(r.error_code(), "forbidden") << p;
      EXPECT_EQ(r.body.find(n1), std::string::npos) << p;
    }
  }
  EXPECT_EQ(as(admin, "GET", "/api/v1/console/nodes/" + n1 + "/audit").status, 403);
  // Every refusal is audited as denied.
  EXPECT_EQ(count_sql("SELECT count(*) FROM audit_events WHERE action = 'console.read' AND "
                      "outcome = 'denied'") -
                denied_before,
            9);

  // Egress pool backed by n1 (online): the tenant sees "available", never the node.
  auto pool =
      owner("POST", "/api/v1/orgs/acme/egress-pools", {{"name", "office"}, {"description", ""}});
  ASSERT_EQ(pool.status, 201) << pool;
  const std::string pool_id = pool.j["egress_pool"]["id"].get<std::string>();
  ASSERT_EQ(owner("PUT", "/api/v1/orgs/acme/egress-pools/" + pool_id + "/nodes",
                  {{"nodes", json::array({{{"cluster", "edge"}, {"node", n1}}})}})
                .status,
            200);
  auto st = as(admin, "GET", "/api/v1/orgs/acme/status");
  ASSERT_EQ(st.status, 200) << st;
  EXPECT_EQ(st.j["org"]["slug"], "acme");
  EXPECT_EQ(st.j["members"], 2);
  EXPECT_EQ(st.j["admins"], 1);
  EXPECT_EQ(st.j["resources"], 1);
  EXPECT_EQ(st.j["resources_by_protocol"], json({{"tcp", 1}}));
  EXPECT_EQ(st.j["egress_pools"], json::array({{{"name", "office"}, {"status", "available"}}}));
  for (const std::string& leak : {n1, n2, std::string("edge"), std::string("n1"), cluster_id})
    EXPECT_EQ(st.body.find(leak), std::string::npos) << leak << " in " << st.body;
  EXPECT_EQ(as(member, "GET", "/api/v1/orgs/acme/status").error_code(), "forbidden");
  EXPECT_EQ(as(other, "GET", "/api/v1/orgs/acme/status").error_code(), "org_not_found");
  EXPECT_EQ(as(other, "GET", "/api/v1/orgs/beta/status").j["resources"], 0);
  EXPECT_EQ(owner("GET", "/api/v1/orgs/acme/status").status, 200);

  // Without a console, "/" says so and the API is unaffected.
  auto root = c_->call("GET", "/");
  EXPECT_EQ(root.status, 404) << root;
  EXPECT_EQ(root.error_code(), "console_not_installed");
  EXPECT_EQ(c_->call("GET", "/healthz").status, 200);
}

TEST_F(ConsoleApiTest, ServesTheConsoleWithSecurityHeadersAndNoPathTraversal) {
  auto dir = rap::testing::TempDir::create("rap-web-dir-");
  ASSERT_TRUE(dir.has_value());
  const fs::path web = dir->path() / "web";
  write(web / "index.html", "<!doctype html><title>INDEX-PAGE</title>");
  write(web / "assets" / "app-1a2b.js", "console.log('app');");
  write(web / "assets" / "app-1a2b.css", "body{}");
  write(web / ".hidden", "HIDDEN-FILE");
  write(dir->path() / "secret.txt", "TOP-SECRET");
  fs::create_symlink(dir->path() / "secret.txt", web / "assets" / "link.js");
  start("console_web", {"--web-dir", web.string()});

  // Response head + body, lower-cased.
  auto headers = [&](const std::string& path) {
    std::string s = c_->call("GET", path, "", "", {"-i", "--path-as-is"}).body;
    for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
  };
  const std::string idx = headers("/");
  EXPECT_NE(idx.find("index-page"), std::string::npos) << idx;
  EXPECT_NE(idx.find("content-type: text/html; charset=utf-8"), std::string::npos) << idx;
  EXPECT_NE(idx.find("content-security-policy: default-src 'none'; script-src 'self';"),
            std::string::npos)
      << idx;
  EXPECT_NE(idx.find("frame-ancestors 'none'"), std::string::npos) << idx;
  EXPECT_NE(idx.find("x-content-type-options: nosniff"), std::string::npos) << idx;
  EXPECT_NE(idx.find("x-frame-options: deny"), std::string::npos) << idx;
  EXPECT_NE(idx.find("cache-control: no-store"), std::string::npos) << idx;

  const std::string js = headers("/assets/app-1a2b.js");
  EXPECT_NE(js.find("content-type: text/javascript; charset=utf-8"), std::string::npos) << js;
  EXPECT_NE(js.find("immutable"), std::string::npos) << js;
  EXPECT_NE(js.find("console.log('app');"), std::string::npos) << js;
  EXPECT_NE(headers("/assets/app-1a2b.css").find("content-type: text/css"), std::string::npos);

  // Single-page app routes get index.html; missing files with an extension are 404.
  EXPECT_NE(headers("/nodes/edge/123").find("index-page"), std::string::npos);
  EXPECT_NE(headers("/overview?x=1").find("index-page"), std::string::npos);
  EXPECT_EQ(c_->call("GET", "/assets/missing.js").status, 404);
  EXPECT_EQ(c_->call("GET", "/missing.png").error_code(), "not_found");

  // Path traversal: never the secret, never the hidden file, never through the symlink.
  for (const std::string p :
       {"/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt",
        "/assets/%2e%2e%2f%2e%2e%2fsecret.txt", "/assets/..%2f..%2fsecret.txt", "/..%2fsecret.txt",
        "/assets/%5c..%5c..%5csecret.txt", "/assets/link.js", "/.hidden",
        "/assets/%2e%2e/%2e%2e/secret.txt", "/%00../secret.txt", "/assets/app-1a2b.js%00.png",
        "/..", "/assets/.%2e/.%2e/secret.txt"}) {
    auto r = c_->call("GET", p, "", "", {"--path-as-is"});
    EXPECT_EQ(r.body.find("TOP-SECRET"), std::string::npos) << p;
    EXPECT_EQ(r.body.find("HIDDEN-FILE"), std::string::npos) << p;
    EXPECT_EQ(r.body.find("root:"), std::string::npos) << p;
    EXPECT_TRUE(r.status == 404 || r.status == 400) << p << " " << r;
  }

  // Absolute-looking paths stay inside the web directory: an app route, i.e. index.html.
  for (const std::string p : {"//etc/passwd", "/%2fetc%2fpasswd"}) {
    auto r = c_->call("GET", p, "", "", {"--path-as-is"});
    EXPECT_EQ(r.body.find("root:"), std::string::npos) << p;
    EXPECT_NE(r.body.find("INDEX-PAGE"), std::string::npos) << p << " " << r;
  }

  // Only GET; the API and health endpoints are unchanged.
  auto post = c_->call("POST", "/", "{}");
  EXPECT_EQ(post.status, 405) << post;
  EXPECT_EQ(c_->call("GET", "/api/v1/nope").error_code(), "not_found");
  EXPECT_EQ(c_->call("GET", "/healthz").status, 200);
  EXPECT_EQ(c_->call("GET", "/api/v1/me").status, 401);
}

TEST_F(ConsoleApiTest, RefusesAWebDirWithoutIndex) {
  auto dir = rap::testing::TempDir::create("rap-web-empty-");
  ASSERT_TRUE(dir.has_value());
  auto db = pg_->create_database("console_noindex");
  ASSERT_TRUE(db.has_value());
  auto c = ControlProcess::spawn(*db, "noindex", {"--web-dir", dir->path().string()});
  ASSERT_TRUE(c.has_value());
  auto exit = (*c)->proc().wait_exit(std::chrono::seconds(30));
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(*exit, 2);
  EXPECT_NE((*c)->output().find("no index.html"), std::string::npos) << (*c)->output();
}

}  // namespace
