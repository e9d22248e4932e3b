// End-to-end: the real rap-control binary against a fixture PostgreSQL, driven over HTTPS by the
// real curl binary (TLS 1.3, self-signed certificate, hence -k).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "control_process.h"
#include "rap/control/migrations.h"
#include "rap/testing/gtest_support.h"
#include "rap/testing/postgres_fixture.h"
#include "rap/testing/subprocess.h"
#include "rap/testing/temp_dir.h"

using json = nlohmann::json;
using rap::testing::PostgresFixture;
using rap::testing::Subprocess;
using rap::testing::TempDir;

using namespace rap::testing::control;

namespace {
// High-risk actions (creating users, org_admin grants) need a stepped-up session.
void step_up(const ControlProcess& c, const std::string& token, const std::string& pw) {
  auto r = c.call("POST", "/api/v1/auth/step-up", json{{"password", pw}}.dump(), token);
  EXPECT_EQ(r.status, 200) << r;
}
}  // namespace

TEST_F(ControlApiTest, FullFlowWithTenancyAndNegativeCases) {
  RAP_ASSIGN_OR_FAIL(std::string db, pg_->create_database("api_flow"));
  RAP_ASSIGN_OR_FAIL(auto c, ControlProcess::start(db, "flow"));
  ASSERT_TRUE(c->setup_token().has_value()) << c->output();
  const std::string setup_token = *c->setup_token();

  // Health and the unauthenticated surface.
  auto h = c->call("GET", "/healthz");
  EXPECT_EQ(h.status, 200) << h;
  EXPECT_EQ(h.j, json({{"status", "ok"}, {"db", "ok"}}));
  auto nf = c->call("GET", "/api/v1/nope");
  EXPECT_EQ(nf.status, 404) << nf;
  EXPECT_EQ(nf.error_code(), "not_found");
  EXPECT_EQ(c->call("GET", "/totally/unknown").status, 404);
  auto mna = c->call("GET", "/api/v1/login");
  EXPECT_EQ(mna.status, 405) << mna;
  EXPECT_EQ(mna.error_code(), "method_not_allowed");
  EXPECT_EQ(c->call("DELETE", "/api/v1/orgs").status, 405);
  EXPECT_EQ(c->call("GE", "/api/v1/orgs").status, 405);
  EXPECT_EQ(c->call("PUT", "/api/v1/orgs/acme/members").status, 405);

  // TLS 1.2 is refused: the server speaks TLS 1.3 only.
  {
    auto r =
        rap::testing::run_command({"curl", "-sS", "-k", "--tls-max", "1.2",
                                   "https://127.0.0.1:" + std::to_string(c->port()) + "/healthz"},
                                  run_options(10));
    EXPECT_FALSE(r.ok()) << r.output;
  }

  // Setup: bad token, malformed input, success, then the token is burned.
  const json setup_req = {
      {"setup_token", setup_token}, {"email", "Owner@Example.com"}, {"password", kOwnerPw}};
  {
    json bad = setup_req;
    bad["setup_token"] = std::string(64, 'a');
    auto r = c->call("POST", "/api/v1/setup", bad.dump());
    EXPECT_EQ(r.status, 403) << r;
    EXPECT_EQ(r.error_code(), "invalid_setup_token");
    bad["setup_token"] = "short";
    EXPECT_EQ(c->call("POST", "/api/v1/setup", bad.dump()).status, 403);
  }
  {
    json weak = setup_req;
    weak["password"] = "short";
    auto r = c->call("POST", "/api/v1/setup", weak.dump());
    EXPECT_EQ(r.status, 400) << r;
    EXPECT_EQ(r.error_code(), "invalid_password");
  }
  {
    auto r = c->call("POST", "/api/v1/setup", "{\"setup_token\": ");
    EXPECT_EQ(r.status, 400) << r;
    EXPECT_EQ(r.error_code(), "malformed_json");
  }
  {
    auto r = c->call("POST", "/api/v1/setup", setup_req.dump());
    ASSERT_EQ(r.status, 201) << r;
    EXPECT_EQ(r.j["user"]["email"], "owner@example.com");
    EXPECT_EQ(r.j["user"]["is_platform_owner"], true);
  }
  {
    auto r = c->call("POST", "/api/v1/setup", setup_req.dump());
    EXPECT_EQ(r.status, 403) << r;
    EXPECT_EQ(r.error_code(), "setup_completed");
  }

  // Login.
  {
    auto r = c->call("POST", "/api/v1/login", login_body("owner@example.com", "wrong-password-0"));
    EXPECT_EQ(r.status, 401) << r;
    EXPECT_EQ(r.error_code(), "invalid_credentials");
    auto r2 = c->call("POST", "/api/v1/login", login_body("nobody@example.com", kOwnerPw));
    EXPECT_EQ(r2.status, 401) << r2;
    EXPECT_EQ(r2.error_code(), "invalid_credentials");
  }
  const std::string owner = login(*c, "owner@example.com", kOwnerPw);
  ASSERT_EQ(owner.size(), 64u);
  step_up(*c, owner, kOwnerPw);

  // Bearer auth.
  {
    auto r = c->call("GET", "/api/v1/orgs");
    EXPECT_EQ(r.status, 401) << r;
    EXPECT_EQ(r.error_code(), "unauthenticated");
    auto r2 = c->call("GET", "/api/v1/orgs", "", std::string(64, 'f'));
    EXPECT_EQ(r2.status, 401) << r2;
    EXPECT_EQ(r2.error_code(), "invalid_token");
    auto r3 = c->call("GET", "/api/v1/orgs", "", "", {"-H", "Authorization: Basic Zm9vOmJhcg=="});
    EXPECT_EQ(r3.status, 401) << r3;
  }

  // Organizations.
  auto mk_org = [&](const std::string& slug, const std::string& name, const std::string& tok) {
    return c->call("POST", "/api/v1/orgs", json{{"slug", slug}, {"name", name}}.dump(), tok);
  };
  {
    auto r = mk_org("acme", "Acme Corp", owner);
    ASSERT_EQ(r.status, 201) << r;
    EXPECT_EQ(r.j["org"]["slug"], "acme");
    EXPECT_EQ(mk_org("globex", "Globex", owner).status, 201);
    auto dup = mk_org("acme", "Acme again", owner);
    EXPECT_EQ(dup.status, 409) << dup;
    EXPECT_EQ(dup.error_code(), "slug_taken");
    for (const char* bad : {"A", "Acme", "acme_corp", "x", "acme corp"}) {
      auto b = mk_org(bad, "Bad", owner);
      EXPECT_EQ(b.status, 400) << bad << " " << b;
      EXPECT_EQ(b.error_code(), "invalid_slug");
    }
    EXPECT_EQ(mk_org(std::string(64, 'a'), "Long", owner).status, 400);
    auto shape = c->call("POST", "/api/v1/orgs", R"({"slug":"ok-slug","name":5})", owner);
    EXPECT_EQ(shape.status, 400) << shape;
    auto extra =
        c->call("POST", "/api/v1/orgs", R"({"slug":"ok-slug","name":"x","admin":true})", owner);
    EXPECT_EQ(extra.status, 400) << extra;
    auto arr = c->call("POST", "/api/v1/orgs", R"(["acme"])", owner);
    EXPECT_EQ(arr.status, 400) << arr;
    auto malformed = c->call("POST", "/api/v1/orgs", R"({"slug": "x",)", owner);
    EXPECT_EQ(malformed.status, 400) << malformed;
    EXPECT_EQ(malformed.error_code(), "malformed_json");
  }
  // Body size limit.
  {
    const std::string big = json{{"slug", "big"}, {"name", std::string(70 * 1024, 'x')}}.dump();
    auto r = c->call("POST", "/api/v1/orgs", big, owner);
    EXPECT_EQ(r.status, 413) << r.body;
    EXPECT_EQ(r.error_code(), "payload_too_large");
  }

  // Users and memberships.
  auto mk_user = [&](const std::string& email, const std::string& pw, const std::string& tok) {
    return c->call("POST", "/api/v1/users", login_body(email, pw), tok);
  };
  ASSERT_EQ(mk_user("admin@acme.io", kAdminPw, owner).status, 201);
  ASSERT_EQ(mk_user("member@acme.io", kMemberPw, owner).status, 201);
  ASSERT_EQ(mk_user("boss@globex.io", kAdminPw, owner).status, 201);
  {
    auto dup = mk_user("ADMIN@acme.io", kAdminPw, owner);
    EXPECT_EQ(dup.status, 409) << dup;
    EXPECT_EQ(dup.error_code(), "email_taken");
    auto bad_email = mk_user("not-an-email", kAdminPw, owner);
    EXPECT_EQ(bad_email.status, 400) << bad_email;
    EXPECT_EQ(bad_email.error_code(), "invalid_email");
    auto weak = mk_user("weak@acme.io", "elevenchars", owner);
    EXPECT_EQ(weak.status, 400) << weak;
  }
  auto add_member = [&](const std::string& slug, const std::string& email, const std::string& role,
                        const std::string& tok) {
    return c->call("POST", "/api/v1/orgs/" + slug + "/members",
                   json{{"email", email}, {"role", role}}.dump(), tok);
  };
  ASSERT_EQ(add_member("acme", "admin@acme.io", "org_admin", owner).status, 201);
  ASSERT_EQ(add_member("globex", "boss@globex.io", "org_admin", owner).status, 201);
  {
    auto unknown = add_member("acme", "ghost@acme.io", "org_member", owner);
    EXPECT_EQ(unknown.status, 404) << unknown;
    EXPECT_EQ(unknown.error_code(), "user_not_found");
    auto bad_role = add_member("acme", "member@acme.io", "superuser", owner);
    EXPECT_EQ(bad_role.status, 400) << bad_role;
    EXPECT_EQ(bad_role.error_code(), "invalid_role");
    EXPECT_EQ(add_member("nope-org", "member@acme.io", "org_member", owner).status, 404);
  }

  const std::string admin = login(*c, "admin@acme.io", kAdminPw);
  const std::string boss = login(*c, "boss@globex.io", kAdminPw);
  // The org admin of acme adds the member (allowed), but cannot touch globex (hidden: 404).
  {
    auto r = add_member("acme", "member@acme.io", "org_member", admin);
    ASSERT_EQ(r.status, 201) << r;
    auto again = add_member("acme", "member@acme.io", "org_member", admin);
    EXPECT_EQ(again.status, 409) << again;
    EXPECT_EQ(again.error_code(), "already_member");
    auto other = add_member("globex", "member@acme.io", "org_member", admin);
    EXPECT_EQ(other.status, 404) << other;
  }
  const std::string member = login(*c, "member@acme.io", kMemberPw);
  {
    auto r = c->call("GET", "/api/v1/orgs", "", member);
    ASSERT_EQ(r.status, 200) << r;
    EXPECT_EQ(slugs(r), std::vector<std::string>{"acme"});
    EXPECT_EQ(r.j["orgs"][0]["role"], "org_member");
    auto all = c->call("GET", "/api/v1/orgs", "", owner);
    EXPECT_EQ(slugs(all), (std::vector<std::string>{"acme", "globex"}));
    auto one = c->call("GET", "/api/v1/orgs/acme", "", member);
    EXPECT_EQ(one.status, 200) << one;
    EXPECT_FALSE(one.j.contains("members")) << one;  // plain members do not list members
    auto admin_view = c->call("GET", "/api/v1/orgs/acme", "", admin);
    EXPECT_EQ(admin_view.j["members"].size(), 2u) << admin_view;
    auto hidden = c->call("GET", "/api/v1/orgs/globex", "", member);
    EXPECT_EQ(hidden.status, 404) << hidden;
    EXPECT_EQ(hidden.error_code(), "org_not_found");
  }
  // Member and org admin are not platform owners.
  {
    auto r = mk_org("evil", "Evil", member);
    EXPECT_EQ(r.status, 403) << r;
    EXPECT_EQ(r.error_code(), "forbidden");
    EXPECT_EQ(mk_org("evil", "Evil", admin).status, 403);
    EXPECT_EQ(mk_user("x@evil.io", kAdminPw, admin).status, 403);
    EXPECT_EQ(add_member("acme", "boss@globex.io", "org_admin", member).status, 403);
  }

  // Audit: the owner sees everything, org admins only their org, members nothing.
  {
    auto all = c->call("GET", "/api/v1/audit", "", owner);
    ASSERT_EQ(all.status, 200) << all;
    std::set<std::string> actions;
    for (const auto& e : all.j["events"]) actions.insert(e["action"].get<std::string>());
    for (const char* a : {"platform.setup_token_issued", "platform.setup_completed", "auth.login",
                          "org.created", "user.created", "org.member_added"})
      EXPECT_TRUE(actions.count(a)) << a << " missing in " << all;
    EXPECT_EQ(all.body.find(kOwnerPw), std::string::npos);
    EXPECT_EQ(all.body.find(owner), std::string::npos);
    EXPECT_EQ(all.body.find(setup_token), std::string::npos);

    auto acme = c->call("GET", "/api/v1/audit?org=acme", "", admin);
    ASSERT_EQ(acme.status, 200) << acme;
    EXPECT_GE(acme.j["events"].size(), 3u) << acme;  // org.created + 2 member_added
    for (const auto& e : acme.j["events"]) EXPECT_EQ(e["org"], "acme") << e;
    EXPECT_EQ(c->call("GET", "/api/v1/audit?org=globex", "", admin).status, 404);
    EXPECT_EQ(c->call("GET", "/api/v1/audit", "", admin).status, 403);
    EXPECT_EQ(c->call("GET", "/api/v1/audit?org=acme", "", member).status, 403);
    auto g = c->call("GET", "/api/v1/audit?org=globex", "", boss);
    ASSERT_EQ(g.status, 200) << g;
    for (const auto& e : g.j["events"]) EXPECT_EQ(e["org"], "globex") << e;
    auto lim = c->call("GET", "/api/v1/audit?limit=1", "", owner);
    EXPECT_EQ(lim.j["events"].size(), 1u);
    EXPECT_EQ(c->call("GET", "/api/v1/audit?limit=0", "", owner).status, 400);
  }

  // Logout revokes the token.
  {
    auto r = c->call("POST", "/api/v1/logout", "", member);
    EXPECT_EQ(r.status, 200) << r;
    auto after = c->call("GET", "/api/v1/orgs", "", member);
    EXPECT_EQ(after.status, 401) << after;
    EXPECT_EQ(after.error_code(), "invalid_token");
    EXPECT_EQ(c->call("POST", "/api/v1/logout", "", member).status, 401);
    EXPECT_EQ(c->call("GET", "/api/v1/orgs", "", owner).status, 200);  // others unaffected
  }

  // Metrics.
  {
    auto m = c->call("GET", "/metrics");
    EXPECT_EQ(m.status, 200);
    EXPECT_NE(m.body.find("rap_control_http_requests_total{route=\"/api/v1/"
                          "orgs\",method=\"POST\",status=\"201\"}"),
              std::string::npos)
        << m.body;
    EXPECT_NE(m.body.find("rap_control_db_pool_in_use "), std::string::npos);
  }

  // Secrets never reach the logs (the setup token appears exactly once, at start).
  const std::string out = c->output();
  EXPECT_EQ(out.find(kOwnerPw), std::string::npos);
  EXPECT_EQ(out.find(owner), std::string::npos);
  EXPECT_EQ(out.find(setup_token), out.rfind(setup_token));

  // Clean shutdown on SIGTERM.
  EXPECT_EQ(c->proc().terminate(std::chrono::seconds(10)), 0) << c->output();
}

