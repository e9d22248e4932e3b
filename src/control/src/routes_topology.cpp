// Topology administration (platform owner and platform admins): node groups (a tree per
// cluster), node group membership, per-cluster authority (epoch + partition state), egress pools
// (org-scoped logical exits and the nodes backing them), and granting the platform_admin role
// (platform owner only).
//
// Tenancy: cluster-scoped routes answer 404 not_found to anyone but platform staff (audited as
// denied). Egress pools are visible to the members of their organization by name and
// description only: which clusters and nodes back a pool is never shown to tenants.
#include <algorithm>
#include <charconv>
#include <map>
#include <set>

#include "api_internal.h"
#include "rap/control/auth.h"

namespace rap::control::detail {

namespace {

constexpr std::size_t kMaxPoolNodes = 64;
constexpr std::size_t kMaxDescription = 500;

HttpResponse not_found() {
  return error_response(404, "not_found", "no such route");
}

bool is_staff(const Caller& c) {
  return c.is_owner || c.is_platform_admin;
}

// Like owner_only in routes_clusters.cpp: `owner_strict` admits the platform owner only,
// otherwise the owner and platform admins. Everyone else gets 404 not_found (audited as denied).
Handler staff_only(const char* action, Handler h, bool owner_strict = false) {
  return [action, owner_strict, h = std::move(h)](Ctx& c) -> HttpResponse {
    const bool ok = owner_strict ? c.caller->is_owner : is_staff(*c.caller);
    if (!ok) {
      const std::string path = c.req.target.substr(0, c.req.target.find('?'));
      audit_standalone(
          c.db, AuditEvent{.actor_user_id = c.caller->user_id,
                           .action = action,
                           .target = path.substr(0, 200),
                           .outcome = "denied",
                           .details = json{{"method", c.req.method},
                                           {"reason", owner_strict ? "not_platform_owner"
                                                                   : "not_platform_staff"}}});
      return not_found();
    }
    return h(c);
  };
}

struct ClusterRef {
  std::string id;
  std::string slug;
};

Result<ClusterRef> find_cluster(pqxx::transaction_base& t, const std::string& slug) {
  if (!valid_slug(slug)) return http_fail(404, "cluster_not_found", "cluster not found");
  auto rows = t.exec_params("SELECT id FROM clusters WHERE slug = $1", slug);
  if (rows.empty()) return http_fail(404, "cluster_not_found", "cluster not found");
  return ClusterRef{rows[0][0].as<std::string>(), slug};
}

json opt_text(const pqxx::field& f) {
  return f.is_null() ? json(nullptr) : json(f.as<std::string>());
}

// ---------------- node groups ----------------

constexpr const char* kGroupCols =
    "g.id, g.name, g.parent_id, " RAP_TS("g.created_at") " AS created_at, "
    "(SELECT count(*) FROM node_groups k WHERE k.parent_id = g.id) AS children, "
    "(SELECT count(*) FROM nodes n WHERE n.group_id = g.id) AS nodes ";

json group_json(const pqxx::row& r, const std::string& cluster) {
  return json{{"id", r["id"].as<std::string>()},
              {"cluster", cluster},
              {"name", r["name"].as<std::string>()},
              {"parent_id", opt_text(r["parent_id"])},
              {"children", r["children"].as<long long>()},
              {"nodes", r["nodes"].as<long long>()},
              {"created_at", r["created_at"].as<std::string>()}};
}

Result<json> find_group(pqxx::transaction_base& t, const ClusterRef& cl, const std::string& id,
                        bool lock) {
  if (!valid_uuid(id)) return http_fail(404, "node_group_not_found", "node group not found");
  auto rows = t.exec_params(std::string("SELECT ") + kGroupCols +
                                "FROM node_groups g WHERE g.id = $1::uuid AND "
                                "g.cluster_id = $2::uuid" +
                                (lock ? " FOR UPDATE" : ""),
                            id, cl.id);
  if (rows.empty()) return http_fail(404, "node_group_not_found", "node group not found");
  return group_json(rows[0], cl.slug);
}

// Reads an optional nullable uuid member ("parent", "group"): nullopt when absent or null.
Step<std::optional<std::string>> opt_uuid(const json& body, const char* key) {
  auto v = opt_string(body, key);
  if (!v) return v;
  if (*v && !valid_uuid(**v))
    return tl::unexpected(
        error_response(400, "invalid_request", std::string("field '") + key + "' must be a uuid"));
  return v;
}

HttpResponse post_node_group(Ctx& ctx) {
  const std::string slug = ctx.param("cluster");
  auto body = parse_object(ctx.req.body);
  if (!body) return body.error();
  if (auto bad = reject_unknown_fields(*body, {"name", "parent"})) return *bad;
  auto name = req_string(*body, "name");
  if (!name) return name.error();
  if (!valid_name(*name))
    return error_response(400, "invalid_name", "name must be 1 to 100 bytes, no control chars");
  auto parent = opt_uuid(*body, "parent");
  if (!parent) return parent.error();
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto cl = find_cluster(w, slug);
    if (!cl) return tl::unexpected(cl.error());
    if (*parent) {
      auto p = find_group(w, *cl, **parent, true);
      if (!p) return http_fail(404, "parent_not_found", "parent node group not found");
    }
    auto dup = w.exec_params(
        "SELECT 1 FROM node_groups WHERE cluster_id = $1::uuid AND "
        "parent_id IS NOT DISTINCT FROM NULLIF($2, '')::uuid AND name = $3",
        cl->id, parent->value_or(""), *name);
    if (!dup.empty())
      return http_fail(409, "name_taken", "a sibling node group with this name exists");
    auto ins = w.exec_params(
        "INSERT INTO node_groups (cluster_id, parent_id, name) "
        "VALUES ($1::uuid, NULLIF($2, '')::uuid, $3) RETURNING id",
        cl->id, parent->value_or(""), *name);
    const std::string id = ins[0][0].as<std::string>();
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .cluster_id = cl->id,
                        .action = "node_group.created",
                        .target = "node_group:" + id,
                        .details = json{
                            {"name", *name},
                            {"parent_id", parent->has_value() ? json(**parent) : json(nullptr)}}});
    auto g = find_group(w, *cl, id, false);
    if (!g) return tl::unexpected(g.error());
    return json{{"node_group", *g}};
  });
  if (!r) {
    if (r.error().code == "conflict")
      return error_response(409, "name_taken", "a sibling node group with this name exists");
    return to_response(r.error());
  }
  return json_response(201, *r);
}

