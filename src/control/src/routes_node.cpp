// Node-facing API: enrollment with a join token (public), polling for the decision with a proof
// of key possession, and the mTLS-authenticated node routes (heartbeat, desired state, renew).
//
// Enrollment: the join token's uses are consumed under a row lock (SELECT ... FOR UPDATE), so
// concurrent enrollments never exceed max_uses; a replay with the same public key returns the
// existing request and consumes nothing. Denied enrollments are audited (outcome "denied").
// Heartbeats are telemetry and are not audited.
//
// Hot path (a node heartbeats every few seconds over one keep-alive mTLS connection):
//  * authenticate_node reads the node/certificate/CA row with one single-statement lookup (no
//    BEGIN/COMMIT) and caches it in NodeHotState for ApiOptions::node_auth_cache_ttl (2 s);
//    every change of a node (revocation, roles, workloads) drops the cached row on this
//    instance at once and on the others through the "node.changed" notification, so a
//    revocation takes effect on the next request (other instances: the notification delay,
//    at most the TTL). Certificate expiry is checked against the cached not_after on every
//    request. The chain verification against the cluster CA (a pure function of the two PEMs)
//    and the PEM parsing are cached per (certificate PEM, CA PEM) for up to 5 min.
//  * post_heartbeat writes PostgreSQL only when the durable part of the state changed or
//    ApiOptions::heartbeat_write_interval has passed since this instance last wrote for the
//    node (see api.h). Otherwise it touches no database: fast_heartbeat answers such a
//    heartbeat on the I/O thread when the node's row is cached, and the node's presence goes
//    to LiveState (Redis) in Api's once-a-second batch. Writes use asynchronous commit: a crash
//    may lose the last fraction of a second of telemetry.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <ctime>
#include <limits>
#include <set>

#include "api_internal.h"
#include "cluster_ca.h"
#include "config_compiler.h"
#include "node_hot_state.h"
#include "rap/control/auth.h"
#include "rap/control/live_state.h"
#include "rap/crypto/certs.h"
#include "rap/crypto/keys.h"