TEST_F(ControlApiTest, TwoInstancesShareOneDatabase) {
  RAP_ASSIGN_OR_FAIL(std::string db, pg_->create_database("api_two"));
  RAP_ASSIGN_OR_FAIL(auto a, ControlProcess::start(db, "a"));
  ASSERT_TRUE(a->setup_token().has_value());
  auto s = a->call(
      "POST", "/api/v1/setup",
      json{{"setup_token", *a->setup_token()}, {"email", "root@x.io"}, {"password", kOwnerPw}}
          .dump());
  ASSERT_EQ(s.status, 201) << s;

  // Second instance: schema already there, setup done, so no new token is issued.
  RAP_ASSIGN_OR_FAIL(auto b, ControlProcess::start(db, "b"));
  EXPECT_FALSE(b->setup_token().has_value()) << b->output();

  const std::string tok_a = login(*a, "root@x.io", kOwnerPw);
  ASSERT_FALSE(tok_a.empty());
  // A token issued by one instance is valid on the other (state lives in PostgreSQL only).
  auto created = a->call("POST", "/api/v1/orgs", R"({"slug":"shared-org","name":"Shared"})", tok_a);
  ASSERT_EQ(created.status, 201) << created;
  auto read = b->call("GET", "/api/v1/orgs/shared-org", "", tok_a);
  ASSERT_EQ(read.status, 200) << read;
  EXPECT_EQ(read.j["org"]["id"], created.j["org"]["id"]);
  auto dup = b->call("POST", "/api/v1/orgs", R"({"slug":"shared-org","name":"Again"})", tok_a);
  EXPECT_EQ(dup.status, 409) << dup;
  // Logout on b revokes for a as well.
  EXPECT_EQ(b->call("POST", "/api/v1/logout", "", tok_a).status, 200);
  EXPECT_EQ(a->call("GET", "/api/v1/orgs", "", tok_a).status, 401);
}

