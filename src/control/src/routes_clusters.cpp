// Cluster administration (platform owner only): clusters and their CAs, join tokens, join
// requests (approve/reject), nodes (detail, revoke, roles, desired workloads, heartbeats).
//
// Tenancy: every route here answers 404 not_found to anyone but the platform owner (tenants
// never learn that clusters, nodes or certificates exist) and records the attempt as a "denied"
// audit event. Every mutation writes its audit event (with cluster_id) in its own transaction.
// Node capabilities are reported facts, never permissions: roles are assigned explicitly.
#include <spdlog/spdlog.h>

#include <charconv>
#include <ctime>
#include <set>

#include "api_internal.h"
#include "cluster_ca.h"
#include "config_compiler.h"
#include "rap/control/auth.h"

namespace rap::control::detail {

namespace {

// Roles a node may be assigned (docs/API.md).
const std::set<std::string> kRoles = {"entry-node",    "relay-node",         "exit-node",
                                      "rdp-worker",    "vnc-worker",         "vpn-exit",
                                      "vpn-connector", "file-storage-cache", "update-cache",
                                      "video-relay",   "admin-web-ingress",  "config-storage"};

constexpr std::int64_t kMinTokenTtl = 60;
constexpr std::int64_t kMaxTokenTtl = 604800;
constexpr std::int64_t kMaxTokenUses = 10000;

// `s` for an error message if it is short printable ASCII, else "(invalid)": a cut multi-byte
// character would make the JSON error body unserializable.
std::string echo(const std::string& s) {
  if (s.size() > 64) return "(invalid)";
  for (unsigned char c : s)
    if (c < 0x20 || c > 0x7e) return "(invalid)";
  return s;
}

HttpResponse not_found() {
  return error_response(404, "not_found", "no such route");
}

// Wraps a handler: only the platform owner (or a platform admin) may call it; anyone else gets
// the same 404 as an unknown route, and the attempt is audited as denied.
Handler owner_only(const char* action, Handler h) {
  return [action, h = std::move(h)](Ctx& c) -> HttpResponse {
    if (!c.caller->is_owner && !c.caller->is_platform_admin) {
      const std::string path = c.req.target.substr(0, c.req.target.find('?'));
      audit_standalone(c.db, AuditEvent{.actor_user_id = c.caller->user_id,
                                        .action = action,
                                        .target = path.substr(0, 200),
                                        .outcome = "denied",
                                        .details = json{{"method", c.req.method},
                                                        {"reason", "not_platform_owner"}}});
      return not_found();
    }
    return h(c);
  };
}

// A body that may be empty (treated as {}) or a JSON object.
Step<json> parse_optional_object(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
  return parse_object(body);
}

struct ClusterRow {
  std::string id;
  std::string slug;
  json j;
};

constexpr const char* kClusterCols =
    "c.id, c.slug, c.name, " RAP_TS("c.created_at") " AS created_at, "
    "(SELECT count(*) FROM nodes n WHERE n.cluster_id = c.id AND n.status = 'active') AS nodes, "
    "(SELECT count(*) FROM join_requests r WHERE r.cluster_id = c.id AND r.status = 'pending') "
    "AS pending ";

json cluster_json(const pqxx::row& r) {
  return json{{"id", r["id"].as<std::string>()},
              {"slug", r["slug"].as<std::string>()},
              {"name", r["name"].as<std::string>()},
              {"created_at", r["created_at"].as<std::string>()},
              {"active_nodes", r["nodes"].as<long long>()},
              {"pending_join_requests", r["pending"].as<long long>()}};
}

Result<ClusterRow> find_cluster(pqxx::transaction_base& t, const std::string& slug) {
  if (!valid_slug(slug)) return http_fail(404, "cluster_not_found", "cluster not found");
  auto rows = t.exec_params(
      std::string("SELECT ") + kClusterCols + "FROM clusters c WHERE c.slug = $1", slug);
  if (rows.empty()) return http_fail(404, "cluster_not_found", "cluster not found");
  return ClusterRow{rows[0]["id"].as<std::string>(), slug, cluster_json(rows[0])};
}

json opt_json_text(const pqxx::field& f) {
  return f.is_null() ? json(nullptr) : json(f.as<std::string>());
}
json jsonb(const pqxx::field& f) {
  if (f.is_null()) return nullptr;
  return json::parse(f.as<std::string>(), nullptr, false);
}

// Maps certificate-issuance failures (no master key, wrong master key) to responses.
tl::unexpected<Error> issuance_failure(const Error& e) {
  if (e.code == "no_master_key")
    return http_fail(503, "master_key_unavailable", "the master key is not configured");
  if (e.code == "unseal_failed") {
    spdlog::error("cluster CA key cannot be unsealed: {}", e.message);
    return http_fail(503, "master_key_mismatch", "the cluster CA key cannot be unsealed");
  }
  return tl::unexpected(e);
}

// ---------------- clusters ----------------

HttpResponse post_clusters(Ctx& ctx) {
  if (auto denied = require_step_up(ctx)) return *denied;  // high-risk action
  auto f = parse_fields(ctx.req.body, {"slug", "name"});
  if (!f) return f.error();
  const std::string slug = (*f)["slug"];
  const std::string name = (*f)["name"];
  if (!valid_slug(slug))
    return error_response(400, "invalid_slug", "slug must match [a-z0-9-]{2,63}");
  if (name.empty() || name.size() > 200)
    return error_response(400, "invalid_name", "name must be 1 to 200 bytes long");
  if (ctx.opts.master_key.size() != kMasterKeyBytes)
    return error_response(503, "master_key_unavailable", "the master key is not configured");
  FnRandom rng(ctx.random_bytes);
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    if (!w.exec_params("SELECT 1 FROM clusters WHERE slug = $1", slug).empty())
      return http_fail(409, "slug_taken", "a cluster with this slug exists");
    auto ins =
        w.exec_params("INSERT INTO clusters (slug, name) VALUES ($1, $2) RETURNING id", slug, name);
    const std::string id = ins[0][0].as<std::string>();
    auto ca = create_cluster_ca(ctx.opts.master_key, id, rng);
    if (!ca) return tl::unexpected(ca.error());
    w.exec_params(
        "INSERT INTO cluster_cas (cluster_id, cert_pem, key_ciphertext, key_id) "
        "VALUES ($1::uuid, $2, $3, $4)",
        id, ca->cert_pem,
        to_hex(std::span(reinterpret_cast<const std::uint8_t*>(ca->sealed_key.data()),
                         ca->sealed_key.size())),
        ca->key_id);
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .cluster_id = id,
                        .action = "cluster.created",
                        .target = "cluster:" + slug,
                        .details = json{{"name", name}, {"ca_key_id", ca->key_id}}});
    auto c = find_cluster(w, slug);
    if (!c) return tl::unexpected(c.error());
    json out = c->j;
    out["ca_pem"] = ca->cert_pem;
    return json{{"cluster", out}};
  });
  if (!r) {
    if (r.error().code == "conflict")
      return error_response(409, "slug_taken", "a cluster with this slug exists");
    return to_response(r.error());
  }
  return json_response(201, *r);
}

