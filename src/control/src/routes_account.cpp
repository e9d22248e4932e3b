// The caller's own account: profile (GET /api/v1/me), TOTP enrollment, step-up authentication and
// API tokens for automation.
//
// Security model:
//  * TOTP (RFC 6238, totp.h): the secret is stored sealed with the master key (cluster_ca.h) and
//    shown once, by the enrollment call, never again. Once confirmed, login and step-up need a
//    code, and a code's time step is accepted only once (user_totp.last_used_step only moves
//    forward, under a row lock).
//  * Step-up: POST /api/v1/auth/step-up re-checks the password (and TOTP) and marks the calling
//    session elevated for kStepUpTtlSeconds; failures are throttled per user like logins.
//    require_step_up() (api_common.cpp) gates high-risk actions.
//  * API tokens: raw value shown once, stored as SHA-256; creating one requires an elevated
//    session, so an "admin"-scope token counts as elevated; "read" tokens may only GET, and a
//    token created with "org" reaches only that organization's routes and GET /api/v1/me (both
//    enforced in api.cpp at dispatch).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>

#include "api_internal.h"
#include "cluster_ca.h"
#include "rap/control/auth.h"
#include "rap/control/totp.h"

namespace rap::control::detail {

namespace {

constexpr std::int64_t kStepUpTtlSeconds = 600;  // 10 minutes
constexpr std::int64_t kMaxActiveApiTokens = 50;
constexpr const char* kTotpIssuer = "RAP";

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The TOTP secret bytes from a user_totp.secret_sealed value.
Result<std::vector<std::uint8_t>> unseal_totp_secret(std::string_view master_key,
                                                     const std::string& sealed_hex) {
  if (master_key.empty())
    return http_fail(503, "master_key_unavailable", "the master key is not configured");
  std::string sealed(sealed_hex.size() / 2, '\0');
  if (sealed_hex.size() % 2 != 0 ||
      !parse_hex(sealed_hex,
                 std::span(reinterpret_cast<std::uint8_t*>(sealed.data()), sealed.size())))
    return fail("internal", "stored TOTP secret is not hex");
  auto b32 = open_secret(master_key, sealed);
  if (!b32) return fail("internal", "stored TOTP secret cannot be unsealed: " + b32.error().code);
  return totp::base32_decode(*b32);
}

// Step-up throttling (like login, through LiveState): failed step-ups per user in a fixed window,
// so a stolen session cannot brute-force the password or the TOTP code. Fails open on Redis
// errors (Argon2 still bounds the rate).
std::string step_up_bucket(const Ctx& ctx) {
  return "step-up:" + ctx.caller->user_id;
}

std::optional<HttpResponse> step_up_throttled(Ctx& ctx) {
  if (ctx.live == nullptr) return std::nullopt;
  auto n = ctx.live->rate_peek("platform", step_up_bucket(ctx));
  if (!n || n->count < ctx.opts.login_max_failures) return std::nullopt;
  HttpResponse r = error_response(429, "rate_limited", "too many failed step-ups, try again later");
  r.retry_after_seconds =
      static_cast<int>(std::max<std::int64_t>(1, (n->reset_in.count() + 999) / 1000));
  return r;
}

void step_up_failed(Ctx& ctx) {
  if (ctx.live == nullptr) return;
  (void)ctx.live->rate_hit("platform", step_up_bucket(ctx), ctx.opts.login_failure_window);
}

std::optional<HttpResponse> require_session(const Ctx& ctx) {
  if (ctx.caller->token_kind == "session") return std::nullopt;
  return error_response(403, "session_required",
                        "this action requires an interactive session, not an API token");
}

json token_json(const pqxx::row& r) {
  auto ts = [&](const char* col) {
    return r[col].is_null() ? json(nullptr) : json(r[col].as<std::string>());
  };
  return json{{"id", r["id"].as<std::int64_t>()},      {"name", r["name"].as<std::string>()},
              {"scope", r["scope"].as<std::string>()}, {"created_at", ts("created_at")},
              {"expires_at", ts("expires_at")},        {"last_used_at", ts("last_used_at")},
              {"revoked_at", ts("revoked_at")},        {"org", ts("org")}};
}

// Columns of an API token row for token_json (org: slug of the restricting organization).
#define RAP_TOKEN_COLS \
  "id, name, scope, (SELECT slug FROM organizations WHERE id = org_id) AS org, " RAP_TS( \
      "created_at") " AS created_at, " RAP_TS("expires_at") " AS expires_at, " RAP_TS(   \
      "last_used_at") " AS last_used_at, " RAP_TS("revoked_at") " AS revoked_at"

// ---------------- profile ----------------

HttpResponse get_me(Ctx& ctx) {
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto u = t.exec_params(
        "SELECT u.id, u.email, u.is_platform_owner, " RAP_TS("u.created_at") ", "
        "COALESCE((SELECT confirmed FROM user_totp WHERE user_id = u.id), false), "
        "(SELECT " RAP_TS("elevated_until") " FROM api_tokens "
        " WHERE id = $2 AND elevated_until > now()) "
        "FROM users u WHERE u.id = $1::uuid",
        ctx.caller->user_id, ctx.caller->token_id);
    if (u.empty()) return http_fail(401, "invalid_token", "invalid or expired token");
    json orgs = json::array();
    for (const auto& row :
         t.exec_params("SELECT o.slug, o.name, m.role FROM memberships m "
                       "JOIN organizations o ON o.id = m.org_id WHERE m.user_id = $1::uuid "
                       "AND ($2 = '' OR o.slug = $2) ORDER BY o.slug",
                       ctx.caller->user_id, ctx.caller->token_org)) {
      orgs.push_back({{"slug", row[0].as<std::string>()},
                      {"name", row[1].as<std::string>()},
                      {"role", row[2].as<std::string>()}});
    }
    json roles = json::array();
    if (u[0][2].as<bool>()) roles.push_back("platform_owner");
    json token{{"kind", ctx.caller->token_kind}, {"elevated", ctx.caller->elevated}};
    if (!ctx.caller->token_scope.empty()) token["scope"] = ctx.caller->token_scope;
    if (!ctx.caller->token_org.empty()) token["org"] = ctx.caller->token_org;
    token["elevated_until"] = u[0][5].is_null() ? json(nullptr) : json(u[0][5].as<std::string>());
    return json{{"user",
                 {{"id", u[0][0].as<std::string>()},
                  {"email", u[0][1].as<std::string>()},
                  {"is_platform_owner", u[0][2].as<bool>()},
                  {"created_at", u[0][3].as<std::string>()}}},
                {"roles", roles},
                {"orgs", orgs},
                {"totp_enabled", u[0][4].as<bool>()},
                {"token", token}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

// ---------------- TOTP ----------------

HttpResponse post_totp_enroll(Ctx& ctx) {
  if (auto bad = require_session(ctx)) return *bad;
  if (auto j = parse_object(ctx.req.body.empty() ? "{}" : ctx.req.body); !j) {
    return j.error();
  } else if (auto bad = reject_unknown_fields(*j, {})) {
    return *bad;
  }
  // A stolen session must not be able to bind its own second factor to the account.
  if (auto denied = require_step_up(ctx)) return *denied;
  if (ctx.opts.master_key.empty())
    return error_response(503, "master_key_unavailable", "the master key is not configured");
  std::array<std::uint8_t, totp::kSecretBytes> raw{};
  ctx.random_bytes(raw);
  const std::string secret = totp::base32_encode(raw);
  FnRandom rng(ctx.random_bytes);
  const std::string sealed = seal_secret(ctx.opts.master_key, secret, rng);
  const std::string sealed_hex =
      to_hex(std::span(reinterpret_cast<const std::uint8_t*>(sealed.data()), sealed.size()));
  auto r = ctx.db.with_transaction<void>([&](pqxx::work& w) -> Result<void> {
    auto ins = w.exec_params(
        "INSERT INTO user_totp (user_id, secret_sealed, key_id) VALUES ($1::uuid, $2, $3) "
        "ON CONFLICT (user_id) DO UPDATE SET secret_sealed = EXCLUDED.secret_sealed, "
        "key_id = EXCLUDED.key_id, created_at = now(), last_used_step = NULL "
        "WHERE NOT user_totp.confirmed RETURNING user_id",
        ctx.caller->user_id, sealed_hex, master_key_id(ctx.opts.master_key));
    if (ins.empty()) return http_fail(409, "totp_already_enabled", "TOTP is already enabled");
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .action = "auth.totp_enrollment_started",
                        .target = "user:" + ctx.caller->email});
    return {};
  });
  if (!r) return to_response(r.error());
  return json_response(
      201, json{{"secret_base32", secret},
                {"otpauth_uri", totp::otpauth_uri(kTotpIssuer, ctx.caller->email, secret)}});
}

HttpResponse post_totp_confirm(Ctx& ctx) {
  if (auto bad = require_session(ctx)) return *bad;
  auto f = parse_fields(ctx.req.body, {"code"});
  if (!f) return f.error();
  const std::string code = (*f)["code"];
  auto r = ctx.db.with_transaction<void>([&](pqxx::work& w) -> Result<void> {
    auto rows = w.exec_params(
        "SELECT secret_sealed, confirmed, last_used_step FROM user_totp "
        "WHERE user_id = $1::uuid FOR UPDATE",
        ctx.caller->user_id);
    if (rows.empty()) return http_fail(404, "totp_not_enrolled", "start TOTP enrollment first");
    if (rows[0][1].as<bool>())
      return http_fail(409, "totp_already_enabled", "TOTP is already enabled");
    auto secret = unseal_totp_secret(ctx.opts.master_key, rows[0][0].as<std::string>());
    if (!secret) return tl::unexpected(secret.error());
    const std::optional<std::int64_t> last =
        rows[0][2].is_null() ? std::nullopt
                             : std::optional<std::int64_t>(rows[0][2].as<std::int64_t>());
    const auto step = totp::verify(*secret, code, unix_now(), last);
    if (!step) return http_fail(400, "invalid_totp", "invalid TOTP code");
    w.exec_params(
        "UPDATE user_totp SET confirmed = true, confirmed_at = now(), last_used_step = $2 "
        "WHERE user_id = $1::uuid",
        ctx.caller->user_id, *step);
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .action = "auth.totp_enabled",
                        .target = "user:" + ctx.caller->email});
    return {};
  });
  if (!r) return to_response(r.error());
  return json_response(200, json{{"totp_enabled", true}});
}