HttpResponse get_node_groups(Ctx& ctx) {
  const std::string slug = ctx.param("cluster");
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto cl = find_cluster(t, slug);
    if (!cl) return tl::unexpected(cl.error());
    auto rows = t.exec_params(std::string("SELECT ") + kGroupCols +
                                  "FROM node_groups g WHERE g.cluster_id = $1::uuid "
                                  "ORDER BY g.name, g.id",
                              cl->id);
    json out = json::array();
    for (const auto& row : rows) out.push_back(group_json(row, slug));
    return json{{"node_groups", out}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

HttpResponse delete_node_group(Ctx& ctx) {
  const std::string slug = ctx.param("cluster");
  const std::string id = ctx.param("id");
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto cl = find_cluster(w, slug);
    if (!cl) return tl::unexpected(cl.error());
    auto g = find_group(w, *cl, id, true);
    if (!g) return tl::unexpected(g.error());
    if ((*g)["children"].get<long long>() > 0)
      return http_fail(409, "node_group_not_empty", "node group has child groups");
    if ((*g)["nodes"].get<long long>() > 0)
      return http_fail(409, "node_group_not_empty", "node group has nodes");
    w.exec_params("DELETE FROM node_groups WHERE id = $1::uuid", id);
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .cluster_id = cl->id,
                        .action = "node_group.deleted",
                        .target = "node_group:" + id,
                        .details = json{{"name", (*g)["name"]}}});
    return json{{"deleted", {{"id", id}}}};
  });
  if (!r) {
    // A child or node added concurrently (foreign key) is the same conflict.
    if (r.error().code == "db_error" && r.error().message.find("23503") != std::string::npos)
      return error_response(409, "node_group_not_empty", "node group is not empty");
    return to_response(r.error());
  }
  return json_response(200, *r);
}

