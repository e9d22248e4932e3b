#include "config_compiler.h"

#include <optional>
#include <set>
#include <span>

#include "cluster_ca.h"
#include "rap/config/artifact.h"
#include "rap/config/canonical.h"
#include "rap/config/payload.h"
#include "rap/config/signer.h"
#include "rap/config/trust.h"
#include "rap/crypto/keys.h"

namespace rap::control {

namespace {

using config::ArtifactType;
using config::Scope;
using config::WallTime;
using json = nlohmann::json;

constexpr auto kArtifactLifetime = std::chrono::hours(24 * 30);
constexpr auto kKeyLifetime = std::chrono::hours(24 * 365);
// Roles whose nodes carry fabric traffic between nodes: they learn every active node that holds
// a role; other role holders learn only these (their possible neighbours).
const std::set<std::string> kMeshRoles = {"entry-node", "relay-node"};
// What a node does when an artifact lapses (its expiry passes without a newer version; the
// agent reads the signed "lapse_policy" member, docs/OPERATIONS.md): service assignments are
// authority to run workloads and to connect to resources, so a lapsed one stops them; a lapsed
// peer directory keeps the mesh running on the peers it knows.
constexpr char kServiceLapsePolicy[] = "stop";
constexpr char kPeerLapsePolicy[] = "keep";

std::int64_t unix_of(WallTime t) {
  return config::to_unix_seconds(t);
}

std::string bytes_hex(std::string_view s) {
  return to_hex(std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
}

Result<std::string> hex_bytes(std::string_view hex) {
  if (hex.size() % 2 != 0) return fail("unseal_failed", "sealed key is malformed");
  std::string out(hex.size() / 2, '\0');
  if (!parse_hex(hex, std::span(reinterpret_cast<std::uint8_t*>(out.data()), out.size())))
    return fail("unseal_failed", "sealed key is malformed");
  return out;
}

Result<crypto::Ed25519Key> unseal_key(std::string_view master_key, const std::string& sealed_hex) {
  auto sealed = hex_bytes(sealed_hex);
  if (!sealed) return tl::unexpected(sealed.error());
  auto pem = open_secret(master_key, *sealed);
  if (!pem) return tl::unexpected(pem.error());
  return crypto::Ed25519Key::from_pem(*pem);
}

struct Stored {
  std::uint64_t version = 0;
  std::string hash, signer, wire;
  std::uint64_t epoch = 0;
  std::int64_t created = 0, expires = 0;
  std::string payload;  // canonical text
};

struct NodeRow {
  std::string id, public_key;
  json addresses = json::array();
  std::string fabric_endpoint;  // last_state.endpoints.fabric ("" when not advertised)
  std::vector<std::pair<std::string, std::string>> roles;  // (role, org slug or "")
  bool pool_exit = false;  // backs an egress pool (an exit without holding exit-node)
  std::string owner_org;   // the owning organization's id when customer-managed, else ""
  json workloads = json::array();
  json egress = json::array();  // resources this node may connect to as an exit (§14.1)
};

// One compilation of one cluster, inside the caller's transaction.
class Compiler {
 public:
  static Result<Compiler> open(pqxx::work& w, std::string_view master_key,
                               const std::string& cluster_id, Random& rng,
                               const std::optional<std::string>& only_node) {
    if (master_key.size() != kMasterKeyBytes)
      return fail("no_master_key", "master key unavailable");
    w.exec_params("SELECT pg_advisory_xact_lock(hashtextextended('rap_config:' || $1, 0))",
                  cluster_id);
    auto auth = w.exec_params(
        "SELECT authority_epoch, config_generation FROM cluster_authority WHERE cluster_id = "
        "$1::uuid",
        cluster_id);
    if (auth.empty()) return fail("cluster_not_found", "cluster not found");
    Compiler c(w, cluster_id);
    c.epoch_ = auth[0][0].as<std::uint64_t>();
    c.generation_ = auth[0][1].as<std::int64_t>();
    c.now_ = config::from_unix_seconds(unix_of(std::chrono::system_clock::now()));
    if (auto s = c.load_signer(master_key, rng); !s) return tl::unexpected(s.error());
    c.load_nodes(only_node);
    c.load_latest(only_node);
    return c;
  }

  std::int64_t generation() const { return generation_; }
  const json& trust_payload() const { return trust_payload_; }
  const std::map<std::string, NodeRow>& nodes() const { return nodes_; }
  int published() const { return published_; }

  // Publishes (or reuses) the component; returns its stored form.
  Result<Stored> publish(ArtifactType type, const Scope& scope, json payload) {
    auto normalized = config::normalize_payload(std::move(payload));
    if (!normalized) return tl::unexpected(normalized.error());
    auto hash = config::content_hash(*normalized);
    if (!hash) return tl::unexpected(hash.error());
    const std::string key = config::state_key(type, scope);
    const auto now_s = unix_of(now_);
    auto it = latest_.find(key);
    if (it != latest_.end()) {
      const Stored& s = it->second;
      const bool fresh = now_s < s.created + (s.expires - s.created) / 2;
      if (s.hash == *hash && s.signer == signer_for(type).key_id() && s.epoch == epoch_ && fresh)
        return s;
    }
    config::ArtifactDraft d;
    d.type = type;
    d.scope = scope;
    d.version = it == latest_.end() ? 1 : it->second.version + 1;
    d.epoch = epoch_;
    d.issued_at = now_;
    d.expires_at = now_ + kArtifactLifetime;
    d.payload = *normalized;
    auto canonical = config::canonical_encode(*normalized);
    if (!canonical) return tl::unexpected(canonical.error());
    const config::Signer& signer = signer_for(type);
    auto art = signer.sign(std::move(d));
    if (!art) return tl::unexpected(art.error());
    auto wire = config::encode_artifact(*art);
    if (!wire) return tl::unexpected(wire.error());
    Stored s{art->header.version,
             *hash,
             signer.key_id(),
             *wire,
             epoch_,
             now_s,
             unix_of(art->header.expires_at),
             std::move(*canonical)};
    w_.exec_params(
        "INSERT INTO config_artifacts (cluster_id, state_key, version, artifact_type, "
        "artifact_id, signer_key_id, epoch, content_hash, expires_at, payload, wire) VALUES "
        "($1::uuid, $2, $3, $4, $5, $6, $7, $8, to_timestamp($9), $10, $11)",
        cluster_id_, key, static_cast<long long>(s.version), std::string(config::to_string(type)),
        art->id, s.signer, static_cast<long long>(epoch_), s.hash, s.expires, s.payload, s.wire);
    ++published_;
    latest_[key] = s;
    return s;
  }

  // The increment from the stored version `base` of (type, scope) to `target`; nullopt if the
  // base is no longer stored.
  Result<std::optional<std::string>> increment(ArtifactType type, const Scope& scope,
                                               std::uint64_t base, const Stored& target) {
    auto rows = w_.exec_params(
        "SELECT payload FROM config_artifacts WHERE cluster_id = $1::uuid AND state_key = $2 "
        "AND version = $3",
        cluster_id_, config::state_key(type, scope), static_cast<long long>(base));
    if (rows.empty()) return std::optional<std::string>();
    auto from = json::parse(rows[0][0].as<std::string>(), nullptr, false);
    auto to = json::parse(target.payload, nullptr, false);
    if (from.is_discarded() || to.is_discarded()) return std::optional<std::string>();
    auto art = signer_for(type).sign_increment(type, scope, base, from, to, epoch_, now_,
                                               now_ + kArtifactLifetime);
    if (!art) return tl::unexpected(art.error());
    auto wire = config::encode_artifact(*art);
    if (!wire) return tl::unexpected(wire.error());
    return std::optional<std::string>(std::move(*wire));
  }

  Result<void> publish_cluster_components() {
    auto t = publish(ArtifactType::trust_bundle, Scope::cluster(), trust_payload_);
    if (!t) return tl::unexpected(t.error());
    trust_ = *t;
    json rev{{"keys", json::array()}, {"nodes", json::array()}, {"serials", json::array()}};
    for (const auto& k : revoked_keys_) rev["keys"].push_back({{"id", k}});
    for (const auto& r :
         w_.exec_params("SELECT id FROM nodes WHERE cluster_id = $1::uuid AND status = 'revoked'",
                        cluster_id_))
      rev["nodes"].push_back({{"id", r[0].as<std::string>()}});
    for (const auto& r : w_.exec_params(
             "SELECT c.serial::text FROM node_certificates c JOIN nodes n ON n.id = c.node_id "
             "WHERE n.cluster_id = $1::uuid AND c.revoked_at IS NOT NULL AND c.not_after > now()",
             cluster_id_))
      rev["serials"].push_back({{"id", r[0].as<std::string>()}});
    auto r = publish(ArtifactType::revocation_list, Scope::cluster(), rev);
    if (!r) return tl::unexpected(r.error());
    revocation_ = *r;
    // Storage directory: active config-storage nodes that advertise an endpoint.
    json storages = json::array();
    for (const auto& row : w_.exec_params(
             "SELECT DISTINCT n.id, n.last_state->'endpoints'->>'config_storage' FROM nodes n "
             "JOIN node_role_assignments a ON a.node_id = n.id AND a.role = 'config-storage' "
             "WHERE n.cluster_id = $1::uuid AND n.status = 'active' "
             "AND n.last_state->'endpoints'->>'config_storage' IS NOT NULL",
             cluster_id_))
      storages.push_back(
          {{"id", row[0].as<std::string>()}, {"endpoint", row[1].as<std::string>()}});
    auto sd =
        publish(ArtifactType::storage_directory, Scope::cluster(), json{{"storages", storages}});
    if (!sd) return tl::unexpected(sd.error());
    storage_ = *sd;
    return {};
  }

  Result<NodeConfig> node(const std::string& node_id,
                          const std::map<std::string, std::uint64_t>& have) {
    auto n = nodes_.find(node_id);
    if (n == nodes_.end()) return fail("node_not_found", "node is not active in this cluster");
    const NodeRow& me = n->second;
    const Scope scope = Scope::node(node_id);

    json roles = json::array();
    std::set<std::string> my_roles;
    for (const auto& [role, org] : me.roles) {
      my_roles.insert(role);
      std::string key = role;
      if (!org.empty()) key.append("@").append(org);
      json e{{"id", std::move(key)}, {"role", role}};
      if (!org.empty()) e["org"] = org;
      roles.push_back(std::move(e));
    }
    json sab_payload{{"roles", roles},
                     {"workloads", me.workloads},
                     {"egress", me.egress},
                     {"lapse_policy", kServiceLapsePolicy}};
    // A customer-managed node refuses routes of other organizations (PROTOCOL.md §14.3).
    if (!me.owner_org.empty()) sab_payload["owner_org"] = me.owner_org;
    auto sab = publish(ArtifactType::service_assignment_bundle, scope, sab_payload);
    if (!sab) return tl::unexpected(sab.error());

    bool mesh = false;
    for (const auto& r : my_roles) mesh = mesh || kMeshRoles.contains(r);
    json peers = json::array();
    // Nodes backing an egress pool are exits (docs/PROTOCOL.md §14.1) even without a role.
    if (!my_roles.empty() || me.pool_exit) {
      for (const auto& [id, p] : nodes_) {
        if (id == node_id || (p.roles.empty() && !p.pool_exit)) continue;
        json peer_roles = json::array();
        bool peer_mesh = false;
        std::set<std::string> seen;
        for (const auto& [role, org] : p.roles) {
          (void)org;  // never another tenant's slug
          if (seen.insert(role).second) peer_roles.push_back(role);
          peer_mesh = peer_mesh || kMeshRoles.contains(role);
        }
        if (p.pool_exit && seen.insert("exit-node").second) peer_roles.push_back("exit-node");
        if (!mesh && !peer_mesh) continue;
        json peer{{"id", id},
                  {"public_key", p.public_key},
                  {"addresses", p.addresses},
                  {"roles", peer_roles}};
        if (!p.fabric_endpoint.empty()) peer["fabric_endpoint"] = p.fabric_endpoint;
        peers.push_back(std::move(peer));
      }
    }
    auto pd = publish(ArtifactType::peer_directory, scope,
                      json{{"peers", peers}, {"lapse_policy", kPeerLapsePolicy}});
    if (!pd) return tl::unexpected(pd.error());

    struct Part {
      ArtifactType type;
      Scope scope;
      const Stored* s;
    };
    const std::vector<Part> parts = {
        {ArtifactType::trust_bundle, Scope::cluster(), &trust_},
        {ArtifactType::revocation_list, Scope::cluster(), &revocation_},
        {ArtifactType::storage_directory, Scope::cluster(), &storage_},
        {ArtifactType::service_assignment_bundle, scope, &*sab},
        {ArtifactType::peer_directory, scope, &*pd}};
    std::vector<config::ComponentRef> refs;
    refs.reserve(parts.size());
    for (const auto& p : parts) refs.push_back({p.type, p.scope, p.s->version, p.s->hash});
    auto snap = publish(ArtifactType::cluster_snapshot, scope, config::make_snapshot_payload(refs));
    if (!snap) return tl::unexpected(snap.error());

    NodeConfig out;
    out.generation = generation_;
    out.authority_epoch = epoch_;
    out.trust_bundle = trust_payload_;
    const auto had = [&](ArtifactType t) -> std::uint64_t {
      auto h = have.find(std::string(config::to_string(t)));
      return h == have.end() ? 0 : h->second;
    };
    for (const auto& p : parts) {
      const std::uint64_t v = had(p.type);
      out.full_bytes += p.s->wire.size();
      if (v == p.s->version) continue;  // the node has it
      // Trust and revocation changes go whole (small, and a trust bundle must apply before the
      // artifacts its new key signed, which increments, applied last, would not).
      const bool cluster_wide =
          p.type == ArtifactType::trust_bundle || p.type == ArtifactType::revocation_list;
      if (!cluster_wide && v != 0 && v + 1 == p.s->version) {
        auto inc = increment(p.type, p.scope, v, *p.s);
        if (!inc) return tl::unexpected(inc.error());
        if (*inc) {
          out.artifacts.push_back(std::move(**inc));
          ++out.increments;
          continue;
        }
      }
      out.artifacts.push_back(p.s->wire);
    }
    out.full_bytes += snap->wire.size();
    if (had(ArtifactType::cluster_snapshot) != snap->version) out.artifacts.push_back(snap->wire);
    return out;
  }

 private:
  Compiler(pqxx::work& w, std::string cluster_id) : w_(w), cluster_id_(std::move(cluster_id)) {}

  Result<void> load_signer(std::string_view master_key, Random& rng) {
    auto keys = load_signing_keys(w_, master_key, cluster_id_, rng);
    if (!keys) return tl::unexpected(keys.error());
    signer_ = std::move(keys->active);
    bundle_signer_ = std::move(keys->bundle);
    trust_payload_ = std::move(keys->trust_payload);
    revoked_keys_ = std::move(keys->revoked_key_ids);
    return {};
  }

  // During a key rotation's overlap the trust bundle (which introduces the new key) is signed by
  // the retired key the nodes already trust; everything else by the active key.
  const config::Signer& signer_for(ArtifactType type) const {
    if (type == ArtifactType::trust_bundle && bundle_signer_) return *bundle_signer_;
    return *signer_;
  }

  void load_nodes(const std::optional<std::string>& only_node) {
    for (const auto& r : w_.exec_params(
             "SELECT n.id, n.public_key, COALESCE(n.facts->'addresses', '[]'::jsonb)::text, "
             "CASE WHEN jsonb_typeof(n.last_state->'endpoints'->'fabric') = 'string' "
             "THEN n.last_state->'endpoints'->>'fabric' ELSE '' END, "
             "EXISTS (SELECT 1 FROM egress_pool_nodes pn WHERE pn.node_id = n.id), "
             "CASE WHEN n.ownership = 'org' THEN n.org_id::text ELSE '' END "
             "FROM nodes n WHERE n.cluster_id = $1::uuid AND n.status = 'active'",
             cluster_id_)) {
      NodeRow n;
      n.id = r[0].as<std::string>();
      n.public_key = r[1].as<std::string>();
      auto a = json::parse(r[2].as<std::string>(), nullptr, false);
      if (a.is_array()) n.addresses = std::move(a);
      n.fabric_endpoint = r[3].as<std::string>();
      n.pool_exit = r[4].as<bool>();
      n.owner_org = r[5].as<std::string>();
      nodes_[n.id] = std::move(n);
    }
    // Egress (exits, docs/PROTOCOL.md §14.1): the resources of the egress pools a node backs,
    // and for resources without a pool those of the organizations it holds exit-node for (a
    // role without organization: every organization). A customer-managed node only ever serves
    // its own organization.
    for (const auto& r : w_.exec_params(
             "SELECT DISTINCT x.node_id, x.id, x.org_id, x.address, x.protocol FROM ("
             " SELECT pn.node_id, r.id, r.org_id, r.address, r.protocol FROM resources r"
             " JOIN egress_pools p ON p.org_id = r.org_id AND p.name = r.egress_pool"
             " JOIN egress_pool_nodes pn ON pn.pool_id = p.id"
             " UNION ALL"
             " SELECT a.node_id, r.id, r.org_id, r.address, r.protocol FROM resources r"
             " JOIN node_role_assignments a ON a.role = 'exit-node'"
             "  AND (a.org_id IS NULL OR a.org_id = r.org_id)"
             " WHERE r.egress_pool IS NULL) x "
             "JOIN nodes n ON n.id = x.node_id WHERE n.cluster_id = $1::uuid AND n.status = "
             "'active' AND (n.ownership = 'platform' OR n.org_id = x.org_id) "
             "AND ($2 = '' OR n.id::text = $2)",
             cluster_id_, only_node.value_or(""))) {
      auto it = nodes_.find(r[0].as<std::string>());
      if (it == nodes_.end()) continue;
      it->second.egress.push_back({{"id", r[1].as<std::string>()},
                                   {"org", r[2].as<std::string>()},
                                   {"address", r[3].as<std::string>()},
                                   {"protocol", r[4].as<std::string>()}});
    }
    for (const auto& r : w_.exec_params(
             "SELECT a.node_id, a.role, COALESCE(o.slug, '') FROM node_role_assignments a "
             "JOIN nodes n ON n.id = a.node_id LEFT JOIN organizations o ON o.id = a.org_id "
             "WHERE n.cluster_id = $1::uuid AND n.status = 'active'",
             cluster_id_)) {
      auto it = nodes_.find(r[0].as<std::string>());
      if (it != nodes_.end())
        it->second.roles.emplace_back(r[1].as<std::string>(), r[2].as<std::string>());
    }
    // Workloads: names, kinds, versions and a hash of the spec (the spec itself may carry
    // environment values; the node gets it through its desired state, not through artifacts).
    for (const auto& r : w_.exec_params(
             "SELECT w.node_id, w.name, w.kind, w.version, encode(sha256(convert_to(w.spec::text, "
             "'UTF8')), 'hex') FROM node_workloads w JOIN nodes n ON n.id = w.node_id "
             "WHERE n.cluster_id = $1::uuid AND n.status = 'active' AND ($2 = '' OR n.id::text = "
             "$2)",
             cluster_id_, only_node.value_or(""))) {
      auto it = nodes_.find(r[0].as<std::string>());
      if (it == nodes_.end()) continue;
      it->second.workloads.push_back({{"id", r[1].as<std::string>()},
                                      {"kind", r[2].as<std::string>()},
                                      {"version", r[3].as<std::int64_t>()},
                                      {"spec_sha256", r[4].as<std::string>()}});
    }
  }

  void load_latest(const std::optional<std::string>& only_node) {
    std::string filter;
    if (only_node) {
      const Scope s = Scope::node(*only_node);
      filter = "AND state_key IN ('" + config::state_key(ArtifactType::trust_bundle, Scope()) +
               "', '" + config::state_key(ArtifactType::revocation_list, Scope()) + "', '" +
               config::state_key(ArtifactType::storage_directory, Scope()) + "', '" +
               config::state_key(ArtifactType::service_assignment_bundle, s) + "', '" +
               config::state_key(ArtifactType::peer_directory, s) + "', '" +
               config::state_key(ArtifactType::cluster_snapshot, s) + "') ";
      // Node ids are UUIDs validated by the caller; state keys contain no quotes.
      RAP_ASSERT(only_node->find('\'') == std::string::npos);
    }
    for (const auto& r : w_.exec_params(
             "SELECT DISTINCT ON (state_key) state_key, version, content_hash, signer_key_id, "
             "wire, epoch, extract(epoch FROM created_at)::bigint, "
             "extract(epoch FROM expires_at)::bigint, payload FROM config_artifacts "
             "WHERE cluster_id = $1::uuid " +
                 filter + "ORDER BY state_key, version DESC",
             cluster_id_)) {
      latest_[r[0].as<std::string>()] =
          Stored{r[1].as<std::uint64_t>(), r[2].as<std::string>(),   r[3].as<std::string>(),
                 r[4].as<std::string>(),   r[5].as<std::uint64_t>(), r[6].as<std::int64_t>(),
                 r[7].as<std::int64_t>(),  r[8].as<std::string>()};
    }
  }

  pqxx::work& w_;
  std::string cluster_id_;
  std::uint64_t epoch_ = 1;
  std::int64_t generation_ = 0;
  WallTime now_{};
  std::optional<config::Signer> signer_;
  std::optional<config::Signer> bundle_signer_;
  json trust_payload_;
  std::vector<std::string> revoked_keys_;
  std::map<std::string, NodeRow> nodes_;
  std::map<std::string, Stored> latest_;
  Stored trust_, revocation_, storage_;
  int published_ = 0;
};

}  // namespace

Result<ClusterSigningKeys> load_signing_keys(pqxx::work& w, std::string_view master_key,
                                             const std::string& cluster_id, Random& rng) {
  if (master_key.size() != kMasterKeyBytes) return fail("no_master_key", "master key unavailable");
  const auto now = config::from_unix_seconds(unix_of(std::chrono::system_clock::now()));
  ClusterSigningKeys out;
  std::optional<std::string> active_sealed;
  std::optional<std::string> retired_sealed;  // the newest retired, still valid key
  json keys = json::array();
  for (int pass = 0; pass < 2 && !active_sealed; ++pass) {
    if (pass == 1) {
      // No active key yet: create it under the cluster's config lock (the compiler holds it
      // already; advisory locks are re-entrant), after looking again.
      w.exec_params("SELECT pg_advisory_xact_lock(hashtextextended('rap_config:' || $1, 0))",
                    cluster_id);
    }
    out.revoked_key_ids.clear();
    retired_sealed.reset();
    keys = json::array();
    auto rows = w.exec_params(
        "SELECT key_id, public_key, key_sealed, master_key_id, status, "
        "extract(epoch FROM not_before)::bigint, extract(epoch FROM not_after)::bigint "
        "FROM config_signing_keys WHERE cluster_id = $1::uuid AND (status = 'revoked' OR "
        "not_after > now()) ORDER BY created_at",
        cluster_id);
    for (const auto& r : rows) {
      const auto status = r[4].as<std::string>();
      if (status == "revoked") out.revoked_key_ids.push_back(r[0].as<std::string>());
      if (status == "retired" && r[3].as<std::string>() == master_key_id(master_key))
        retired_sealed = r[2].as<std::string>();
      if (status == "active") {
        if (r[3].as<std::string>() != master_key_id(master_key))
          return fail("unseal_failed", "config-signing key was sealed with another master key");
        active_sealed = r[2].as<std::string>();
      }
      keys.push_back({{"id", r[0].as<std::string>()},
                      {"public_key", r[1].as<std::string>()},
                      {"status", status},
                      {"not_before", r[5].as<std::int64_t>()},
                      {"not_after", r[6].as<std::int64_t>()}});
    }
  }
  if (!active_sealed) {
    auto key = crypto::Ed25519Key::generate();
    if (!key) return tl::unexpected(key.error());
    const auto pub = key->public_key();
    const std::string key_id = config::key_id_for(pub);
    const std::string sealed = bytes_hex(seal_secret(master_key, key->private_pem(), rng));
    const auto nb = unix_of(now) - 300;
    const auto na = unix_of(now + kKeyLifetime);
    w.exec_params(
        "INSERT INTO config_signing_keys (cluster_id, key_id, public_key, key_sealed, "
        "master_key_id, status, not_before, not_after) VALUES ($1::uuid, $2, $3, $4, $5, "
        "'active', to_timestamp($6), to_timestamp($7))",
        cluster_id, key_id, to_hex(pub), sealed, master_key_id(master_key), nb, na);
    keys.push_back({{"id", key_id},
                    {"public_key", to_hex(pub)},
                    {"status", "active"},
                    {"not_before", nb},
                    {"not_after", na}});
    active_sealed = sealed;
  }
  auto key = unseal_key(master_key, *active_sealed);
  if (!key) return tl::unexpected(key.error());
  out.active.emplace(cluster_id, std::move(*key));
  if (retired_sealed) {
    auto old = unseal_key(master_key, *retired_sealed);
    if (!old) return tl::unexpected(old.error());
    out.bundle.emplace(cluster_id, std::move(*old));
  }
  auto normalized = config::normalize_payload(json{{"keys", keys}});
  if (!normalized) return tl::unexpected(normalized.error());
  out.trust_payload = std::move(*normalized);
  return out;
}

Result<NodeConfig> compile_node_config(pqxx::work& w, std::string_view master_key,
                                       const std::string& cluster_id, const std::string& node_id,
                                       const std::map<std::string, std::uint64_t>& have,
                                       Random& rng) {
  auto c = Compiler::open(w, master_key, cluster_id, rng, node_id);
  if (!c) return tl::unexpected(c.error());
  if (auto r = c->publish_cluster_components(); !r) return tl::unexpected(r.error());
  return c->node(node_id, have);
}

Result<ClusterCompileStats> compile_cluster_config(pqxx::work& w, std::string_view master_key,
                                                   const std::string& cluster_id, Random& rng) {
  auto c = Compiler::open(w, master_key, cluster_id, rng, std::nullopt);
  if (!c) return tl::unexpected(c.error());
  if (auto r = c->publish_cluster_components(); !r) return tl::unexpected(r.error());
  ClusterCompileStats stats;
  std::vector<std::string> ids;
  for (const auto& [id, n] : c->nodes()) ids.push_back(id);
  for (const auto& id : ids) {
    auto n = c->node(id, {});
    if (!n) return tl::unexpected(n.error());
    ++stats.nodes;
    for (const auto& a : n->artifacts) stats.bytes += a.size();
  }
  stats.published = c->published();
  return stats;
}

Result<StorageBundle> compile_storage_bundle(pqxx::work& w, std::string_view master_key,
                                             const std::string& cluster_id, Random& rng) {
  auto c = Compiler::open(w, master_key, cluster_id, rng, std::nullopt);
  if (!c) return tl::unexpected(c.error());
  if (auto r = c->publish_cluster_components(); !r) return tl::unexpected(r.error());
  StorageBundle out;
  out.generation = c->generation();
  std::vector<std::string> ids;
  for (const auto& [id, n] : c->nodes()) ids.push_back(id);
  for (const auto& id : ids) {
    auto n = c->node(id, {});
    if (!n) return tl::unexpected(n.error());
    for (const auto& a : n->artifacts) out.bytes += a.size();
    out.nodes[id] = std::move(n->artifacts);
  }
  return out;
}

Result<std::string> rotate_config_signing_key(pqxx::work& w, std::string_view master_key,
                                              const std::string& cluster_id, Random& rng,
                                              std::chrono::seconds overlap) {
  if (master_key.size() != kMasterKeyBytes) return fail("no_master_key", "master key unavailable");
  w.exec_params("SELECT pg_advisory_xact_lock(hashtextextended('rap_config:' || $1, 0))",
                cluster_id);
  w.exec_params(
      "UPDATE config_signing_keys SET status = 'retired', not_after = LEAST(not_after, now() + "
      "make_interval(secs => $2)) WHERE cluster_id = $1::uuid AND status = 'active'",
      cluster_id, static_cast<long long>(overlap.count()));
  auto key = crypto::Ed25519Key::generate();
  if (!key) return tl::unexpected(key.error());
  const auto pub = key->public_key();
  const std::string key_id = config::key_id_for(pub);
  w.exec_params(
      "INSERT INTO config_signing_keys (cluster_id, key_id, public_key, key_sealed, "
      "master_key_id, status, not_before, not_after) VALUES ($1::uuid, $2, $3, $4, $5, 'active', "
      "now() - interval '5 minutes', now() + interval '365 days')",
      cluster_id, key_id, to_hex(pub), bytes_hex(seal_secret(master_key, key->private_pem(), rng)),
      master_key_id(master_key));
  return key_id;
}

}  // namespace rap::control
