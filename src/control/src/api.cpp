#include "rap/control/api.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <sstream>

#include "rap/common/log.h"
#include "rap/control/auth.h"
#include "rap/control/migrations.h"

namespace rap::control {

using json = nlohmann::json;

namespace {

// Timestamps leave the database as RFC 3339 UTC strings.
#define RAP_TS(col) "to_char((" col ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

constexpr std::int64_t kSetupLockKey = 0x7261705f73657475;  // "rap_setu"

HttpResponse json_response(int status, const json& j) {
  HttpResponse r;
  r.status = status;
  r.body = j.dump();
  return r;
}

HttpResponse error_response(int status, const std::string& code, const std::string& message) {
  HttpResponse r;
  r.status = status;
  r.body = error_body(code, message);
  return r;
}

// Maps an infrastructure error from the DB layer to an HTTP response. Details of database errors
// go to the log, not to the client.
HttpResponse from_error(const Error& e) {
  if (e.code == "db_timeout" || e.code == "db_unavailable") {
    spdlog::warn("database unavailable code={} msg={}", e.code, e.message);
    return error_response(503, "unavailable", "database temporarily unavailable");
  }
  if (e.code == "conflict") return error_response(409, "conflict", "resource already exists");
  spdlog::error("internal error code={} msg={}", e.code, e.message);
  return error_response(500, "internal", "internal error");
}

// The result of a handler step: either a value or an HTTP error response.
template <class T>
using Step = tl::expected<T, HttpResponse>;

HttpResponse to_response(const Error& e) {
  // Errors created by handlers carry "http:<status>:<code>" in `code` to pass through the DB layer.
  if (e.code.rfind("http:", 0) == 0) {
    const auto second = e.code.find(':', 5);
    int status = 500;
    std::from_chars(e.code.data() + 5, e.code.data() + second, status);
    return error_response(status, e.code.substr(second + 1), e.message);
  }
  return from_error(e);
}

tl::unexpected<Error> http_fail(int status, const std::string& code, const std::string& message) {
  return fail("http:" + std::to_string(status) + ":" + code, message);
}

// Parses a JSON object whose members are exactly `keys`, all strings.
Step<std::map<std::string, std::string>> parse_fields(const std::string& body,
                                                      std::initializer_list<const char*> keys) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return tl::unexpected(error_response(400, "malformed_json", "request body is not valid JSON"));
  }
  if (!j.is_object()) {
    return tl::unexpected(
        error_response(400, "invalid_request", "request body must be a JSON object"));
  }
  std::map<std::string, std::string> out;
  for (const char* k : keys) {
    auto it = j.find(k);
    if (it == j.end()) {
      return tl::unexpected(
          error_response(400, "invalid_request", std::string("missing field '") + k + "'"));
    }
    if (!it->is_string()) {
      return tl::unexpected(error_response(400, "invalid_request",
                                           std::string("field '") + k + "' must be a string"));
    }
    out[k] = it->get<std::string>();
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (out.find(it.key()) == out.end()) {
      return tl::unexpected(
          error_response(400, "invalid_request", "unknown field in request body"));
    }
  }
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

void audit(pqxx::work& w, const std::string& actor_id, const std::string& org_id,
           const std::string& action, const std::string& target, const json& details) {
  w.exec_params(
      "INSERT INTO audit_events (actor_user_id, org_id, action, target, details) "
      "VALUES (NULLIF($1, '')::uuid, NULLIF($2, '')::uuid, $3, $4, $5::jsonb)",
      actor_id, org_id, action, target, details.dump());
}

std::map<std::string, std::string> parse_query(std::string_view q) {
  std::map<std::string, std::string> out;
  while (!q.empty()) {
    const auto amp = q.find('&');
    const std::string_view part = q.substr(0, amp);
    const auto eq = part.find('=');
    if (eq != std::string_view::npos) {
      out[std::string(part.substr(0, eq))] = std::string(part.substr(eq + 1));
    } else if (!part.empty()) {
      out[std::string(part)] = "";
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const auto slash = path.find('/');
    out.emplace_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash);
  }
  return out;
}

json org_json(const pqxx::row& r) {
  return json{{"id", r["id"].as<std::string>()},
              {"slug", r["slug"].as<std::string>()},
              {"name", r["name"].as<std::string>()},
              {"created_at", r["created_at"].as<std::string>()}};
}

}  // namespace

std::string error_body(const std::string& code, const std::string& message) {
  return json{{"error", {{"code", code}, {"message", message}}}}.dump();
}

