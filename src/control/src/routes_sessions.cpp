// Organization access sessions and access points (docs/API.md "Sessions", "Access points"): the
// tenant-safe views of the organization admin panel.
//
//  * GET /api/v1/orgs/{slug}/sessions: the organization's open TCP access sessions, from live
//    state only (entries report them in heartbeats, access.active; the flusher stores them under
//    the organization's scope, rap:{<org id>}:presence:<entry>). Each names the user (email), the
//    resource (name), since when and the bytes each way, never a node, relay, route or
//    certificate. Sessions whose user or resource is not the organization's are dropped.
//  * DELETE /api/v1/orgs/{slug}/sessions/{grant_id} (org admin, owner): terminates a session:
//    the grant goes into revoked_grants (PostgreSQL, with its entry and expiry), the entry's
//    desired state version is bumped so its long-poll returns at once with the revocation, and
//    the event is audited as access.terminated.
//  * GET /api/v1/orgs/{slug}/access-points: the client ingress endpoints (host:port) of the entry
//    nodes the organization may use and its egress pools (name, description, availability).
#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "api_internal.h"

namespace rap::control::detail {

namespace {

constexpr int kMaxSessions = 1000;  // listed per organization

bool may_read(const Caller& c, const OrgView& org) {
  return c.is_owner || c.is_platform_admin || org.role == "org_admin";
}

bool may_terminate(const Caller& c, const OrgView& org) {
  return c.is_owner || org.role == "org_admin";
}

// One open session (all its connections through one grant), with the entry that reported it.
struct LiveSession {
  std::string grant, user, resource, entry;
  std::int64_t started_at = 0, expires_at = 0;
  std::int64_t bytes_up = 0, bytes_down = 0;
  int connections = 0;
};

// The organization's sessions from live state, by grant. nullopt: live state unavailable.
std::optional<std::map<std::string, LiveSession>> live_sessions(LiveState* live,
                                                                const std::string& org_id) {
  if (live == nullptr) return std::nullopt;
  auto entries = live->list_presence(org_id);
  if (!entries) return std::nullopt;
  std::map<std::string, LiveSession> out;
  for (const auto& [entry, value] : *entries) {
    const json list = json::parse(value, nullptr, false);
    if (!list.is_array()) continue;
    for (const auto& s : list) {
      if (!s.is_object() || s.value("org", std::string()) != org_id) continue;
      const auto grant = s.value("grant", std::string());
      if (grant.empty() || (out.size() >= kMaxSessions && !out.contains(grant))) continue;
      auto& ls = out[grant];
      ls.grant = grant;
      ls.user = s.value("user", std::string());
      ls.resource = s.value("resource", std::string());
      ls.entry = entry;
      const auto started = s.value("started_at", std::int64_t{0});
      ls.started_at = ls.connections == 0 ? started : std::min(ls.started_at, started);
      ls.expires_at = std::max(ls.expires_at, s.value("expires_at", std::int64_t{0}));
      ls.bytes_up += s.value("bytes_up", std::int64_t{0});
      ls.bytes_down += s.value("bytes_down", std::int64_t{0});
      ls.connections++;
    }
  }
  return out;
}

// `{a,b,c}` for uuid = ANY($n::uuid[]) (the ids were validated as uuids by the heartbeat).
std::string pg_array(const std::set<std::string>& ids) {
  std::string s = "{";
  for (const auto& id : ids) {
    if (!valid_uuid(id)) continue;
    if (s.size() > 1) s += ',';
    s += id;
  }
  return s + "}";
}

using ViewFn = std::function<Result<json>(pqxx::transaction_base&, const OrgView&)>;

// Resolves {slug} (404 for non-members), admits its org admins and platform staff (403 for other
// members), rejects query parameters and runs `fn` in a read-only transaction.
HttpResponse org_admin_view(Ctx& ctx, const ViewFn& fn) {
  if (!ctx.query.empty()) return error_response(400, "invalid_request", "no query parameters");
  const std::string slug = ctx.param("slug");
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto org = find_org(t, *ctx.caller, slug);
    if (!org) return tl::unexpected(org.error());
    if (!may_read(*ctx.caller, *org))
      return http_fail(403, "forbidden", "organization admins only");
    return fn(t, *org);
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

HttpResponse get_sessions(Ctx& ctx) {
  return org_admin_view(ctx, [&](pqxx::transaction_base& t, const OrgView& org) -> Result<json> {
    const auto live = live_sessions(ctx.live, org.id);
    if (!live) return json{{"sessions", json::array()}, {"live_state", "unavailable"}};
    std::set<std::string> users;
    std::set<std::string> resources;
    std::set<std::string> grants;
    for (const auto& [g, s] : *live) {
      users.insert(s.user);
      resources.insert(s.resource);
      grants.insert(g);
    }
    std::map<std::string, std::string> emails;
    for (const auto& row :
         t.exec_params("SELECT u.id, u.email FROM users u JOIN memberships m ON m.user_id = u.id "
                       "WHERE m.org_id = $1::uuid AND u.id = ANY($2::uuid[])",
                       org.id, pg_array(users)))
      emails[row[0].as<std::string>()] = row[1].as<std::string>();
    std::map<std::string, std::pair<std::string, std::string>> names;
    for (const auto& row :
         t.exec_params("SELECT id, name, protocol FROM resources WHERE org_id = $1::uuid AND id = "
                       "ANY($2::uuid[])",
                       org.id, pg_array(resources)))
      names[row[0].as<std::string>()] = {row[1].as<std::string>(), row[2].as<std::string>()};
    std::set<std::string> revoked;
    for (const auto& row :
         t.exec_params("SELECT grant_id FROM revoked_grants WHERE org_id = $1::uuid AND grant_id = "
                       "ANY($2::uuid[])",
                       org.id, pg_array(grants)))
      revoked.insert(row[0].as<std::string>());
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    json out = json::array();
    for (const auto& [g, s] : *live) {
      auto e = emails.find(s.user);
      auto n = names.find(s.resource);
      // Another tenant's user or resource, or already terminated: not this org's to see.
      if (e == emails.end() || n == names.end() || revoked.contains(g)) continue;
      out.push_back(
          {{"grant_id", g},
           {"user", {{"id", s.user}, {"email", e->second}}},
           {"resource",
            {{"id", s.resource}, {"name", n->second.first}, {"protocol", n->second.second}}},
           {"started_at", s.started_at},
           {"duration_seconds", std::max<std::int64_t>(0, now - s.started_at)},
           {"expires_at", s.expires_at},
           {"connections", s.connections},
           {"bytes_up", s.bytes_up},
           {"bytes_down", s.bytes_down}});
    }
    std::sort(out.begin(), out.end(), [](const json& a, const json& b) {
      return a["started_at"].get<std::int64_t>() < b["started_at"].get<std::int64_t>();
    });
    return json{{"sessions", out}, {"live_state", "ok"}};
  });
}

HttpResponse delete_session(Ctx& ctx) {
  const std::string slug = ctx.param("slug");
  const std::string grant = lower(ctx.param("grant_id"));
  if (!valid_uuid(grant))
    return error_response(400, "invalid_request", "grant_id must be a session's grant id (uuid)");
  if (!ctx.req.body.empty() && ctx.req.body.find_first_not_of(" \t\r\n") != std::string::npos)
    return error_response(400, "invalid_request", "no request body");
  struct Done {
    json answer;
    std::string cluster, entry;
  };
  auto r = ctx.db.with_transaction<Done>([&](pqxx::work& w) -> Result<Done> {
    auto org = find_org(w, *ctx.caller, slug);
    if (!org) return tl::unexpected(org.error());
    if (!may_terminate(*ctx.caller, *org))
      return http_fail(403, "forbidden", "organization admins only");
    // The live list says which entry carries the session and when its grant expires.
    const auto live = live_sessions(ctx.live, org->id);
    if (!live)
      return http_fail(503, "live_state_unavailable",
                       "open sessions are unknown while live state is unavailable");
    auto it = live->find(grant);
    if (it == live->end() || !valid_uuid(it->second.entry) || !valid_uuid(it->second.user) ||
        !valid_uuid(it->second.resource))
      return http_fail(404, "session_not_found", "no such open session in this organization");
    const LiveSession& s = it->second;
    // Only what GET lists: the organization's own user and resource.
    if (w.exec_params("SELECT 1 FROM resources r JOIN memberships m ON m.org_id = r.org_id "
                      "WHERE r.org_id = $1::uuid AND r.id = $2::uuid AND m.user_id = $3::uuid",
                      org->id, s.resource, s.user)
            .empty())
      return http_fail(404, "session_not_found", "no such open session in this organization");
    auto node = w.exec_params(
        "SELECT cluster_id FROM nodes WHERE id = $1::uuid AND status = 'active'", s.entry);
    if (node.empty())
      return http_fail(404, "session_not_found", "no such open session in this organization");
    // Expired revocations are useless (an expired grant is refused anyway): prune them here.
    w.exec("DELETE FROM revoked_grants WHERE expires_at < now() - interval '1 hour'");
    auto ins = w.exec_params(
        "INSERT INTO revoked_grants (grant_id, org_id, entry_node_id, user_id, resource_id, "
        "expires_at, revoked_by) VALUES ($1::uuid, $2::uuid, $3::uuid, $4::uuid, $5::uuid, "
        "to_timestamp($6), $7::uuid) ON CONFLICT (grant_id) DO NOTHING RETURNING grant_id",
        grant, org->id, s.entry, s.user, s.resource, std::max<std::int64_t>(s.expires_at, 0) + 60,
        ctx.caller->user_id);
    if (ins.empty())
      return http_fail(404, "session_not_found", "this session was already terminated");
    w.exec_params(
        "UPDATE nodes SET desired_state_version = desired_state_version + 1 WHERE id = $1::uuid",
        s.entry);
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .org_id = org->id,
                        .action = "access.terminated",
                        .target = "grant:" + grant,
                        .details = json{{"grant_id", grant},
                                        {"user_id", s.user},
                                        {"resource_id", s.resource},
                                        {"connections", s.connections}}});
    return Done{json{{"terminated", {{"grant_id", grant}, {"connections", s.connections}}}},
                node[0][0].as<std::string>(), s.entry};
  });
  if (!r) return to_response(r.error());
  node_changed(ctx, r->cluster, r->entry);  // the entry's long-poll answers at once
  return json_response(200, r->answer);
}

HttpResponse get_access_points(Ctx& ctx) {
  return org_admin_view(ctx, [](pqxx::transaction_base& t, const OrgView& org) -> Result<json> {
    // Entry nodes the organization's users may be sent to: entry-node for the platform or for
    // this organization, on a platform node or one of this organization's own nodes (another
    // tenant's customer-managed node never serves this one). Only their client ingress.
    json entries = json::array();
    for (const auto& row :
         t.exec_params("SELECT n.last_state->'endpoints'->>'client_ingress' AS ep, "
                       "bool_or(n.last_heartbeat_at > now() - interval '30 seconds') FROM nodes n "
                       "JOIN node_role_assignments a ON a.node_id = n.id AND a.role = 'entry-node' "
                       "WHERE n.status = 'active' AND (a.org_id IS NULL OR a.org_id = $1::uuid) "
                       "AND (n.org_id IS NULL OR n.org_id = $1::uuid) "
                       "AND n.last_state->'endpoints'->>'client_ingress' IS NOT NULL "
                       "GROUP BY ep ORDER BY ep",
                       org.id))
      entries.push_back({{"endpoint", row[0].as<std::string>()},
                         {"status", row[1].as<bool>() ? "online" : "offline"}});
    json pools = json::array();
    for (const auto& row : t.exec_params(
             "SELECT p.name, p.description, count(n.id), count(n.id) FILTER (WHERE n.status = "
             "'active' AND n.last_heartbeat_at > now() - interval '30 seconds') FROM egress_pools "
             "p LEFT JOIN egress_pool_nodes pn ON pn.pool_id = p.id LEFT JOIN nodes n ON n.id = "
             "pn.node_id WHERE p.org_id = $1::uuid GROUP BY p.id, p.name, p.description "
             "ORDER BY p.name",
             org.id)) {
      const auto total = row[2].as<long long>();
      const auto up = row[3].as<long long>();
      pools.push_back(
          {{"name", row[0].as<std::string>()},
           {"description", row[1].as<std::string>()},
           {"status", total == 0 ? "unassigned" : (up > 0 ? "available" : "unavailable")}});
    }
    return json{{"entry_points", entries}, {"egress_pools", pools}};
  });
}

}  // namespace

void register_session_routes(Router& r) {
  const std::string org = "/api/v1/orgs/{slug}";
  r.add("GET", org + "/sessions", Auth::kUser, get_sessions);
  r.add("DELETE", org + "/sessions/{grant_id}", Auth::kUser, delete_session);
  r.add("GET", org + "/access-points", Auth::kUser, get_access_points);
}

}  // namespace rap::control::detail
