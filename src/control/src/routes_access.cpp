// TCP access service, control-plane side (docs/PROTOCOL.md §14, docs/API.md "Access"):
//
//  * POST /api/v1/orgs/{slug}/resources/{id}/connect (user): checks the caller's entitlement
//    exactly as GET .../my-resources does (an allow policy whose service equals the resource's
//    protocol names the user, directly or through a group), plans a route through the mesh
//    (route_planner.h) from the live state of the cluster(s) holding the resource's exits, signs
//    an access_grant and one route_lease per route with the cluster's config-signing key, and
//    seals them to the entry node's key (the user learns the entry's endpoint and key, never the
//    route). Audited: access.granted, or access.denied (outcome denied) for a caller without
//    entitlement.
//  * POST /api/v1/node/access (node mTLS): access records of exits (and refusals of any node),
//    one audit event each (access.tcp / access.refused).
//
// The control plane never carries payload; it only decides and signs.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <span>

#include "api_internal.h"
#include "cluster_ca.h"
#include "config_compiler.h"
#include "rap/common/base64.h"
#include "rap/common/path_cost.h"
#include "rap/config/artifact.h"
#include "rap/config/signer.h"
#include "rap/crypto/keys.h"
#include "route_planner.h"

namespace rap::control::detail {

namespace {

using config::ArtifactType;

constexpr std::int64_t kDefaultTtl = 600;
constexpr std::int64_t kMinTtl = 60;
constexpr std::int64_t kMaxTtl = 3600;
// A node counts as live when it heartbeated (PostgreSQL) or was seen (live presence) this recently.
// Path trust expires after about two missed heartbeats (10 s default interval) plus slack: a node
// silent this long is no longer an entry, relay or exit of new routes.
constexpr std::int64_t kFreshSeconds = 25;
// Tickets per user per minute (fixed window in live state; not enforced without Redis).
constexpr std::int64_t kConnectsPerMinute = 60;
constexpr std::size_t kMaxRecords = 100;
constexpr std::size_t kMaxMessage = 300;

std::int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool printable(const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

// A random (version 4) UUID.
std::string uuid_v4(const std::function<void(std::span<std::uint8_t>)>& random_bytes) {
  std::array<std::uint8_t, 16> b{};
  random_bytes(b);
  b[6] = static_cast<std::uint8_t>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<std::uint8_t>((b[8] & 0x3f) | 0x80);
  const std::string h = to_hex(b);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

struct Resource {
  std::string id, name, protocol, address, pool;  // pool "" = none
};

// ---------------- POST /api/v1/orgs/{slug}/resources/{id}/connect ----------------

struct Checked {
  std::string org_id;
  Resource resource;
  bool entitled = false;
};

// One cluster's candidate graph for the planner.
struct ClusterGraph {
  routing::PlanInput input;
  std::uint64_t epoch = 1;

  const routing::PlanNode& node(const std::string& id) const {
    auto it = std::find_if(input.nodes.begin(), input.nodes.end(),
                           [&](const routing::PlanNode& n) { return n.id == id; });
    RAP_ASSERT(it != input.nodes.end());  // the planner only returns ids of input.nodes
    return *it;
  }
};

std::optional<std::int64_t> int_member(const json& j, const char* key) {
  if (!j.is_object()) return std::nullopt;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<std::int64_t>();
}

// Live presence of a cluster's nodes (unix ms); empty without Redis or while it is away.
std::map<std::string, std::int64_t> presence_of(LiveState* live, const std::string& cluster_id) {
  std::map<std::string, std::int64_t> out;
  if (live == nullptr) return out;
  auto list = live->list_presence(cluster_id);
  if (!list) return out;
  for (const auto& [node, value] : *list) {
    auto v = json::parse(value, nullptr, false);
    if (auto ms = int_member(v, "last_seen_ms")) out[node] = *ms;
  }
  return out;
}

Result<ClusterGraph> load_graph(pqxx::work& w, LiveState* live, const std::string& cluster_id,
                                const std::string& org_id, const std::vector<std::string>& exits) {
  ClusterGraph g;
  g.input.org = org_id;
  g.input.exits = exits;
  auto ep = w.exec_params(
      "SELECT authority_epoch FROM cluster_authority WHERE cluster_id = $1::uuid", cluster_id);
  if (!ep.empty()) g.epoch = ep[0][0].as<std::uint64_t>();
  const auto presence = presence_of(live, cluster_id);
  const std::int64_t now_ms = unix_now() * 1000;
  std::map<std::string, json> rtts;     // node -> load.peer_rtt_ms
  std::map<std::string, json> jitters;  // node -> load.peer_jitter_ms
  std::map<std::string, json> retrans;  // node -> load.peer_retransmits_per_s
  std::vector<std::pair<std::string, std::string>> sessions;
  for (const auto& r : w.exec_params(
           "SELECT n.id, n.public_key, COALESCE(n.org_id::text, ''), "
           "COALESCE(n.last_heartbeat_at > now() - make_interval(secs => $2), false), "
           "COALESCE(n.last_state, '{}'::jsonb)::text, "
           "CASE WHEN jsonb_typeof(n.facts->'memory_mb') = 'number' "
           "THEN (n.facts->>'memory_mb')::bigint END "
           "FROM nodes n WHERE n.cluster_id = $1::uuid AND n.status = 'active' ORDER BY n.id",
           cluster_id, static_cast<double>(kFreshSeconds))) {
    routing::PlanNode n;
    n.id = r[0].as<std::string>();
    n.public_key = r[1].as<std::string>();
    n.owner_org = r[2].as<std::string>();
    n.fresh = r[3].as<bool>();
    if (auto p = presence.find(n.id);
        p != presence.end() && now_ms - p->second < kFreshSeconds * 1000)
      n.fresh = true;
    const json state = json::parse(r[4].as<std::string>(), nullptr, false);
    if (state.is_object()) {
      if (auto e = state.find("endpoints"); e != state.end() && e->is_object()) {
        if (auto ci = e->find("client_ingress"); ci != e->end() && ci->is_string())
          n.client_ingress = ci->get<std::string>();
      }
      if (auto f = state.find("fabric"); f != state.end() && f->is_object()) {
        if (auto s = f->find("sessions"); s != f->end() && s->is_array()) {
          for (const auto& e : *s) {
            if (e.is_object() && e.contains("peer") && e["peer"].is_string())
              sessions.emplace_back(n.id, e["peer"].get<std::string>());
          }
        }
      }
      if (auto l = state.find("load"); l != state.end() && l->is_object()) {
        n.cpu_permille = int_member(*l, "cpu_permille");
        n.active_sessions = int_member(*l, "open_sessions");
        const auto mem_kib = int_member(*l, "memory_kib");
        if (mem_kib && !r[5].is_null() && r[5].as<std::int64_t>() > 0)
          n.memory_permille = *mem_kib * 1000 / (r[5].as<std::int64_t>() * 1024);
        if (auto rt = l->find("peer_rtt_ms"); rt != l->end() && rt->is_object()) rtts[n.id] = *rt;
        if (auto jt = l->find("peer_jitter_ms"); jt != l->end() && jt->is_object())
          jitters[n.id] = *jt;
        if (auto rt = l->find("peer_retransmits_per_s"); rt != l->end() && rt->is_object())
          retrans[n.id] = *rt;
      }
    }
    g.input.nodes.push_back(std::move(n));
  }
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < g.input.nodes.size(); ++i) index.emplace(g.input.nodes[i].id, i);
  for (const auto& r : w.exec_params(
           "SELECT a.node_id, a.role, COALESCE(a.org_id::text, '') FROM node_role_assignments a "
           "JOIN nodes n ON n.id = a.node_id WHERE n.cluster_id = $1::uuid AND n.status = 'active'",
           cluster_id)) {
    const auto id = r[0].as<std::string>();
    auto idx = index.find(id);
    if (idx == index.end()) continue;
    auto it = g.input.nodes.begin() + static_cast<std::ptrdiff_t>(idx->second);
    it->roles.push_back({r[1].as<std::string>(), r[2].as<std::string>()});
    if (r[1].as<std::string>() == "entry-node") g.input.entries.push_back(id);
  }
  // Edges: sessions reported by either end (the planner ignores non-fresh ends). The hop's cost as
  // the mesh weighs it (rap/common/path_cost.h): RTT + 2 x jitter, the smaller of what the two ends
  // sampled, plus the penalty for TCP retransmits (loss) that the worse end reports (the sending
  // side of a lossy direction sees them, the other side does not).
  const auto member = [](const std::map<std::string, json>& m, const std::string& from,
                         const std::string& to) -> std::optional<double> {
    auto it = m.find(from);
    if (it == m.end()) return std::nullopt;
    auto v = it->second.find(to);
    if (v == it->second.end() || !v->is_number()) return std::nullopt;
    return v->get<double>();
  };
  const auto base_of = [&](const std::string& from, const std::string& to) {
    std::optional<double> out = member(rtts, from, to);
    if (out) *out = hop_cost_ms(*out, member(jitters, from, to).value_or(0), 0);
    return out;
  };
  for (const auto& [a, b] : sessions) {
    auto x = base_of(a, b);
    auto y = base_of(b, a);
    std::optional<double> cost = x;
    if (y && (!cost || *y < *cost)) cost = y;
    const double loss =
        std::max(member(retrans, a, b).value_or(0), member(retrans, b, a).value_or(0));
    if (cost) *cost += hop_cost_ms(0, 0, loss);
    g.input.edges.push_back({a, b, cost});
  }
  return g;
}

// Signs one §14.2 credential.
Result<std::string> sign_credential(const config::Signer& signer, ArtifactType type,
                                    const std::set<std::string>& scope_ids, std::uint64_t epoch,
                                    std::int64_t now, std::int64_t expires, json payload) {
  config::ArtifactDraft d;
  d.type = type;
  d.scope = config::Scope{config::ScopeKind::node,
                          std::vector<std::string>(scope_ids.begin(), scope_ids.end())};
  d.version = 1;
  d.epoch = epoch;
  d.issued_at = config::from_unix_seconds(now);
  d.expires_at = config::from_unix_seconds(expires);
  d.payload = std::move(payload);
  auto art = signer.sign(std::move(d));
  if (!art) return tl::unexpected(art.error());
  return config::encode_artifact(*art);
}

HttpResponse post_connect(Ctx& ctx) {
  std::int64_t ttl = kDefaultTtl;
  // The user asks for this entry: they run `rapctl connect --local-entry` on its host.
  std::string entry_node;
  if (ctx.req.body.find_first_not_of(" \t\r\n") != std::string::npos) {
    auto body = parse_object(ctx.req.body);
    if (!body) return body.error();
    if (auto bad = reject_unknown_fields(*body, {"ttl_seconds", "entry_node"})) return *bad;
    if (auto en = body->find("entry_node"); en != body->end()) {
      if (!en->is_string() || !valid_uuid(lower(en->get<std::string>())))
        return error_response(400, "invalid_entry_node", "entry_node must be a node id");
      entry_node = lower(en->get<std::string>());
    }
    auto t = opt_int(*body, "ttl_seconds");
    if (!t) return t.error();
    if (*t) {
      if (**t < kMinTtl || **t > kMaxTtl)
        return error_response(400, "invalid_ttl", "ttl_seconds must be 60..3600");
      ttl = **t;
    }
  }
  const Caller caller = *ctx.caller;
  const std::string slug = ctx.param("slug");
  const std::string resource_id = lower(ctx.param("id"));

  // Entitlement (read-only): 404 for unknown organizations and resources, as everywhere.
  auto checked = ctx.db.with_connection<Checked>([&](pqxx::connection& c) -> Result<Checked> {
    pqxx::read_transaction t(c);
    auto org = find_org(t, caller, slug);
    if (!org) return tl::unexpected(org.error());
    if (!valid_uuid(resource_id)) return http_fail(404, "resource_not_found", "resource not found");
    auto rows = t.exec_params(
        "SELECT r.id, r.name, r.protocol, r.address, COALESCE(r.egress_pool, ''), "
        "EXISTS (SELECT 1 FROM policy_resources pr "
        "  JOIN policies p ON p.id = pr.policy_id AND p.org_id = pr.org_id "
        "  JOIN policy_subjects s ON s.policy_id = p.id AND s.org_id = p.org_id "
        "  WHERE pr.resource_id = r.id AND pr.org_id = r.org_id AND p.action = 'allow' "
        "  AND p.service = r.protocol AND (s.user_id = $3::uuid OR s.group_id IN "
        "    (SELECT gm.group_id FROM group_members gm "
        "     WHERE gm.user_id = $3::uuid AND gm.org_id = $1::uuid))) "
        "FROM resources r WHERE r.org_id = $1::uuid AND r.id = $2::uuid",
        org->id, resource_id, caller.user_id);
    if (rows.empty()) return http_fail(404, "resource_not_found", "resource not found");
    Checked out;
    out.org_id = org->id;
    out.resource = Resource{rows[0][0].as<std::string>(), rows[0][1].as<std::string>(),
                            rows[0][2].as<std::string>(), rows[0][3].as<std::string>(),
                            rows[0][4].as<std::string>()};
    out.entitled = rows[0][5].as<bool>();
    return out;
  });
  if (!checked) return to_response(checked.error());
  const Resource res = checked->resource;
  const std::string org_id = checked->org_id;
  if (!checked->entitled) {
    audit_standalone(ctx.db, AuditEvent{.actor_user_id = caller.user_id,
                                        .org_id = org_id,
                                        .action = "access.denied",
                                        .target = "resource:" + res.id,
                                        .outcome = "denied",
                                        .details = json{{"reason", "not_entitled"},
                                                        {"protocol", res.protocol}}});
    return error_response(403, "not_entitled", "no policy allows you to use this resource");
  }
  // Bound ticket issuance per user (fails open while Redis is away, like login throttling).
  if (ctx.live != nullptr) {
    auto n = ctx.live->rate_hit("platform", "connect:" + caller.user_id, std::chrono::minutes(1));
    if (n && n->count > kConnectsPerMinute) {
      HttpResponse r = error_response(429, "rate_limited", "too many connections, try again later");
      r.retry_after_seconds =
          static_cast<int>(std::max<std::int64_t>(1, (n->reset_in.count() + 999) / 1000));
      return r;
    }
  }
  if (ctx.opts.master_key.size() != kMasterKeyBytes)
    return error_response(503, "master_key_unavailable", "the master key is not configured");

  FnRandom rng(ctx.random_bytes);
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    // Exits (§14.1): the resource's egress pool, or exit-node for the organization or platform.
    pqxx::result ex =
        res.pool.empty()
            ? w.exec_params(
                  "SELECT DISTINCT n.cluster_id, n.id FROM node_role_assignments a "
                  "JOIN nodes n ON n.id = a.node_id WHERE a.role = 'exit-node' AND "
                  "(a.org_id IS NULL OR a.org_id = $1::uuid) AND n.status = 'active' "
                  "ORDER BY 1, 2",
                  org_id)
            : w.exec_params(
                  "SELECT DISTINCT n.cluster_id, n.id FROM egress_pools p "
                  "JOIN egress_pool_nodes pn ON pn.pool_id = p.id JOIN nodes n ON n.id = "
                  "pn.node_id WHERE p.org_id = $1::uuid AND p.name = $2 AND n.status = 'active' "
                  "ORDER BY 1, 2",
                  org_id, res.pool);
    std::map<std::string, std::vector<std::string>> exits;  // cluster -> exit node ids
    for (const auto& row : ex) exits[row[0].as<std::string>()].push_back(row[1].as<std::string>());
    if (exits.empty())
      return http_fail(503, "no_route",
                       res.pool.empty()
                           ? "no exit node serves this organization (no exit-node role holder)"
                           : "the resource's egress pool has no active node");
    // Plan in every cluster holding exits; the cheapest primary wins.
    std::optional<ClusterGraph> best_graph;
    std::optional<routing::Plan> best;
    std::string best_cluster;
    std::string why;
    std::map<std::string, std::string> choice;  // cluster -> how hysteresis decided (audit)
    for (const auto& [cluster_id, ids] : exits) {
      auto g = load_graph(w, ctx.live, cluster_id, org_id, ids);
      if (!g) return tl::unexpected(g.error());
      if (!entry_node.empty()) {
        auto& en = g->input.entries;
        en.erase(std::remove_if(en.begin(), en.end(),
                                [&](const std::string& id) { return id != entry_node; }),
                 en.end());
        if (en.empty()) {
          if (why.empty()) why = "the requested entry node is not an entry for this resource";
          continue;
        }
      }
      auto p = routing::plan_route(g->input);
      if (!p) {
        if (why.empty()) why = p.error().message;
        continue;
      }
      // Hysteresis: the primary issued last time for this resource stays while it is usable and
      // not clearly worse (route_planner.h). Live state only: without Redis, no stickiness.
      if (ctx.live != nullptr) {
        const std::string scope = "route-sticky." + cluster_id;
        const std::string key = org_id + ":" + res.id;
        routing::Stickiness sticky;
        if (auto v = ctx.live->get_presence(scope, key); v && *v) {
          auto j = json::parse(**v, nullptr, false);
          if (j.is_object()) {
            if (auto h = j.find("previous"); h != j.end() && h->is_array())
              for (const auto& x : *h)
                if (x.is_string()) sticky.previous.push_back(x.get<std::string>());
            if (auto h = j.find("challenger"); h != j.end() && h->is_array())
              for (const auto& x : *h)
                if (x.is_string()) sticky.challenger.push_back(x.get<std::string>());
            if (auto t = j.find("since_ms"); t != j.end() && t->is_number_integer())
              sticky.challenger_since_ms = t->get<std::int64_t>();
          }
        }
        *p = routing::apply_hysteresis(g->input, std::move(*p), sticky, unix_now_ms());
        const json saved{{"previous", sticky.previous},
                         {"challenger", sticky.challenger},
                         {"since_ms", sticky.challenger_since_ms}};
        (void)ctx.live->set_presence(scope, key, saved.dump(), std::chrono::minutes(10));
        choice[cluster_id] =
            sticky.kept_reason.empty() ? "best" : "kept previous (" + sticky.kept_reason + ")";
      }
      if (!best || p->primary.cost < best->primary.cost) {
        best = std::move(*p);
        best_graph = std::move(*g);
        best_cluster = cluster_id;
      }
    }
    if (!best) return http_fail(503, "no_route", why);

    auto keys = load_signing_keys(w, ctx.opts.master_key, best_cluster, rng);
    if (!keys) {
      if (keys.error().code == "unseal_failed" || keys.error().code == "no_master_key")
        return http_fail(503, "master_key_unavailable", "the config-signing key is unavailable");
      return tl::unexpected(keys.error());
    }
    const config::Signer& signer = *keys->active;
    const std::uint64_t epoch = best_graph->epoch;
    const std::int64_t now = unix_now();
    const std::int64_t expires = now + ttl;
    // Offline horizon (lease.h): how long past expiry nodes that lose contact with the control
    // plane may keep using these credentials, renewed from their cached signed policy.
    const std::int64_t grace = ctx.opts.offline_lease_grace.count();
    const std::int64_t offline_until = grace > 0 ? expires + grace : 0;
    const std::string grant_id = uuid_v4(ctx.random_bytes);
    const routing::PlanNode& entry = best_graph->node(best->primary.hops.front());

    std::vector<const routing::Route*> routes = {&best->primary};
    for (const auto& a : best->alternates) routes.push_back(&a);
    std::set<std::string> exit_ids;
    std::vector<std::string> leases;
    std::string primary_lease;
    for (const routing::Route* route : routes) {
      exit_ids.insert(route->hops.back());
      const std::string lease_id = uuid_v4(ctx.random_bytes);
      if (primary_lease.empty()) primary_lease = lease_id;
      json hops = json::array();
      std::set<std::string> scope;
      for (const auto& id : route->hops) {
        hops.push_back({{"node", id}, {"public_key", best_graph->node(id).public_key}});
        scope.insert(id);
      }
      json lease{{"lease",
                  {{"id", lease_id},
                   {"grant", grant_id},
                   {"org", org_id},
                   {"role", route == &best->primary ? "primary" : "alternate"},
                   {"hops", std::move(hops)},
                   {"classes", json::array({"bulk", "interactive"})},
                   {"fence", epoch}}}};
      if (offline_until > 0) lease["lease"]["offline_until"] = offline_until;
      auto wire = sign_credential(signer, ArtifactType::route_lease, scope, epoch, now, expires,
                                  std::move(lease));
      if (!wire) return tl::unexpected(wire.error());
      leases.push_back(std::move(*wire));
    }
    std::set<std::string> grant_scope = exit_ids;
    grant_scope.insert(entry.id);
    json grant{{"grant",
                {{"id", grant_id},
                 {"user", caller.user_id},
                 {"org", org_id},
                 {"resource", res.id},
                 {"protocol", res.protocol},
                 {"target", res.address},
                 {"entry", entry.id},
                 {"exits", json(std::vector<std::string>(exit_ids.begin(), exit_ids.end()))}}}};
    if (offline_until > 0) grant["grant"]["offline_until"] = offline_until;
    auto grant_wire = sign_credential(signer, ArtifactType::access_grant, grant_scope, epoch, now,
                                      expires, std::move(grant));
    if (!grant_wire) return tl::unexpected(grant_wire.error());

    crypto::PublicKey entry_key{};
    if (!parse_hex(entry.public_key, entry_key))
      return fail("internal", "entry node public key is malformed");
    const json ticket{{"grant", *grant_wire}, {"leases", leases}};
    auto sealed = crypto::seal_to(entry_key, ticket.dump());
    if (!sealed) return tl::unexpected(sealed.error());

    audit(w, AuditEvent{.actor_user_id = caller.user_id,
                        .org_id = org_id,
                        .cluster_id = best_cluster,
                        .action = "access.granted",
                        .target = "resource:" + res.id,
                        .details = json{{"grant_id", grant_id},
                                        {"route_id", primary_lease},
                                        {"hops", best->primary.hops.size()},
                                        {"alternates", best->alternates.size()},
                                        {"route_choice", choice.count(best_cluster) != 0
                                                             ? json(choice[best_cluster])
                                                             : json(nullptr)},
                                        {"entry_node_id", entry.id},
                                        {"ttl_seconds", ttl},
                                        {"offline_grace_seconds", grace}}});
    return json{{"ticket", base64_encode(*sealed)},
                {"entry", {{"endpoint", entry.client_ingress}, {"public_key", entry.public_key}}},
                {"expires_at", expires},
                {"offline_until", offline_until > 0 ? json(offline_until) : json(nullptr)},
                {"grant_id", grant_id},
                {"resource", {{"id", res.id}, {"name", res.name}, {"protocol", res.protocol}}}};
  });
  if (!r) {
    if (r.error().code == "http:503:no_route")
      spdlog::info("connect: no route org={} resource={}", org_id, res.id);
    return to_response(r.error());
  }
  return json_response(200, *r);
}

// ---------------- POST /api/v1/node/access ----------------

struct AccessRecord {
  std::string grant, user, org, resource, route, outcome, reason, message;
  std::int64_t started_at = 0, ended_at = 0, bytes_up = 0, bytes_down = 0;
  bool offline_renewal = false;  // used past expiry while the node could not reach us
};

Step<AccessRecord> parse_record(const json& e, std::size_t index) {
  const auto bad = [&](const std::string& what) {
    return tl::unexpected(
        error_response(400, "invalid_request", "records[" + std::to_string(index) + "]: " + what));
  };
  if (!e.is_object()) return bad("must be an object");
  if (auto u = reject_unknown_fields(
          e, {"grant", "user", "org", "resource", "route", "started_at", "ended_at", "bytes_up",
              "bytes_down", "outcome", "reason", "message", "offline_renewal"}))
    return tl::unexpected(*u);
  AccessRecord rec;
  const std::pair<const char*, std::string*> ids[] = {{"grant", &rec.grant},
                                                      {"user", &rec.user},
                                                      {"org", &rec.org},
                                                      {"resource", &rec.resource},
                                                      {"route", &rec.route}};
  // A refusal may come before the ticket could be opened (e.g. bad_ticket): then the node knows
  // none of the ids, and the record says only who refused what and why.
  const bool refused = e.is_object() && e.value("outcome", std::string()) == "refused";
  for (const auto& [key, out] : ids) {
    if (refused && !e.contains(key)) continue;
    auto v = req_string(e, key);
    if (!v) return tl::unexpected(v.error());
    if (!valid_uuid(*v)) return bad(std::string(key) + " must be a UUID");
    *out = lower(*v);
  }
  const std::pair<const char*, std::int64_t*> nums[] = {{"started_at", &rec.started_at},
                                                        {"ended_at", &rec.ended_at},
                                                        {"bytes_up", &rec.bytes_up},
                                                        {"bytes_down", &rec.bytes_down}};
  for (const auto& [key, out] : nums) {
    auto it = e.find(key);
    if (it == e.end() || !it->is_number_integer() || it->get<std::int64_t>() < 0)
      return bad(std::string(key) + " must be a non-negative integer");
    *out = it->get<std::int64_t>();
  }
  if (rec.started_at > config::kMaxUnixSeconds || rec.ended_at > config::kMaxUnixSeconds ||
      rec.ended_at < rec.started_at)
    return bad("started_at <= ended_at must be unix seconds");
  auto outcome = req_string(e, "outcome");
  if (!outcome) return tl::unexpected(outcome.error());
  if (*outcome != "ok" && *outcome != "refused") return bad("outcome must be ok or refused");
  rec.outcome = *outcome;
  auto reason = opt_string(e, "reason");
  if (!reason) return tl::unexpected(reason.error());
  if (*reason) {
    const std::string& s = **reason;
    if (s.empty() || s.size() > 64 || !std::all_of(s.begin(), s.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                 c == '-';
        }))
      return bad("reason must be a code of 1..64 [a-z0-9_.-]");
    rec.reason = s;
  }
  auto message = opt_string(e, "message");
  if (!message) return tl::unexpected(message.error());
  if (*message) {
    if ((*message)->size() > kMaxMessage || !printable(**message))
      return bad("message must be at most 300 printable bytes");
    rec.message = **message;
  }
  if (auto o = e.find("offline_renewal"); o != e.end()) {
    if (!o->is_boolean()) return bad("offline_renewal must be a boolean");
    rec.offline_renewal = o->get<bool>();
  }
  return rec;
}

