// Identity and tenancy routes: first-run setup, login/logout, users, organizations, memberships,
// the audit log.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

#include "api_internal.h"
#include "rap/control/auth.h"

namespace rap::control::detail {

namespace {

json org_json(const pqxx::row& r) {
  return json{{"id", r["id"].as<std::string>()},
              {"slug", r["slug"].as<std::string>()},
              {"name", r["name"].as<std::string>()},
              {"created_at", r["created_at"].as<std::string>()}};
}

}  // namespace

// Looks up an organization visible to the caller: (org row, caller's role or "" for owner).
// Non-members get 404 so that other tenants' slugs are not revealed.
Result<OrgView> find_org(pqxx::transaction_base& t, const Caller& caller, const std::string& slug) {
  if (!valid_slug(slug)) return http_fail(404, "org_not_found", "organization not found");
  auto rows = t.exec_params(
      "SELECT o.id, o.slug, o.name, " RAP_TS("o.created_at") " AS created_at, "
      "(SELECT role FROM memberships m WHERE m.org_id = o.id AND m.user_id = $2::uuid) AS role "
      "FROM organizations o WHERE o.slug = $1",
      slug, caller.user_id);
  if (rows.empty()) return http_fail(404, "org_not_found", "organization not found");
  OrgView v{org_json(rows[0]), rows[0]["id"].as<std::string>(),
            rows[0]["role"].is_null() ? "" : rows[0]["role"].as<std::string>()};
  if (!caller.is_owner && v.role.empty())
    return http_fail(404, "org_not_found", "organization not found");
  return v;
}

namespace {
HttpResponse post_setup(Ctx& ctx) {
  auto f = parse_fields(ctx.req.body, {"setup_token", "email", "password"});
  if (!f) return f.error();
  const std::string email = lower((*f)["email"]);
  const std::string& password = (*f)["password"];
  const std::string& tok = (*f)["setup_token"];
  if (!valid_email(email)) return error_response(400, "invalid_email", "invalid email address");
  if (!valid_password(password))
    return error_response(400, "invalid_password", "password must be 12 to 1024 bytes long");
  const std::string tok_hash = valid_token_shape(tok) ? token_sha256(tok) : std::string();

  auto check = [&](pqxx::work& w) -> Result<void> {
    auto rows = w.exec(
        "SELECT setup_token_sha256, completed_at IS NOT NULL, "
        "EXISTS (SELECT 1 FROM users WHERE is_platform_owner) "
        "FROM setup_state WHERE id FOR UPDATE");
    if (rows.empty() || rows[0][1].as<bool>() || rows[0][2].as<bool>()) {
      return http_fail(403, "setup_completed", "platform setup has already been completed");
    }
    const std::string stored = rows[0][0].is_null() ? "" : rows[0][0].as<std::string>();
    if (stored.empty() || tok_hash.empty() || !constant_time_equal(stored, tok_hash)) {
      return http_fail(403, "invalid_setup_token", "invalid setup token");
    }
    return {};
  };
  // Cheap check first so that bad tokens do not cost an Argon2 hash.
  if (auto pre = ctx.db.with_transaction<void>(check); !pre) return to_response(pre.error());
  auto hash = hash_password(password);
  if (!hash) return from_error(hash.error());
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    if (auto c = check(w); !c) return tl::unexpected(c.error());
    auto u = w.exec_params(
        "INSERT INTO users (email, password_hash, is_platform_owner) VALUES ($1, $2, true) "
        "RETURNING id, " RAP_TS("created_at"),
        email, *hash);
    const std::string uid = u[0][0].as<std::string>();
    w.exec("UPDATE setup_state SET setup_token_sha256 = NULL, completed_at = now() WHERE id");
    audit(w, AuditEvent{.actor_user_id = uid,
                        .action = "platform.setup_completed",
                        .target = "user:" + email});
    return json{{"user",
                 {{"id", uid},
                  {"email", email},
                  {"is_platform_owner", true},
                  {"created_at", u[0][1].as<std::string>()}}}};
  });
  if (!r) return to_response(r.error());
  spdlog::info("platform setup completed owner_email_sha256={}", token_sha256(email).substr(0, 16));
  return json_response(201, *r);
}

