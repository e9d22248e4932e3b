#include "rap/control/api.h"

#include <spdlog/spdlog.h>

#include <sstream>

#include "api_internal.h"
#include "node_hot_state.h"
#include "rap/control/auth.h"
#include "rap/control/live_state.h"

namespace rap::control {

using detail::Auth;
using detail::Caller;
using detail::error_response;
using detail::from_error;
using detail::json;
using detail::json_response;

namespace {
constexpr std::int64_t kSetupLockKey = 0x7261705f73657475;  // "rap_setu"
}

std::string error_body(const std::string& code, const std::string& message) {
  return json{{"error", {{"code", code}, {"message", message}}}}.dump();
}

Api::Api(Db& db, Random& rng, ApiOptions opts)
    : db_(db),
      rng_(rng),
      opts_(std::move(opts)),
      router_(std::make_unique<detail::Router>()),
      hot_(std::make_unique<detail::NodeHotState>(opts_.node_auth_cache_ttl)) {
  detail::register_identity_routes(*router_);
  detail::register_account_routes(*router_);
  detail::register_tenancy_routes(*router_);
  detail::register_cluster_routes(*router_);
  detail::register_node_routes(*router_);
  detail::register_topology_routes(*router_);
  detail::register_console_routes(*router_);
  detail::register_access_routes(*router_);
  detail::register_session_routes(*router_);
  if (opts_.live == nullptr) return;
  // Node changes made through other instances drop this instance's cached node rows. A
  // resync (Redis was away: notifications may be lost) drops them all.
  detail::NodeHotState* hot = hot_.get();
  auto sub = opts_.live->subscribe({}, [hot](const Change& c) {
    const auto now = std::chrono::steady_clock::now();
    if (c.resync) {
      hot->invalidate_all(now);
      return;
    }
    auto j = json::parse(c.message, nullptr, false);
    if (j.is_object() && j.value("kind", "") == "node.changed" && j.contains("id") &&
        j["id"].is_string())
      hot->invalidate_node(j["id"].get<std::string>(), now);
  });
  if (sub) {
    changes_ = std::move(*sub);
  } else {
    spdlog::warn("change notifications unavailable code={}: node cache entries expire by TTL",
                 sub.error().code);
  }
  presence_flusher_ = std::thread([this] {
    std::unique_lock lk(stop_mu_);
    while (!stopping_) {
      stop_cv_.wait_for(lk, opts_.presence_flush_interval, [this] { return stopping_; });
      lk.unlock();
      flush_presence();
      flush_access();
      lk.lock();
    }
  });
}

Api::~Api() {
  stop();
}

void Api::stop() {
  {
    std::lock_guard g(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (presence_flusher_.joinable()) presence_flusher_.join();
  if (changes_) changes_->stop();
}

void Api::flush_presence() {
  auto seen = hot_->take_seen();
  if (seen.empty() || opts_.live == nullptr) return;
  std::uint64_t ok = 0;
  std::uint64_t errors = 0;
  for (const auto& [key, at_ms] : seen) {
    const json value{{"last_seen_ms", at_ms}};
    if (opts_.live->set_presence(key.first, key.second, value.dump(), opts_.presence_ttl))
      ++ok;
    else
      ++errors;
  }
  hot_->count_presence(ok, errors);
  if (errors > 0) spdlog::warn("node presence: {} of {} writes failed", errors, seen.size());
}

// Open access sessions (heartbeat access.active) as live state, namespaced by organization:
// rap:{<org id>}:presence:<entry node> = that org's sessions at that entry (docs/API.md).
void Api::flush_access() {
  auto reports = hot_->take_access();
  if (reports.empty() || opts_.live == nullptr) return;
  std::size_t errors = 0;
  for (const auto& [node, by_org] : reports)
    for (const auto& [org, value] : by_org)
      if (!opts_.live->set_presence(org, node, value, opts_.presence_ttl)) ++errors;
  if (errors > 0) spdlog::warn("access sessions: {} live state writes failed", errors);
}

std::optional<HttpResponse> Api::try_handle_fast(const HttpRequest& req) {
  try {
    auto r = detail::fast_heartbeat(*hot_, opts_, req);
    if (r) record("/api/v1/node/heartbeat", req.method, r->status);
    return r;
  } catch (...) {
    return std::nullopt;  // the normal path answers (and logs) it
  }
}

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
  const auto hc = hot_->counters();
  o << "# HELP rap_control_node_heartbeats_total Node heartbeats answered, by path (memory: no "
       "database access; db: durable state written).\n"
    << "# TYPE rap_control_node_heartbeats_total counter\n"
    << "rap_control_node_heartbeats_total{path=\"memory\"} " << hc.heartbeats_memory << "\n"
    << "rap_control_node_heartbeats_total{path=\"db\"} " << hc.heartbeats_db << "\n"
    << "# HELP rap_control_node_auth_cache_total Node authentication row lookups by result.\n"
    << "# TYPE rap_control_node_auth_cache_total counter\n"
    << "rap_control_node_auth_cache_total{result=\"hit\"} " << hc.auth_hits << "\n"
    << "rap_control_node_auth_cache_total{result=\"miss\"} " << hc.auth_misses << "\n"
    << "# HELP rap_control_node_cache_invalidations_total Node cache invalidations (local "
       "changes and node.changed notifications).\n"
    << "# TYPE rap_control_node_cache_invalidations_total counter\n"
    << "rap_control_node_cache_invalidations_total " << hc.invalidations << "\n"
    << "# HELP rap_control_node_presence_writes_total Node presence writes to live state.\n"
    << "# TYPE rap_control_node_presence_writes_total counter\n"
    << "rap_control_node_presence_writes_total{result=\"ok\"} " << hc.presence_written << "\n"
    << "rap_control_node_presence_writes_total{result=\"error\"} " << hc.presence_errors << "\n";
  if (opts_.live != nullptr) o << opts_.live->render_metrics();
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

namespace {

// Bearer-token authentication: the token is looked up by its SHA-256 only.
detail::Step<Caller> authenticate(Db& db, const std::string& header) {
  std::string_view h = header;
  if (h.empty()) {
    return tl::unexpected(error_response(401, "unauthenticated", "missing bearer token"));
  }
  if (h.size() < 7 || detail::lower(std::string(h.substr(0, 7))) != "bearer ") {
    return tl::unexpected(error_response(401, "invalid_token", "expected 'Bearer <token>'"));
  }
  std::string_view tok = h.substr(7);
  while (!tok.empty() && tok.front() == ' ') tok.remove_prefix(1);
  if (!valid_token_shape(tok)) {
    return tl::unexpected(error_response(401, "invalid_token", "invalid or expired token"));
  }
  const std::string hash = token_sha256(tok);
  auto r = db.with_connection<std::optional<Caller>>(
      [&](pqxx::connection& c) -> Result<std::optional<Caller>> {
        pqxx::work t(c);
        auto rows = t.exec_params(
            "SELECT u.id, u.email, u.is_platform_owner, t.id, t.kind, COALESCE(t.scope, ''), "
            "COALESCE(t.elevated_until > now(), false), "
            "(t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute'), "
            "COALESCE(o.slug, ''), u.is_platform_admin "
            "FROM api_tokens t JOIN users u ON u.id = t.user_id "
            "LEFT JOIN organizations o ON o.id = t.org_id "
            "WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL AND t.expires_at > now()",
            hash);
        if (rows.empty()) return std::optional<Caller>();
        // last_used_at is refreshed at most once a minute per token.
        if (rows[0][7].as<bool>()) {
          t.exec_params("UPDATE api_tokens SET last_used_at = now() WHERE id = $1",
                        rows[0][3].as<std::int64_t>());
          t.commit();
        }
        Caller caller;
        caller.user_id = rows[0][0].as<std::string>();
        caller.email = rows[0][1].as<std::string>();
        caller.is_owner = rows[0][2].as<bool>();
        caller.is_platform_admin = rows[0][9].as<bool>();
        caller.token_hash = hash;
        caller.token_id = rows[0][3].as<std::int64_t>();
        caller.token_kind = rows[0][4].as<std::string>();
        caller.token_scope = rows[0][5].as<std::string>();
        caller.token_org = rows[0][8].as<std::string>();
        caller.elevated =
            caller.token_kind == "session" ? rows[0][6].as<bool>() : caller.token_scope == "admin";
        return std::optional<Caller>(std::move(caller));
      });
  if (!r) return tl::unexpected(from_error(r.error()));
  if (!*r) return tl::unexpected(error_response(401, "invalid_token", "invalid or expired token"));
  return **r;
}

}  // namespace

HttpResponse Api::dispatch(const HttpRequest& req, std::string& route) {
  const auto qpos = req.target.find('?');
  const std::string path = req.target.substr(0, qpos);
  const std::string query = qpos == std::string::npos ? "" : req.target.substr(qpos + 1);
  const auto seg = detail::split_path(path);

  if (seg.size() == 1 && seg[0] == "healthz") {
    route = "/healthz";
    if (req.method != "GET") {
      HttpResponse r =
          error_response(405, "method_not_allowed", "method not allowed for this route");
      r.allow = "GET";
      return r;
    }
    auto r = db_.with_connection<void>([](pqxx::connection& c) -> Result<void> {
      pqxx::nontransaction t(c);
      t.exec("SELECT 1");
      return {};
    });
    // "redis" appears when a Redis is configured: "ok", or "unavailable" (degraded mode: still
    // 200, the control plane serves from PostgreSQL). Without Redis the key is absent.
    json health{{"status", "ok"}, {"db", "ok"}};
    if (opts_.live != nullptr && opts_.live->backend() == "redis") {
      const bool redis_ok = opts_.live->ping().has_value();
      health["redis"] = redis_ok ? "ok" : "unavailable";
      if (!redis_ok) health["status"] = "degraded";
    }
    if (!r) {
      spdlog::warn("healthz: database check failed code={}", r.error().code);
      health["status"] = "degraded";
      health["db"] = "unavailable";
      return json_response(503, health);
    }
    return json_response(200, health);
  }
  if (seg.size() == 1 && seg[0] == "metrics") {
    route = "/metrics";
    if (req.method != "GET") {
      HttpResponse r =
          error_response(405, "method_not_allowed", "method not allowed for this route");
      r.allow = "GET";
      return r;
    }
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = render_metrics();
    return r;
  }

  // The web console: everything outside /api/ (and /healthz, /metrics) is a static file or an
  // app route (routes_web.cpp). Without a console only "/" says so; other paths stay 404.
  if (seg.empty() || seg[0] != "api") {
    if (!opts_.web_dir.empty() || seg.empty()) {
      route = "/ (console)";
      return detail::serve_web(opts_.web_dir, req, path);
    }
  }

  auto m = router_->match(req.method, seg);
  if (!m) return error_response(404, "not_found", "no such route");
  route = m->pattern;
  if (m->handler == nullptr) {
    HttpResponse r = error_response(405, "method_not_allowed", "method not allowed for this route");
    r.allow = m->allow;
    return r;
  }
  std::optional<Caller> caller;
  if (m->auth == Auth::kUser) {
    auto c = authenticate(db_, req.authorization);
    if (!c) return c.error();
    caller = std::move(*c);
    if (caller->token_kind == "api" && caller->token_scope == "read" && req.method != "GET") {
      return error_response(403, "insufficient_scope", "this API token may only read (GET)");
    }
    // An organization-restricted API token reaches only /api/v1/orgs/<its org>/... and
    // GET /api/v1/me.
    const bool own_org = seg.size() >= 4 && seg[0] == "api" && seg[1] == "v1" && seg[2] == "orgs" &&
                         seg[3] == caller->token_org;
    const bool me = seg.size() == 3 && seg[0] == "api" && seg[1] == "v1" && seg[2] == "me";
    if (!caller->token_org.empty() && !own_org && !me) {
      return error_response(403, "token_org_restricted",
                            "this API token is restricted to one organization");
    }
  }
  std::optional<detail::NodeCaller> node;
  if (m->auth == Auth::kNode) {
    auto n = detail::authenticate_node(db_, *hot_, req);
    if (!n) return n.error();
    node = std::move(*n);
  }
  detail::Ctx ctx{req,
                  std::move(m->params),
                  detail::parse_query(query),
                  caller ? &*caller : nullptr,
                  node ? &*node : nullptr,
                  db_,
                  opts_,
                  nullptr,
                  nullptr};
  ctx.random_token = [this] {
    std::lock_guard g(rng_mu_);
    return random_token_hex(rng_);
  };
  ctx.random_bytes = [this](std::span<std::uint8_t> out) {
    std::lock_guard g(rng_mu_);
    rng_.fill(out);
  };
  ctx.live = opts_.live;
  ctx.hot = hot_.get();
  return (*m->handler)(ctx);
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
        detail::audit(w, detail::AuditEvent{.action = "platform.setup_token_issued",
                                            .target = "setup_state",
                                            .details = json{{"token_sha256_prefix",
                                                             token_sha256(token).substr(0, 12)}}});
        return std::optional<std::string>(std::move(token));
      });
}

}  // namespace rap::control