// ---------------- step-up ----------------

HttpResponse post_step_up(Ctx& ctx) {
  if (auto bad = require_session(ctx)) return *bad;
  auto body = parse_object(ctx.req.body);
  if (!body) return body.error();
  auto password = req_string(*body, "password");
  if (!password) return password.error();
  auto code = opt_string(*body, "totp_code");
  if (!code) return code.error();
  if (auto bad = reject_unknown_fields(*body, {"password", "totp_code"})) return *bad;
  if (auto limited = step_up_throttled(ctx)) return *limited;

  auto hash = ctx.db.with_connection<std::string>([&](pqxx::connection& c) -> Result<std::string> {
    pqxx::read_transaction t(c);
    auto rows =
        t.exec_params("SELECT password_hash FROM users WHERE id = $1::uuid", ctx.caller->user_id);
    if (rows.empty()) return http_fail(401, "invalid_token", "invalid or expired token");
    return rows[0][0].as<std::string>();
  });
  if (!hash) return to_response(hash.error());
  const AuditEvent denied{.actor_user_id = ctx.caller->user_id,
                          .action = "auth.step_up",
                          .target = "token:" + std::to_string(ctx.caller->token_id),
                          .outcome = "denied"};
  if (!verify_password(*hash, *password)) {
    step_up_failed(ctx);
    AuditEvent e = denied;
    e.details = json{{"reason", "invalid password"}};
    audit_standalone(ctx.db, e);
    return error_response(401, "invalid_credentials", "invalid password");
  }
  auto r = ctx.db.with_transaction<std::string>([&](pqxx::work& w) -> Result<std::string> {
    if (auto second = check_second_factor(w, ctx.opts.master_key, ctx.caller->user_id, *code);
        !second)
      return tl::unexpected(second.error());
    auto rows = w.exec_params(
        "UPDATE api_tokens SET elevated_until = now() + make_interval(secs => $2) "
        "WHERE id = $1 AND kind = 'session' AND revoked_at IS NULL RETURNING " RAP_TS(
            "elevated_until"),
        ctx.caller->token_id, kStepUpTtlSeconds);
    if (rows.empty()) return http_fail(401, "invalid_token", "invalid or expired token");
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .action = "auth.step_up",
                        .target = "token:" + std::to_string(ctx.caller->token_id)});
    return rows[0][0].as<std::string>();
  });
  if (!r) {
    if (r.error().code.rfind("http:401:totp", 0) == 0 ||
        r.error().code.rfind("http:401:invalid_totp", 0) == 0) {
      step_up_failed(ctx);
      AuditEvent e = denied;
      e.details = json{{"reason", r.error().message}};
      audit_standalone(ctx.db, e);
    }
    return to_response(r.error());
  }
  return json_response(200, json{{"elevated_until", *r}});
}

