// End-to-end tests of identity hardening (TOTP, step-up, API tokens) and the organization-scoped
// tenancy objects (groups, resources, policies), including the cross-tenant isolation walk. The
// real rap-control binary runs against a fixture PostgreSQL and is driven over HTTPS by curl.
#include <gtest/gtest.h>

#include <ctime>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "control_process.h"
#include "rap/control/totp.h"
#include "rap/testing/gtest_support.h"

using json = nlohmann::json;
using namespace rap::testing::control;
namespace totp = rap::control::totp;

// Same fixture (one PostgreSQL per suite) under its own name, for `ctest -R ControlTenancy`.
using ControlTenancyApiTest = ControlApiTest;

namespace {

// TOTP code for `secret_b32` at now + offset_seconds.
std::string code_for(const std::string& secret_b32, std::int64_t offset_seconds = 0) {
  auto secret = totp::base32_decode(secret_b32);
  EXPECT_TRUE(secret.has_value());
  if (!secret) return "";
  return totp::code_at(*secret, static_cast<std::int64_t>(std::time(nullptr)) + offset_seconds);
}

// A 6-digit code that is certainly wrong for the current window.
std::string wrong_code(const std::string& secret_b32) {
  std::set<std::string> valid;
  for (int off : {-60, -30, 0, 30, 60}) valid.insert(code_for(secret_b32, off));
  for (int i = 123456;; ++i) {
    if (!valid.count(std::to_string(i))) return std::to_string(i);
  }
}

Reply step_up(const ControlProcess& c, const std::string& token, const std::string& pw,
              const std::string& code = "") {
  json body{{"password", pw}};
  if (!code.empty()) body["totp_code"] = code;
  return c.call("POST", "/api/v1/auth/step-up", body.dump(), token);
}

std::set<std::string> audit_actions(const ControlProcess& c, const std::string& owner) {
  auto r = c.call("GET", "/api/v1/audit?limit=1000", "", owner);
  EXPECT_EQ(r.status, 200) << r;
  std::set<std::string> out;
  for (const auto& e : r.j["events"]) out.insert(e["action"].get<std::string>());
  return out;
}

}  // namespace

