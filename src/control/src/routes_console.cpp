// Read-only views for the web console (docs/API.md "Console views"): summaries the console would
// otherwise assemble from many calls, sized for polling every 2 s with 1000 nodes.
//
//  * /api/v1/console/...: platform staff (owner or platform admin) only. Anyone else gets
//    403 forbidden, audited as denied (`console.read`, reason `not_platform_staff`).
//  * GET /api/v1/orgs/{slug}/status: the tenant-safe status of one organization for its
//    org_admins (and platform staff): counts and the availability of its egress pools, never a
//    node, cluster, route or certificate.
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <ctime>
#include <map>
#include <memory>
#include <set>

#include "api_internal.h"
#include "rap/control/live_state.h"

namespace rap::control::detail {

namespace {

// Roles every cluster with active nodes needs on at least one online node to carry traffic at
// all; the console reports a missing one as a role coverage gap.
const std::vector<std::string> kCoreRoles = {"entry-node", "relay-node"};

bool is_staff(const Caller& c) {
  return c.is_owner || c.is_platform_admin;
}

Handler staff_view(const char* what, Handler h) {
  return [what, h = std::move(h)](Ctx& c) -> HttpResponse {
    if (!is_staff(*c.caller)) {
      const std::string path = c.req.target.substr(0, c.req.target.find('?'));
      audit_standalone(c.db, AuditEvent{.actor_user_id = c.caller->user_id,
                                        .action = "console.read",
                                        .target = path.substr(0, 200),
                                        .outcome = "denied",
                                        .details = json{{"method", c.req.method},
                                                        {"view", what},
                                                        {"reason", "not_platform_staff"}}});
      return error_response(403, "forbidden", "platform staff only");
    }
    return h(c);
  };
}

json parse_jsonb(const pqxx::field& f) {
  if (f.is_null()) return nullptr;
  auto j = json::parse(f.as<std::string>(), nullptr, false);
  return j.is_discarded() ? json(nullptr) : j;
}

json opt_text(const pqxx::field& f) {
  return f.is_null() ? json(nullptr) : json(f.as<std::string>());
}

std::string asn1_time_string(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return "";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Validity of a PEM certificate: {not_before, not_after} or nulls when unparsable.
std::pair<json, json> pem_validity(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  if (!bio) return {nullptr, nullptr};
  std::unique_ptr<X509, decltype(&X509_free)> x(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
  if (!x) return {nullptr, nullptr};
  const auto nb = asn1_time_string(X509_get0_notBefore(x.get()));
  const auto na = asn1_time_string(X509_get0_notAfter(x.get()));
  return {nb.empty() ? json(nullptr) : json(nb), na.empty() ? json(nullptr) : json(na)};
}

// The compact node row of the console (one query for every node, or those of one cluster).
constexpr const char* kCompactNodes =
    "SELECT n.id, c.id AS cluster_id, c.slug AS cluster, n.name, n.status, n.ownership, o.slug AS org, n.group_id, "
    "n.agent_version, " RAP_TS("n.last_heartbeat_at") " AS last_heartbeat_at, "
    "EXTRACT(EPOCH FROM now() - n.last_heartbeat_at)::bigint AS heartbeat_age, "
    "CASE WHEN n.last_heartbeat_at IS NULL THEN 'offline' "
    "WHEN now() - n.last_heartbeat_at < interval '30 seconds' THEN 'online' "
    "WHEN now() - n.last_heartbeat_at < interval '120 seconds' THEN 'stale' "
    "ELSE 'offline' END AS health, "
    "n.capabilities::text AS capabilities, (n.last_state -> 'load')::text AS load, "
    "n.last_state ->> 'partition_state' AS partition_state, "
    "(SELECT COALESCE(json_agg(json_build_object('role', a.role, 'org', ao.slug) "
    "  ORDER BY a.role, ao.slug NULLS FIRST), '[]')::text FROM node_role_assignments a "
    "  LEFT JOIN organizations ao ON ao.id = a.org_id WHERE a.node_id = n.id) AS roles, "
    "(SELECT count(*) FROM node_workloads w WHERE w.node_id = n.id) AS wl_desired, "
    "(SELECT count(*) FROM node_workloads w WHERE w.node_id = n.id AND EXISTS ("
    "  SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(n.last_state -> 'workloads') = "
    "  'array' THEN n.last_state -> 'workloads' ELSE '[]'::jsonb END) x "
    "  WHERE x ->> 'name' = w.name AND x ->> 'state' = 'running')) AS wl_running, "
    "(SELECT " RAP_TS("max(nc.not_after)") " FROM node_certificates nc WHERE nc.node_id = n.id "
    "  AND nc.revoked_at IS NULL) AS cert_not_after, "
    "(SELECT max(nc.not_after) < now() + interval '24 hours' FROM node_certificates nc "
    "  WHERE nc.node_id = n.id AND nc.revoked_at IS NULL) AS cert_expiring, "
    "n.facts ->> 'hostname' AS hostname "
    "FROM nodes n JOIN clusters c ON c.id = n.cluster_id "
    "LEFT JOIN organizations o ON o.id = n.org_id ";

// Node presence from live state (Redis): cluster id -> node id -> last seen (unix ms). Written
// about once a second for every heartbeat, while PostgreSQL gets an unchanged heartbeat only
// every --heartbeat-write-interval; the console uses whichever is newer. Live-state errors only
// mean coarser ages (degraded mode).
using Presence = std::map<std::string, std::map<std::string, std::int64_t>>;

Presence load_presence(LiveState* live, const pqxx::result& rows) {
  Presence out;
  if (live == nullptr) return out;
  std::set<std::string> clusters;
  for (const auto& r : rows) clusters.insert(r["cluster_id"].as<std::string>());
  for (const auto& cid : clusters) {
    auto list = live->list_presence(cid);
    if (!list) continue;
    auto& m = out[cid];
    for (const auto& [node, value] : *list) {
      auto j = json::parse(value, nullptr, false);
      if (j.is_object() && j.contains("last_seen_ms") && j["last_seen_ms"].is_number_integer())
        m[node] = j["last_seen_ms"].get<std::int64_t>();
    }
  }
  return out;
}

std::string rfc3339_ms(std::int64_t unix_ms) {
  const auto t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Health from a heartbeat age (the thresholds of the clusters API).
const char* health_for_age(long long age_s) {
  if (age_s < 30) return "online";
  return age_s < 120 ? "stale" : "offline";
}

json compact_node(const pqxx::row& r, const Presence& presence) {
  json roles = parse_jsonb(r["roles"]);
  json load = parse_jsonb(r["load"]);
  json out{
      {"id", r["id"].as<std::string>()},
      {"cluster", r["cluster"].as<std::string>()},
      {"name", r["name"].as<std::string>()},
      {"hostname", opt_text(r["hostname"])},
      {"status", r["status"].as<std::string>()},
      {"ownership", r["ownership"].as<std::string>()},
      {"org", opt_text(r["org"])},
      {"group_id", opt_text(r["group_id"])},
      {"agent_version", opt_text(r["agent_version"])},
      {"last_heartbeat_at", opt_text(r["last_heartbeat_at"])},
      {"heartbeat_age_seconds",
       r["heartbeat_age"].is_null() ? json(nullptr) : json(r["heartbeat_age"].as<long long>())},
      {"health", r["health"].as<std::string>()},
      {"capabilities", parse_jsonb(r["capabilities"])},
      {"load", load.is_object() ? load : json(nullptr)},
      {"partition_state", opt_text(r["partition_state"])},
      {"roles", roles.is_array() ? roles : json::array()},
      {"workloads",
       {{"desired", r["wl_desired"].as<long long>()},
        {"running", r["wl_running"].as<long long>()}}},
      {"certificate_not_after", opt_text(r["cert_not_after"])}};
  // A fresher heartbeat from live state (active nodes only).
  const auto pc = presence.find(r["cluster_id"].as<std::string>());
  if (pc != presence.end() && r["status"].as<std::string>() == "active") {
    const auto pn = pc->second.find(r["id"].as<std::string>());
    if (pn != pc->second.end()) {
      const long long now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count();
      const long long age = std::max<long long>(0, (now_ms - pn->second) / 1000);
      const json& db_age = out["heartbeat_age_seconds"];
      if (db_age.is_null() || age < db_age.get<long long>()) {
        out["heartbeat_age_seconds"] = age;
        out["last_heartbeat_at"] = rfc3339_ms(pn->second);
        out["health"] = health_for_age(age);
      }
    }
  }
  return out;
}

HttpResponse get_console_nodes(Ctx& ctx) {
  std::string cluster;
  std::string node;
  for (const auto& [k, v] : ctx.query) {
    if (k == "cluster") {
      cluster = v;
    } else if (k == "node") {
      node = v;
    } else {
      return error_response(400, "invalid_request", "unknown query parameter");
    }
  }
  if (!node.empty() && !valid_uuid(node))
    return error_response(404, "node_not_found", "node not found");
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    pqxx::result rows;
    if (!node.empty()) {
      // One node (the console's node page polls its live health this way).
      rows = t.exec_params(std::string(kCompactNodes) + "WHERE n.id = $1::uuid", node);
      if (rows.empty() || (!cluster.empty() && rows[0]["cluster"].as<std::string>() != cluster))
        return http_fail(404, "node_not_found", "node not found");
    } else if (cluster.empty()) {
      rows = t.exec(std::string(kCompactNodes) + "ORDER BY c.slug, n.name, n.id");
    } else {
      if (t.exec_params("SELECT 1 FROM clusters WHERE slug = $1", cluster).empty())
        return http_fail(404, "cluster_not_found", "cluster not found");
      rows = t.exec_params(std::string(kCompactNodes) + "WHERE c.slug = $1 ORDER BY n.name, n.id",
                           cluster);
    }
    const Presence presence = load_presence(ctx.live, rows);
    json out = json::array();
    for (const auto& row : rows) out.push_back(compact_node(row, presence));
    auto now = t.exec(std::string("SELECT ") + RAP_TS("now()"));
    return json{{"nodes", std::move(out)}, {"server_time", now[0][0].as<std::string>()}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

HttpResponse get_console_overview(Ctx& ctx) {
  if (!ctx.query.empty()) return error_response(400, "invalid_request", "no query parameters");
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto crows = t.exec(
        "SELECT c.slug, c.name, COALESCE(a.partition_state, 'normal'), "
        "COALESCE(a.authority_epoch, 1), ca.cert_pem, "
        "(SELECT count(*) FROM join_requests j WHERE j.cluster_id = c.id AND j.status = "
        "'pending'), "
        "(SELECT count(*) FROM join_requests j WHERE j.cluster_id = c.id AND j.status = "
        "'pending' AND j.created_at < now() - interval '1 hour'), "
        "(SELECT count(*) FROM join_tokens k WHERE k.cluster_id = c.id AND k.revoked_at IS NULL "
        "AND k.expires_at > now() AND k.uses < k.max_uses) "
        "FROM clusters c LEFT JOIN cluster_authority a ON a.cluster_id = c.id "
        "LEFT JOIN cluster_cas ca ON ca.cluster_id = c.id ORDER BY c.slug");
    auto nrows = t.exec(std::string(kCompactNodes) + "ORDER BY c.slug, n.name, n.id");
    const Presence presence = load_presence(ctx.live, nrows);
    auto now = t.exec(std::string("SELECT ") + RAP_TS("now()") + ", " +
                      RAP_TS("now() + interval '180 days'"));
    const std::string server_time = now[0][0].as<std::string>();
    const std::string ca_horizon = now[0][1].as<std::string>();

    struct Agg {
      json j;
      std::map<std::string, int> health;
      std::map<std::string, int> roles_total;
      std::map<std::string, int> roles_online;
      long long wl_desired = 0;
      long long wl_running = 0;
      int active = 0;
    };
    std::map<std::string, Agg> per;
    long long max_age = -1;  // over active nodes that ever sent a heartbeat
    double cpu_sum = 0;      // cpu_permille of online nodes reporting load
    long long cpu_n = 0;
    json risky = json::array();
    std::size_t risky_total = 0;
    auto add_risk = [&](const std::string& severity, const std::string& kind,
                        const std::string& cluster, json node, const std::string& message) {
      ++risky_total;
      if (risky.size() >= 200) return;
      json e{{"severity", severity}, {"kind", kind}, {"cluster", cluster}, {"message", message}};
      if (!node.is_null()) e["node"] = std::move(node);
      risky.push_back(std::move(e));
    };
    json totals{{"clusters", crows.size()},
                {"nodes", 0},
                {"active", 0},
                {"revoked", 0},
                {"online", 0},
                {"stale", 0},
                {"offline", 0},
                {"pending_join_requests", 0}};
    for (const auto& row : crows) {
      const std::string slug = row[0].as<std::string>();
      auto [nb, na] = pem_validity(row[4].is_null() ? "" : row[4].as<std::string>());
      Agg a;
      a.j = json{{"slug", slug},
                 {"name", row[1].as<std::string>()},
                 {"partition_state", row[2].as<std::string>()},
                 {"authority_epoch", row[3].as<long long>()},
                 {"ca_not_after", na},
                 {"pending_join_requests", row[5].as<long long>()},
                 {"active_join_tokens", row[7].as<long long>()}};
      totals["pending_join_requests"] =
          totals["pending_join_requests"].get<long long>() + row[5].as<long long>();
      if (row[2].as<std::string>() != "normal")
        add_risk("high", "partition", slug, nullptr,
                 "cluster authority is " + row[2].as<std::string>());
      if (na.is_string() && na.get<std::string>() < ca_horizon)
        add_risk("high", "ca_expiring", slug, nullptr,
                 "cluster CA expires " + na.get<std::string>());
      if (row[6].as<long long>() > 0)
        add_risk("warn", "join_request_waiting", slug, nullptr,
                 std::to_string(row[6].as<long long>()) +
                     " join request(s) pending for more than an hour");
      per.emplace(slug, std::move(a));
    }
    for (const auto& row : nrows) {
      json n = compact_node(row, presence);
      auto it = per.find(n["cluster"].get<std::string>());
      if (it == per.end()) continue;
      Agg& a = it->second;
      const std::string status = n["status"];
      const std::string health = n["health"];
      const std::string cl = n["cluster"];
      totals["nodes"] = totals["nodes"].get<long long>() + 1;
      if (status != "active") {
        a.health["revoked"]++;
        totals["revoked"] = totals["revoked"].get<long long>() + 1;
        continue;
      }
      a.active++;
      totals["active"] = totals["active"].get<long long>() + 1;
      if (n["heartbeat_age_seconds"].is_number())
        max_age = std::max(max_age, n["heartbeat_age_seconds"].get<long long>());
      if (health == "online" && n["load"].is_object() && n["load"].contains("cpu_permille") &&
          n["load"]["cpu_permille"].is_number()) {
        cpu_sum += n["load"]["cpu_permille"].get<double>();
        ++cpu_n;
      }
      a.health[health]++;
      totals[health] = totals[health].get<long long>() + 1;
      const json ref{{"id", n["id"]}, {"name", n["name"]}};
      std::set<std::string> roles;
      for (const auto& ra : n["roles"]) roles.insert(ra.value("role", ""));
      for (const auto& role : roles) {
        a.roles_total[role]++;
        if (health == "online") a.roles_online[role]++;
      }
      if (!roles.empty() && health != "online")
        add_risk(health == "offline" ? "high" : "warn", "role_carrier_down", cl, ref,
                 "node with roles is " + health);
      const long long desired = n["workloads"]["desired"];
      const long long running = n["workloads"]["running"];
      a.wl_desired += desired;
      a.wl_running += running;
      if (health == "online" && running < desired)
        add_risk("warn", "workload_unhealthy", cl, ref,
                 std::to_string(desired - running) + " of " + std::to_string(desired) +
                     " desired workload(s) not running");
      if (n["certificate_not_after"].is_null())
        add_risk("high", "no_valid_certificate", cl, ref, "active node without a certificate");
      else if (!row["cert_expiring"].is_null() && row["cert_expiring"].as<bool>())
        add_risk("warn", "certificate_expiring", cl, ref,
                 "certificate expires " + n["certificate_not_after"].get<std::string>());
      if (n["partition_state"].is_string() && n["partition_state"] != "none" &&
          n["partition_state"] != "healthy" && health == "online")
        add_risk("warn", "node_partition", cl, ref,
                 "agent reports " + n["partition_state"].get<std::string>());
    }
    totals["max_heartbeat_age_seconds"] = max_age < 0 ? json(nullptr) : json(max_age);
    totals["avg_cpu_permille"] =
        cpu_n == 0 ? json(nullptr) : json(std::lround(cpu_sum / static_cast<double>(cpu_n)));
    json clusters = json::array();
    for (auto& [slug, a] : per) {
      json health{{"online", a.health["online"]},
                  {"stale", a.health["stale"]},
                  {"offline", a.health["offline"]},
                  {"revoked", a.health["revoked"]}};
      json coverage = json::object();
      for (const auto& [role, n] : a.roles_total)
        coverage[role] = {{"nodes", n}, {"online", a.roles_online[role]}};
      json gaps = json::array();
      if (a.active > 0) {
        for (const auto& role : kCoreRoles)
          if (a.roles_online[role] == 0) gaps.push_back(role);
      }
      for (const auto& [role, n] : a.roles_total)
        if (a.roles_online[role] == 0 &&
            std::find(kCoreRoles.begin(), kCoreRoles.end(), role) == kCoreRoles.end())
          gaps.push_back(role);
      for (const auto& g : gaps)
        add_risk("warn", "role_gap", slug, nullptr,
                 "no online node carries role " + g.get<std::string>());
      a.j["nodes"] = {{"total", a.active + a.health["revoked"]}, {"active", a.active}};
      a.j["health"] = health;
      a.j["role_coverage"] = coverage;
      a.j["role_gaps"] = gaps;
      a.j["workloads"] = {{"desired", a.wl_desired}, {"running", a.wl_running}};
      clusters.push_back(std::move(a.j));
    }
    return json{{"server_time", server_time}, {"totals", totals},
                {"clusters", clusters},       {"risky", risky},
                {"risky_total", risky_total}, {"core_roles", kCoreRoles}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

HttpResponse get_console_trust(Ctx& ctx) {
  if (!ctx.query.empty()) return error_response(400, "invalid_request", "no query parameters");
  auto
      r = ctx.db
              .with_connection<json>(
                  [&](pqxx::connection& c) -> Result<json> {
                    pqxx::read_transaction t(c);
                    auto crows = t.exec(
        "SELECT c.id, c.slug, c.name, ca.cert_pem, ca.key_id, " RAP_TS("ca.created_at") ", "
        "(SELECT count(*) FROM node_certificates nc JOIN nodes n ON n.id = nc.node_id "
        " WHERE n.cluster_id = c.id AND nc.revoked_at IS NULL AND nc.not_after > now()), "
        "(SELECT count(*) FROM node_certificates nc JOIN nodes n ON n.id = nc.node_id "
        " WHERE n.cluster_id = c.id AND nc.revoked_at IS NULL AND nc.not_after > now() "
        " AND nc.not_after < now() + interval '24 hours'), "
        "(SELECT count(*) FROM node_certificates nc JOIN nodes n ON n.id = nc.node_id "
        " WHERE n.cluster_id = c.id AND nc.revoked_at IS NULL AND nc.not_after <= now()), "
        "(SELECT count(*) FROM node_certificates nc JOIN nodes n ON n.id = nc.node_id "
        " WHERE n.cluster_id = c.id AND nc.revoked_at IS NOT NULL), "
        "(SELECT count(*) FROM nodes n WHERE n.cluster_id = c.id AND n.status = 'revoked'), "
        "(SELECT count(*) FROM join_tokens k WHERE k.cluster_id = c.id AND k.revoked_at IS NULL "
        " AND k.expires_at > now() AND k.uses < k.max_uses) "
        "FROM clusters c LEFT JOIN cluster_cas ca ON ca.cluster_id = c.id ORDER BY c.slug");
                    json clusters = json::array();
                    for (const auto& row : crows) {
                      auto [nb, na] =
                          pem_validity(row[3].is_null() ? "" : row[3].as<std::string>());
                      clusters.push_back({{"slug", row[1].as<std::string>()},
                                          {"name", row[2].as<std::string>()},
                                          {"ca",
                                           {{"not_before", nb},
                                            {"not_after", na},
                                            {"sealed_with", opt_text(row[4])},
                                            {"created_at", opt_text(row[5])}}},
                                          {"certificates",
                                           {{"valid", row[6].as<long long>()},
                                            {"expiring_24h", row[7].as<long long>()},
                                            {"expired", row[8].as<long long>()},
                                            {"revoked", row[9].as<long long>()}}},
                                          {"revoked_nodes", row[10].as<long long>()},
                                          {"active_join_tokens", row[11].as<long long>()}});
                    }
                    auto rrows = t.exec(
        "SELECT nc.serial::text, c.slug, n.id, n.name, " RAP_TS("nc.revoked_at") ", "
        "nc.revoke_reason, " RAP_TS("nc.not_after") " FROM node_certificates nc "
        "JOIN nodes n ON n.id = nc.node_id JOIN clusters c ON c.id = n.cluster_id "
        "WHERE nc.revoked_at IS NOT NULL ORDER BY nc.revoked_at DESC, nc.serial DESC LIMIT 100");
                    json revocations = json::array();
                    for (const auto& row : rrows)
                      revocations.push_back(
                          {{"serial", row[0].as<std::string>()},
                           {"cluster", row[1].as<std::string>()},
                           {"node",
                            {{"id", row[2].as<std::string>()}, {"name", row[3].as<std::string>()}}},
                           {"revoked_at", row[4].as<std::string>()},
                           {"reason", opt_text(row[5])},
                           {"not_after", row[6].as<std::string>()}});
                    // Config-signing keys (public halves only; docs/API.md "Signed
                    // configuration").
                    json signing = json::array();
                    for (const auto& row : t.exec("SELECT c.slug, k.key_id, k.status, " RAP_TS(
                             "k.not_before") ", " RAP_TS("k.not_after") " FROM config_signing_keys "
                                                                        "k JOIN clusters c "
                                                                        "ON c.id = k.cluster_id "
                                                                        "ORDER BY c.slug, "
                                                                        "k.created_at"))
                      signing.push_back({{"cluster", row[0].as<std::string>()},
                                         {"key_id", row[1].as<std::string>()},
                                         {"status", row[2].as<std::string>()},
                                         {"not_before", row[3].as<std::string>()},
                                         {"not_after", row[4].as<std::string>()}});
                    return json{{"clusters", clusters},
                                {"revocations", revocations},
                                {"config_signing_keys", signing}};
                  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

HttpResponse get_console_node_audit(Ctx& ctx) {
  const std::string id = ctx.param("node");
  int limit = 100;
  for (const auto& [k, v] : ctx.query) {
    if (k != "limit") return error_response(400, "invalid_request", "unknown query parameter");
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), limit);
    if (ec != std::errc() || p != v.data() + v.size() || limit < 1 || limit > 500)
      return error_response(400, "invalid_limit", "limit must be 1..500");
  }
  if (!valid_uuid(id)) return error_response(404, "node_not_found", "node not found");
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto n = t.exec_params(
        "SELECT n.id, c.id FROM nodes n JOIN clusters c ON c.id = "
        "n.cluster_id WHERE n.id = $1::uuid",
        id);
    if (n.empty()) return http_fail(404, "node_not_found", "node not found");
    // The node's own events (actor) and events about it (target node:<id>, or the join request
    // that created it).
    auto rows = t.exec_params(
        "SELECT e.id, " RAP_TS("e.at") ", u.email, e.action, e.target, e.outcome, "
        "e.details::text, (e.actor_node_id <> '') FROM audit_events e "
        "LEFT JOIN users u ON u.id = e.actor_user_id "
        "WHERE e.cluster_id = $2::uuid AND (e.actor_node_id = $1 OR e.target = $3 OR "
        "e.target IN (SELECT 'join_request:' || j.id::text FROM join_requests j "
        "WHERE j.node_id = $1::uuid)) ORDER BY e.id DESC LIMIT $4",
        id, n[0][1].as<std::string>(), "node:" + id, limit);
    json events = json::array();
    for (const auto& row : rows)
      events.push_back({{"id", row[0].as<long long>()},
                        {"at", row[1].as<std::string>()},
                        {"actor", row[7].as<bool>() ? json("node") : opt_text(row[2])},
                        {"action", row[3].as<std::string>()},
                        {"target", row[4].as<std::string>()},
                        {"outcome", row[5].as<std::string>()},
                        {"details", parse_jsonb(row[6])}});
    return json{{"node_id", id}, {"events", events}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

// Tenant-safe status of an organization: counts and egress pool availability only.
HttpResponse get_org_status(Ctx& ctx) {
  const std::string slug = ctx.param("slug");
  if (!ctx.query.empty()) return error_response(400, "invalid_request", "no query parameters");
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto org = find_org(t, *ctx.caller, slug);
    if (!org) return tl::unexpected(org.error());
    if (!is_staff(*ctx.caller) && org->role != "org_admin")
      return http_fail(403, "forbidden", "organization admins only");
    auto row = t.exec_params(
        "SELECT (SELECT count(*) FROM memberships WHERE org_id = $1::uuid), "
        "(SELECT count(*) FROM memberships WHERE org_id = $1::uuid AND role = 'org_admin'), "
        "(SELECT count(*) FROM groups WHERE org_id = $1::uuid), "
        "(SELECT count(*) FROM resources WHERE org_id = $1::uuid), "
        "(SELECT count(*) FROM policies WHERE org_id = $1::uuid), "
        "(SELECT COALESCE(json_object_agg(protocol, n), '{}')::text FROM (SELECT protocol, "
        " count(*) AS n FROM resources WHERE org_id = $1::uuid GROUP BY protocol) p), "
        "(SELECT count(*) FROM audit_events WHERE org_id = $1::uuid AND outcome = 'denied' "
        " AND at > now() - interval '24 hours')",
        org->id);
    // An egress pool is "available" when at least one active node behind it heartbeats
    // (< 30 s), "unavailable" when it has nodes but none is, "unassigned" without nodes.
    auto pools = t.exec_params(
        "SELECT p.name, count(n.id), count(n.id) FILTER (WHERE n.status = 'active' AND "
        "n.last_heartbeat_at > now() - interval '30 seconds') FROM egress_pools p "
        "LEFT JOIN egress_pool_nodes pn ON pn.pool_id = p.id LEFT JOIN nodes n ON n.id = "
        "pn.node_id WHERE p.org_id = $1::uuid GROUP BY p.id, p.name ORDER BY p.name",
        org->id);
    json pj = json::array();
    for (const auto& p : pools) {
      const auto total = p[1].as<long long>();
      const auto up = p[2].as<long long>();
      pj.push_back(
          {{"name", p[0].as<std::string>()},
           {"status", total == 0 ? "unassigned" : (up > 0 ? "available" : "unavailable")}});
    }
    return json{{"org", {{"slug", org->org["slug"]}, {"name", org->org["name"]}}},
                {"members", row[0][0].as<long long>()},
                {"admins", row[0][1].as<long long>()},
                {"groups", row[0][2].as<long long>()},
                {"resources", row[0][3].as<long long>()},
                {"policies", row[0][4].as<long long>()},
                {"resources_by_protocol", parse_jsonb(row[0][5])},
                {"denied_events_24h", row[0][6].as<long long>()},
                {"egress_pools", pj}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

// Which console the caller gets (any user; nothing secret: the caller's own platform role).
HttpResponse get_console_session(Ctx& ctx) {
  return json_response(200, json{{"platform_staff", is_staff(*ctx.caller)},
                                 {"platform_owner", ctx.caller->is_owner},
                                 {"platform_admin", ctx.caller->is_platform_admin}});
}

}  // namespace

void register_console_routes(Router& r) {
  r.add("GET", "/api/v1/console/session", Auth::kUser, get_console_session);
  r.add("GET", "/api/v1/console/overview", Auth::kUser,
        staff_view("overview", get_console_overview));
  r.add("GET", "/api/v1/console/nodes", Auth::kUser, staff_view("nodes", get_console_nodes));
  r.add("GET", "/api/v1/console/nodes/{node}/audit", Auth::kUser,
        staff_view("node_audit", get_console_node_audit));
  r.add("GET", "/api/v1/console/trust", Auth::kUser, staff_view("trust", get_console_trust));
  r.add("GET", "/api/v1/orgs/{slug}/status", Auth::kUser, get_org_status);
}

}  // namespace rap::control::detail