namespace rap::control::detail {

namespace {

// Capabilities a node may report (reported facts; never permissions).
const std::set<std::string> kCapabilities = {"can_accept_client_ingress",
                                             "can_accept_node_ingress",
                                             "can_route_mesh",
                                             "can_egress_internet",
                                             "can_egress_private_network",
                                             "can_run_rdp_worker",
                                             "can_run_vnc_worker",
                                             "can_run_vpn_exit",
                                             "can_run_vpn_connector",
                                             "can_run_tcp_exit",
                                             "can_run_file_cache",
                                             "can_run_update_cache",
                                             "can_run_video_relay",
                                             "can_store_config"};

constexpr std::int64_t kProofWindowSeconds = 300;
constexpr int kHeartbeatHistory = 100;
constexpr std::int64_t kMaxWaitSeconds = 30;
// Fabric peers a heartbeat may list (fabric.sessions, load.peer_rtt_ms).
constexpr std::size_t kMaxFabricPeers = 1024;
// Open access sessions an entry may report in one heartbeat (access.active; ~250 bytes each, the
// body limit is 64 KiB).
constexpr std::size_t kMaxAccessSessions = 128;
constexpr std::int64_t kMaxUnixSeconds = std::int64_t{1} << 40;
// Revoked grants one entry's desired state lists (the newest; grants live at most an hour).
constexpr int kMaxRevokedGrants = 4096;

// `s` for an error message if it is short printable ASCII, else "(invalid)": a cut multi-byte
// character would make the JSON error body unserializable.
std::string echo(const std::string& s) {
  if (s.size() > 64) return "(invalid)";
  for (unsigned char c : s)
    if (c < 0x20 || c > 0x7e) return "(invalid)";
  return s;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool parse_int64(const std::string& s, std::int64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

// Capabilities: an array of distinct known names (at most 32).
Step<json> parse_capabilities(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return json::array();
  if (!it->is_array() || it->size() > 32)
    return tl::unexpected(error_response(
        400, "invalid_request", std::string("field '") + key + "' must be an array (at most 32)"));
  std::set<std::string> seen;
  json out = json::array();
  for (const auto& c : *it) {
    if (!c.is_string())
      return tl::unexpected(error_response(400, "invalid_request", "capabilities must be strings"));
    const auto s = c.get<std::string>();
    if (!kCapabilities.contains(s))
      return tl::unexpected(
          error_response(400, "unknown_capability", "unknown capability '" + echo(s) + "'"));
    if (seen.insert(s).second) out.push_back(s);
  }
  return out;
}

bool printable(const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

// facts {hostname (required), os, arch, cpus, memory_mb, addresses}.
Step<json> parse_facts(const json& j) {
  auto it = j.find("facts");
  if (it == j.end() || !it->is_object())
    return tl::unexpected(
        error_response(400, "invalid_request", "field 'facts' must be an object"));
  const json& f = *it;
  if (auto bad =
          reject_unknown_fields(f, {"hostname", "os", "arch", "cpus", "memory_mb", "addresses"}))
    return tl::unexpected(*bad);
  json out = json::object();
  auto host = req_string(f, "hostname");
  if (!host) return tl::unexpected(host.error());
  if (host->empty() || host->size() > 253 || !printable(*host))
    return tl::unexpected(
        error_response(400, "invalid_facts", "hostname must be 1 to 253 printable bytes"));
  out["hostname"] = *host;
  for (const char* k : {"os", "arch"}) {
    auto v = opt_string(f, k);
    if (!v) return tl::unexpected(v.error());
    if (*v) {
      if ((*v)->size() > 64 || !printable(**v))
        return tl::unexpected(error_response(
            400, "invalid_facts", std::string("'") + k + "' must be at most 64 printable bytes"));
      out[k] = **v;
    }
  }
  auto cpus = opt_int(f, "cpus");
  if (!cpus) return tl::unexpected(cpus.error());
  if (*cpus) {
    if (**cpus < 0 || **cpus > 65536)  // 0: unknown
      return tl::unexpected(error_response(400, "invalid_facts", "cpus must be 0..65536"));
    out["cpus"] = **cpus;
  }
  auto mem = opt_int(f, "memory_mb");
  if (!mem) return tl::unexpected(mem.error());
  if (*mem) {
    if (**mem < 0 || **mem > (std::int64_t{1} << 40))
      return tl::unexpected(error_response(400, "invalid_facts", "memory_mb out of range"));
    out["memory_mb"] = **mem;
  }
  if (auto a = f.find("addresses"); a != f.end() && !a->is_null()) {
    if (!a->is_array() || a->size() > 32)
      return tl::unexpected(
          error_response(400, "invalid_facts", "addresses must be an array (at most 32)"));
    for (const auto& e : *a) {
      if (!e.is_string() || e.get<std::string>().empty() || e.get<std::string>().size() > 64 ||
          !printable(e.get<std::string>()))
        return tl::unexpected(
            error_response(400, "invalid_facts", "addresses must be strings of 1 to 64 bytes"));
    }
    out["addresses"] = *a;
  }
  return out;
}

// Turns "http:403:join_token_expired" into "join_token_expired" (for denied audit details).
std::string http_code_of(const Error& e) {
  if (e.code.rfind("http:", 0) != 0) return "";
  const auto second = e.code.find(':', 5);
  return second == std::string::npos ? "" : e.code.substr(second + 1);
}

HttpResponse post_enroll(Ctx& ctx) {
  auto body = parse_object(ctx.req.body);
  if (!body) return body.error();
  if (auto bad = reject_unknown_fields(
          *body, {"cluster", "join_token", "public_key", "facts", "capabilities"}))
    return *bad;
  auto cluster = req_string(*body, "cluster");
  if (!cluster) return cluster.error();
  auto token = req_string(*body, "join_token");
  if (!token) return token.error();
  auto pub_in = req_string(*body, "public_key");
  if (!pub_in) return pub_in.error();
  auto facts = parse_facts(*body);
  if (!facts) return facts.error();
  auto caps = parse_capabilities(*body, "capabilities");
  if (!caps) return caps.error();
  const std::string pub = lower(*pub_in);
  crypto::PublicKey key{};
  if (!parse_hex(pub, key))
    return error_response(400, "invalid_public_key",
                          "public_key must be a raw Ed25519 public key as 64 hex characters");
  if (!valid_slug(*cluster) || !valid_token_shape(*token)) {
    audit_standalone(
        ctx.db,
        AuditEvent{.action = "node.join_requested",
                   .target = "cluster:" + (valid_slug(*cluster) ? *cluster : std::string("?")),
                   .outcome = "denied",
                   .details = json{{"reason", "invalid_join_token"}, {"public_key", pub}}});
    return error_response(401, "invalid_join_token", "invalid join token");
  }
  const std::string token_hash = token_sha256(*token);
  const std::string slug = *cluster;

  std::string cluster_id;  // known once the token matched (for the denied audit event)
  struct Out {
    std::string id;
    std::string status;
    bool replay = false;
  };
  auto r = ctx.db.with_transaction<Out>([&](pqxx::work& w) -> Result<Out> {
    auto t = w.exec_params(
        "SELECT t.id, t.cluster_id, t.revoked_at IS NOT NULL, t.expires_at <= now(), t.uses, "
        "t.max_uses FROM join_tokens t JOIN clusters c ON c.id = t.cluster_id "
        "WHERE t.token_sha256 = $1 AND c.slug = $2 FOR UPDATE OF t",
        token_hash, slug);
    if (t.empty()) return http_fail(401, "invalid_join_token", "invalid join token");
    const std::string token_id = t[0][0].as<std::string>();
    cluster_id = t[0][1].as<std::string>();
    if (t[0][2].as<bool>())
      return http_fail(403, "join_token_revoked", "join token has been revoked");
    if (t[0][3].as<bool>()) return http_fail(403, "join_token_expired", "join token has expired");
    auto existing = w.exec_params(
        "SELECT id, status FROM join_requests WHERE cluster_id = $1::uuid AND public_key = $2",
        cluster_id, pub);
    if (!existing.empty())
      return Out{existing[0][0].as<std::string>(), existing[0][1].as<std::string>(), true};
    if (t[0][4].as<long long>() >= t[0][5].as<long long>())
      return http_fail(403, "join_token_exhausted", "join token has no uses left");
    auto ins = w.exec_params(
        "INSERT INTO join_requests (cluster_id, token_id, public_key, facts, capabilities) "
        "VALUES ($1::uuid, $2::uuid, $3, $4::jsonb, $5::jsonb) RETURNING id",
        cluster_id, token_id, pub, facts->dump(), caps->dump());
    w.exec_params("UPDATE join_tokens SET uses = uses + 1 WHERE id = $1::uuid", token_id);
    const std::string id = ins[0][0].as<std::string>();
    audit(w, AuditEvent{.cluster_id = cluster_id,
                        .action = "node.join_requested",
                        .target = "join_request:" + id,
                        .details = json{{"join_token_id", token_id},
                                        {"hostname", (*facts)["hostname"]},
                                        {"public_key", pub},
                                        {"capabilities", *caps}}});
    return Out{id, "pending", false};
  });
  if (!r) {
    const std::string code = http_code_of(r.error());
    if (!code.empty()) {
      audit_standalone(
          ctx.db, AuditEvent{.cluster_id = cluster_id,
                             .action = "node.join_requested",
                             .target = "cluster:" + slug,
                             .outcome = "denied",
                             .details = json{{"reason", code},
                                             {"public_key", pub},
                                             {"token_sha256_prefix", token_hash.substr(0, 12)}}});
    }
    if (r.error().code == "conflict")
      return error_response(409, "enrollment_conflict", "a concurrent enrollment used this key");
    return to_response(r.error());
  }
  return json_response(202, json{{"request_id", r->id},
                                 {"status", r->status},
                                 {"cluster", slug},
                                 {"replayed", r->replay}});
}

// Checks X-RAP-Time / X-RAP-Proof: an Ed25519 signature by `pub` over
// "rap-enroll-poll:<request_id>:<unix_time>", time within ±300 s.
std::optional<HttpResponse> check_poll_proof(const HttpRequest& req, const std::string& request_id,
                                             const std::string& pub_hex) {
  const auto t = req.rap_headers.find("x-rap-time");
  const auto p = req.rap_headers.find("x-rap-proof");
  if (t == req.rap_headers.end() || p == req.rap_headers.end())
    return error_response(401, "proof_required", "X-RAP-Time and X-RAP-Proof headers are required");
  std::int64_t ts = 0;
  if (!parse_int64(t->second, ts))
    return error_response(401, "invalid_proof", "X-RAP-Time must be a unix time in seconds");
  const std::int64_t now = unix_now();
  if (ts < now - kProofWindowSeconds || ts > now + kProofWindowSeconds)
    return error_response(401, "stale_proof", "X-RAP-Time is more than 300 s from server time");
  crypto::Signature sig{};
  crypto::PublicKey pub{};
  if (!parse_hex(lower(p->second), sig) || !parse_hex(pub_hex, pub))
    return error_response(401, "invalid_proof", "invalid proof of key possession");
  const std::string msg = "rap-enroll-poll:" + request_id + ":" + t->second;
  if (!crypto::verify_ed25519(
          pub, std::span(reinterpret_cast<const std::uint8_t*>(msg.data()), msg.size()), sig))
    return error_response(401, "invalid_proof", "invalid proof of key possession");
  return std::nullopt;
}

HttpResponse get_enroll(Ctx& ctx) {
  const std::string id = ctx.param("request_id");
  if (!valid_uuid(id))
    return error_response(404, "join_request_not_found", "join request not found");
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto rows = t.exec_params(
        "SELECT r.public_key, r.status, r.node_id, r.cluster_id, c.slug, ca.cert_pem, n.status, "
        "r.reason FROM join_requests r JOIN clusters c ON c.id = r.cluster_id "
        "LEFT JOIN cluster_cas ca ON ca.cluster_id = r.cluster_id "
        "LEFT JOIN nodes n ON n.id = r.node_id WHERE r.id = $1::uuid",
        id);
    if (rows.empty()) return http_fail(404, "join_request_not_found", "join request not found");
    const auto& row = rows[0];
    if (auto bad = check_poll_proof(ctx.req, id, row[0].as<std::string>())) {
      json err = json::parse(bad->body);
      return http_fail(bad->status, err["error"]["code"].get<std::string>(),
                       err["error"]["message"].get<std::string>());
    }
    const std::string status = row[1].as<std::string>();
    json out{{"request_id", id},
             {"status", status},
             {"cluster", {{"id", row[3].as<std::string>()}, {"slug", row[4].as<std::string>()}}}};
    if (status == "rejected" && !row[7].is_null()) out["reason"] = row[7].as<std::string>();
    if (status != "approved") return out;
    if (row[2].is_null() || row[6].is_null() || row[6].as<std::string>() == "revoked")
      return http_fail(403, "node_revoked", "this node has been revoked");
    const std::string node_id = row[2].as<std::string>();
    auto cert = t.exec_params(
        "SELECT cert_pem, serial, " RAP_TS("not_after") " FROM node_certificates "
        "WHERE node_id = $1::uuid AND revoked_at IS NULL AND not_after > now() "
        "ORDER BY not_after DESC LIMIT 1",
        node_id);
    if (cert.empty())
      return http_fail(409, "no_valid_certificate", "the node has no valid certificate");
    out["node_id"] = node_id;
    out["certificate_pem"] = cert[0][0].as<std::string>();
    out["serial"] = cert[0][1].as<std::string>();
    out["not_after"] = cert[0][2].as<std::string>();
    out["ca_pem"] = row[5].is_null() ? json(nullptr) : json(row[5].as<std::string>());
    return out;
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

// ---------------- mTLS node routes ----------------

// load {cpu_permille, memory_kib, net_rx_bps, net_tx_bps, open_sessions, fds}: non-negative ints.
Step<json> parse_load(const json& j) {
  auto it = j.find("load");
  if (it == j.end() || it->is_null()) return json::object();
  if (!it->is_object())
    return tl::unexpected(error_response(400, "invalid_request", "field 'load' must be an object"));
  if (auto bad = reject_unknown_fields(
          *it, {"cpu_permille", "memory_kib", "net_rx_bps", "net_tx_bps", "open_sessions", "fds",
                "peer_rtt_ms", "peer_jitter_ms", "peer_retransmits_per_s", "relayed_routes"}))
    return tl::unexpected(*bad);
  json out = json::object();
  // Per peer, measured on the live fabric sessions (route planning): peer_rtt_ms /
  // peer_jitter_ms {"<node id>": ms}, round-trip times and their variation;
  // peer_retransmits_per_s {"<node id>": rate}, the carrier's TCP retransmits (loss).
  struct PeerField {
    const char* name;
    const char* unit;
    double max;
    bool whole;
  };
  for (const PeerField f :
       {PeerField{"peer_rtt_ms", "milliseconds", 600000, true},
        PeerField{"peer_jitter_ms", "milliseconds", 600000, true},
        PeerField{"peer_retransmits_per_s", "retransmits per second", 1e6, false}}) {
    const std::string field = f.name;
    auto rtt = it->find(field);
    if (rtt == it->end() || rtt->is_null()) continue;
    if (!rtt->is_object() || rtt->size() > kMaxFabricPeers)
      return tl::unexpected(error_response(
          400, "invalid_request", "field '" + field + "' must be an object (at most 1024 peers)"));
    json rtts = json::object();
    for (auto e = rtt->begin(); e != rtt->end(); ++e) {
      if (!valid_uuid(e.key()) || !e.value().is_number() || e.value().get<double>() < 0 ||
          e.value().get<double>() > f.max)
        return tl::unexpected(error_response(
            400, "invalid_request",
            fmt::format("{} must map node ids to {} (0..{:.0f})", field, f.unit, f.max)));
      const double v = e.value().get<double>();
      rtts[lower(e.key())] = f.whole ? json(std::llround(v)) : json(std::round(v * 10) / 10);
    }
    out[field] = std::move(rtts);
  }
  for (const char* k : {"cpu_permille", "memory_kib", "net_rx_bps", "net_tx_bps", "open_sessions",
                        "fds", "relayed_routes"}) {
    auto v = opt_int(*it, k);
    if (!v) return tl::unexpected(v.error());
    if (*v) {
      if (**v < 0)
        return tl::unexpected(error_response(
            400, "invalid_request", std::string("field '") + k + "' must not be negative"));
      out[k] = **v;
    }
  }
  return out;
}

// access {"active": [{grant, user, org, resource, started_at, expires_at, bytes_up,
// bytes_down}]}: the entry's open access sessions (ids are uuids, times unix seconds, bytes
// non-negative). Live state only (LiveState, via NodeHotState): never written to PostgreSQL.
Step<std::optional<json>> parse_access(const json& body) {
  auto it = body.find("access");
  if (it == body.end() || it->is_null()) return std::nullopt;
  auto bad = [](const std::string& m) {
    return tl::unexpected(error_response(400, "invalid_request", m));
  };
  if (!it->is_object()) return bad("field 'access' must be an object");
  if (auto unknown = reject_unknown_fields(*it, {"active"})) return tl::unexpected(*unknown);
  auto a = it->find("active");
  if (a == it->end() || !a->is_array() || a->size() > kMaxAccessSessions)
    return bad("access.active must be an array (at most 128 sessions)");
  json out = json::array();
  for (const auto& e : *a) {
    if (!e.is_object()) return bad("each access session must be an object");
    if (auto unknown = reject_unknown_fields(e, {"grant", "user", "org", "resource", "started_at",
                                                 "expires_at", "bytes_up", "bytes_down"}))
      return tl::unexpected(*unknown);
    json s = json::object();
    for (const char* k : {"grant", "user", "org", "resource"}) {
      auto v = req_string(e, k);
      if (!v) return tl::unexpected(v.error());
      if (!valid_uuid(*v)) return bad(std::string("access session ") + k + " must be a uuid");
      s[k] = lower(*v);
    }
    for (const auto& [k, max] :
         {std::pair{"started_at", kMaxUnixSeconds}, std::pair{"expires_at", kMaxUnixSeconds},
          std::pair{"bytes_up", std::numeric_limits<std::int64_t>::max()},
          std::pair{"bytes_down", std::numeric_limits<std::int64_t>::max()}}) {
      auto v = opt_int(e, k);
      if (!v) return tl::unexpected(v.error());
      if (!*v || **v < 0 || **v > max)
        return bad(std::string("access session ") + k + " must be a non-negative integer");
      s[k] = **v;
    }
    out.push_back(std::move(s));
  }
  return out;
}

// A validated heartbeat body.
struct Heartbeat {
  std::string version;
  json state;  // as stored in nodes.last_state
  json caps;   // validated capabilities (when has_caps)
  bool has_caps = false;
  std::string durable;         // canonical text of everything but `load`
  std::optional<json> access;  // access.active when reported (entries only); never durable
};

Step<Heartbeat> parse_heartbeat(const std::string& text) {
  auto body = parse_object(text);
  if (!body) return tl::unexpected(body.error());
  if (auto bad = reject_unknown_fields(
          *body, {"version", "capabilities", "load", "workloads", "applied_config_versions",
                  "partition_state", "endpoints", "fabric", "access", "config_lapsed"}))
    return tl::unexpected(*bad);
  auto version = req_string(*body, "version");
  if (!version) return tl::unexpected(version.error());
  if (version->empty() || version->size() > 64 || !printable(*version))
    return tl::unexpected(
        error_response(400, "invalid_request", "version must be 1 to 64 printable bytes"));
  auto caps = parse_capabilities(*body, "capabilities");
  if (!caps) return tl::unexpected(caps.error());
  const bool has_caps = body->contains("capabilities") && !(*body)["capabilities"].is_null();
  auto load = parse_load(*body);
  if (!load) return tl::unexpected(load.error());
  auto access = parse_access(*body);
  if (!access) return tl::unexpected(access.error());
  json workloads = json::array();
  if (auto it = body->find("workloads"); it != body->end() && !it->is_null()) {
    if (!it->is_array() || it->size() > 256)
      return tl::unexpected(error_response(400, "invalid_request",
                                           "field 'workloads' must be an array (at most 256)"));
    for (const auto& e : *it) {
      if (!e.is_object())
        return tl::unexpected(
            error_response(400, "invalid_request", "each workload must be an object"));
      if (auto bad = reject_unknown_fields(e, {"name", "state"})) return tl::unexpected(*bad);
      auto n = req_string(e, "name");
      if (!n) return tl::unexpected(n.error());
      auto st = req_string(e, "state");
      if (!st) return tl::unexpected(st.error());
      if (n->empty() || n->size() > 63 || st->size() > 32 || !printable(*n) || !printable(*st))
        return tl::unexpected(
            error_response(400, "invalid_request",
                           "workload name must be 1..63 bytes and state at most 32 bytes"));
      workloads.push_back({{"name", *n}, {"state", *st}});
    }
  }
  json applied = json::object();
  if (auto it = body->find("applied_config_versions"); it != body->end() && !it->is_null()) {
    if (!it->is_object() || it->size() > 64)
      return tl::unexpected(
          error_response(400, "invalid_request",
                         "field 'applied_config_versions' must be an object (at most 64)"));
    for (auto e = it->begin(); e != it->end(); ++e) {
      if (!e.value().is_number_integer() || e.key().empty() || e.key().size() > 63)
        return tl::unexpected(error_response(400, "invalid_request",
                                             "applied_config_versions must map names to integers"));
    }
    applied = *it;
  }
  auto partition = opt_string(*body, "partition_state");
  if (!partition) return tl::unexpected(partition.error());
  if (*partition && ((*partition)->size() > 32 || !printable(**partition)))
    return tl::unexpected(
        error_response(400, "invalid_request", "partition_state must be at most 32 bytes"));

  // endpoints {"config_storage": "host:port", ...}: services this node offers to other nodes.
  json endpoints = json::object();
  if (auto it = body->find("endpoints"); it != body->end() && !it->is_null()) {
    if (!it->is_object() || it->size() > 8)
      return tl::unexpected(error_response(400, "invalid_request",
                                           "field 'endpoints' must be an object (at most 8)"));
    for (auto e = it->begin(); e != it->end(); ++e) {
      if (!e.value().is_string() || e.key().empty() || e.key().size() > 63 ||
          e.value().get<std::string>().empty() || e.value().get<std::string>().size() > 255 ||
          !printable(e.value().get<std::string>()))
        return tl::unexpected(error_response(
            400, "invalid_request", "endpoints must map names to strings of 1 to 255 bytes"));
    }
    endpoints = *it;
  }

  // fabric {"sessions": [{"peer": node_id}]}: the node's live fabric sessions (the route graph,
  // docs/PROTOCOL.md §14.1). Durable: written when it changes; bumps no config generation.
  json fabric;
  if (auto it = body->find("fabric"); it != body->end() && !it->is_null()) {
    if (!it->is_object())
      return tl::unexpected(
          error_response(400, "invalid_request", "field 'fabric' must be an object"));
    if (auto bad = reject_unknown_fields(*it, {"sessions"})) return tl::unexpected(*bad);
    json sessions = json::array();
    if (auto ss = it->find("sessions"); ss != it->end() && !ss->is_null()) {
      if (!ss->is_array() || ss->size() > kMaxFabricPeers)
        return tl::unexpected(error_response(400, "invalid_request",
                                             "fabric.sessions must be an array (at most 1024)"));
      std::set<std::string> seen;
      for (const auto& e : *ss) {
        if (!e.is_object())
          return tl::unexpected(
              error_response(400, "invalid_request", "each fabric session must be an object"));
        if (auto bad = reject_unknown_fields(e, {"peer"})) return tl::unexpected(*bad);
        auto peer = req_string(e, "peer");
        if (!peer) return tl::unexpected(peer.error());
        if (!valid_uuid(*peer))
          return tl::unexpected(
              error_response(400, "invalid_request", "fabric session peer must be a node id"));
        if (seen.insert(lower(*peer)).second) sessions.push_back({{"peer", lower(*peer)}});
      }
    }
    fabric = json{{"sessions", std::move(sessions)}};
  }

  // config_lapsed [{"artifact": state key, "policy": "keep"|"stop", "expires_at": unix}]: applied
  // artifacts past their expiry and what the node does about it (docs/OPERATIONS.md).
  json lapsed = json::array();
  if (auto it = body->find("config_lapsed"); it != body->end() && !it->is_null()) {
    if (!it->is_array() || it->size() > 32)
      return tl::unexpected(error_response(400, "invalid_request",
                                           "field 'config_lapsed' must be an array (at most 32)"));
    for (const auto& e : *it) {
      if (!e.is_object())
        return tl::unexpected(
            error_response(400, "invalid_request", "each config_lapsed entry must be an object"));
      if (auto bad = reject_unknown_fields(e, {"artifact", "policy", "expires_at"}))
        return tl::unexpected(*bad);
      auto a = req_string(e, "artifact");
      if (!a) return tl::unexpected(a.error());
      auto p = req_string(e, "policy");
      if (!p) return tl::unexpected(p.error());
      const auto x = e.find("expires_at");
      if (a->empty() || a->size() > 200 || !printable(*a) || (*p != "keep" && *p != "stop") ||
          x == e.end() || !x->is_number_integer())
        return tl::unexpected(error_response(
            400, "invalid_request",
            "config_lapsed entries are {artifact, policy keep|stop, expires_at integer}"));
      lapsed.push_back({{"artifact", *a}, {"policy", *p}, {"expires_at", *x}});
    }
  }

  Heartbeat hb;
  hb.version = *version;
  hb.state = json{{"version", *version},
                  {"workloads", workloads},
                  {"applied_config_versions", applied},
                  {"partition_state", partition->value_or("")}};
  if (has_caps) hb.state["capabilities"] = *caps;
  if (!endpoints.empty()) hb.state["endpoints"] = endpoints;
  if (!fabric.is_null()) hb.state["fabric"] = std::move(fabric);
  if (!lapsed.empty()) hb.state["config_lapsed"] = std::move(lapsed);
  hb.durable = hb.state.dump();  // everything but the load figures, which change every time
  hb.state["load"] = *load;
  hb.caps = std::move(*caps);
  hb.has_caps = has_caps;
  hb.access = std::move(*access);
  return hb;
}

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json heartbeat_answer(std::int64_t desired_state_version, const std::string& server_time,
                      std::int64_t config_generation) {
  return json{{"desired_state_version", desired_state_version},
              {"server_time", server_time},
              {"config_generation", config_generation}};
}

HttpResponse post_heartbeat(Ctx& ctx) {
  auto hb = parse_heartbeat(ctx.req.body);
  if (!hb) return hb.error();
  const std::string node_id = ctx.node->node_id;
  const auto now = std::chrono::steady_clock::now();
  const auto interval = ctx.opts.heartbeat_write_interval;
  ctx.hot->note_seen(ctx.node->cluster_id, node_id, unix_ms_now());
  if (hb->access) ctx.hot->note_access(node_id, std::move(*hb->access));
  if (ctx.hot->write_is_fresh(node_id, hb->durable, interval, now)) {
    // Authenticated just now (node active, certificate valid): nothing durable to write.
    ctx.hot->count_heartbeat(true);
    return json_response(200, heartbeat_answer(ctx.node->desired_state_version, ctx.node->db_now,
                                               ctx.node->config_generation));
  }
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    // Telemetry: asynchronous commit (no WAL flush wait), see the file comment.
    w.exec("SET LOCAL synchronous_commit = off");
    const std::string state = hb->state.dump();
    auto v = w.exec_params(
        "UPDATE nodes SET last_heartbeat_at = now(), last_state = $2::jsonb, agent_version = $3, "
        "capabilities = CASE WHEN $4 THEN $5::jsonb ELSE capabilities END "
        "WHERE id = $1::uuid AND status = 'active' "
        "RETURNING desired_state_version, " RAP_TS("now()"),
        node_id, state, hb->version, hb->has_caps, hb->caps.dump());
    if (v.empty()) return http_fail(403, "node_revoked", "this node has been revoked");
    w.exec_params("INSERT INTO node_heartbeats (node_id, state) VALUES ($1::uuid, $2::jsonb)",
                  node_id, state);
    // Keep the newest kHeartbeatHistory rows of this node.
    w.exec_params(
        "DELETE FROM node_heartbeats WHERE node_id = $1::uuid AND id < (SELECT min(k.id) FROM "
        "(SELECT id FROM node_heartbeats WHERE node_id = $1::uuid ORDER BY id DESC LIMIT $2) k)",
        node_id, kHeartbeatHistory);
    return heartbeat_answer(v[0][0].as<long long>(), v[0][1].as<std::string>(),
                            ctx.node->config_generation);
  });
  if (!r) return to_response(r.error());
  ctx.hot->count_heartbeat(false);
  if (interval.count() > 0) ctx.hot->record_write(node_id, std::move(hb->durable), now);
  return json_response(200, *r);
}

// GET /api/v1/node/config[?have=type:version,...]: the node's signed configuration
// (config_compiler.h), compiled and published on demand.
HttpResponse get_node_config(Ctx& ctx) {
  std::map<std::string, std::uint64_t> have;
  for (const auto& [k, v] : ctx.query) {
    if (k != "have") return error_response(400, "invalid_request", "unknown query parameter");
    std::size_t pos = 0;
    while (pos < v.size()) {
      auto end = v.find(',', pos);
      if (end == std::string::npos) end = v.size();
      const std::string item = v.substr(pos, end - pos);
      pos = end + 1;
      const auto colon = item.find(':');
      std::int64_t n = 0;
      if (have.size() >= 16 || colon == std::string::npos || colon == 0 || colon > 63 ||
          !parse_int64(item.substr(colon + 1), n) || n < 0)
        return error_response(400, "invalid_request", "have must be at most 16 type:version pairs");
      have[item.substr(0, colon)] = static_cast<std::uint64_t>(n);
    }
  }
  if (ctx.opts.master_key.size() != kMasterKeyBytes)
    return error_response(503, "master_key_unavailable", "the master key is not configured");
  FnRandom rng(ctx.random_bytes);
  const NodeCaller node = *ctx.node;
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto c = compile_node_config(w, ctx.opts.master_key, node.cluster_id, node.node_id, have, rng);
    if (!c) {
      if (c.error().code == "node_not_found")
        return http_fail(403, "node_revoked", "this node has been revoked");
      if (c.error().code == "unseal_failed" || c.error().code == "no_master_key")
        return http_fail(503, "master_key_unavailable", "the config-signing key is unavailable");
      return tl::unexpected(c.error());
    }
    json artifacts = json::array();
    for (auto& a : c->artifacts) artifacts.push_back(std::move(a));
    return json{{"config_generation", c->generation},
                {"authority_epoch", c->authority_epoch},
                {"trust_bundle", c->trust_bundle},
                {"artifacts", std::move(artifacts)},
                {"increments", c->increments}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

// GET /api/v1/node/storage/bundle: for a node holding the config-storage role, the current full
// artifacts of every active node of its cluster (it caches and serves them; it cannot change
// them: nodes verify every artifact whatever its source).
HttpResponse get_storage_bundle(Ctx& ctx) {
  if (!ctx.query.empty()) return error_response(400, "invalid_request", "no query parameters");
  if (ctx.opts.master_key.size() != kMasterKeyBytes)
    return error_response(503, "master_key_unavailable", "the master key is not configured");
  FnRandom rng(ctx.random_bytes);
  const NodeCaller node = *ctx.node;
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    if (w.exec_params("SELECT 1 FROM node_role_assignments WHERE node_id = $1::uuid AND role = "
                      "'config-storage'",
                      node.node_id)
            .empty())
      return http_fail(403, "not_a_storage_node", "this node has no config-storage role");
    auto b = compile_storage_bundle(w, ctx.opts.master_key, node.cluster_id, rng);
    if (!b) {
      if (b.error().code == "unseal_failed" || b.error().code == "no_master_key")
        return http_fail(503, "master_key_unavailable", "the config-signing key is unavailable");
      return tl::unexpected(b.error());
    }
    json nodes = json::object();
    for (auto& [id, wires] : b->nodes) nodes[id] = std::move(wires);
    return json{{"config_generation", b->generation}, {"nodes", std::move(nodes)}};
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

// POST /api/v1/node/config/rejections {"code","message","artifact_id"}: a node reports an
// artifact it refused; audited as node.config_rejected.
HttpResponse post_node_config_rejection(Ctx& ctx) {
  auto body = parse_object(ctx.req.body);
  if (!body) return body.error();
  if (auto bad = reject_unknown_fields(*body, {"code", "message", "artifact_id"})) return *bad;
  auto code = req_string(*body, "code");
  if (!code) return code.error();
  auto message = opt_string(*body, "message");
  if (!message) return message.error();
  auto artifact = opt_string(*body, "artifact_id");
  if (!artifact) return artifact.error();
  if (code->empty() || code->size() > 64 || !printable(*code) ||
      (*message && ((*message)->size() > 300 || !printable(**message))) ||
      (*artifact && ((*artifact)->size() > 64 || !printable(**artifact))))
    return error_response(400, "invalid_request",
                          "code 1..64, message at most 300 and artifact_id at most 64 printable "
                          "bytes");
  const NodeCaller node = *ctx.node;
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    audit(w, AuditEvent{.actor_node_id = node.node_id,
                        .cluster_id = node.cluster_id,
                        .action = "node.config_rejected",
                        .target = "node:" + node.node_id,
                        .outcome = "denied",
                        .details = json{{"code", *code},
                                        {"message", message->value_or("")},
                                        {"artifact_id", artifact->value_or("")}}});
    return json::object();
  });
  if (!r) return to_response(r.error());
  spdlog::warn("node {} rejected config artifact {} code={}", node.node_id,
               echo(artifact->value_or("-")), echo(*code));
  HttpResponse res;
  res.status = 204;
  return res;
}

HttpResponse get_desired_state(Ctx& ctx) {
  std::int64_t after = -1;
  std::int64_t wait = 0;
  for (const auto& [k, v] : ctx.query) {
    std::int64_t n = 0;
    if (k == "after") {
      if (!parse_int64(v, n) || n < 0)
        return error_response(400, "invalid_request", "after must be a non-negative integer");
      after = n;
    } else if (k == "wait") {
      if (!parse_int64(v, n) || n < 0 || n > kMaxWaitSeconds)
        return error_response(400, "invalid_request", "wait must be 0..30 seconds");
      wait = n;
    } else {
      return error_response(400, "invalid_request", "unknown query parameter");
    }
  }
  // A long-poll re-run while nothing changed: answered from the authentication row alone (the
  // server keeps the full response of the first run).
  if (ctx.req.long_poll_rerun && wait > 0 && ctx.node->desired_state_version <= after) {
    HttpResponse res = json_response(200, json{{"version", ctx.node->desired_state_version}});
    res.long_poll = std::chrono::seconds(wait);
    return res;
  }
  const std::string node_id = ctx.node->node_id;
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto v = t.exec_params("SELECT desired_state_version FROM nodes WHERE id = $1::uuid", node_id);
    if (v.empty()) return http_fail(403, "node_revoked", "this node has been revoked");
    json roles = json::array();
    for (const auto& row : t.exec_params(
             "SELECT a.role, o.slug FROM node_role_assignments a LEFT JOIN organizations o "
             "ON o.id = a.org_id WHERE a.node_id = $1::uuid ORDER BY a.role, o.slug NULLS FIRST",
             node_id))
      roles.push_back({{"role", row[0].as<std::string>()},
                       {"org", row[1].is_null() ? json(nullptr) : json(row[1].as<std::string>())}});
    json workloads = json::array();
    for (const auto& row : t.exec_params(
             "SELECT name, kind, spec::text, version FROM node_workloads WHERE node_id = $1::uuid "
             "ORDER BY name",
             node_id))
      workloads.push_back({{"name", row[0].as<std::string>()},
                           {"kind", row[1].as<std::string>()},
                           {"spec", json::parse(row[2].as<std::string>(), nullptr, false)},
                           {"version", row[3].as<long long>()}});
    // Access grants revoked at this entry (an org admin terminated the session), until expiry.
    json revoked = json::array();
    for (const auto& row : t.exec_params(
             "SELECT grant_id, extract(epoch FROM expires_at)::bigint FROM revoked_grants "
             "WHERE entry_node_id = $1::uuid AND expires_at > now() "
             "ORDER BY revoked_at DESC LIMIT $2",
             node_id, kMaxRevokedGrants))
      revoked.push_back(
          {{"grant", row[0].as<std::string>()}, {"expires_at", row[1].as<long long>()}});
    return json{{"version", v[0][0].as<long long>()},
                {"roles", roles},
                {"workloads", workloads},
                {"revoked_grants", revoked}};
  });
  if (!r) return to_response(r.error());
  HttpResponse res = json_response(200, *r);
  if (wait > 0 && (*r)["version"].get<long long>() <= after)
    res.long_poll = std::chrono::seconds(wait);
  return res;
}

HttpResponse post_renew(Ctx& ctx) {
  if (ctx.req.body.find_first_not_of(" \t\r\n") != std::string::npos) {
    auto body = parse_object(ctx.req.body);
    if (!body) return body.error();
    if (auto bad = reject_unknown_fields(*body, {})) return *bad;
  }
  if (ctx.opts.master_key.size() != kMasterKeyBytes)
    return error_response(503, "master_key_unavailable", "the master key is not configured");
  const NodeCaller node = *ctx.node;
  FnRandom rng(ctx.random_bytes);
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto n = w.exec_params(
        "SELECT n.public_key, ca.cert_pem FROM nodes n JOIN cluster_cas ca ON "
        "ca.cluster_id = n.cluster_id WHERE n.id = $1::uuid AND n.status = 'active' FOR UPDATE OF "
        "n",
        node.node_id);
    if (n.empty()) return http_fail(403, "node_revoked", "this node has been revoked");
    auto cert =
        issue_and_record_node_certificate(w, ctx.opts.master_key, node.cluster_id, node.node_id,
                                          n[0][0].as<std::string>(), ctx.opts.node_cert_ttl, rng);
    if (!cert) {
      if (cert.error().code == "unseal_failed" || cert.error().code == "no_master_key")
        return http_fail(503, "master_key_unavailable", "the cluster CA key is unavailable");
      return tl::unexpected(cert.error());
    }
    audit(w, AuditEvent{.actor_node_id = node.node_id,
                        .cluster_id = node.cluster_id,
                        .action = "node.certificate_renewed",
                        .target = "node:" + node.node_id,
                        .details = json{{"serial", std::to_string(cert->serial)},
                                        {"previous_serial", std::to_string(node.serial)}}});
    auto na = w.exec_params(
        "SELECT " RAP_TS("to_timestamp($1)"),
        static_cast<long long>(std::chrono::system_clock::to_time_t(cert->not_after)));
    return json{{"node_id", node.node_id},
                {"certificate_pem", cert->cert_pem},
                {"ca_pem", n[0][1].as<std::string>()},
                {"serial", std::to_string(cert->serial)},
                {"not_after", na[0][0].as<std::string>()}};
  });
  if (!r) return to_response(r.error());
  return json_response(201, *r);
}

}  // namespace