// ---------------- API tokens ----------------

HttpResponse post_tokens(Ctx& ctx) {
  if (auto bad = require_session(ctx)) return *bad;
  auto body = parse_object(ctx.req.body);
  if (!body) return body.error();
  auto name = req_string(*body, "name");
  if (!name) return name.error();
  auto scope = req_string(*body, "scope");
  if (!scope) return scope.error();
  auto ttl = opt_int(*body, "ttl_days");
  if (!ttl) return ttl.error();
  auto org = opt_string(*body, "org");
  if (!org) return org.error();
  if (auto bad = reject_unknown_fields(*body, {"name", "ttl_days", "scope", "org"})) return *bad;
  if (!*ttl) return error_response(400, "invalid_request", "missing field 'ttl_days'");
  if (!valid_name(*name))
    return error_response(400, "invalid_name", "name must be 1 to 100 bytes, no control chars");
  if (**ttl < 1 || **ttl > 365)
    return error_response(400, "invalid_ttl", "ttl_days must be 1..365");
  if (*scope != "read" && *scope != "admin")
    return error_response(400, "invalid_scope", "scope must be 'read' or 'admin'");
  if (auto denied = require_step_up(ctx)) return *denied;

  const std::string token = ctx.random_token();
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto n = w.exec_params(
        "SELECT count(*) FROM api_tokens WHERE user_id = $1::uuid AND kind = 'api' "
        "AND revoked_at IS NULL AND expires_at > now()",
        ctx.caller->user_id);
    if (n[0][0].as<std::int64_t>() >= kMaxActiveApiTokens)
      return http_fail(409, "too_many_tokens", "revoke an API token first (limit 50)");
    // Optional restriction to one organization the caller can see (else 404 org_not_found).
    std::string org_id;
    if (*org) {
      auto v = find_org(w, *ctx.caller, **org);
      if (!v) return tl::unexpected(v.error());
      org_id = v->id;
    }
    auto rows = w.exec_params(
        "INSERT INTO api_tokens (user_id, token_sha256, kind, name, scope, org_id, expires_at) "
        "VALUES ($1::uuid, $2, 'api', $3, $4, NULLIF($5, '')::uuid, "
        "now() + make_interval(days => $6)) RETURNING " RAP_TOKEN_COLS,
        ctx.caller->user_id, token_sha256(token), *name, *scope, org_id, static_cast<int>(**ttl));
    json t = token_json(rows[0]);
    audit(w,
          AuditEvent{.actor_user_id = ctx.caller->user_id,
                     .action = "api_token.created",
                     .target = "token:" + std::to_string(t["id"].get<std::int64_t>()),
                     .details = json{{"name", *name},
                                     {"scope", *scope},
                                     {"org", *org ? json(**org) : json(nullptr)},
                                     {"ttl_days", **ttl},
                                     {"token_sha256_prefix", token_sha256(token).substr(0, 12)}}});
    return json{{"token", token}, {"api_token", t}};
  });
  if (!r) return to_response(r.error());
  return json_response(201, *r);
}