TEST_F(ControlApiTest, RestartBeforeSetupRotatesToken) {
  RAP_ASSIGN_OR_FAIL(std::string db, pg_->create_database("api_rotate"));
  std::string first;
  {
    RAP_ASSIGN_OR_FAIL(auto a, ControlProcess::start(db, "r1"));
    ASSERT_TRUE(a->setup_token().has_value());
    first = *a->setup_token();
  }
  RAP_ASSIGN_OR_FAIL(auto b, ControlProcess::start(db, "r2"));
  ASSERT_TRUE(b->setup_token().has_value());
  EXPECT_NE(first, *b->setup_token());
  auto old =
      b->call("POST", "/api/v1/setup",
              json{{"setup_token", first}, {"email", "o@x.io"}, {"password", kOwnerPw}}.dump());
  EXPECT_EQ(old.status, 403) << old << b->output();
  auto ok = b->call(
      "POST", "/api/v1/setup",
      json{{"setup_token", *b->setup_token()}, {"email", "o@x.io"}, {"password", kOwnerPw}}.dump());
  EXPECT_EQ(ok.status, 201) << ok;
}

TEST_F(ControlApiTest, ConcurrentStartOnFreshDatabaseMigratesOnce) {
  RAP_ASSIGN_OR_FAIL(std::string db, pg_->create_database("api_concurrent"));
  RAP_ASSIGN_OR_FAIL(auto a, ControlProcess::spawn(db, "ca"));
  RAP_ASSIGN_OR_FAIL(auto b, ControlProcess::spawn(db, "cb"));
  RAP_ASSERT_OK(a->wait_ready());
  RAP_ASSERT_OK(b->wait_ready());
  auto health_a = a->call("GET", "/healthz");
  auto health_b = b->call("GET", "/healthz");
  EXPECT_EQ(health_a.status, 200) << health_a;
  EXPECT_EQ(health_b.status, 200) << health_b;
  // Every migration was applied exactly once across both instances.
  const std::string n = std::to_string(rap::control::migrations().size());
  RAP_ASSERT_OK(pg_->exec("DO $$ BEGIN IF (SELECT count(*) FROM schema_migrations) <> " + n +
                              " THEN "
                              "RAISE EXCEPTION 'unexpected schema_migrations rows: %', "
                              "(SELECT count(*) FROM schema_migrations); END IF; END $$",
                          "api_concurrent"));
  int applied = 0;
  for (const auto* p : {a.get(), b.get()}) {
    std::smatch m;
    const std::string out = p->output();
    ASSERT_TRUE(std::regex_search(out, m, std::regex("applied_now=([0-9]+)"))) << out;
    applied += std::stoi(m[1]);
  }
  EXPECT_EQ(applied, static_cast<int>(rap::control::migrations().size()));
  // Both printed a setup token; only the most recent one is valid, and only once.
  ASSERT_TRUE(a->setup_token().has_value());
  ASSERT_TRUE(b->setup_token().has_value());
  int created = 0;
  for (const auto* p : {a.get(), b.get()}) {
    auto r = p->call(
        "POST", "/api/v1/setup",
        json{{"setup_token", *p->setup_token()}, {"email", "o@x.io"}, {"password", kOwnerPw}}
            .dump());
    if (r.status == 201)
      ++created;
    else
      EXPECT_EQ(r.status, 403) << r;
  }
  EXPECT_EQ(created, 1);
}