HttpResponse get_clusters(Ctx& ctx) {
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto rows = t.exec(std::string("SELECT ") + kClusterCols + "FROM clusters c ORDER BY c.slug");
    json out = json::array();
    for (const auto& row : rows) out.push_back(cluster_json(row));
    return json{{"clusters", out}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

HttpResponse get_cluster(Ctx& ctx) {
  const std::string slug = ctx.param("cluster");
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto cl = find_cluster(t, slug);
    if (!cl) return tl::unexpected(cl.error());
    json out = cl->j;
    auto ca = t.exec_params("SELECT cert_pem, key_id FROM cluster_cas WHERE cluster_id = $1::uuid",
                            cl->id);
    if (!ca.empty()) {
      out["ca_pem"] = ca[0][0].as<std::string>();
      out["ca_key_id"] = ca[0][1].as<std::string>();
    }
    return json{{"cluster", out}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

// ---------------- join tokens ----------------

constexpr const char* kTokenCols =
    "t.id, t.description, t.scope::text AS scope, t.max_uses, t.uses, "
    RAP_TS("t.created_at") " AS created_at, " RAP_TS("t.expires_at") " AS expires_at, "
    RAP_TS("t.revoked_at") " AS revoked_at, "
    "CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked' WHEN t.expires_at <= now() THEN 'expired' "
    "WHEN t.uses >= t.max_uses THEN 'exhausted' ELSE 'active' END AS state, "
    "(SELECT email FROM users u WHERE u.id = t.created_by) AS created_by ";

json token_json(const pqxx::row& r, const std::string& cluster_slug) {
  return json{{"id", r["id"].as<std::string>()},
              {"cluster", cluster_slug},
              {"description", r["description"].as<std::string>()},
              {"scope", jsonb(r["scope"])},
              {"max_uses", r["max_uses"].as<long long>()},
              {"uses", r["uses"].as<long long>()},
              {"state", r["state"].as<std::string>()},
              {"created_by", opt_json_text(r["created_by"])},
              {"created_at", r["created_at"].as<std::string>()},
              {"expires_at", r["expires_at"].as<std::string>()},
              {"revoked_at", opt_json_text(r["revoked_at"])}};
}

HttpResponse post_join_token(Ctx& ctx) {
  if (auto denied = require_step_up(ctx)) return *denied;  // high-risk action
  const std::string slug = ctx.param("cluster");
  auto body = parse_object(ctx.req.body);
  if (!body) return body.error();
  if (auto bad = reject_unknown_fields(*body, {"ttl_seconds", "max_uses", "description", "labels"}))
    return *bad;
  auto ttl = opt_int(*body, "ttl_seconds");
  if (!ttl) return ttl.error();
  auto uses = opt_int(*body, "max_uses");
  if (!uses) return uses.error();
  auto desc = opt_string(*body, "description");
  if (!desc) return desc.error();
  if (!*ttl || **ttl < kMinTokenTtl || **ttl > kMaxTokenTtl)
    return error_response(400, "invalid_ttl", "ttl_seconds must be an integer 60..604800");
  if (!*uses || **uses < 1 || **uses > kMaxTokenUses)
    return error_response(400, "invalid_max_uses", "max_uses must be an integer 1..10000");
  const std::string description = desc->value_or("");
  if (description.size() > 200)
    return error_response(400, "invalid_description", "description must be at most 200 bytes");
  json scope = json::object();
  if (auto it = body->find("labels"); it != body->end() && !it->is_null()) {
    if (!it->is_object() || it->size() > 32)
      return error_response(400, "invalid_labels",
                            "labels must be an object of at most 32 string values");
    for (auto l = it->begin(); l != it->end(); ++l) {
      if (!l.value().is_string() || l.key().empty() || l.key().size() > 63 ||
          l.value().get<std::string>().size() > 200)
        return error_response(400, "invalid_labels",
                              "labels must map 1..63-byte names to strings of at most 200 bytes");
    }
    scope["labels"] = *it;
  }
  const std::string token = ctx.random_token();
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto cl = find_cluster(w, slug);
    if (!cl) return tl::unexpected(cl.error());
    auto ins = w.exec_params(
        "INSERT INTO join_tokens (cluster_id, token_sha256, description, scope, max_uses, "
        "created_by, expires_at) VALUES ($1::uuid, $2, $3, $4::jsonb, $5, $6::uuid, "
        "now() + make_interval(secs => $7)) RETURNING id",
        cl->id, token_sha256(token), description, scope.dump(), static_cast<long long>(**uses),
        ctx.caller->user_id, static_cast<long long>(**ttl));
    const std::string id = ins[0][0].as<std::string>();
    audit(w,
          AuditEvent{.actor_user_id = ctx.caller->user_id,
                     .cluster_id = cl->id,
                     .action = "cluster.join_token_created",
                     .target = "join_token:" + id,
                     .details = json{{"ttl_seconds", **ttl},
                                     {"max_uses", **uses},
                                     {"token_sha256_prefix", token_sha256(token).substr(0, 12)}}});
    auto row = w.exec_params(
        std::string("SELECT ") + kTokenCols + "FROM join_tokens t WHERE t.id = $1::uuid", id);
    return json{{"join_token", token_json(row[0], slug)}, {"token", token}};
  });
  if (!r) return to_response(r.error());
  return json_response(201, *r);
}

HttpResponse get_join_tokens(Ctx& ctx) {
  const std::string slug = ctx.param("cluster");
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto cl = find_cluster(t, slug);
    if (!cl) return tl::unexpected(cl.error());
    auto rows = t.exec_params(std::string("SELECT ") + kTokenCols +
                                  "FROM join_tokens t WHERE t.cluster_id = $1::uuid "
                                  "ORDER BY t.created_at DESC, t.id",
                              cl->id);
    json out = json::array();
    for (const auto& row : rows) out.push_back(token_json(row, slug));
    return json{{"join_tokens", out}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

HttpResponse post_join_token_revoke(Ctx& ctx) {
  const std::string slug = ctx.param("cluster");
  const std::string id = ctx.param("id");
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto cl = find_cluster(w, slug);
    if (!cl) return tl::unexpected(cl.error());
    if (!valid_uuid(id)) return http_fail(404, "join_token_not_found", "join token not found");
    auto cur = w.exec_params(
        "SELECT revoked_at IS NOT NULL FROM join_tokens WHERE id = $1::uuid AND "
        "cluster_id = $2::uuid FOR UPDATE",
        id, cl->id);
    if (cur.empty()) return http_fail(404, "join_token_not_found", "join token not found");
    if (cur[0][0].as<bool>())
      return http_fail(409, "already_revoked", "join token is already revoked");
    w.exec_params("UPDATE join_tokens SET revoked_at = now() WHERE id = $1::uuid", id);
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .cluster_id = cl->id,
                        .action = "cluster.join_token_revoked",
                        .target = "join_token:" + id});
    auto row = w.exec_params(
        std::string("SELECT ") + kTokenCols + "FROM join_tokens t WHERE t.id = $1::uuid", id);
    return json{{"join_token", token_json(row[0], slug)}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

// ---------------- join requests ----------------

constexpr const char* kRequestCols =
    "r.id, r.public_key, r.facts::text AS facts, r.capabilities::text AS capabilities, r.status, "
    "r.node_id, r.reason, r.token_id, " RAP_TS("r.created_at") " AS created_at, "
    RAP_TS("r.decided_at") " AS decided_at, "
    "(SELECT email FROM users u WHERE u.id = r.decided_by) AS decided_by ";

json request_json(const pqxx::row& r, const std::string& cluster_slug) {
  return json{{"id", r["id"].as<std::string>()},
              {"cluster", cluster_slug},
              {"public_key", r["public_key"].as<std::string>()},
              {"facts", jsonb(r["facts"])},
              {"capabilities", jsonb(r["capabilities"])},
              {"status", r["status"].as<std::string>()},
              {"node_id", opt_json_text(r["node_id"])},
              {"reason", opt_json_text(r["reason"])},
              {"join_token_id", opt_json_text(r["token_id"])},
              {"created_at", r["created_at"].as<std::string>()},
              {"decided_at", opt_json_text(r["decided_at"])},
              {"decided_by", opt_json_text(r["decided_by"])}};
}

HttpResponse get_join_requests(Ctx& ctx) {
  const std::string slug = ctx.param("cluster");
  std::string status;
  for (const auto& [k, v] : ctx.query) {
    if (k != "status") return error_response(400, "invalid_request", "unknown query parameter");
    if (v != "pending" && v != "approved" && v != "rejected")
      return error_response(400, "invalid_status", "status must be pending, approved or rejected");
    status = v;
  }
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto cl = find_cluster(t, slug);
    if (!cl) return tl::unexpected(cl.error());
    auto rows = t.exec_params(std::string("SELECT ") + kRequestCols +
                                  "FROM join_requests r WHERE r.cluster_id = $1::uuid "
                                  "AND ($2 = '' OR r.status = $2) ORDER BY r.created_at, r.id "
                                  "LIMIT 1000",
                              cl->id, status);
    json out = json::array();
    for (const auto& row : rows) out.push_back(request_json(row, slug));
    return json{{"join_requests", out}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

// Locks a pending join request of the cluster (404 / 409 otherwise).
Result<pqxx::row> lock_pending_request(pqxx::work& w, const ClusterRow& cl, const std::string& id) {
  if (!valid_uuid(id)) return http_fail(404, "join_request_not_found", "join request not found");
  auto rows = w.exec_params(std::string("SELECT ") + kRequestCols +
                                "FROM join_requests r WHERE r.id = $1::uuid AND "
                                "r.cluster_id = $2::uuid FOR UPDATE",
                            id, cl.id);
  if (rows.empty()) return http_fail(404, "join_request_not_found", "join request not found");
  if (rows[0]["status"].as<std::string>() != "pending")
    return http_fail(409, "join_request_not_pending", "join request was already decided");
  return rows[0];
}

HttpResponse post_join_request_approve(Ctx& ctx) {
  if (auto denied = require_step_up(ctx)) return *denied;  // high-risk action
  const std::string slug = ctx.param("cluster");
  const std::string id = ctx.param("id");
  auto body = parse_optional_object(ctx.req.body);
  if (!body) return body.error();
  if (auto bad = reject_unknown_fields(*body, {"name", "org"})) return *bad;
  auto name_in = opt_string(*body, "name");
  if (!name_in) return name_in.error();
  auto org_in = opt_string(*body, "org");
  if (!org_in) return org_in.error();
  if (*name_in && ((*name_in)->empty() || (*name_in)->size() > 253))
    return error_response(400, "invalid_name", "name must be 1 to 253 bytes long");
  if (ctx.opts.master_key.size() != kMasterKeyBytes)
    return error_response(503, "master_key_unavailable", "the master key is not configured");
  FnRandom rng(ctx.random_bytes);
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto cl = find_cluster(w, slug);
    if (!cl) return tl::unexpected(cl.error());
    auto req = lock_pending_request(w, *cl, id);
    if (!req) return tl::unexpected(req.error());
    std::string org_id;
    if (*org_in) {
      auto o = w.exec_params("SELECT id FROM organizations WHERE slug = $1", **org_in);
      if (o.empty()) return http_fail(404, "org_not_found", "organization not found");
      org_id = o[0][0].as<std::string>();
    }
    const json facts = jsonb((*req)["facts"]);
    std::string name = name_in->value_or("");
    if (name.empty() && facts.is_object() && facts.contains("hostname") &&
        facts["hostname"].is_string())
      name = facts["hostname"].get<std::string>();
    if (name.empty()) name = "node-" + id.substr(0, 8);
    const std::string pub = (*req)["public_key"].as<std::string>();
    auto n = w.exec_params(
        "INSERT INTO nodes (cluster_id, name, public_key, ownership, org_id, capabilities, facts) "
        "VALUES ($1::uuid, $2, $3, CASE WHEN $4 = '' THEN 'platform' ELSE 'org' END, "
        "NULLIF($4, '')::uuid, $5::jsonb, $6::jsonb) RETURNING id",
        cl->id, name, pub, org_id, (*req)["capabilities"].as<std::string>(), facts.dump());
    const std::string node_id = n[0][0].as<std::string>();
    auto cert = issue_and_record_node_certificate(w, ctx.opts.master_key, cl->id, node_id, pub,
                                                  ctx.opts.node_cert_ttl, rng);
    if (!cert) return issuance_failure(cert.error());
    w.exec_params(
        "UPDATE join_requests SET status = 'approved', node_id = $2::uuid, decided_by = $3::uuid, "
        "decided_at = now() WHERE id = $1::uuid",
        id, node_id, ctx.caller->user_id);
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .org_id = org_id,
                        .cluster_id = cl->id,
                        .action = "node.join_request_approved",
                        .target = "join_request:" + id,
                        .details = json{{"node_id", node_id}, {"name", name}}});
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .cluster_id = cl->id,
                        .action = "node.certificate_issued",
                        .target = "node:" + node_id,
                        .details = json{
                            {"serial", std::to_string(cert->serial)},
                            {"not_after", std::chrono::system_clock::to_time_t(cert->not_after)}}});
    auto row = w.exec_params(
        std::string("SELECT ") + kRequestCols + "FROM join_requests r WHERE r.id = $1::uuid", id);
    return json{{"join_request", request_json(row[0], slug)},
                {"node", {{"id", node_id}, {"name", name}}},
                {"certificate", {{"serial", std::to_string(cert->serial)}}}};
  });
  if (!r) {
    if (r.error().code == "conflict")
      return error_response(409, "node_exists", "a node with this public key exists");
    return to_response(r.error());
  }
  return json_response(200, *r);
}