// Login throttling through LiveState: failed attempts per email (hashed: no address in Redis)
// in a fixed window. Redis errors fail open (logged and counted by LiveState): Argon2 still
// bounds the guessing rate, and Redis being away must not lock everyone out.
std::string login_bucket(const std::string& email) {
  return "login:" + token_sha256(email).substr(0, 32);
}

std::optional<HttpResponse> login_throttled(Ctx& ctx, const std::string& email) {
  if (ctx.live == nullptr) return std::nullopt;
  auto n = ctx.live->rate_peek("platform", login_bucket(email));
  if (!n || n->count < ctx.opts.login_max_failures) return std::nullopt;
  HttpResponse r = error_response(429, "rate_limited", "too many failed logins, try again later");
  r.retry_after_seconds =
      static_cast<int>(std::max<std::int64_t>(1, (n->reset_in.count() + 999) / 1000));
  return r;
}

void login_failed(Ctx& ctx, const std::string& email) {
  if (ctx.live == nullptr) return;
  auto n = ctx.live->rate_hit("platform", login_bucket(email), ctx.opts.login_failure_window);
  if (n && n->count == ctx.opts.login_max_failures) {
    spdlog::warn("login throttled email_sha256={} failures={} window_s={}",
                 token_sha256(email).substr(0, 16), n->count,
                 ctx.opts.login_failure_window.count());
  }
}

HttpResponse post_login(Ctx& ctx) {
  // {email, password} plus totp_code once the user has confirmed TOTP (routes_account.cpp).
  auto body = parse_object(ctx.req.body);
  if (!body) return body.error();
  auto email_f = req_string(*body, "email");
  if (!email_f) return email_f.error();
  auto password_f = req_string(*body, "password");
  if (!password_f) return password_f.error();
  auto totp_code = opt_string(*body, "totp_code");
  if (!totp_code) return totp_code.error();
  if (auto bad = reject_unknown_fields(*body, {"email", "password", "totp_code"})) return *bad;
  const std::string email = lower(*email_f);
  const std::string& password = *password_f;
  if (auto limited = login_throttled(ctx, email)) return *limited;
  auto user = ctx.db.with_connection<std::optional<std::pair<std::string, std::string>>>(
      [&](pqxx::connection& c) -> Result<std::optional<std::pair<std::string, std::string>>> {
        pqxx::read_transaction t(c);
        auto rows = t.exec_params("SELECT id, password_hash FROM users WHERE email = $1", email);
        if (rows.empty()) return std::optional<std::pair<std::string, std::string>>();
        return std::make_optional(
            std::make_pair(rows[0][0].as<std::string>(), rows[0][1].as<std::string>()));
      });
  if (!user) return from_error(user.error());
  bool ok = false;
  if (*user) {
    ok = verify_password((*user)->second, password);
  } else {
    dummy_password_verify(password);  // same cost whether or not the user exists
  }
  if (!ok) {
    login_failed(ctx, email);
    return error_response(401, "invalid_credentials", "invalid email or password");
  }
  std::string token;
  token = ctx.random_token();
  const std::string uid = (*user)->first;
  auto r = ctx.db.with_transaction<std::string>([&](pqxx::work& w) -> Result<std::string> {
    if (auto second = check_second_factor(w, ctx.opts.master_key, uid, *totp_code); !second)
      return tl::unexpected(second.error());
    auto rows = w.exec_params(
        "INSERT INTO api_tokens (user_id, token_sha256, kind, expires_at) "
        "VALUES ($1::uuid, $2, 'session', now() + make_interval(secs => $3)) "
        "RETURNING id, " RAP_TS("expires_at"),
        uid, token_sha256(token), static_cast<long long>(ctx.opts.session_ttl.count()));
    audit(w, AuditEvent{.actor_user_id = uid,
                        .action = "auth.login",
                        .target = "token:" + rows[0][0].as<std::string>()});
    return rows[0][1].as<std::string>();
  });
  if (!r) {
    if (r.error().code.rfind("http:401:", 0) == 0) {
      login_failed(ctx, email);  // a wrong second factor counts as a failed attempt
      audit_standalone(ctx.db, AuditEvent{.actor_user_id = uid,
                                          .action = "auth.login",
                                          .target = "user:" + email,
                                          .outcome = "denied",
                                          .details = json{{"reason", r.error().message}}});
    }
    return to_response(r.error());
  }
  return json_response(200, json{{"token", token}, {"expires_at", *r}});
}