TEST_F(ControlApiTest, ExpiredTokenIsRejected) {
  RAP_ASSIGN_OR_FAIL(std::string db, pg_->create_database("api_expiry"));
  RAP_ASSIGN_OR_FAIL(auto c, ControlProcess::start(db, "exp"));
  ASSERT_TRUE(c->setup_token().has_value());
  ASSERT_EQ(
      c->call("POST", "/api/v1/setup",
              json{{"setup_token", *c->setup_token()}, {"email", "o@x.io"}, {"password", kOwnerPw}}
                  .dump())
          .status,
      201);
  const std::string tok = login(*c, "o@x.io", kOwnerPw);
  EXPECT_EQ(c->call("GET", "/api/v1/orgs", "", tok).status, 200);
  // Parallel requests (more than the 4 pooled connections) are all served.
  {
    std::vector<int> statuses(12, 0);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < statuses.size(); ++i) {
      threads.emplace_back([&, i] {
        statuses[i] = c->call("GET", i % 2 ? "/api/v1/orgs" : "/healthz", "", tok).status;
      });
    }
    for (auto& t : threads) t.join();
    for (int st : statuses) EXPECT_EQ(st, 200);
  }
  RAP_ASSERT_OK(
      pg_->exec("UPDATE api_tokens SET expires_at = now() - interval '1 second'", "api_expiry"));
  auto r = c->call("GET", "/api/v1/orgs", "", tok);
  EXPECT_EQ(r.status, 401) << r;
  EXPECT_EQ(r.error_code(), "invalid_token");
}