HttpResponse post_join_request_reject(Ctx& ctx) {
  const std::string slug = ctx.param("cluster");
  const std::string id = ctx.param("id");
  auto body = parse_optional_object(ctx.req.body);
  if (!body) return body.error();
  if (auto bad = reject_unknown_fields(*body, {"reason"})) return *bad;
  auto reason = opt_string(*body, "reason");
  if (!reason) return reason.error();
  if (*reason && (*reason)->size() > 500)
    return error_response(400, "invalid_reason", "reason must be at most 500 bytes");
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto cl = find_cluster(w, slug);
    if (!cl) return tl::unexpected(cl.error());
    auto req = lock_pending_request(w, *cl, id);
    if (!req) return tl::unexpected(req.error());
    w.exec_params(
        "UPDATE join_requests SET status = 'rejected', reason = NULLIF($2, ''), "
        "decided_by = $3::uuid, decided_at = now() WHERE id = $1::uuid",
        id, reason->value_or(""), ctx.caller->user_id);
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .cluster_id = cl->id,
                        .action = "node.join_request_rejected",
                        .target = "join_request:" + id,
                        .details = json{{"reason", reason->value_or("")}}});
    auto row = w.exec_params(
        std::string("SELECT ") + kRequestCols + "FROM join_requests r WHERE r.id = $1::uuid", id);
    return json{{"join_request", request_json(row[0], slug)}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

// ---------------- nodes ----------------

constexpr const char* kNodeCols =
    "n.id, n.name, n.public_key, n.status, n.ownership, "
    "(SELECT slug FROM organizations o WHERE o.id = n.org_id) AS org, "
    "n.capabilities::text AS capabilities, n.facts::text AS facts, n.desired_state_version, "
    "n.agent_version, " RAP_TS("n.created_at") " AS created_at, "
    RAP_TS("n.revoked_at") " AS revoked_at, " RAP_TS("n.last_heartbeat_at") " AS last_heartbeat_at, "
    "CASE WHEN n.last_heartbeat_at IS NULL THEN 'offline' "
    "WHEN now() - n.last_heartbeat_at < interval '30 seconds' THEN 'online' "
    "WHEN now() - n.last_heartbeat_at < interval '120 seconds' THEN 'stale' "
    "ELSE 'offline' END AS health ";

json node_json(const pqxx::row& r, const std::string& cluster_slug) {
  return json{{"id", r["id"].as<std::string>()},
              {"cluster", cluster_slug},
              {"name", r["name"].as<std::string>()},
              {"public_key", r["public_key"].as<std::string>()},
              {"status", r["status"].as<std::string>()},
              {"ownership", r["ownership"].as<std::string>()},
              {"org", opt_json_text(r["org"])},
              {"capabilities", jsonb(r["capabilities"])},
              {"facts", jsonb(r["facts"])},
              {"desired_state_version", r["desired_state_version"].as<long long>()},
              {"agent_version", opt_json_text(r["agent_version"])},
              {"created_at", r["created_at"].as<std::string>()},
              {"revoked_at", opt_json_text(r["revoked_at"])},
              {"last_heartbeat_at", opt_json_text(r["last_heartbeat_at"])},
              {"health", r["health"].as<std::string>()}};
}

// Finds a node of the cluster; `lock` takes a row lock for mutations.
Result<json> find_node(pqxx::transaction_base& t, const ClusterRow& cl, const std::string& id,
                       bool lock) {
  if (!valid_uuid(id)) return http_fail(404, "node_not_found", "node not found");
  auto rows = t.exec_params(std::string("SELECT ") + kNodeCols +
                                "FROM nodes n WHERE n.id = $1::uuid AND n.cluster_id = $2::uuid" +
                                (lock ? " FOR UPDATE" : ""),
                            id, cl.id);
  if (rows.empty()) return http_fail(404, "node_not_found", "node not found");
  return node_json(rows[0], cl.slug);
}

// Live presence (LiveState, written from heartbeats in batches of a second): adds
// "last_seen_at" and counts a node seen within the presence TTL as online, whatever the
// (throttled) durable last_heartbeat_at says. Without Redis, or when it is away, the durable
// health stands (degraded mode).
void merge_presence(Ctx& ctx, const std::string& cluster_id, std::vector<json*> nodes) {
  if (ctx.live == nullptr || nodes.empty()) return;
  std::map<std::string, std::string> live;
  if (nodes.size() == 1) {
    auto one = ctx.live->get_presence(cluster_id, (*nodes[0])["id"].get<std::string>());
    if (!one) return;
    if (*one) live[(*nodes[0])["id"].get<std::string>()] = **one;
  } else {
    auto all = ctx.live->list_presence(cluster_id);
    if (!all) return;
    live = std::move(*all);
  }
  for (json* n : nodes) {
    auto it = live.find((*n)["id"].get<std::string>());
    if (it == live.end()) continue;
    auto v = json::parse(it->second, nullptr, false);
    if (!v.is_object() || !v.contains("last_seen_ms") || !v["last_seen_ms"].is_number_integer())
      continue;
    const auto ms = v["last_seen_ms"].get<std::int64_t>();
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    (*n)["last_seen_at"] = std::string(buf);
    if ((*n)["status"] == "active") (*n)["health"] = "online";
  }
}

HttpResponse get_nodes(Ctx& ctx) {
  const std::string slug = ctx.param("cluster");
  std::string cluster_id;
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto cl = find_cluster(t, slug);
    if (!cl) return tl::unexpected(cl.error());
    cluster_id = cl->id;
    auto rows =
        t.exec_params(std::string("SELECT ") + kNodeCols +
                          "FROM nodes n WHERE n.cluster_id = $1::uuid ORDER BY n.name, n.id",
                      cl->id);
    json out = json::array();
    for (const auto& row : rows) out.push_back(node_json(row, slug));
    return json{{"nodes", out}};
  });
  if (!r) return to_response(r.error());
  std::vector<json*> nodes;
  for (auto& n : (*r)["nodes"]) nodes.push_back(&n);
  merge_presence(ctx, cluster_id, std::move(nodes));
  return json_response(200, *r);
}