HttpResponse post_logout(Ctx& ctx) {
  auto r = ctx.db.with_transaction<void>([&](pqxx::work& w) -> Result<void> {
    auto rows = w.exec_params(
        "UPDATE api_tokens SET revoked_at = now() WHERE token_sha256 = $1 AND revoked_at IS NULL "
        "RETURNING id",
        ctx.caller->token_hash);
    if (!rows.empty()) {
      audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                          .action = "auth.logout",
                          .target = "token:" + rows[0][0].as<std::string>()});
    }
    return {};
  });
  if (!r) return from_error(r.error());
  return json_response(200, json{{"status", "logged_out"}});
}

HttpResponse post_users(Ctx& ctx) {
  if (!ctx.caller->is_owner) return error_response(403, "forbidden", "not allowed for this user");
  auto f = parse_fields(ctx.req.body, {"email", "password"});
  if (!f) return f.error();
  const std::string email = lower((*f)["email"]);
  if (!valid_email(email)) return error_response(400, "invalid_email", "invalid email address");
  if (!valid_password((*f)["password"]))
    return error_response(400, "invalid_password", "password must be 12 to 1024 bytes long");
  if (auto denied = require_step_up(ctx)) return *denied;
  auto hash = hash_password((*f)["password"]);
  if (!hash) return from_error(hash.error());
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto exists = w.exec_params("SELECT 1 FROM users WHERE email = $1", email);
    if (!exists.empty()) return http_fail(409, "email_taken", "a user with this email exists");
    auto u = w.exec_params(
        "INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING id, " RAP_TS(
            "created_at"),
        email, *hash);
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .action = "user.created",
                        .target = "user:" + email});
    return json{{"user",
                 {{"id", u[0][0].as<std::string>()},
                  {"email", email},
                  {"is_platform_owner", false},
                  {"created_at", u[0][1].as<std::string>()}}}};
  });
  if (!r) {
    if (r.error().code == "conflict")
      return error_response(409, "email_taken", "a user with this email exists");
    return to_response(r.error());
  }
  return json_response(201, *r);
}

HttpResponse post_orgs(Ctx& ctx) {
  if (!ctx.caller->is_owner) return error_response(403, "forbidden", "not allowed for this user");
  auto f = parse_fields(ctx.req.body, {"slug", "name"});
  if (!f) return f.error();
  const std::string& slug = (*f)["slug"];
  const std::string& name = (*f)["name"];
  if (!valid_slug(slug))
    return error_response(400, "invalid_slug", "slug must match [a-z0-9-]{2,63}");
  if (name.empty() || name.size() > 200)
    return error_response(400, "invalid_name", "name must be 1 to 200 bytes long");
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto exists = w.exec_params("SELECT 1 FROM organizations WHERE slug = $1", slug);
    if (!exists.empty())
      return http_fail(409, "slug_taken", "an organization with this slug exists");
    auto rows = w.exec_params(
        "INSERT INTO organizations (slug, name) VALUES ($1, $2) "
        "RETURNING id, slug, name, " RAP_TS("created_at") " AS created_at",
        slug, name);
    const std::string oid = rows[0]["id"].as<std::string>();
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .org_id = oid,
                        .action = "org.created",
                        .target = "org:" + slug,
                        .details = json{{"name", name}}});
    return json{{"org", org_json(rows[0])}};
  });
  if (!r) {
    if (r.error().code == "conflict")
      return error_response(409, "slug_taken", "an organization with this slug exists");
    return to_response(r.error());
  }
  // Tell the other rap-control instances (a hint: they re-read PostgreSQL). Best effort.
  if (ctx.live != nullptr) {
    const json note{{"kind", "org.created"}, {"id", (*r)["org"]["id"]}};
    if (auto p = ctx.live->publish("platform", note.dump()); !p)
      spdlog::warn("org.created notification not published code={}", p.error().code);
  }
  return json_response(201, *r);
}
HttpResponse get_orgs(Ctx& ctx) {
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    json orgs = json::array();
    if (ctx.caller->is_owner) {
      auto rows = t.exec("SELECT id, slug, name, " RAP_TS(
          "created_at") " AS created_at FROM organizations ORDER BY slug");
      for (const auto& row : rows) orgs.push_back(org_json(row));
    } else {
      auto rows = t.exec_params(
            "SELECT o.id, o.slug, o.name, " RAP_TS("o.created_at") " AS created_at, m.role "
            "FROM organizations o JOIN memberships m ON m.org_id = o.id "
            "WHERE m.user_id = $1::uuid ORDER BY o.slug",
            ctx.caller->user_id);
      for (const auto& row : rows) {
        json o = org_json(row);
        o["role"] = row["role"].as<std::string>();
        orgs.push_back(std::move(o));
      }
    }
    return json{{"orgs", orgs}};
  });
  if (!r) return from_error(r.error());
  return json_response(200, *r);
}