struct Api::Caller {
  std::string user_id;
  std::string email;
  bool is_owner = false;
  std::string token_hash;
};

Api::Api(Db& db, Random& rng, ApiOptions opts) : db_(db), rng_(rng), opts_(opts) {}

void Api::record(const std::string& route, const std::string& method, int status) {
  std::lock_guard g(metrics_mu_);
  ++requests_[{route, method, status}];
}

std::string Api::render_metrics() {
  std::ostringstream o;
  o << "# HELP rap_control_http_requests_total HTTP requests by route, method and status.\n"
    << "# TYPE rap_control_http_requests_total counter\n";
  {
    std::lock_guard g(metrics_mu_);
    for (const auto& [k, n] : requests_) {
      o << "rap_control_http_requests_total{route=\"" << std::get<0>(k) << "\",method=\""
        << std::get<1>(k) << "\",status=\"" << std::get<2>(k) << "\"} " << n << "\n";
    }
  }
  o << "# HELP rap_control_db_pool_in_use Database connections currently leased.\n"
    << "# TYPE rap_control_db_pool_in_use gauge\n"
    << "rap_control_db_pool_in_use " << db_.pool().in_use() << "\n"
    << "# HELP rap_control_db_pool_open Database connections open (idle + leased).\n"
    << "# TYPE rap_control_db_pool_open gauge\n"
    << "rap_control_db_pool_open " << db_.pool().open() << "\n"
    << "# HELP rap_control_db_pool_max Maximum database connections.\n"
    << "# TYPE rap_control_db_pool_max gauge\n"
    << "rap_control_db_pool_max " << db_.pool().max_size() << "\n";
  return o.str();
}

HttpResponse Api::handle(const HttpRequest& req) {
  std::string route = "unmatched";
  HttpResponse res;
  try {
    res = dispatch(req, route);
  } catch (...) {
    res = from_error(error_from_current_exception());
  }
  record(route, req.method, res.status);
  return res;
}