TEST_F(ControlTenancyApiTest, TotpStepUpAndApiTokens) {
  RAP_ASSIGN_OR_FAIL(std::string db, pg_->create_database("hb_identity"));
  RAP_ASSIGN_OR_FAIL(auto c, ControlProcess::start(db, "hb-identity"));
  const std::string owner = setup_owner(*c, "owner@x.io", kOwnerPw);
  ASSERT_FALSE(owner.empty());

  auto me = c->call("GET", "/api/v1/me", "", owner);
  ASSERT_EQ(me.status, 200) << me;
  EXPECT_EQ(me.j["user"]["email"], "owner@x.io");
  EXPECT_EQ(me.j["totp_enabled"], false);
  EXPECT_EQ(me.j["token"]["kind"], "session");
  EXPECT_EQ(me.j["token"]["elevated"], false);
  EXPECT_EQ(me.j["roles"], json::array({"platform_owner"}));

  // High-risk actions need a step-up first.
  for (const auto& [path, body] : std::vector<std::pair<std::string, std::string>>{
           {"/api/v1/users", login_body("u1@x.io", kMemberPw)},
           {"/api/v1/me/tokens", R"({"name":"ci","ttl_days":30,"scope":"admin"})"},
           {"/api/v1/me/totp/enroll", ""}}) {
    auto r = c->call("POST", path, body, owner);
    EXPECT_EQ(r.status, 403) << path << " " << r;
    EXPECT_EQ(r.error_code(), "step_up_required") << path;
  }
  {
    auto r = step_up(*c, owner, "wrong-password-000");
    EXPECT_EQ(r.status, 401) << r;
    EXPECT_EQ(r.error_code(), "invalid_credentials");
    auto extra = c->call("POST", "/api/v1/auth/step-up",
                         json{{"password", kOwnerPw}, {"elevate", true}}.dump(), owner);
    EXPECT_EQ(extra.status, 400) << extra;
    auto malformed = c->call("POST", "/api/v1/auth/step-up", "{\"password\":", owner);
    EXPECT_EQ(malformed.error_code(), "malformed_json") << malformed;
  }
  {
    auto r = step_up(*c, owner, kOwnerPw);
    ASSERT_EQ(r.status, 200) << r;
    EXPECT_TRUE(r.j.contains("elevated_until"));
    auto m = c->call("GET", "/api/v1/me", "", owner);
    EXPECT_EQ(m.j["token"]["elevated"], true) << m;
  }

  // TOTP enrollment: secret shown by enroll only; re-enroll replaces an unconfirmed secret.
  auto first = c->call("POST", "/api/v1/me/totp/enroll", "", owner);
  ASSERT_EQ(first.status, 201) << first;
  auto enroll = c->call("POST", "/api/v1/me/totp/enroll", "{}", owner);
  ASSERT_EQ(enroll.status, 201) << enroll;
  const std::string secret = enroll.j["secret_base32"].get<std::string>();
  EXPECT_NE(secret, first.j["secret_base32"].get<std::string>());
  EXPECT_EQ(secret.size(), 32u);
  EXPECT_NE(enroll.j["otpauth_uri"].get<std::string>().find("secret=" + secret), std::string::npos);
  EXPECT_EQ(c->call("POST", "/api/v1/me/totp/enroll", R"({"x":1})", owner).status, 400);
  {
    auto bad = c->call("POST", "/api/v1/me/totp/confirm", json{{"code", wrong_code(secret)}}.dump(),
                       owner);
    EXPECT_EQ(bad.status, 400) << bad;
    EXPECT_EQ(bad.error_code(), "invalid_totp");
    EXPECT_EQ(c->call("POST", "/api/v1/me/totp/confirm", R"({"code":123456})", owner).status, 400);
  }
  const std::string confirm_code = code_for(secret);
  {
    auto ok =
        c->call("POST", "/api/v1/me/totp/confirm", json{{"code", confirm_code}}.dump(), owner);
    ASSERT_EQ(ok.status, 200) << ok;
    auto again = c->call("POST", "/api/v1/me/totp/enroll", "", owner);
    EXPECT_EQ(again.status, 409) << again;
    EXPECT_EQ(again.error_code(), "totp_already_enabled");
    auto m = c->call("GET", "/api/v1/me", "", owner);
    EXPECT_EQ(m.j["totp_enabled"], true) << m;
    EXPECT_EQ(m.body.find(secret), std::string::npos);
  }

  // Login now needs the code; a code's time step is accepted once.
  auto login_with = [&](const json& extra) {
    json b{{"email", "owner@x.io"}, {"password", kOwnerPw}};
    if (extra.is_object()) b.update(extra);
    return c->call("POST", "/api/v1/login", b.dump());
  };
  {
    auto r = login_with({});
    EXPECT_EQ(r.status, 401) << r;
    EXPECT_EQ(r.error_code(), "totp_required");
    auto wrong = login_with({{"totp_code", wrong_code(secret)}});
    EXPECT_EQ(wrong.status, 401) << wrong;
    EXPECT_EQ(wrong.error_code(), "invalid_totp");
    auto replay = login_with({{"totp_code", confirm_code}});
    EXPECT_EQ(replay.status, 401) << replay;
    EXPECT_EQ(replay.error_code(), "invalid_totp");
    auto bad_pw = c->call("POST", "/api/v1/login",
                          json{{"email", "owner@x.io"},
                               {"password", "wrong-password-000"},
                               {"totp_code", code_for(secret, 30)}}
                              .dump());
    EXPECT_EQ(bad_pw.error_code(), "invalid_credentials") << bad_pw;
    EXPECT_EQ(login_with({{"totp_code", 5}}).status, 400);
    EXPECT_EQ(login_with({{"otp", "123456"}}).status, 400);
  }
  auto next = login_with({{"totp_code", code_for(secret, 30)}});
  ASSERT_EQ(next.status, 200) << next;
  const std::string session = next.j["token"].get<std::string>();
  {
    auto r = step_up(*c, session, kOwnerPw);
    EXPECT_EQ(r.status, 401) << r;
    EXPECT_EQ(r.error_code(), "totp_required");
    // Wind the replay marker back (instead of waiting 30 s) so a current code is fresh again.
    RAP_ASSERT_OK(
        pg_->exec("UPDATE user_totp SET last_used_step = last_used_step - 10", "hb_identity"));
    auto ok = step_up(*c, session, kOwnerPw, code_for(secret));
    ASSERT_EQ(ok.status, 200) << ok;
  }

  // API tokens: validation.
  for (const char* body :
       {R"({"name":"ci","ttl_days":0,"scope":"read"})",
        R"({"name":"ci","ttl_days":366,"scope":"read"})",
        R"({"name":"ci","ttl_days":"30","scope":"read"})",
        R"({"name":"ci","ttl_days":30,"scope":"write"})",
        R"({"name":"","ttl_days":30,"scope":"read"})", R"({"name":"ci","scope":"read"})",
        R"({"name":"ci","ttl_days":30,"scope":"read","org":5})",
        R"({"name":"ci","ttl_days":30,"scope":"read","extra":"x"})", R"({"name":"ci",)", "[]"}) {
    auto r = c->call("POST", "/api/v1/me/tokens", body, session);
    EXPECT_EQ(r.status, 400) << body << " " << r;
  }
  auto mk_token = [&](const std::string& name, const std::string& scope) {
    auto r = c->call("POST", "/api/v1/me/tokens",
                     json{{"name", name}, {"ttl_days", 30}, {"scope", scope}}.dump(), session);
    EXPECT_EQ(r.status, 201) << r;
    EXPECT_EQ(r.j["api_token"]["scope"], scope);
    return std::make_pair(r.j["token"].get<std::string>(),
                          r.j["api_token"]["id"].get<std::int64_t>());
  };
  const auto [read_tok, read_id] = mk_token("reader", "read");
  const auto [admin_tok, admin_id] = mk_token("automation", "admin");
  ASSERT_EQ(read_tok.size(), 64u);
  {
    auto m = c->call("GET", "/api/v1/me", "", read_tok);
    ASSERT_EQ(m.status, 200) << m;
    EXPECT_EQ(m.j["token"]["kind"], "api");
    EXPECT_EQ(m.j["token"]["scope"], "read");
    EXPECT_EQ(c->call("GET", "/api/v1/orgs", "", read_tok).status, 200);
    auto post = c->call("POST", "/api/v1/orgs", R"({"slug":"ro-org","name":"RO"})", read_tok);
    EXPECT_EQ(post.status, 403) << post;
    EXPECT_EQ(post.error_code(), "insufficient_scope");
    EXPECT_EQ(
        c->call("DELETE", "/api/v1/me/tokens/" + std::to_string(read_id), "", read_tok).status,
        403);
    // Admin-scope tokens count as elevated; they cannot mint tokens or step up themselves.
    EXPECT_EQ(
        c->call("POST", "/api/v1/orgs", R"({"slug":"auto-org","name":"Auto"})", admin_tok).status,
        201);
    auto u = c->call("POST", "/api/v1/users", login_body("bot-made@x.io", kMemberPw), admin_tok);
    EXPECT_EQ(u.status, 201) << u;
    auto mint = c->call("POST", "/api/v1/me/tokens", R"({"name":"x","ttl_days":1,"scope":"admin"})",
                        admin_tok);
    EXPECT_EQ(mint.status, 403) << mint;
    EXPECT_EQ(mint.error_code(), "session_required");
    EXPECT_EQ(step_up(*c, admin_tok, kOwnerPw).error_code(), "session_required");
  }
  {
    auto list = c->call("GET", "/api/v1/me/tokens", "", session);
    ASSERT_EQ(list.status, 200) << list;
    ASSERT_EQ(list.j["tokens"].size(), 2u) << list;
    for (const auto& t : list.j["tokens"]) {
      EXPECT_FALSE(t["last_used_at"].is_null()) << t;
      EXPECT_TRUE(t["revoked_at"].is_null()) << t;
      EXPECT_FALSE(t.contains("token"));
    }
    EXPECT_EQ(list.body.find(read_tok), std::string::npos);
    EXPECT_EQ(list.body.find(admin_tok), std::string::npos);
  }
  {
    // A token restricted to one organization reaches only that organization (and GET /me).
    auto bad_org =
        c->call("POST", "/api/v1/me/tokens",
                R"({"name":"o","ttl_days":1,"scope":"admin","org":"no-such-org"})", session);
    EXPECT_EQ(bad_org.status, 404) << bad_org;
    EXPECT_EQ(bad_org.error_code(), "org_not_found");
    auto r =
        c->call("POST", "/api/v1/me/tokens",
                R"({"name":"org-bot","ttl_days":1,"scope":"admin","org":"auto-org"})", session);
    ASSERT_EQ(r.status, 201) << r;
    EXPECT_EQ(r.j["api_token"]["org"], "auto-org");
    const std::string org_tok = r.j["token"].get<std::string>();
    auto m = c->call("GET", "/api/v1/me", "", org_tok);
    EXPECT_EQ(m.j["token"]["org"], "auto-org") << m;
    EXPECT_EQ(c->call("GET", "/api/v1/orgs/auto-org", "", org_tok).status, 200);
    EXPECT_EQ(c->call("POST", "/api/v1/orgs/auto-org/groups", R"({"name":"bots"})", org_tok).status,
              201);
    for (const auto& [method, path] :
         std::vector<std::pair<std::string, std::string>>{{"GET", "/api/v1/orgs"},
                                                          {"GET", "/api/v1/me/tokens"},
                                                          {"GET", "/api/v1/audit"},
                                                          {"POST", "/api/v1/users"},
                                                          {"GET", "/api/v1/orgs/ro-org"}}) {
      auto denied = c->call(method, path, "", org_tok);
      EXPECT_EQ(denied.status, 403) << method << " " << path << " " << denied;
      EXPECT_EQ(denied.error_code(), "token_org_restricted") << path;
    }
  }
  {
    const std::string path = "/api/v1/me/tokens/" + std::to_string(read_id);
    auto del = c->call("DELETE", path, "", session);
    ASSERT_EQ(del.status, 200) << del;
    EXPECT_FALSE(del.j["api_token"]["revoked_at"].is_null()) << del;
    EXPECT_EQ(c->call("GET", "/api/v1/me", "", read_tok).status, 401);
    EXPECT_EQ(c->call("DELETE", path, "", session).status, 404);
    EXPECT_EQ(c->call("DELETE", "/api/v1/me/tokens/abc", "", session).status, 404);
    EXPECT_EQ(c->call("DELETE", "/api/v1/me/tokens/999999", "", session).status, 404);
    EXPECT_EQ(c->call("GET", "/api/v1/me", "", admin_tok).status, 200);  // others unaffected
  }

  // The elevation expires.
  RAP_ASSERT_OK(pg_->exec(
      "UPDATE api_tokens SET elevated_until = now() - interval '1 second' WHERE kind = 'session'",
      "hb_identity"));
  {
    auto r = c->call("POST", "/api/v1/users", login_body("late@x.io", kMemberPw), session);
    EXPECT_EQ(r.status, 403) << r;
    EXPECT_EQ(r.error_code(), "step_up_required");
  }

  // Failed step-ups are throttled per user (like logins; in-process live state here).
  {
    int limited_at = -1;
    for (int i = 0; i < 12 && limited_at < 0; ++i) {
      auto r = step_up(*c, session, "wrong-password-000");
      if (r.status == 429) {
        limited_at = i;
        EXPECT_EQ(r.error_code(), "rate_limited");
      } else {
        EXPECT_EQ(r.status, 401) << r;
      }
    }
    EXPECT_GE(limited_at, 1);
    EXPECT_EQ(step_up(*c, session, kOwnerPw, code_for(secret)).status, 429);
  }

  const auto actions = audit_actions(*c, session);
  for (const char* a : {"auth.step_up", "auth.step_up_required", "auth.totp_enrollment_started",
                        "auth.totp_enabled", "api_token.created", "api_token.revoked"})
    EXPECT_TRUE(actions.count(a)) << a;
  auto verify = c->call("GET", "/api/v1/audit/verify", "", session);
  EXPECT_TRUE(verify.j["ok"].get<bool>()) << verify;
  // No secret in the audit log or the server output.
  auto all = c->call("GET", "/api/v1/audit?limit=1000", "", session);
  const std::string out = c->output();
  for (const std::string& s : {secret, read_tok, admin_tok, session, kOwnerPw}) {
    EXPECT_EQ(all.body.find(s), std::string::npos);
    EXPECT_EQ(out.find(s), std::string::npos);
  }
}