json roles_of(pqxx::transaction_base& t, const std::string& node_id) {
  json roles = json::array();
  auto rows = t.exec_params(
      "SELECT a.role, o.slug FROM node_role_assignments a LEFT JOIN organizations o "
      "ON o.id = a.org_id WHERE a.node_id = $1::uuid ORDER BY a.role, o.slug NULLS FIRST",
      node_id);
  for (const auto& row : rows)
    roles.push_back({{"role", row[0].as<std::string>()}, {"org", opt_json_text(row[1])}});
  return roles;
}

json workloads_of(pqxx::transaction_base& t, const std::string& node_id) {
  json out = json::array();
  auto rows = t.exec_params(
      "SELECT name, kind, spec::text, version FROM node_workloads WHERE node_id = $1::uuid "
      "ORDER BY name",
      node_id);
  for (const auto& row : rows)
    out.push_back({{"name", row[0].as<std::string>()},
                   {"kind", row[1].as<std::string>()},
                   {"spec", jsonb(row[2])},
                   {"version", row[3].as<long long>()}});
  return out;
}

HttpResponse get_node(Ctx& ctx) {
  const std::string slug = ctx.param("cluster");
  const std::string id = ctx.param("node");
  std::string cluster_id;
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto cl = find_cluster(t, slug);
    if (!cl) return tl::unexpected(cl.error());
    cluster_id = cl->id;
    auto n = find_node(t, *cl, id, false);
    if (!n) return tl::unexpected(n.error());
    json node = *n;
    node["roles"] = roles_of(t, id);
    node["workloads"] = workloads_of(t, id);
    auto state = t.exec_params("SELECT last_state::text FROM nodes WHERE id = $1::uuid", id);
    node["last_state"] = jsonb(state[0][0]);
    json certs = json::array();
    auto rows = t.exec_params(
        "SELECT serial, " RAP_TS("not_before") ", " RAP_TS("not_after") ", " RAP_TS(
            "revoked_at") ", revoke_reason FROM node_certificates WHERE node_id = $1::uuid "
                          "ORDER BY not_after DESC LIMIT 20",
        id);
    for (const auto& row : rows)
      certs.push_back({{"serial", row[0].as<std::string>()},
                       {"not_before", row[1].as<std::string>()},
                       {"not_after", row[2].as<std::string>()},
                       {"revoked_at", opt_json_text(row[3])},
                       {"revoke_reason", opt_json_text(row[4])}});
    node["certificates"] = certs;
    return json{{"node", node}};
  });
  if (!r) return to_response(r.error());
  merge_presence(ctx, cluster_id, {&(*r)["node"]});
  return json_response(200, *r);
}