HttpResponse Api::dispatch(const HttpRequest& req, std::string& route) {
  const auto qpos = req.target.find('?');
  const std::string path = req.target.substr(0, qpos);
  const std::string query = qpos == std::string::npos ? "" : req.target.substr(qpos + 1);
  const auto seg = split_path(path);
  const std::string& m = req.method;

  auto method_not_allowed = [&](const char* allow) {
    HttpResponse r = error_response(405, "method_not_allowed", "method not allowed for this route");
    r.allow = allow;
    return r;
  };

  // ---- authentication helper ----
  auto authenticate = [&]() -> Step<Caller> {
    std::string_view h = req.authorization;
    if (h.empty()) {
      return tl::unexpected(error_response(401, "unauthenticated", "missing bearer token"));
    }
    if (h.size() < 7 || lower(std::string(h.substr(0, 7))) != "bearer ") {
      return tl::unexpected(error_response(401, "invalid_token", "expected 'Bearer <token>'"));
    }
    std::string_view tok = h.substr(7);
    while (!tok.empty() && tok.front() == ' ') tok.remove_prefix(1);
    if (!valid_token_shape(tok)) {
      return tl::unexpected(error_response(401, "invalid_token", "invalid or expired token"));
    }
    const std::string hash = token_sha256(tok);
    // Lookup by the token's hash: the server never compares raw token bytes.
    auto r = db_.with_connection<std::optional<Caller>>(
        [&](pqxx::connection& c) -> Result<std::optional<Caller>> {
          pqxx::read_transaction t(c);
          auto rows = t.exec_params(
              "SELECT u.id, u.email, u.is_platform_owner FROM api_tokens t "
              "JOIN users u ON u.id = t.user_id "
              "WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL AND t.expires_at > now()",
              hash);
          if (rows.empty()) return std::optional<Caller>();
          return std::optional<Caller>(Caller{rows[0][0].as<std::string>(),
                                              rows[0][1].as<std::string>(), rows[0][2].as<bool>(),
                                              hash});
        });
    if (!r) return tl::unexpected(from_error(r.error()));
    if (!*r)
      return tl::unexpected(error_response(401, "invalid_token", "invalid or expired token"));
    return **r;
  };

  auto forbidden = [] { return error_response(403, "forbidden", "not allowed for this user"); };

  // ---- /healthz ----
  if (seg.size() == 1 && seg[0] == "healthz") {
    route = "/healthz";
    if (m != "GET") return method_not_allowed("GET");
    auto r = db_.with_connection<void>([](pqxx::connection& c) -> Result<void> {
      pqxx::nontransaction t(c);
      t.exec("SELECT 1");
      return {};
    });
    if (!r) {
      spdlog::warn("healthz: database check failed code={}", r.error().code);
      return json_response(503, json{{"status", "degraded"}, {"db", "unavailable"}});
    }
    return json_response(200, json{{"status", "ok"}, {"db", "ok"}});
  }
  if (seg.size() == 1 && seg[0] == "metrics") {
    route = "/metrics";
    if (m != "GET") return method_not_allowed("GET");
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = render_metrics();
    return r;
  }
  if (seg.size() < 3 || seg[0] != "api" || seg[1] != "v1") {
    return error_response(404, "not_found", "no such route");
  }
  const std::string& res = seg[2];

  // ---- POST /api/v1/setup ----
  if (seg.size() == 3 && res == "setup") {
    route = "/api/v1/setup";
    if (m != "POST") return method_not_allowed("POST");
    auto f = parse_fields(req.body, {"setup_token", "email", "password"});
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
    if (auto pre = db_.with_transaction<void>(check); !pre) return to_response(pre.error());
    auto hash = hash_password(password);
    if (!hash) return from_error(hash.error());
    auto r = db_.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
      if (auto c = check(w); !c) return tl::unexpected(c.error());
      auto u = w.exec_params(
          "INSERT INTO users (email, password_hash, is_platform_owner) VALUES ($1, $2, true) "
          "RETURNING id, " RAP_TS("created_at"),
          email, *hash);
      const std::string uid = u[0][0].as<std::string>();
      w.exec("UPDATE setup_state SET setup_token_sha256 = NULL, completed_at = now() WHERE id");
      audit(w, uid, "", "platform.setup_completed", "user:" + email, json::object());
      return json{{"user",
                   {{"id", uid},
                    {"email", email},
                    {"is_platform_owner", true},
                    {"created_at", u[0][1].as<std::string>()}}}};
    });
    if (!r) return to_response(r.error());
    spdlog::info("platform setup completed owner_email_sha256={}",
                 token_sha256(email).substr(0, 16));
    return json_response(201, *r);
  }

  // ---- POST /api/v1/login ----
  if (seg.size() == 3 && res == "login") {
    route = "/api/v1/login";
    if (m != "POST") return method_not_allowed("POST");
    auto f = parse_fields(req.body, {"email", "password"});
    if (!f) return f.error();
    const std::string email = lower((*f)["email"]);
    const std::string& password = (*f)["password"];
    auto user = db_.with_connection<std::optional<std::pair<std::string, std::string>>>(
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
    if (!ok) return error_response(401, "invalid_credentials", "invalid email or password");
    std::string token;
    {
      std::lock_guard g(rng_mu_);
      token = random_token_hex(rng_);
    }
    const std::string uid = (*user)->first;
    auto r = db_.with_transaction<std::string>([&](pqxx::work& w) -> Result<std::string> {
      auto rows = w.exec_params(
          "INSERT INTO api_tokens (user_id, token_sha256, kind, expires_at) "
          "VALUES ($1::uuid, $2, 'session', now() + make_interval(secs => $3)) "
          "RETURNING id, " RAP_TS("expires_at"),
          uid, token_sha256(token), static_cast<long long>(opts_.session_ttl.count()));
      audit(w, uid, "", "auth.login", "token:" + rows[0][0].as<std::string>(), json::object());
      return rows[0][1].as<std::string>();
    });
    if (!r) return from_error(r.error());
    return json_response(200, json{{"token", token}, {"expires_at", *r}});
  }

  // Everything below requires a bearer token.
  auto known_route = [&]() -> std::optional<std::pair<std::string, const char*>> {
    if (res == "logout" && seg.size() == 3) return std::make_pair("/api/v1/logout", "POST");
    if (res == "users" && seg.size() == 3) return std::make_pair("/api/v1/users", "POST");
    if (res == "audit" && seg.size() == 3) return std::make_pair("/api/v1/audit", "GET");
    if (res == "orgs" && seg.size() == 3) return std::make_pair("/api/v1/orgs", "GET, POST");
    if (res == "orgs" && seg.size() == 4) return std::make_pair("/api/v1/orgs/{slug}", "GET");
    if (res == "orgs" && seg.size() == 5 && seg[4] == "members")
      return std::make_pair("/api/v1/orgs/{slug}/members", "POST");
    return std::nullopt;
  }();
  if (!known_route) return error_response(404, "not_found", "no such route");
  route = known_route->first;
  {
    // Exact token match against the comma-separated Allow list.
    const std::string allow = std::string(", ") + known_route->second + ",";
    if (m.empty() || allow.find(", " + m + ",") == std::string::npos)
      return method_not_allowed(known_route->second);
  }
  auto caller_r = authenticate();
  if (!caller_r) return caller_r.error();
  const Caller& caller = *caller_r;

  // ---- POST /api/v1/logout ----
  if (route == "/api/v1/logout") {
    auto r = db_.with_transaction<void>([&](pqxx::work& w) -> Result<void> {
      auto rows = w.exec_params(
          "UPDATE api_tokens SET revoked_at = now() WHERE token_sha256 = $1 AND revoked_at IS NULL "
          "RETURNING id",
          caller.token_hash);
      if (!rows.empty()) {
        audit(w, caller.user_id, "", "auth.logout", "token:" + rows[0][0].as<std::string>(),
              json::object());
      }
      return {};
    });
    if (!r) return from_error(r.error());
    return json_response(200, json{{"status", "logged_out"}});
  }

  // ---- POST /api/v1/users ----
  if (route == "/api/v1/users") {
    if (!caller.is_owner) return forbidden();
    auto f = parse_fields(req.body, {"email", "password"});
    if (!f) return f.error();
    const std::string email = lower((*f)["email"]);
    if (!valid_email(email)) return error_response(400, "invalid_email", "invalid email address");
    if (!valid_password((*f)["password"]))
      return error_response(400, "invalid_password", "password must be 12 to 1024 bytes long");
    auto hash = hash_password((*f)["password"]);
    if (!hash) return from_error(hash.error());
    auto r = db_.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
      auto exists = w.exec_params("SELECT 1 FROM users WHERE email = $1", email);
      if (!exists.empty()) return http_fail(409, "email_taken", "a user with this email exists");
      auto u = w.exec_params(
          "INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING id, " RAP_TS(
              "created_at"),
          email, *hash);
      audit(w, caller.user_id, "", "user.created", "user:" + email, json::object());
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

  // ---- /api/v1/orgs ----
  if (route == "/api/v1/orgs" && m == "POST") {
    if (!caller.is_owner) return forbidden();
    auto f = parse_fields(req.body, {"slug", "name"});
    if (!f) return f.error();
    const std::string& slug = (*f)["slug"];
    const std::string& name = (*f)["name"];
    if (!valid_slug(slug))
      return error_response(400, "invalid_slug", "slug must match [a-z0-9-]{2,63}");
    if (name.empty() || name.size() > 200)
      return error_response(400, "invalid_name", "name must be 1 to 200 bytes long");
    auto r = db_.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
      auto exists = w.exec_params("SELECT 1 FROM organizations WHERE slug = $1", slug);
      if (!exists.empty())
        return http_fail(409, "slug_taken", "an organization with this slug exists");
      auto rows = w.exec_params(
          "INSERT INTO organizations (slug, name) VALUES ($1, $2) "
          "RETURNING id, slug, name, " RAP_TS("created_at") " AS created_at",
          slug, name);
      const std::string oid = rows[0]["id"].as<std::string>();
      audit(w, caller.user_id, oid, "org.created", "org:" + slug, json{{"name", name}});
      return json{{"org", org_json(rows[0])}};
    });
    if (!r) {
      if (r.error().code == "conflict")
        return error_response(409, "slug_taken", "an organization with this slug exists");
      return to_response(r.error());
    }
    return json_response(201, *r);
  }
  if (route == "/api/v1/orgs") {  // GET
    auto r = db_.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
      pqxx::read_transaction t(c);
      json orgs = json::array();
      if (caller.is_owner) {
        auto rows = t.exec("SELECT id, slug, name, " RAP_TS(
            "created_at") " AS created_at FROM organizations ORDER BY slug");
        for (const auto& row : rows) orgs.push_back(org_json(row));
      } else {
        auto rows = t.exec_params(
            "SELECT o.id, o.slug, o.name, " RAP_TS("o.created_at") " AS created_at, m.role "
            "FROM organizations o JOIN memberships m ON m.org_id = o.id "
            "WHERE m.user_id = $1::uuid ORDER BY o.slug",
            caller.user_id);
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

  // Looks up an organization visible to the caller: (org row, caller's role or "" for owner).
  // Non-members get 404 so that other tenants' slugs are not revealed.
  struct OrgView {
    json org;
    std::string id;
    std::string role;
  };
  auto find_org = [&](pqxx::transaction_base& t, const std::string& slug) -> Result<OrgView> {
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
  };

  if (route == "/api/v1/orgs/{slug}") {
    std::string slug = seg[3];  // owned copy: used by DB work on another thread
    auto r = db_.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
      pqxx::read_transaction t(c);
      auto v = find_org(t, slug);
      if (!v) return tl::unexpected(v.error());
      json out{{"org", v->org}};
      if (!v->role.empty()) out["role"] = v->role;
      if (caller.is_owner || v->role == "org_admin") {
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

  if (route == "/api/v1/orgs/{slug}/members") {
    std::string slug = seg[3];  // owned copy: used by DB work on another thread
    auto f = parse_fields(req.body, {"email", "role"});
    // The body is parsed up front, but authorization (which needs the DB) is reported first.
    auto r = db_.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
      auto v = find_org(w, slug);
      if (!v) return tl::unexpected(v.error());
      if (!caller.is_owner && v->role != "org_admin")
        return http_fail(403, "forbidden", "not allowed for this user");
      if (!f) return fail("passthrough", "request body rejected");
      const std::string email = lower((*f)["email"]);
      const std::string& role = (*f)["role"];
      if (role != "org_admin" && role != "org_member")
        return http_fail(400, "invalid_role", "role must be 'org_admin' or 'org_member'");
      if (!valid_email(email)) return http_fail(400, "invalid_email", "invalid email address");
      auto u = w.exec_params("SELECT id FROM users WHERE email = $1", email);
      if (u.empty()) return http_fail(404, "user_not_found", "user not found");
      const std::string uid = u[0][0].as<std::string>();
      auto ins = w.exec_params(
          "INSERT INTO memberships (user_id, org_id, role) VALUES ($1::uuid, $2::uuid, $3) "
          "ON CONFLICT (user_id, org_id) DO NOTHING RETURNING " RAP_TS("created_at"),
          uid, v->id, role);
      if (ins.empty()) return http_fail(409, "already_member", "user is already a member");
      audit(w, caller.user_id, v->id, "org.member_added", "user:" + email, json{{"role", role}});
      return json{{"membership",
                   {{"org", slug},
                    {"email", email},
                    {"role", role},
                    {"created_at", ins[0][0].as<std::string>()}}}};
    });
    if (!r) return r.error().code == "passthrough" ? f.error() : to_response(r.error());
    return json_response(201, *r);
  }

  if (route == "/api/v1/audit") {
    auto q = parse_query(query);
    int limit = 100;
    if (auto it = q.find("limit"); it != q.end()) {
      auto [p, ec] =
          std::from_chars(it->second.data(), it->second.data() + it->second.size(), limit);
      if (ec != std::errc() || p != it->second.data() + it->second.size() || limit < 1 ||
          limit > 1000)
        return error_response(400, "invalid_limit", "limit must be 1..1000");
    }
    for (const auto& [k, v] : q) {
      if (k != "org" && k != "limit")
        return error_response(400, "invalid_request", "unknown query parameter");
    }
    const auto org_it = q.find("org");
    if (!caller.is_owner && org_it == q.end())
      return error_response(403, "forbidden", "organization admins must pass ?org=<slug>");
    auto r = db_.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
      pqxx::read_transaction t(c);
      std::string org_id;
      if (org_it != q.end()) {
        auto v = find_org(t, org_it->second);
        if (!v) return tl::unexpected(v.error());
        if (!caller.is_owner && v->role != "org_admin")
          return http_fail(403, "forbidden", "not allowed for this user");
        org_id = v->id;
      }
      RAP_ASSERT(caller.is_owner || !org_id.empty());
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

  return error_response(404, "not_found", "no such route");
}

Result<std::optional<std::string>> bootstrap_setup_token(Db& db, Random& rng) {
  return db.with_transaction<std::optional<std::string>>(
      [&](pqxx::work& w) -> Result<std::optional<std::string>> {
        w.exec_params("SELECT pg_advisory_xact_lock($1)", kSetupLockKey);
        auto rows = w.exec(
            "SELECT completed_at IS NOT NULL, EXISTS (SELECT 1 FROM users WHERE is_platform_owner) "
            "FROM setup_state WHERE id FOR UPDATE");
        if (rows.empty()) return fail("internal", "setup_state row missing");
        if (rows[0][0].as<bool>() || rows[0][1].as<bool>()) return std::optional<std::string>();
        std::string token = random_token_hex(rng);
        w.exec_params("UPDATE setup_state SET setup_token_sha256 = $1, issued_at = now() WHERE id",
                      token_sha256(token));
        audit(w, "", "", "platform.setup_token_issued", "setup_state",
              json{{"token_sha256_prefix", token_sha256(token).substr(0, 12)}});
        return std::optional<std::string>(std::move(token));
      });
}

}  // namespace rap::control