HttpResponse post_node_access(Ctx& ctx) {
  auto body = parse_object(ctx.req.body);
  if (!body) return body.error();
  if (auto bad = reject_unknown_fields(*body, {"records"})) return *bad;
  auto it = body->find("records");
  if (it == body->end() || !it->is_array() || it->size() > kMaxRecords)
    return error_response(400, "invalid_request",
                          "field 'records' must be an array of at most 100 records");
  std::vector<AccessRecord> records;
  for (std::size_t i = 0; i < it->size(); ++i) {
    auto rec = parse_record((*it)[i], i);
    if (!rec) return rec.error();
    records.push_back(std::move(*rec));
  }
  const NodeCaller node = *ctx.node;
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    std::set<std::string> orgs;
    {
      std::set<std::string> wanted;
      for (const auto& rec : records) {
        if (!rec.org.empty()) wanted.insert(rec.org);
      }
      for (const auto& org : wanted) {
        if (!w.exec_params("SELECT 1 FROM organizations WHERE id = $1::uuid", org).empty())
          orgs.insert(org);
      }
    }
    for (const auto& rec : records) {
      json details{{"started_at", rec.started_at},
                   {"ended_at", rec.ended_at},
                   {"bytes_up", rec.bytes_up},
                   {"bytes_down", rec.bytes_down},
                   {"outcome", rec.outcome}};
      for (auto [key, v] : {std::pair{"grant", &rec.grant}, std::pair{"user", &rec.user},
                            std::pair{"route", &rec.route}}) {
        if (!v->empty()) details[key] = *v;
      }
      if (!rec.reason.empty()) details["reason"] = rec.reason;
      if (!rec.message.empty()) details["message"] = rec.message;
      if (rec.offline_renewal) details["offline_renewal"] = true;
      if (!rec.org.empty() && !orgs.contains(rec.org)) details["org"] = rec.org;  // unknown org
      const bool ok = rec.outcome == "ok";
      audit(w, AuditEvent{.actor_node_id = node.node_id,
                          .org_id = orgs.contains(rec.org) ? rec.org : "",
                          .cluster_id = node.cluster_id,
                          .action = ok ? "access.tcp" : "access.refused",
                          .target = rec.resource.empty() ? "node:" + node.node_id
                                                         : "resource:" + rec.resource,
                          .outcome = ok ? "success" : "denied",
                          .details = std::move(details)});
    }
    return json{{"accepted", records.size()}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

}  // namespace

void register_access_routes(Router& r) {
  r.add("POST", "/api/v1/orgs/{slug}/resources/{id}/connect", Auth::kUser, post_connect);
  r.add("POST", "/api/v1/node/access", Auth::kNode, post_node_access);
}

}  // namespace rap::control::detail