HttpResponse post_node_revoke(Ctx& ctx) {
  if (auto denied = require_step_up(ctx)) return *denied;  // high-risk action
  const std::string slug = ctx.param("cluster");
  const std::string id = ctx.param("node");
  auto body = parse_optional_object(ctx.req.body);
  if (!body) return body.error();
  if (auto bad = reject_unknown_fields(*body, {"reason"})) return *bad;
  auto reason = opt_string(*body, "reason");
  if (!reason) return reason.error();
  if (*reason && (*reason)->size() > 500)
    return error_response(400, "invalid_reason", "reason must be at most 500 bytes");
  const std::string why = reason->value_or("revoked by platform owner");
  std::string cluster_id;
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto cl = find_cluster(w, slug);
    if (!cl) return tl::unexpected(cl.error());
    cluster_id = cl->id;
    auto n = find_node(w, *cl, id, true);
    if (!n) return tl::unexpected(n.error());
    if ((*n)["status"] == "revoked")
      return http_fail(409, "node_already_revoked", "node is already revoked");
    w.exec_params(
        "UPDATE nodes SET status = 'revoked', revoked_at = now(), "
        "desired_state_version = desired_state_version + 1 WHERE id = $1::uuid",
        id);
    auto certs = w.exec_params(
        "UPDATE node_certificates SET revoked_at = now(), revoke_reason = $2 "
        "WHERE node_id = $1::uuid AND revoked_at IS NULL RETURNING serial",
        id, why);
    json serials = json::array();
    for (const auto& row : certs) serials.push_back(row[0].as<std::string>());
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .cluster_id = cl->id,
                        .action = "node.revoked",
                        .target = "node:" + id,
                        .details = json{{"reason", why}, {"revoked_serials", serials}}});
    auto after = find_node(w, *cl, id, false);
    if (!after) return tl::unexpected(after.error());
    return json{{"node", *after}, {"revoked_certificates", serials}};
  });
  if (!r) return to_response(r.error());
  node_changed(ctx, cluster_id, id);
  return json_response(200, *r);
}