TEST_F(ControlTenancyApiTest, TenancyObjectsValidationEntitlementsAndIsolation) {
  RAP_ASSIGN_OR_FAIL(std::string db, pg_->create_database("hb_tenancy"));
  RAP_ASSIGN_OR_FAIL(auto c, ControlProcess::start(db, "hb-tenancy"));
  const std::string owner = setup_owner(*c, "owner@x.io", kOwnerPw);
  ASSERT_FALSE(owner.empty());
  ASSERT_EQ(step_up(*c, owner, kOwnerPw).status, 200);
  for (const char* slug : {"org-a", "org-b"})
    ASSERT_EQ(
        c->call("POST", "/api/v1/orgs", json{{"slug", slug}, {"name", slug}}.dump(), owner).status,
        201);
  for (const char* email : {"admin-a@x.io", "admin-b@x.io", "member-a@x.io", "member-b@x.io"})
    ASSERT_EQ(c->call("POST", "/api/v1/users", login_body(email, kMemberPw), owner).status, 201);
  auto add_member = [&](const std::string& slug, const std::string& email,
                        const std::string& role) {
    return c->call("POST", "/api/v1/orgs/" + slug + "/members",
                   json{{"email", email}, {"role", role}}.dump(), owner);
  };
  ASSERT_EQ(add_member("org-a", "admin-a@x.io", "org_admin").status, 201);
  ASSERT_EQ(add_member("org-b", "admin-b@x.io", "org_admin").status, 201);
  ASSERT_EQ(add_member("org-a", "member-a@x.io", "org_member").status, 201);
  ASSERT_EQ(add_member("org-b", "member-b@x.io", "org_member").status, 201);
  const std::string admin_a = login(*c, "admin-a@x.io", kMemberPw);
  const std::string admin_b = login(*c, "admin-b@x.io", kMemberPw);
  const std::string member_a = login(*c, "member-a@x.io", kMemberPw);
  const std::string member_b = login(*c, "member-b@x.io", kMemberPw);
  {
    // Granting org_admin is high-risk: an org admin must step up first.
    auto r = c->call("POST", "/api/v1/orgs/org-a/members",
                     json{{"email", "member-b@x.io"}, {"role", "org_admin"}}.dump(), admin_a);
    EXPECT_EQ(r.status, 403) << r;
    EXPECT_EQ(r.error_code(), "step_up_required");
  }

  const std::string A = "/api/v1/orgs/org-a";
  const std::string B = "/api/v1/orgs/org-b";
  auto post = [&](const std::string& path, const json& body, const std::string& tok) {
    return c->call("POST", path, body.dump(), tok);
  };

  // ---- groups ----
  auto ops = post(A + "/groups", {{"name", "ops"}}, admin_a);
  ASSERT_EQ(ops.status, 201) << ops;
  const std::string ops_id = ops.j["group"]["id"].get<std::string>();
  {
    auto dup = post(A + "/groups", {{"name", "ops"}}, admin_a);
    EXPECT_EQ(dup.status, 409) << dup;
    EXPECT_EQ(dup.error_code(), "name_taken");
    EXPECT_EQ(post(A + "/groups", {{"name", ""}}, admin_a).error_code(), "invalid_name");
    EXPECT_EQ(post(A + "/groups", {{"name", std::string(101, 'g')}}, admin_a).status, 400);
    EXPECT_EQ(post(A + "/groups", {{"name", "a\nb"}}, admin_a).error_code(), "invalid_name");
    EXPECT_EQ(post(A + "/groups", {{"name", 5}}, admin_a).error_code(), "invalid_request");
    EXPECT_EQ(post(A + "/groups", {{"name", "x"}, {"id", "y"}}, admin_a).error_code(),
              "invalid_request");
    EXPECT_EQ(c->call("POST", A + "/groups", "{\"name\":", admin_a).error_code(), "malformed_json");
    EXPECT_EQ(c->call("GET", A + "/groups/not-a-uuid", "", admin_a).status, 404);
  }
  const std::string members_path = A + "/groups/" + ops_id + "/members";
  {
    auto r = post(members_path, {{"email", "member-a@x.io"}}, admin_a);
    ASSERT_EQ(r.status, 201) << r;
    EXPECT_EQ(r.j["group"]["members"].size(), 1u) << r;
    EXPECT_EQ(post(members_path, {{"email", "member-a@x.io"}}, admin_a).error_code(),
              "already_member");
    auto outsider = post(members_path, {{"email", "member-b@x.io"}}, admin_a);
    EXPECT_EQ(outsider.status, 404) << outsider;
    EXPECT_EQ(outsider.error_code(), "user_not_found");
    EXPECT_EQ(post(members_path, {{"email", "nope"}}, admin_a).error_code(), "invalid_email");
  }

  // ---- resources ----
  auto mk_res = [&](const std::string& base, const json& body, const std::string& tok) {
    return post(base + "/resources", body, tok);
  };
  auto win =
      mk_res(A, {{"name", "win-1"}, {"protocol", "rdp"}, {"address", "10.0.0.5:3389"}}, admin_a);
  ASSERT_EQ(win.status, 201) << win;
  const std::string win_id = win.j["resource"]["id"].get<std::string>();
  EXPECT_TRUE(win.j["resource"]["egress_pool"].is_null());
  auto ssh = mk_res(A,
                    {{"name", "ssh-1"},
                     {"protocol", "ssh"},
                     {"address", "host-1.example.com:22"},
                     {"egress_pool", "eu-1"},
                     {"credential_ref", "vault:kv/ssh-1"}},
                    admin_a);
  ASSERT_EQ(ssh.status, 201) << ssh;
  const std::string ssh_id = ssh.j["resource"]["id"].get<std::string>();
  EXPECT_EQ(mk_res(A, {{"name", "v6"}, {"protocol", "tcp"}, {"address", "[fd00::1]:443"}}, admin_a)
                .status,
            201);
  {
    const json base = {{"name", "bad"}, {"protocol", "rdp"}, {"address", "h.example:3389"}};
    auto with = [&](const char* k, const json& v) {
      json b = base;
      b[k] = v;
      return mk_res(A, b, admin_a);
    };
    EXPECT_EQ(with("protocol", "http").error_code(), "invalid_protocol");
    EXPECT_EQ(with("protocol", "RDP").error_code(), "invalid_protocol");
    for (const char* addr : {"nohost", "h:0", "h:65536", "h:-1", "h:", ":22", "::1:22",
                             "bad host:22", "h..x:22", "-h:22", "[zz::1]:22", "h:22x"}) {
      auto r = with("address", addr);
      EXPECT_EQ(r.status, 400) << addr << " " << r;
      EXPECT_EQ(r.error_code(), "invalid_address") << addr;
    }
    EXPECT_EQ(with("credential_ref", "pass word!").error_code(), "invalid_credential_ref");
    EXPECT_EQ(with("egress_pool", "").error_code(), "invalid_egress_pool");
    EXPECT_EQ(with("address", 3389).error_code(), "invalid_request");
    EXPECT_EQ(with("extra", true).error_code(), "invalid_request");
    json missing = base;
    missing.erase("address");
    EXPECT_EQ(mk_res(A, missing, admin_a).status, 400);
    EXPECT_EQ(with("name", "win-1").error_code(), "name_taken");
    auto big = with("name", std::string(70 * 1024, 'x'));
    EXPECT_EQ(big.status, 413) << big.status;
  }
  {
    const std::string path = A + "/resources/" + win_id;
    auto p = c->call("PATCH", path, R"({"address":"10.0.0.6:3389","egress_pool":"eu-2"})", admin_a);
    ASSERT_EQ(p.status, 200) << p;
    EXPECT_EQ(p.j["resource"]["address"], "10.0.0.6:3389");
    EXPECT_EQ(p.j["resource"]["egress_pool"], "eu-2");
    auto clear = c->call("PATCH", path, R"({"egress_pool":null})", admin_a);
    EXPECT_TRUE(clear.j["resource"]["egress_pool"].is_null()) << clear;
    EXPECT_EQ(c->call("PATCH", path, "{}", admin_a).status, 400);
    EXPECT_EQ(c->call("PATCH", path, R"({"protocol":"ftp"})", admin_a).error_code(),
              "invalid_protocol");
    EXPECT_EQ(c->call("PATCH", path, R"({"name":"ssh-1"})", admin_a).error_code(), "name_taken");
    EXPECT_EQ(c->call("PATCH", path, R"({"name":"win-1"})", admin_a).status, 200);
    auto got = c->call("GET", path, "", admin_a);
    EXPECT_EQ(got.j["resource"]["address"], "10.0.0.6:3389") << got;
    auto list = c->call("GET", A + "/resources", "", admin_a);
    EXPECT_EQ(list.j["resources"].size(), 3u) << list;
  }

  // ---- policies ----
  auto rdp_pol =
      post(A + "/policies",
           {{"name", "ops-rdp"}, {"service", "rdp"}, {"groups", {ops_id}}, {"resources", {win_id}}},
           admin_a);
  ASSERT_EQ(rdp_pol.status, 201) << rdp_pol;
  EXPECT_EQ(rdp_pol.j["policy"]["groups"][0]["name"], "ops");
  EXPECT_EQ(rdp_pol.j["policy"]["action"], "allow");
  auto ssh_pol = post(A + "/policies",
                      {{"name", "direct-ssh"},
                       {"service", "ssh"},
                       {"action", "allow"},
                       {"users", {"member-a@x.io"}},
                       {"resources", {ssh_id}}},
                      admin_a);
  ASSERT_EQ(ssh_pol.status, 201) << ssh_pol;
  const std::string ssh_pol_id = ssh_pol.j["policy"]["id"].get<std::string>();
  {
    const json base = {
        {"name", "p"}, {"service", "rdp"}, {"groups", {ops_id}}, {"resources", {win_id}}};
    auto with = [&](const char* k, const json& v) {
      json b = base;
      b[k] = v;
      return post(A + "/policies", b, admin_a);
    };
    EXPECT_EQ(with("service", "smb").error_code(), "invalid_service");
    EXPECT_EQ(with("action", "deny").error_code(), "invalid_action");
    EXPECT_EQ(with("resources", {ssh_id}).error_code(), "service_mismatch");
    EXPECT_EQ(with("resources", json::array()).error_code(), "invalid_resources");
    EXPECT_EQ(with("groups", json::array()).error_code(), "invalid_subjects");
    EXPECT_EQ(with("groups", "ops").error_code(), "invalid_request");
    EXPECT_EQ(with("groups", {1}).error_code(), "invalid_request");
    EXPECT_EQ(with("resources", {"00000000-0000-0000-0000-000000000000"}).error_code(),
              "resource_not_found");
    EXPECT_EQ(with("name", "ops-rdp").error_code(), "name_taken");
    EXPECT_EQ(with("priority", 1).error_code(), "invalid_request");
    EXPECT_EQ(c->call("GET", A + "/policies", "", admin_a).j["policies"].size(), 2u);
  }

  // ---- entitlements: members see only what policies grant, and only name + protocol ----
  auto mine = [&](const std::string& tok) {
    auto r = c->call("GET", A + "/my-resources", "", tok);
    EXPECT_EQ(r.status, 200) << r;
    std::vector<std::string> names;
    for (const auto& x : r.j["resources"]) {
      names.push_back(x["name"].get<std::string>());
      EXPECT_FALSE(x.contains("address")) << x;
      EXPECT_FALSE(x.contains("credential_ref")) << x;
    }
    return names;
  };
  EXPECT_EQ(mine(member_a), (std::vector<std::string>{"ssh-1", "win-1"}));
  EXPECT_TRUE(mine(admin_a).empty());
  for (const std::string& path :
       {A + "/resources", A + "/groups", A + "/policies", A + "/resources/" + win_id}) {
    auto r = c->call("GET", path, "", member_a);
    EXPECT_EQ(r.status, 403) << path << " " << r;
    EXPECT_EQ(r.error_code(), "forbidden");
  }
  EXPECT_EQ(post(A + "/groups", {{"name", "mine"}}, member_a).status, 403);
  {
    auto r = c->call("DELETE", members_path, json{{"email", "member-a@x.io"}}.dump(), admin_a);
    ASSERT_EQ(r.status, 200) << r;
    EXPECT_EQ(mine(member_a), std::vector<std::string>{"ssh-1"});
    EXPECT_EQ(
        c->call("DELETE", members_path, json{{"email", "member-a@x.io"}}.dump(), admin_a).status,
        404);
    auto del = c->call("DELETE", A + "/policies/" + ssh_pol_id, "", admin_a);
    ASSERT_EQ(del.status, 200) << del;
    EXPECT_TRUE(mine(member_a).empty());
    EXPECT_EQ(c->call("GET", A + "/policies/" + ssh_pol_id, "", admin_a).status, 404);
    ASSERT_EQ(post(members_path, {{"email", "member-a@x.io"}}, admin_a).status, 201);
    EXPECT_EQ(mine(member_a), std::vector<std::string>{"win-1"});
  }
  {
    // Deleting a group or a resource removes it from policies as well.
    auto tmp = post(A + "/groups", {{"name", "tmp"}}, admin_a);
    const std::string tmp_path = A + "/groups/" + tmp.j["group"]["id"].get<std::string>();
    EXPECT_EQ(c->call("DELETE", tmp_path, "", admin_a).status, 200);
    EXPECT_EQ(c->call("GET", tmp_path, "", admin_a).status, 404);
    EXPECT_EQ(c->call("DELETE", tmp_path, "", admin_a).status, 404);
    auto tr = mk_res(A, {{"name", "tmp"}, {"protocol", "rdp"}, {"address", "t:1"}}, admin_a);
    const std::string tr_id = tr.j["resource"]["id"].get<std::string>();
    auto tp = post(
        A + "/policies",
        {{"name", "tmp"}, {"service", "rdp"}, {"users", {"member-a@x.io"}}, {"resources", {tr_id}}},
        admin_a);
    ASSERT_EQ(tp.status, 201) << tp;
    EXPECT_EQ(mine(member_a), (std::vector<std::string>{"tmp", "win-1"}));
    EXPECT_EQ(c->call("DELETE", A + "/resources/" + tr_id, "", admin_a).status, 200);
    EXPECT_EQ(mine(member_a), std::vector<std::string>{"win-1"});
    auto p =
        c->call("GET", A + "/policies/" + tp.j["policy"]["id"].get<std::string>(), "", admin_a);
    EXPECT_TRUE(p.j["policy"]["resources"].empty()) << p;
  }

  // ---- the isolation walk ----
  // Org B gets its own objects.
  auto gb = post(B + "/groups", {{"name", "b-ops"}}, admin_b);
  ASSERT_EQ(gb.status, 201) << gb;
  const std::string gb_id = gb.j["group"]["id"].get<std::string>();
  ASSERT_EQ(post(B + "/groups/" + gb_id + "/members", {{"email", "member-b@x.io"}}, admin_b).status,
            201);
  auto rb =
      mk_res(B, {{"name", "b-win"}, {"protocol", "rdp"}, {"address", "10.9.9.9:3389"}}, admin_b);
  ASSERT_EQ(rb.status, 201) << rb;
  const std::string rb_id = rb.j["resource"]["id"].get<std::string>();
  auto pb =
      post(B + "/policies",
           {{"name", "b-rdp"}, {"service", "rdp"}, {"groups", {gb_id}}, {"resources", {rb_id}}},
           admin_b);
  ASSERT_EQ(pb.status, 201) << pb;
  const std::string pb_id = pb.j["policy"]["id"].get<std::string>();

  auto snapshot = [&] {
    json s;
    for (const char* what : {"/groups", "/resources", "/policies", "/my-resources"}) {
      auto r =
          c->call("GET", B + what, "", what == std::string("/my-resources") ? member_b : admin_b);
      EXPECT_EQ(r.status, 200) << r;
      s[what] = r.j;
    }
    s["audit"] = c->call("GET", "/api/v1/audit?org=org-b&limit=1000", "", admin_b).j;
    s["org"] = c->call("GET", B, "", admin_b).j;
    return s;
  };
  const json before = snapshot();
  const json res_body = {{"name", "x"}, {"protocol", "rdp"}, {"address", "x:1"}};
  const json pol_body = {
      {"name", "x"}, {"service", "rdp"}, {"groups", {gb_id}}, {"resources", {rb_id}}};
  const json member_body = {{"email", "member-b@x.io"}};
  struct Step {
    std::string method, path;
    json body;
  };
  // Org B's slug with org B's ids: every tenant route under /api/v1/orgs/{slug}.
  const std::vector<Step> walk_b = {
      {"GET", B, nullptr},
      {"POST", B + "/members", {{"email", "admin-a@x.io"}, {"role", "org_member"}}},
      {"POST", B + "/groups", {{"name", "x"}}},
      {"GET", B + "/groups", nullptr},
      {"GET", B + "/groups/" + gb_id, nullptr},
      {"DELETE", B + "/groups/" + gb_id, nullptr},
      {"POST", B + "/groups/" + gb_id + "/members", member_body},
      {"DELETE", B + "/groups/" + gb_id + "/members", member_body},
      {"POST", B + "/resources", res_body},
      {"GET", B + "/resources", nullptr},
      {"GET", B + "/resources/" + rb_id, nullptr},
      {"PATCH", B + "/resources/" + rb_id, {{"address", "evil:1"}}},
      {"DELETE", B + "/resources/" + rb_id, nullptr},
      {"POST", B + "/policies", pol_body},
      {"GET", B + "/policies", nullptr},
      {"GET", B + "/policies/" + pb_id, nullptr},
      {"DELETE", B + "/policies/" + pb_id, nullptr},
      {"GET", B + "/my-resources", nullptr},
      {"GET", "/api/v1/audit?org=org-b", nullptr},
  };
  // Org A's own slug with org B's ids (and org B's member): lookups are scoped to org A.
  const std::vector<Step> walk_a = {
      {"GET", A + "/groups/" + gb_id, nullptr},
      {"DELETE", A + "/groups/" + gb_id, nullptr},
      {"POST", A + "/groups/" + gb_id + "/members", {{"email", "member-a@x.io"}}},
      {"DELETE", A + "/groups/" + gb_id + "/members", member_body},
      {"POST", A + "/groups/" + ops_id + "/members", member_body},
      {"GET", A + "/resources/" + rb_id, nullptr},
      {"PATCH", A + "/resources/" + rb_id, {{"address", "evil:1"}}},
      {"DELETE", A + "/resources/" + rb_id, nullptr},
      {"GET", A + "/policies/" + pb_id, nullptr},
      {"DELETE", A + "/policies/" + pb_id, nullptr},
      {"POST", A + "/policies", pol_body},
      {"POST",
       A + "/policies",
       {{"name", "x"}, {"service", "rdp"}, {"groups", {ops_id}}, {"resources", {rb_id}}}},
      {"POST",
       A + "/policies",
       {{"name", "x"}, {"service", "rdp"}, {"users", {"member-b@x.io"}}, {"resources", {win_id}}}},
  };
  auto run = [&](const std::vector<Step>& steps, const std::string& tok) {
    for (const auto& s : steps) {
      auto r = c->call(s.method, s.path, s.body.is_null() ? "" : s.body.dump(), tok);
      EXPECT_EQ(r.status, 404) << s.method << " " << s.path << " " << r;
    }
  };
  run(walk_b, admin_a);
  run(walk_b, member_a);
  run(walk_a, admin_a);
  const json after = snapshot();
  EXPECT_EQ(before, after);
  EXPECT_EQ(before["/my-resources"]["resources"].size(), 1u) << before;
  EXPECT_EQ(c->call("GET", A + "/policies", "", admin_a).j["policies"].size(), 2u);

  // The schema itself refuses cross-organization references (composite foreign keys).
  EXPECT_FALSE(pg_->exec("INSERT INTO policy_resources (org_id, policy_id, resource_id) "
                         "SELECT org_id, id, '" +
                             rb_id + "'::uuid FROM policies WHERE name = 'ops-rdp'",
                         "hb_tenancy")
                   .has_value());
  EXPECT_FALSE(pg_->exec("INSERT INTO group_members (org_id, group_id, user_id) "
                         "SELECT g.org_id, g.id, u.id FROM groups g, users u "
                         "WHERE g.name = 'ops' AND u.email = 'member-b@x.io'",
                         "hb_tenancy")
                   .has_value());
  EXPECT_FALSE(pg_->exec("INSERT INTO policy_subjects (org_id, policy_id, group_id) "
                         "SELECT org_id, id, '" +
                             gb_id + "'::uuid FROM policies WHERE name = 'ops-rdp'",
                         "hb_tenancy")
                   .has_value());

  auto verify = c->call("GET", "/api/v1/audit/verify", "", owner);
  EXPECT_TRUE(verify.j["ok"].get<bool>()) << verify;
  auto audit_a = c->call("GET", "/api/v1/audit?org=org-a&limit=1000", "", admin_a);
  std::set<std::string> actions;
  for (const auto& e : audit_a.j["events"]) actions.insert(e["action"].get<std::string>());
  for (const char* a : {"group.created", "group.deleted", "group.member_added",
                        "group.member_removed", "resource.created", "resource.updated",
                        "resource.deleted", "policy.created", "policy.deleted"})
    EXPECT_TRUE(actions.count(a)) << a;
}