namespace {

std::string format_utc(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Step<NodeCaller> untrusted_certificate() {
  return tl::unexpected(error_response(401, "invalid_client_certificate",
                                       "client certificate is not a valid node certificate"));
}

// The identity in the client certificate: from the verified-certificate cache, or parsed.
// `verified_ca` is set to the CA PEM a cached verification used ("" when not cached).
Step<crypto::NodeIdentity> certificate_identity(NodeHotState& hot, const HttpRequest& req,
                                                std::chrono::steady_clock::time_point now,
                                                std::string& verified_ca) {
  if (req.client_cert_pem.empty())
    return tl::unexpected(error_response(401, "client_certificate_required",
                                         "a node client certificate is required"));
  crypto::NodeIdentity id;
  if (auto c = hot.find_cert(req.client_cert_pem, now)) {
    id = std::move(c->id);
    verified_ca = std::move(c->ca_pem);
  } else {
    auto parsed = crypto::identity_from_pem(req.client_cert_pem);
    if (!parsed) return tl::unexpected(untrusted_certificate().error());
    id = std::move(*parsed);
  }
  if (!valid_uuid(id.cluster_id) || !valid_uuid(id.node_id) || id.serial == 0 ||
      id.serial > static_cast<std::uint64_t>(INT64_MAX))
    return tl::unexpected(untrusted_certificate().error());
  return id;
}

// The checks of authenticate_node against a (cached or fresh) row; the chain was verified.
Step<NodeCaller> check_node_row(const NodeAuthRow& row, const crypto::NodeIdentity& id,
                                std::string db_now) {
  const auto unix_now_s = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  if (row.cert_not_after <= unix_now_s) return untrusted_certificate();
  if (row.node_id != id.node_id || row.cluster_id != id.cluster_id ||
      row.public_key != to_hex(id.public_key))
    return untrusted_certificate();
  if (row.node_status != "active")
    return tl::unexpected(error_response(403, "node_revoked", "this node has been revoked"));
  if (row.cert_revoked)
    return tl::unexpected(
        error_response(403, "certificate_revoked", "this certificate has been revoked"));
  return NodeCaller{row.node_id,
                    row.cluster_id,
                    static_cast<std::int64_t>(id.serial),
                    row.desired_state_version,
                    std::move(db_now),
                    row.config_generation};
}

}  // namespace

Step<NodeCaller> authenticate_node(Db& db, NodeHotState& hot, const HttpRequest& req) {
  const auto now = std::chrono::steady_clock::now();
  std::string verified_ca;  // the CA PEM this exact certificate was verified against, if cached
  auto id = certificate_identity(hot, req, now, verified_ca);
  if (!id) return tl::unexpected(id.error());
  const auto serial = static_cast<std::int64_t>(id->serial);
  if (!verified_ca.empty()) {
    if (auto row = hot.find_auth(serial, now); row && row->ca_pem == verified_ca)
      return check_node_row(*row, *id, format_utc(std::chrono::system_clock::now()));
  }
  struct Fresh {
    NodeAuthRow row;
    std::string db_now;
  };
  auto r = db.with_connection<std::optional<Fresh>>(
      [&](pqxx::connection& c) -> Result<std::optional<Fresh>> {
        // One statement: no BEGIN/COMMIT round trips.
        pqxx::nontransaction t(c);
        auto rows = t.exec_params(
            "SELECT ca.cert_pem, n.id, n.cluster_id, n.status, n.public_key, "
            "cert.revoked_at IS NOT NULL, extract(epoch FROM cert.not_after)::bigint, "
            "n.desired_state_version, " RAP_TS("now()") ", au.config_generation "
            "FROM node_certificates cert JOIN nodes n ON n.id = cert.node_id "
            "JOIN cluster_cas ca ON ca.cluster_id = n.cluster_id "
            "JOIN cluster_authority au ON au.cluster_id = n.cluster_id WHERE cert.serial = $1",
            static_cast<long long>(serial));
        if (rows.empty()) return std::optional<Fresh>();
        const auto& f = rows[0];
        return std::optional<Fresh>(Fresh{
            NodeAuthRow{f[0].as<std::string>(), f[1].as<std::string>(), f[2].as<std::string>(),
                        f[3].as<std::string>(), f[4].as<std::string>(), f[5].as<bool>(),
                        f[6].as<std::int64_t>(), f[7].as<std::int64_t>(), f[9].as<std::int64_t>()},
            f[8].as<std::string>()});
      });
  if (!r) return tl::unexpected(from_error(r.error()));
  if (!*r) return untrusted_certificate();
  const NodeAuthRow& row = (*r)->row;
  // Chain first, so that a forged certificate learns nothing about the real one's state. A
  // cached verification counts only for the same CA; the validity period, which the chain
  // check also covers, is re-checked on every request from the certificate's recorded
  // not_after (check_node_row).
  if (verified_ca.empty() || verified_ca != row.ca_pem) {
    if (auto v = verify_node_certificate(row.ca_pem, req.client_cert_pem); !v)
      return untrusted_certificate();
    hot.store_cert(req.client_cert_pem, NodeHotState::VerifiedCert{*id, row.ca_pem}, now);
  }
  hot.store_auth(serial, row, now);
  return check_node_row(row, *id, std::move((*r)->db_now));
}

std::optional<HttpResponse> fast_heartbeat(NodeHotState& hot, const ApiOptions& opts,
                                           const HttpRequest& req) {
  if (req.method != "POST" || req.target != "/api/v1/node/heartbeat" ||
      opts.heartbeat_write_interval.count() <= 0)
    return std::nullopt;
  const auto now = std::chrono::steady_clock::now();
  std::string verified_ca;
  auto id = certificate_identity(hot, req, now, verified_ca);
  if (!id || verified_ca.empty()) return std::nullopt;
  auto row = hot.find_auth(static_cast<std::int64_t>(id->serial), now);
  if (!row || row->ca_pem != verified_ca) return std::nullopt;
  auto node = check_node_row(*row, *id, format_utc(std::chrono::system_clock::now()));
  if (!node) return node.error();
  auto hb = parse_heartbeat(req.body);
  if (!hb) return hb.error();
  if (!hot.write_is_fresh(node->node_id, hb->durable, opts.heartbeat_write_interval, now))
    return std::nullopt;  // durable state to write: the database path
  hot.note_seen(node->cluster_id, node->node_id, unix_ms_now());
  if (hb->access) hot.note_access(node->node_id, std::move(*hb->access));
  hot.count_heartbeat(true);
  return json_response(
      200, heartbeat_answer(node->desired_state_version, node->db_now, node->config_generation));
}

void node_changed(Ctx& ctx, const std::string& cluster_id, const std::string& node_id) {
  ctx.hot->invalidate_node(node_id, std::chrono::steady_clock::now());
  if (ctx.live == nullptr) return;
  const json note{{"kind", "node.changed"}, {"id", node_id}};
  if (auto p = ctx.live->publish(cluster_id, note.dump()); !p)
    spdlog::warn("node.changed notification not published code={}", p.error().code);
}

void register_node_routes(Router& r) {
  r.add("POST", "/api/v1/enroll", Auth::kNone, post_enroll);
  r.add("GET", "/api/v1/enroll/{request_id}", Auth::kNone, get_enroll);
  r.add("POST", "/api/v1/node/heartbeat", Auth::kNode, post_heartbeat);
  r.add("GET", "/api/v1/node/desired-state", Auth::kNode, get_desired_state);
  r.add("POST", "/api/v1/node/renew", Auth::kNode, post_renew);
  r.add("GET", "/api/v1/node/config", Auth::kNode, get_node_config);
  r.add("POST", "/api/v1/node/config/rejections", Auth::kNode, post_node_config_rejection);
  r.add("GET", "/api/v1/node/storage/bundle", Auth::kNode, get_storage_bundle);
}

}  // namespace rap::control::detail