HttpResponse put_node_roles(Ctx& ctx) {
  if (auto denied = require_step_up(ctx)) return *denied;  // role assignment: high-risk
  const std::string slug = ctx.param("cluster");
  const std::string id = ctx.param("node");
  auto body = parse_object(ctx.req.body);
  if (!body) return body.error();
  if (auto bad = reject_unknown_fields(*body, {"roles"})) return *bad;
  auto it = body->find("roles");
  if (it == body->end() || !it->is_array() || it->size() > 32)
    return error_response(400, "invalid_request", "field 'roles' must be an array (at most 32)");
  std::vector<std::pair<std::string, std::string>> roles;  // (role, org slug or "")
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& e : *it) {
    if (!e.is_object())
      return error_response(400, "invalid_request", "each role must be an object");
    if (auto bad = reject_unknown_fields(e, {"role", "org"})) return *bad;
    auto role = req_string(e, "role");
    if (!role) return role.error();
    auto org = opt_string(e, "org");
    if (!org) return org.error();
    if (!kRoles.contains(*role))
      return error_response(400, "unknown_role", "unknown role '" + echo(*role) + "'");
    auto key = std::make_pair(*role, org->value_or(""));
    if (!seen.insert(key).second)
      return error_response(400, "duplicate_role", "role '" + *role + "' is listed twice");
    roles.push_back(key);
  }
  std::string cluster_id;
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto cl = find_cluster(w, slug);
    if (!cl) return tl::unexpected(cl.error());
    cluster_id = cl->id;
    auto n = find_node(w, *cl, id, true);
    if (!n) return tl::unexpected(n.error());
    if ((*n)["status"] == "revoked") return http_fail(409, "node_revoked", "node is revoked");
    w.exec_params("DELETE FROM node_role_assignments WHERE node_id = $1::uuid", id);
    for (const auto& [role, org] : roles) {
      std::string org_id;
      if (!org.empty()) {
        auto o = w.exec_params("SELECT id FROM organizations WHERE slug = $1", org);
        if (o.empty())
          return http_fail(404, "org_not_found", "organization '" + echo(org) + "' not found");
        org_id = o[0][0].as<std::string>();
      }
      w.exec_params(
          "INSERT INTO node_role_assignments (node_id, role, org_id, assigned_by) "
          "VALUES ($1::uuid, $2, NULLIF($3, '')::uuid, $4::uuid)",
          id, role, org_id, ctx.caller->user_id);
    }
    auto v = w.exec_params(
        "UPDATE nodes SET desired_state_version = desired_state_version + 1 WHERE id = $1::uuid "
        "RETURNING desired_state_version",
        id);
    json out_roles = roles_of(w, id);
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .cluster_id = cl->id,
                        .action = "node.roles_set",
                        .target = "node:" + id,
                        .details = json{{"roles", out_roles}}});
    return json{
        {"node_id", id}, {"roles", out_roles}, {"desired_state_version", v[0][0].as<long long>()}};
  });
  if (!r) return to_response(r.error());
  node_changed(ctx, cluster_id, id);
  return json_response(200, *r);
}