HttpResponse put_node_group_parent(Ctx& ctx) {
  const std::string slug = ctx.param("cluster");
  const std::string id = ctx.param("id");
  auto body = parse_object(ctx.req.body);
  if (!body) return body.error();
  if (auto bad = reject_unknown_fields(*body, {"parent"})) return *bad;
  if (!body->contains("parent"))
    return error_response(400, "invalid_request", "field 'parent' is required (uuid or null)");
  auto parent = opt_uuid(*body, "parent");
  if (!parent) return parent.error();
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto cl = find_cluster(w, slug);
    if (!cl) return tl::unexpected(cl.error());
    // Serializes concurrent moves within the cluster so that two moves cannot form a cycle.
    w.exec_params("SELECT 1 FROM node_groups WHERE cluster_id = $1::uuid FOR UPDATE", cl->id);
    auto g = find_group(w, *cl, id, true);
    if (!g) return tl::unexpected(g.error());
    if (*parent) {
      auto p = find_group(w, *cl, **parent, false);
      if (!p) return http_fail(404, "parent_not_found", "parent node group not found");
      auto cycle = w.exec_params(
          "WITH RECURSIVE up(id, parent_id) AS ("
          " SELECT id, parent_id FROM node_groups WHERE id = $1::uuid"
          " UNION SELECT g.id, g.parent_id FROM node_groups g JOIN up ON g.id = up.parent_id)"
          " SELECT 1 FROM up WHERE id = $2::uuid",
          **parent, id);
      if (!cycle.empty())
        return http_fail(409, "node_group_cycle",
                         "a node group cannot be moved under itself or its descendants");
    }
    auto dup = w.exec_params(
        "SELECT 1 FROM node_groups WHERE cluster_id = $1::uuid AND "
        "parent_id IS NOT DISTINCT FROM NULLIF($2, '')::uuid AND name = $3 AND id <> $4::uuid",
        cl->id, parent->value_or(""), (*g)["name"].get<std::string>(), id);
    if (!dup.empty())
      return http_fail(409, "name_taken", "a sibling node group with this name exists");
    w.exec_params("UPDATE node_groups SET parent_id = NULLIF($2, '')::uuid WHERE id = $1::uuid", id,
                  parent->value_or(""));
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .cluster_id = cl->id,
                        .action = "node_group.moved",
                        .target = "node_group:" + id,
                        .details = json{
                            {"from_parent_id", (*g)["parent_id"]},
                            {"parent_id", parent->has_value() ? json(**parent) : json(nullptr)}}});
    auto after = find_group(w, *cl, id, false);
    if (!after) return tl::unexpected(after.error());
    return json{{"node_group", *after}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

HttpResponse put_node_group_membership(Ctx& ctx) {
  const std::string slug = ctx.param("cluster");
  const std::string node = ctx.param("node");
  auto body = parse_object(ctx.req.body);
  if (!body) return body.error();
  if (auto bad = reject_unknown_fields(*body, {"group"})) return *bad;
  if (!body->contains("group"))
    return error_response(400, "invalid_request", "field 'group' is required (uuid or null)");
  auto group = opt_uuid(*body, "group");
  if (!group) return group.error();
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto cl = find_cluster(w, slug);
    if (!cl) return tl::unexpected(cl.error());
    if (!valid_uuid(node)) return http_fail(404, "node_not_found", "node not found");
    auto n = w.exec_params(
        "SELECT group_id FROM nodes WHERE id = $1::uuid AND cluster_id = $2::uuid FOR UPDATE", node,
        cl->id);
    if (n.empty()) return http_fail(404, "node_not_found", "node not found");
    if (*group) {
      auto g = find_group(w, *cl, **group, true);
      if (!g) return tl::unexpected(g.error());
    }
    w.exec_params("UPDATE nodes SET group_id = NULLIF($2, '')::uuid WHERE id = $1::uuid", node,
                  group->value_or(""));
    const json to = group->has_value() ? json(**group) : json(nullptr);
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .cluster_id = cl->id,
                        .action = "node.group_set",
                        .target = "node:" + node,
                        .details = json{{"from_group_id", opt_text(n[0][0])}, {"group_id", to}}});
    return json{{"node_id", node}, {"group_id", to}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

// ---------------- cluster authority ----------------

const std::set<std::string> kPartitionStates = {"normal", "degraded", "partitioned", "recovering"};

json authority_json(const pqxx::row& r, const std::string& cluster) {
  return json{{"cluster", cluster},
              {"authority_epoch", r[0].as<long long>()},
              {"partition_state", r[1].as<std::string>()},
              {"updated_at", r[2].as<std::string>()}};
}

constexpr const char* kAuthoritySelect =
    "SELECT authority_epoch, partition_state, " RAP_TS("updated_at") " FROM cluster_authority "
    "WHERE cluster_id = $1::uuid";

HttpResponse get_authority(Ctx& ctx) {
  const std::string slug = ctx.param("cluster");
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto cl = find_cluster(t, slug);
    if (!cl) return tl::unexpected(cl.error());
    auto rows = t.exec_params(kAuthoritySelect, cl->id);
    if (rows.empty()) return fail("internal", "cluster_authority row missing");
    return json{{"authority", authority_json(rows[0], slug)}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

// ---------------- fabric (live topology map) ----------------

// Route health of one fabric session from what its ends measure on it (docs/API.md "Fabric").
std::string session_health(const json& rtt, const json& jitter, const json& retransmits) {
  if (rtt.is_null() && jitter.is_null() && retransmits.is_null()) return "unknown";
  const double r = rtt.is_number() ? rtt.get<double>() : 0;
  const double j = jitter.is_number() ? jitter.get<double>() : 0;
  const double x = retransmits.is_number() ? retransmits.get<double>() : 0;
  if (x >= 5 || r >= 300 || j >= 100) return "bad";
  if (x >= 0.5 || r >= 100 || j >= 25) return "degraded";
  return "good";
}

// The larger of two optional figures (either end may report a session).
json worse(const json& a, const json& b) {
  if (!a.is_number()) return b;
  if (!b.is_number()) return a;
  return a.get<double>() >= b.get<double>() ? a : b;
}

// GET /api/v1/clusters/{cluster}/fabric: fabric sessions between the cluster's active nodes
// (heartbeat fabric.sessions of fresh nodes, either end) with RTT, jitter, retransmits and a
// health class, and the relays in use (load.relayed_routes > 0). Platform staff only.
HttpResponse get_cluster_fabric(Ctx& ctx) {
  const std::string slug = ctx.param("cluster");
  if (!ctx.query.empty()) return error_response(400, "invalid_request", "no query parameters");
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto cl = find_cluster(t, slug);
    if (!cl) return tl::unexpected(cl.error());
    struct N {
      std::string name;
      json sessions, load;
      bool fresh = false;
    };
    std::map<std::string, N> nodes;
    for (const auto& row : t.exec_params(
             "SELECT id, name, COALESCE(last_state->'fabric'->'sessions', '[]')::text, "
             "COALESCE(last_state->'load', '{}')::text, "
             "COALESCE(last_heartbeat_at > now() - interval '30 seconds', false) FROM nodes "
             "WHERE cluster_id = $1::uuid AND status = 'active'",
             cl->id))
      nodes[row[0].as<std::string>()] =
          N{row[1].as<std::string>(), json::parse(row[2].as<std::string>(), nullptr, false),
            json::parse(row[3].as<std::string>(), nullptr, false), row[4].as<bool>()};
    auto metric = [](const json& load, const char* field, const std::string& peer) -> json {
      if (!load.is_object()) return nullptr;
      auto f = load.find(field);
      if (f == load.end() || !f->is_object()) return nullptr;
      auto v = f->find(peer);
      return v == f->end() ? json(nullptr) : *v;
    };
    std::map<std::pair<std::string, std::string>, json> edges;
    json relays = json::array();
    for (const auto& [id, n] : nodes) {
      if (!n.fresh) continue;
      if (n.load.is_object() && n.load.value("relayed_routes", 0) > 0)
        relays.push_back(
            {{"node", id}, {"name", n.name}, {"relayed_routes", n.load["relayed_routes"]}});
      if (!n.sessions.is_array()) continue;
      for (const auto& s : n.sessions) {
        const auto peer = s.is_object() ? s.value("peer", std::string()) : std::string();
        if (peer == id || !nodes.contains(peer)) continue;
        auto& e = edges[std::minmax(id, peer)];
        if (e.is_null())
          e = json{{"rtt_ms", nullptr},
                   {"jitter_ms", nullptr},
                   {"retransmits_per_s", nullptr},
                   {"reported_by", 0}};
        e["rtt_ms"] = worse(e["rtt_ms"], metric(n.load, "peer_rtt_ms", peer));
        e["jitter_ms"] = worse(e["jitter_ms"], metric(n.load, "peer_jitter_ms", peer));
        e["retransmits_per_s"] =
            worse(e["retransmits_per_s"], metric(n.load, "peer_retransmits_per_s", peer));
        e["reported_by"] = e["reported_by"].get<int>() + 1;
      }
    }
    json out = json::array();
    for (auto& [k, e] : edges) {
      e["a"] = k.first;
      e["b"] = k.second;
      e["health"] = session_health(e["rtt_ms"], e["jitter_ms"], e["retransmits_per_s"]);
      out.push_back(std::move(e));
    }
    return json{{"cluster", slug}, {"sessions", out}, {"relays", relays}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

HttpResponse put_authority(Ctx& ctx) {
  if (auto denied = require_step_up(ctx)) return *denied;  // fencing: high-risk action
  const std::string slug = ctx.param("cluster");
  auto body = parse_object(ctx.req.body);
  if (!body) return body.error();
  if (auto bad = reject_unknown_fields(*body, {"authority_epoch", "bump_epoch", "partition_state"}))
    return *bad;
  auto epoch = opt_int(*body, "authority_epoch");
  if (!epoch) return epoch.error();
  auto bump = opt_bool(*body, "bump_epoch");
  if (!bump) return bump.error();
  auto state = opt_string(*body, "partition_state");
  if (!state) return state.error();
  const bool do_bump = bump->value_or(false);
  if (*epoch && do_bump)
    return error_response(400, "invalid_request",
                          "give either 'authority_epoch' or 'bump_epoch', not both");
  if (!*epoch && !do_bump && !*state)
    return error_response(400, "invalid_request",
                          "give 'authority_epoch', 'bump_epoch' or 'partition_state'");
  if (*epoch && **epoch < 1)
    return error_response(400, "invalid_epoch", "authority_epoch must be a positive integer");
  if (*state && !kPartitionStates.contains(**state))
    return error_response(400, "invalid_partition_state",
                          "partition_state must be normal, degraded, partitioned or recovering");
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto cl = find_cluster(w, slug);
    if (!cl) return tl::unexpected(cl.error());
    auto cur = w.exec_params(
        "SELECT authority_epoch, partition_state FROM cluster_authority WHERE cluster_id = "
        "$1::uuid FOR UPDATE",
        cl->id);
    if (cur.empty()) return fail("internal", "cluster_authority row missing");
    const long long old_epoch = cur[0][0].as<long long>();
    const std::string old_state = cur[0][1].as<std::string>();
    long long new_epoch = old_epoch;
    if (do_bump) new_epoch = old_epoch + 1;
    if (*epoch) {
      // The epoch fences stale authorities: it only moves forward.
      if (**epoch <= old_epoch)
        return http_fail(409, "epoch_not_increasing",
                         "authority_epoch must be greater than the current epoch (" +
                             std::to_string(old_epoch) + ")");
      new_epoch = **epoch;
    }
    const std::string new_state = state->value_or(old_state);
    w.exec_params(
        "UPDATE cluster_authority SET authority_epoch = $2, partition_state = $3, "
        "updated_at = now() WHERE cluster_id = $1::uuid",
        cl->id, new_epoch, new_state);
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .cluster_id = cl->id,
                        .action = "cluster.authority_set",
                        .target = "cluster:" + slug,
                        .details = json{{"from_epoch", old_epoch},
                                        {"authority_epoch", new_epoch},
                                        {"from_partition_state", old_state},
                                        {"partition_state", new_state}}});
    auto rows = w.exec_params(kAuthoritySelect, cl->id);
    return json{{"authority", authority_json(rows[0], slug)}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

// ---------------- egress pools ----------------

// The organization's id: platform staff see every organization, others only their own
// (find_org: 404 org_not_found otherwise).
Result<std::string> org_id_for(pqxx::transaction_base& t, const Caller& caller,
                               const std::string& slug) {
  if (is_staff(caller)) {
    if (!valid_slug(slug)) return http_fail(404, "org_not_found", "organization not found");
    auto rows = t.exec_params("SELECT id FROM organizations WHERE slug = $1", slug);
    if (rows.empty()) return http_fail(404, "org_not_found", "organization not found");
    return rows[0][0].as<std::string>();
  }
  auto v = find_org(t, caller, slug);
  if (!v) return tl::unexpected(v.error());
  return v->id;
}

constexpr const char* kPoolCols =
    "p.id, p.name, p.description, " RAP_TS("p.created_at") " AS created_at ";

json pool_nodes(pqxx::transaction_base& t, const std::string& pool_id) {
  json out = json::array();
  auto rows = t.exec_params(
      "SELECT c.slug, n.id, n.name, n.status FROM egress_pool_nodes e "
      "JOIN nodes n ON n.id = e.node_id JOIN clusters c ON c.id = e.cluster_id "
      "WHERE e.pool_id = $1::uuid ORDER BY c.slug, n.name, n.id",
      pool_id);
  for (const auto& row : rows)
    out.push_back({{"cluster", row[0].as<std::string>()},
                   {"node_id", row[1].as<std::string>()},
                   {"node_name", row[2].as<std::string>()},
                   {"status", row[3].as<std::string>()}});
  return out;
}

// Tenants get name and description only; platform staff also the backing nodes.
json pool_json(pqxx::transaction_base& t, const pqxx::row& r, bool staff) {
  json j{{"id", r["id"].as<std::string>()},
         {"name", r["name"].as<std::string>()},
         {"description", r["description"].as<std::string>()},
         {"created_at", r["created_at"].as<std::string>()}};
  if (staff) j["nodes"] = pool_nodes(t, r["id"].as<std::string>());
  return j;
}

HttpResponse post_egress_pool(Ctx& ctx) {
  if (auto denied = require_step_up(ctx)) return *denied;
  const std::string slug = ctx.param("slug");
  auto body = parse_object(ctx.req.body);
  if (!body) return body.error();
  if (auto bad = reject_unknown_fields(*body, {"name", "description"})) return *bad;
  auto name = req_string(*body, "name");
  if (!name) return name.error();
  auto desc = opt_string(*body, "description");
  if (!desc) return desc.error();
  if (!valid_name(*name))
    return error_response(400, "invalid_name", "name must be 1 to 100 bytes, no control chars");
  const std::string description = desc->value_or("");
  if (description.size() > kMaxDescription)
    return error_response(400, "invalid_description", "description must be at most 500 bytes");
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto org = org_id_for(w, *ctx.caller, slug);
    if (!org) return tl::unexpected(org.error());
    if (!w.exec_params("SELECT 1 FROM egress_pools WHERE org_id = $1::uuid AND name = $2", *org,
                       *name)
             .empty())
      return http_fail(409, "name_taken", "an egress pool with this name exists");
    auto ins = w.exec_params(
        "INSERT INTO egress_pools (org_id, name, description) VALUES ($1::uuid, $2, $3) "
        "RETURNING id",
        *org, *name, description);
    const std::string id = ins[0][0].as<std::string>();
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .org_id = *org,
                        .action = "egress_pool.created",
                        .target = "egress_pool:" + id,
                        .details = json{{"name", *name}}});
    auto row = w.exec_params(
        std::string("SELECT ") + kPoolCols + "FROM egress_pools p WHERE p.id = $1::uuid", id);
    return json{{"egress_pool", pool_json(w, row[0], true)}};
  });
  if (!r) {
    if (r.error().code == "conflict")
      return error_response(409, "name_taken", "an egress pool with this name exists");
    return to_response(r.error());
  }
  return json_response(201, *r);
}

HttpResponse get_egress_pools(Ctx& ctx) {
  const std::string slug = ctx.param("slug");
  const bool staff = is_staff(*ctx.caller);
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto org = org_id_for(t, *ctx.caller, slug);
    if (!org) return tl::unexpected(org.error());
    auto rows = t.exec_params(std::string("SELECT ") + kPoolCols +
                                  "FROM egress_pools p WHERE p.org_id = $1::uuid "
                                  "ORDER BY p.name, p.id",
                              *org);
    json out = json::array();
    for (const auto& row : rows) out.push_back(pool_json(t, row, staff));
    return json{{"egress_pools", out}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

HttpResponse put_egress_pool_nodes(Ctx& ctx) {
  if (auto denied = require_step_up(ctx)) return *denied;
  const std::string slug = ctx.param("slug");
  const std::string id = ctx.param("id");
  auto body = parse_object(ctx.req.body);
  if (!body) return body.error();
  if (auto bad = reject_unknown_fields(*body, {"nodes"})) return *bad;
  auto it = body->find("nodes");
  if (it == body->end() || !it->is_array() || it->size() > kMaxPoolNodes)
    return error_response(400, "invalid_request", "field 'nodes' must be an array (at most 64)");
  std::vector<std::pair<std::string, std::string>> wanted;  // (cluster slug, node id)
  std::set<std::string> seen;
  for (const auto& e : *it) {
    if (!e.is_object())
      return error_response(400, "invalid_request", "each node must be an object");
    if (auto bad = reject_unknown_fields(e, {"cluster", "node"})) return *bad;
    auto cl = req_string(e, "cluster");
    if (!cl) return cl.error();
    auto node = req_string(e, "node");
    if (!node) return node.error();
    if (!valid_uuid(*node))
      return error_response(400, "invalid_request", "field 'node' must be a uuid");
    if (!seen.insert(lower(*node)).second)
      return error_response(400, "duplicate_node", "a node is listed twice");
    wanted.emplace_back(*cl, *node);
  }
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto org = org_id_for(w, *ctx.caller, slug);
    if (!org) return tl::unexpected(org.error());
    if (!valid_uuid(id)) return http_fail(404, "egress_pool_not_found", "egress pool not found");
    auto pool = w.exec_params(std::string("SELECT ") + kPoolCols +
                                  "FROM egress_pools p WHERE p.id = $1::uuid AND "
                                  "p.org_id = $2::uuid FOR UPDATE",
                              id, *org);
    if (pool.empty()) return http_fail(404, "egress_pool_not_found", "egress pool not found");
    w.exec_params("DELETE FROM egress_pool_nodes WHERE pool_id = $1::uuid", id);
    json listed = json::array();
    for (const auto& [cslug, node] : wanted) {
      auto cl = find_cluster(w, cslug);
      if (!cl) return tl::unexpected(cl.error());
      auto n = w.exec_params(
          "SELECT status FROM nodes WHERE id = $1::uuid AND cluster_id = $2::uuid", node, cl->id);
      if (n.empty()) return http_fail(404, "node_not_found", "node not found");
      if (n[0][0].as<std::string>() != "active")
        return http_fail(409, "node_revoked", "node is revoked");
      w.exec_params(
          "INSERT INTO egress_pool_nodes (pool_id, cluster_id, node_id) "
          "VALUES ($1::uuid, $2::uuid, $3::uuid)",
          id, cl->id, node);
      listed.push_back({{"cluster", cslug}, {"node_id", node}});
    }
    audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                        .org_id = *org,
                        .action = "egress_pool.nodes_set",
                        .target = "egress_pool:" + id,
                        .details = json{{"nodes", listed}}});
    return json{{"egress_pool", pool_json(w, pool[0], true)}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

// ---------------- platform admins ----------------

// Path segments arrive percent-encoded (rapctl encodes '@' as %40): decodes %XX; nullopt for a
// malformed escape.
std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
    if (ec != std::errc() || p != s.data() + i + 3) return std::nullopt;
    out.push_back(static_cast<char>(v));
    i += 2;
  }
  return out;
}

HttpResponse post_platform_admin(Ctx& ctx) {
  if (auto denied = require_step_up(ctx)) return *denied;
  const std::string email = lower(percent_decode(ctx.param("email")).value_or(""));
  auto body = parse_object(ctx.req.body);
  if (!body) return body.error();
  if (auto bad = reject_unknown_fields(*body, {"enabled"})) return *bad;
  auto enabled = opt_bool(*body, "enabled");
  if (!enabled) return enabled.error();
  if (!*enabled) return error_response(400, "invalid_request", "field 'enabled' is required");
  if (!valid_email(email)) return error_response(400, "invalid_email", "invalid email address");
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto u = w.exec_params(
        "SELECT id, is_platform_owner, is_platform_admin FROM users WHERE email = $1 FOR UPDATE",
        email);
    if (u.empty()) return http_fail(404, "user_not_found", "user not found");
    const std::string uid = u[0][0].as<std::string>();
    if (u[0][1].as<bool>())
      return http_fail(409, "is_platform_owner", "the platform owner is not a platform admin");
    const bool before = u[0][2].as<bool>();
    if (before != **enabled) {
      w.exec_params("UPDATE users SET is_platform_admin = $2 WHERE id = $1::uuid", uid, **enabled);
      audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                          .action = **enabled ? "user.platform_admin_granted"
                                              : "user.platform_admin_revoked",
                          .target = "user:" + email,
                          .details = json{{"user_id", uid}}});
    }
    return json{{"user", {{"id", uid}, {"email", email}, {"is_platform_admin", **enabled}}},
                {"changed", before != **enabled}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

}  // namespace