HttpResponse get_org(Ctx& ctx) {
  std::string slug = ctx.param("slug");  // owned copy: used by DB work on another thread
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto v = find_org(t, *ctx.caller, slug);
    if (!v) return tl::unexpected(v.error());
    json out{{"org", v->org}};
    if (!v->role.empty()) out["role"] = v->role;
    if (ctx.caller->is_owner || v->role == "org_admin") {
      json members = json::array();
      auto rows = t.exec_params(
          "SELECT u.email, m.role FROM memberships m JOIN users u ON u.id = m.user_id "
          "WHERE m.org_id = $1::uuid ORDER BY u.email",
          v->id);
      for (const auto& row : rows)
        members.push_back(
            {{"email", row[0].as<std::string>()}, {"role", row[1].as<std::string>()}});
      out["members"] = members;
    }
    return out;
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

HttpResponse post_members(Ctx& ctx) {
  std::string slug = ctx.param("slug");  // owned copy: used by DB work on another thread
  auto f = parse_fields(ctx.req.body, {"email", "role"});
  // The body is parsed up front, but authorization (which needs the DB) is reported first.
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto v = find_org(w, *ctx.caller, slug);
    if (!v) return tl::unexpected(v.error());
    if (!ctx.caller->is_owner && v->role != "org_admin")
      return http_fail(403, "forbidden", "not allowed for this user");
    if (!f) return fail("passthrough", "request body rejected");
    const std::string email = lower((*f)["email"]);
    const std::string& role = (*f)["role"];
    if (role != "org_admin" && role != "org_member")
      return http_fail(400, "invalid_role", "role must be 'org_admin' or 'org_member'");
    if (!valid_email(email)) return http_fail(400, "invalid_email", "invalid email address");
    if (role == "org_admin" && !ctx.caller->elevated) return fail("step_up", "step-up required");
    auto u = w.exec_params("SELECT id FROM users WHERE email = $1", email);
    if (u.empty()) return http_fail(404, "user_not_found", "user not found");
    const std::string uid = u[0][0].as<std::string>();
    auto ins = w.exec_params(
        "INSERT INTO memberships (user_id, org_id, role) VALUES ($1::uuid, $2::uuid, $3) "
        "ON CONFLICT (user_id, org_id) DO NOTHING RETURNING " RAP_TS("created_at"),
        uid, v->id, role);
    if (ins.empty()) return http_fail(409, "already_member", "user is already a member");
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .org_id = v->id,
                        .action = "org.member_added",
                        .target = "user:" + email,
                        .details = json{{"role", role}}});
    return json{{"membership",
                 {{"org", slug},
                  {"email", email},
                  {"role", role},
                  {"created_at", ins[0][0].as<std::string>()}}}};
  });
  if (!r && r.error().code == "step_up") {
    if (auto denied = require_step_up(ctx)) return *denied;
  }
  if (!r) return r.error().code == "passthrough" ? f.error() : to_response(r.error());
  return json_response(201, *r);
}