bool valid_workload_name(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

HttpResponse put_node_workloads(Ctx& ctx) {
  const std::string slug = ctx.param("cluster");
  const std::string id = ctx.param("node");
  auto body = parse_object(ctx.req.body);
  if (!body) return body.error();
  if (auto bad = reject_unknown_fields(*body, {"workloads"})) return *bad;
  auto it = body->find("workloads");
  if (it == body->end() || !it->is_array() || it->size() > 64)
    return error_response(400, "invalid_request",
                          "field 'workloads' must be an array (at most 64)");
  struct Workload {
    std::string name, kind, spec;
  };
  std::vector<Workload> wls;
  std::set<std::string> names;
  for (const auto& e : *it) {
    if (!e.is_object())
      return error_response(400, "invalid_request", "each workload must be an object");
    if (auto bad = reject_unknown_fields(e, {"name", "kind", "spec"})) return *bad;
    auto name = req_string(e, "name");
    if (!name) return name.error();
    auto kind = req_string(e, "kind");
    if (!kind) return kind.error();
    if (!valid_workload_name(*name))
      return error_response(400, "invalid_workload_name",
                            "workload name must match [a-z0-9-]{1,63}");
    if (*kind != "container" && *kind != "native")
      return error_response(400, "invalid_workload_kind", "kind must be 'container' or 'native'");
    json spec = json::object();
    if (auto s = e.find("spec"); s != e.end() && !s->is_null()) {
      if (!s->is_object())
        return error_response(400, "invalid_request", "field 'spec' must be an object");
      spec = *s;
    }
    if (!names.insert(*name).second)
      return error_response(400, "duplicate_workload", "workload '" + *name + "' is listed twice");
    wls.push_back({*name, *kind, spec.dump()});
  }
  std::string cluster_id;
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto cl = find_cluster(w, slug);
    if (!cl) return tl::unexpected(cl.error());
    cluster_id = cl->id;
    auto n = find_node(w, *cl, id, true);
    if (!n) return tl::unexpected(n.error());
    if ((*n)["status"] == "revoked") return http_fail(409, "node_revoked", "node is revoked");
    json keep = json::array();
    for (const auto& wl : wls) {
      keep.push_back(wl.name);
      // A workload's own version moves only when its kind or spec changes.
      w.exec_params(
          "INSERT INTO node_workloads (node_id, name, kind, spec) VALUES ($1::uuid, $2, $3, "
          "$4::jsonb) ON CONFLICT (node_id, name) DO UPDATE SET kind = EXCLUDED.kind, "
          "spec = EXCLUDED.spec, updated_at = now(), version = node_workloads.version + "
          "CASE WHEN node_workloads.kind = EXCLUDED.kind AND node_workloads.spec = EXCLUDED.spec "
          "THEN 0 ELSE 1 END",
          id, wl.name, wl.kind, wl.spec);
    }
    w.exec_params(
        "DELETE FROM node_workloads WHERE node_id = $1::uuid AND NOT (name = ANY (ARRAY(SELECT "
        "jsonb_array_elements_text($2::jsonb))))",
        id, keep.dump());
    auto v = w.exec_params(
        "UPDATE nodes SET desired_state_version = desired_state_version + 1 WHERE id = $1::uuid "
        "RETURNING desired_state_version",
        id);
    json out = workloads_of(w, id);
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .cluster_id = cl->id,
                        .action = "node.workloads_set",
                        .target = "node:" + id,
                        .details = json{{"workloads", keep}}});
    return json{
        {"node_id", id}, {"workloads", out}, {"desired_state_version", v[0][0].as<long long>()}};
  });
  if (!r) return to_response(r.error());
  node_changed(ctx, cluster_id, id);
  return json_response(200, *r);
}

HttpResponse get_node_heartbeats(Ctx& ctx) {
  const std::string slug = ctx.param("cluster");
  const std::string id = ctx.param("node");
  int limit = 100;
  for (const auto& [k, v] : ctx.query) {
    if (k != "limit") return error_response(400, "invalid_request", "unknown query parameter");
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), limit);
    if (ec != std::errc() || p != v.data() + v.size() || limit < 1 || limit > 100)
      return error_response(400, "invalid_limit", "limit must be 1..100");
  }
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto cl = find_cluster(t, slug);
    if (!cl) return tl::unexpected(cl.error());
    auto n = find_node(t, *cl, id, false);
    if (!n) return tl::unexpected(n.error());
    auto rows = t.exec_params(
        "SELECT " RAP_TS("at") ", state::text FROM node_heartbeats WHERE node_id = $1::uuid "
        "ORDER BY id DESC LIMIT $2",
        id, limit);
    json out = json::array();
    for (const auto& row : rows)
      out.push_back({{"at", row[0].as<std::string>()}, {"state", jsonb(row[1])}});
    return json{{"node_id", id}, {"health", (*n)["health"]}, {"heartbeats", out}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

}  // namespace

// ---------------- signed configuration (config_compiler.h) ----------------