void register_topology_routes(Router& r) {
  const std::string c = "/api/v1/clusters/{cluster}";
  const std::string org = "/api/v1/orgs/{slug}";
  r.add("POST", c + "/node-groups", Auth::kUser, staff_only("node_group.create", post_node_group));
  r.add("GET", c + "/node-groups", Auth::kUser, staff_only("node_group.list", get_node_groups));
  r.add("DELETE", c + "/node-groups/{id}", Auth::kUser,
        staff_only("node_group.delete", delete_node_group));
  r.add("PUT", c + "/node-groups/{id}/parent", Auth::kUser,
        staff_only("node_group.move", put_node_group_parent));
  r.add("PUT", c + "/nodes/{node}/group", Auth::kUser,
        staff_only("node.group_set", put_node_group_membership));
  r.add("GET", c + "/authority", Auth::kUser, staff_only("cluster.authority_read", get_authority));
  r.add("PUT", c + "/authority", Auth::kUser, staff_only("cluster.authority_set", put_authority));
  r.add("GET", c + "/fabric", Auth::kUser, staff_only("cluster.fabric_read", get_cluster_fabric));
  r.add("POST", org + "/egress-pools", Auth::kUser,
        staff_only("egress_pool.create", post_egress_pool));
  r.add("GET", org + "/egress-pools", Auth::kUser, get_egress_pools);
  r.add("PUT", org + "/egress-pools/{id}/nodes", Auth::kUser,
        staff_only("egress_pool.nodes_set", put_egress_pool_nodes));
  r.add("POST", "/api/v1/users/{email}/platform-admin", Auth::kUser,
        staff_only("user.platform_admin_set", post_platform_admin, /*owner_strict=*/true));
}

}  // namespace rap::control::detail