HttpResponse get_tokens(Ctx& ctx) {
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    json out = json::array();
    for (const auto& row :
         t.exec_params("SELECT " RAP_TOKEN_COLS " FROM api_tokens WHERE user_id = $1::uuid AND "
                       "kind = 'api' ORDER BY id",
                       ctx.caller->user_id)) {
      out.push_back(token_json(row));
    }
    return json{{"tokens", out}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

HttpResponse delete_token(Ctx& ctx) {
  const std::string& id_text = ctx.param("id");
  std::int64_t id = 0;
  const auto [p, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
  if (ec != std::errc() || p != id_text.data() + id_text.size() || id <= 0)
    return error_response(404, "token_not_found", "API token not found");
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto rows = w.exec_params(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND user_id = $2::uuid "
        "AND kind = 'api' AND revoked_at IS NULL RETURNING " RAP_TOKEN_COLS,
        id, ctx.caller->user_id);
    if (rows.empty()) return http_fail(404, "token_not_found", "API token not found");
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .action = "api_token.revoked",
                        .target = "token:" + std::to_string(id)});
    return json{{"api_token", token_json(rows[0])}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

}  // namespace

Result<bool> check_second_factor(pqxx::work& w, std::string_view master_key,
                                 const std::string& user_id,
                                 const std::optional<std::string>& code) {
  auto rows = w.exec_params(
      "SELECT secret_sealed, last_used_step FROM user_totp "
      "WHERE user_id = $1::uuid AND confirmed FOR UPDATE",
      user_id);
  if (rows.empty()) return false;
  if (!code || code->empty())
    return http_fail(401, "totp_required", "a TOTP code is required for this account");
  auto secret = unseal_totp_secret(master_key, rows[0][0].as<std::string>());
  if (!secret) return tl::unexpected(secret.error());
  const std::optional<std::int64_t> last =
      rows[0][1].is_null() ? std::nullopt
                           : std::optional<std::int64_t>(rows[0][1].as<std::int64_t>());
  const auto step = totp::verify(*secret, *code, unix_now(), last);
  if (!step) return http_fail(401, "invalid_totp", "invalid or already used TOTP code");
  // The row is locked (FOR UPDATE): concurrent uses of the same code serialize here and the
  // second one sees the new last_used_step.
  w.exec_params("UPDATE user_totp SET last_used_step = $2 WHERE user_id = $1::uuid", user_id,
                *step);
  return true;
}

void register_account_routes(Router& r) {
  r.add("GET", "/api/v1/me", Auth::kUser, get_me);
  r.add("POST", "/api/v1/me/totp/enroll", Auth::kUser, post_totp_enroll);
  r.add("POST", "/api/v1/me/totp/confirm", Auth::kUser, post_totp_confirm);
  r.add("POST", "/api/v1/auth/step-up", Auth::kUser, post_step_up);
  r.add("GET", "/api/v1/me/tokens", Auth::kUser, get_tokens);
  r.add("POST", "/api/v1/me/tokens", Auth::kUser, post_tokens);
  r.add("DELETE", "/api/v1/me/tokens/{id}", Auth::kUser, delete_token);
}

}  // namespace rap::control::detail