// GET .../config: the cluster's config-signing keys (public halves), generation, epoch and the
// latest version of every published component.
HttpResponse get_cluster_config(Ctx& ctx) {
  const std::string slug = ctx.param("cluster");
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto cl = find_cluster(t, slug);
    if (!cl) return tl::unexpected(cl.error());
    json keys = json::array();
    for (const auto& k : t.exec_params(
             "SELECT key_id, public_key, status, " RAP_TS("not_before") ", " RAP_TS(
                 "not_after") " FROM config_signing_keys WHERE cluster_id = $1::uuid ORDER BY "
                              "created_at",
             cl->id))
      keys.push_back({{"key_id", k[0].as<std::string>()},
                      {"public_key", k[1].as<std::string>()},
                      {"status", k[2].as<std::string>()},
                      {"not_before", k[3].as<std::string>()},
                      {"not_after", k[4].as<std::string>()}});
    auto au = t.exec_params(
        "SELECT authority_epoch, config_generation FROM cluster_authority WHERE cluster_id = "
        "$1::uuid",
        cl->id);
    auto counts = t.exec_params(
        "SELECT artifact_type, count(DISTINCT state_key), max(version), count(*), "
        "sum(length(wire)) FROM config_artifacts WHERE cluster_id = $1::uuid "
        "GROUP BY artifact_type ORDER BY artifact_type",
        cl->id);
    json types = json::array();
    for (const auto& row : counts)
      types.push_back({{"type", row[0].as<std::string>()},
                       {"scopes", row[1].as<long long>()},
                       {"max_version", row[2].as<long long>()},
                       {"artifacts", row[3].as<long long>()},
                       {"bytes", row[4].as<long long>()}});
    return json{{"signing_keys", keys},
                {"authority_epoch", au.empty() ? 0 : au[0][0].as<long long>()},
                {"config_generation", au.empty() ? 0 : au[0][1].as<long long>()},
                {"artifacts", types}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

HttpResponse config_error(const Error& e) {
  if (e.code == "unseal_failed" || e.code == "no_master_key")
    return error_response(503, "master_key_unavailable", "the config-signing key is unavailable");
  return to_response(e);
}

// POST .../config/compile: compiles and publishes every active node's artifacts now.
HttpResponse post_cluster_config_compile(Ctx& ctx) {
  const std::string slug = ctx.param("cluster");
  FnRandom rng(ctx.random_bytes);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto cl = find_cluster(w, slug);
    if (!cl) return tl::unexpected(cl.error());
    auto stats = compile_cluster_config(w, ctx.opts.master_key, cl->id, rng);
    if (!stats) return tl::unexpected(stats.error());
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .cluster_id = cl->id,
                        .action = "cluster.config_compiled",
                        .target = "cluster:" + slug,
                        .details = json{{"nodes", stats->nodes}, {"published", stats->published}}});
    return json{{"nodes", stats->nodes}, {"published", stats->published}, {"bytes", stats->bytes}};
  });
  if (!r) return config_error(r.error());
  (*r)["duration_ms"] =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  return json_response(200, *r);
}

// POST .../config/rotate-key {"overlap_seconds"?}: new config-signing key (step-up). The old key
// stays trusted (retired) for the overlap, default 7 days.
HttpResponse post_cluster_config_rotate(Ctx& ctx) {
  if (auto denied = require_step_up(ctx)) return *denied;  // trust change
  const std::string slug = ctx.param("cluster");
  auto body = parse_optional_object(ctx.req.body);
  if (!body) return body.error();
  if (auto bad = reject_unknown_fields(*body, {"overlap_seconds"})) return *bad;
  auto overlap = opt_int(*body, "overlap_seconds");
  if (!overlap) return overlap.error();
  const std::int64_t secs = overlap->value_or(7 * 86400);
  if (secs < 60 || secs > 90 * 86400)
    return error_response(400, "invalid_request", "overlap_seconds must be 60..7776000");
  FnRandom rng(ctx.random_bytes);
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto cl = find_cluster(w, slug);
    if (!cl) return tl::unexpected(cl.error());
    auto id =
        rotate_config_signing_key(w, ctx.opts.master_key, cl->id, rng, std::chrono::seconds(secs));
    if (!id) return tl::unexpected(id.error());
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .cluster_id = cl->id,
                        .action = "cluster.config_key_rotated",
                        .target = "cluster:" + slug,
                        .details = json{{"key_id", *id}, {"overlap_seconds", secs}}});
    return json{{"key_id", *id}};
  });
  if (!r) return config_error(r.error());
  return json_response(200, *r);
}

void register_cluster_routes(Router& r) {
  const std::string c = "/api/v1/clusters/{cluster}";
  r.add("POST", "/api/v1/clusters", Auth::kUser, owner_only("cluster.create", post_clusters));
  r.add("GET", "/api/v1/clusters", Auth::kUser, owner_only("cluster.list", get_clusters));
  r.add("GET", c, Auth::kUser, owner_only("cluster.read", get_cluster));
  r.add("POST", c + "/join-tokens", Auth::kUser,
        owner_only("cluster.join_token_create", post_join_token));
  r.add("GET", c + "/join-tokens", Auth::kUser,
        owner_only("cluster.join_token_list", get_join_tokens));
  r.add("POST", c + "/join-tokens/{id}/revoke", Auth::kUser,
        owner_only("cluster.join_token_revoke", post_join_token_revoke));
  r.add("GET", c + "/join-requests", Auth::kUser,
        owner_only("cluster.join_request_list", get_join_requests));
  r.add("POST", c + "/join-requests/{id}/approve", Auth::kUser,
        owner_only("node.join_request_approve", post_join_request_approve));
  r.add("POST", c + "/join-requests/{id}/reject", Auth::kUser,
        owner_only("node.join_request_reject", post_join_request_reject));
  r.add("GET", c + "/nodes", Auth::kUser, owner_only("node.list", get_nodes));
  r.add("GET", c + "/nodes/{node}", Auth::kUser, owner_only("node.read", get_node));
  r.add("POST", c + "/nodes/{node}/revoke", Auth::kUser,
        owner_only("node.revoke", post_node_revoke));
  r.add("PUT", c + "/nodes/{node}/roles", Auth::kUser,
        owner_only("node.roles_set", put_node_roles));
  r.add("PUT", c + "/nodes/{node}/workloads", Auth::kUser,
        owner_only("node.workloads_set", put_node_workloads));
  r.add("GET", c + "/nodes/{node}/heartbeats", Auth::kUser,
        owner_only("node.heartbeats_read", get_node_heartbeats));
  r.add("GET", c + "/config", Auth::kUser, owner_only("cluster.config_read", get_cluster_config));
  r.add("POST", c + "/config/compile", Auth::kUser,
        owner_only("cluster.config_compiled", post_cluster_config_compile));
  r.add("POST", c + "/config/rotate-key", Auth::kUser,
        owner_only("cluster.config_key_rotated", post_cluster_config_rotate));
}

}  // namespace rap::control::detail