HttpResponse get_audit(Ctx& ctx) {
  auto q = ctx.query;
  int limit = 100;
  if (auto it = q.find("limit"); it != q.end()) {
    auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), limit);
    if (ec != std::errc() || p != it->second.data() + it->second.size() || limit < 1 ||
        limit > 1000)
      return error_response(400, "invalid_limit", "limit must be 1..1000");
  }
  for (const auto& [k, v] : q) {
    if (k != "org" && k != "limit")
      return error_response(400, "invalid_request", "unknown query parameter");
  }
  const auto org_it = q.find("org");
  if (!ctx.caller->is_owner && org_it == q.end())
    return error_response(403, "forbidden", "organization admins must pass ?org=<slug>");
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    std::string org_id;
    if (org_it != q.end()) {
      auto v = find_org(t, *ctx.caller, org_it->second);
      if (!v) return tl::unexpected(v.error());
      if (!ctx.caller->is_owner && v->role != "org_admin")
        return http_fail(403, "forbidden", "not allowed for this user");
      org_id = v->id;
    }
    RAP_ASSERT(ctx.caller->is_owner || !org_id.empty());
    auto rows = t.exec_params(
          "SELECT a.id, " RAP_TS("a.at") ", u.email, o.slug, a.action, a.target, a.details::text "
          "FROM audit_events a LEFT JOIN users u ON u.id = a.actor_user_id "
          "LEFT JOIN organizations o ON o.id = a.org_id "
          "WHERE ($1 = '' OR a.org_id = NULLIF($1, '')::uuid) ORDER BY a.id DESC LIMIT $2",
          org_id, limit);
    json events = json::array();
    for (const auto& row : rows) {
      events.push_back(
          {{"id", row[0].as<long long>()},
           {"at", row[1].as<std::string>()},
           {"actor", row[2].is_null() ? json(nullptr) : json(row[2].as<std::string>())},
           {"org", row[3].is_null() ? json(nullptr) : json(row[3].as<std::string>())},
           {"action", row[4].as<std::string>()},
           {"target", row[5].as<std::string>()},
           {"details", json::parse(row[6].as<std::string>(), nullptr, false)}});
    }
    return json{{"events", events}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

HttpResponse get_audit_verify(Ctx& ctx) {
  if (!ctx.caller->is_owner) return error_response(403, "forbidden", "not allowed for this user");
  auto r = verify_audit_chain(ctx.db);
  if (!r) return to_response(r.error());
  json out{{"ok", r->ok}, {"events", r->events}, {"head_hash", r->head_hash}};
  if (!r->ok) {
    out["first_bad_id"] = r->first_bad_id;
    out["problem"] = r->problem;
    spdlog::error("audit chain verification failed first_bad_id={} problem={}", r->first_bad_id,
                  r->problem);
  }
  return json_response(200, out);
}

}  // namespace

void register_identity_routes(Router& r) {
  r.add("POST", "/api/v1/setup", Auth::kNone, post_setup);
  r.add("POST", "/api/v1/login", Auth::kNone, post_login);
  r.add("POST", "/api/v1/logout", Auth::kUser, post_logout);
  r.add("POST", "/api/v1/users", Auth::kUser, post_users);
  r.add("GET", "/api/v1/orgs", Auth::kUser, get_orgs);
  r.add("POST", "/api/v1/orgs", Auth::kUser, post_orgs);
  r.add("GET", "/api/v1/orgs/{slug}", Auth::kUser, get_org);
  r.add("POST", "/api/v1/orgs/{slug}/members", Auth::kUser, post_members);
  r.add("GET", "/api/v1/audit", Auth::kUser, get_audit);
  r.add("GET", "/api/v1/audit/verify", Auth::kUser, get_audit_verify);
}

}  // namespace rap::control::detail