TEST_F(ControlApiTest, AuditChainDetectsEditedAndDeletedEvents) {
  RAP_ASSIGN_OR_FAIL(std::string db, pg_->create_database("api_audit_chain"));
  RAP_ASSIGN_OR_FAIL(auto c, ControlProcess::start(db, "audit"));
  const std::string tok = setup_owner(*c, "o@x.io", kOwnerPw);
  for (const char* slug : {"org-a", "org-b", "org-c"}) {
    ASSERT_EQ(
        c->call("POST", "/api/v1/orgs", json{{"slug", slug}, {"name", slug}}.dump(), tok).status,
        201);
  }
  auto v = c->call("GET", "/api/v1/audit/verify", "", tok);
  ASSERT_EQ(v.status, 200) << v;
  EXPECT_TRUE(v.j["ok"].get<bool>()) << v;
  EXPECT_GE(v.j["events"].get<int>(), 6);  // token issued, setup, login, 3 orgs
  EXPECT_EQ(v.j["head_hash"].get<std::string>().size(), 64u);

  // Editing one event's target breaks its own hash.
  RAP_ASSERT_OK(
      pg_->exec("UPDATE audit_events SET target = 'org:forged' WHERE action = 'org.created' AND "
                "target = 'org:org-b'",
                "api_audit_chain"));
  v = c->call("GET", "/api/v1/audit/verify", "", tok);
  ASSERT_EQ(v.status, 200) << v;
  EXPECT_FALSE(v.j["ok"].get<bool>()) << v;
  EXPECT_NE(v.j["problem"].get<std::string>().find("edited"), std::string::npos) << v;

  // Deleting the forged event instead leaves a gap in the chain.
  RAP_ASSERT_OK(
      pg_->exec("DELETE FROM audit_events WHERE target = 'org:forged'", "api_audit_chain"));
  v = c->call("GET", "/api/v1/audit/verify", "", tok);
  EXPECT_FALSE(v.j["ok"].get<bool>()) << v;
  EXPECT_NE(v.j["problem"].get<std::string>().find("removed"), std::string::npos) << v;

  // Only the platform owner may verify.
  step_up(*c, tok, kOwnerPw);
  ASSERT_EQ(c->call("POST", "/api/v1/users", login_body("m@x.io", kMemberPw), tok).status, 201);
  const std::string member = login(*c, "m@x.io", kMemberPw);
  EXPECT_EQ(c->call("GET", "/api/v1/audit/verify", "", member).status, 403);
}
