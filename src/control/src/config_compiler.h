// The config compiler: turns PostgreSQL state into the signed, scoped configuration artifacts
// (rap_config, docs/PROTOCOL.md §13) each node acts on, and publishes them in config_artifacts.
//
// What a node receives (need-to-know):
//   trust_bundle               @cluster  the cluster's config-signing public keys (rotation)
//   revocation_list            @cluster  revoked node ids, certificate serials, signing keys
//   service_assignment_bundle  @node     the node's own role assignments and workloads (names,
//                                        kinds, versions and a SHA-256 of each spec: no spec
//                                        contents, so no secrets) and "egress": the resources
//                                        it may connect to as an exit ({id, org, address,
//                                        protocol}; docs/PROTOCOL.md §14.1), else []
//   storage_directory          @cluster  config-storage nodes and their endpoints (nodes fetch
//                                        from them when the control plane is unreachable)
//   peer_directory             @node     peers (id, public key, addresses, role names, and
//                                        "fabric_endpoint" when advertised): mesh nodes
//                                        (entry-node, relay-node) learn every role holder and
//                                        egress pool node; other role holders and pool nodes
//                                        learn the mesh nodes; a node with neither gets []
//   cluster_snapshot           @node     the versions and hashes of all of the above
// Nothing names an organization the node does not serve or another tenant's data: role
// assignments carry the organization slug only for the node's own assignments.
//
// Publishing: a component is re-signed with version + 1 only when its canonical payload hash,
// the signing key or the authority epoch changed, or it is past half its lifetime; otherwise
// the stored artifact is served again. Per cluster, compilation runs under a transaction-level
// advisory lock, so concurrent instances never publish two different artifacts with one
// version. The first compilation of a cluster creates its config-signing key (sealed with the
// master key).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <vector>

#include "rap/common/random.h"
#include "rap/common/result.h"
#include "rap/config/signer.h"

namespace rap::control {

struct NodeConfig {
  std::int64_t generation = 0;         // cluster_authority.config_generation when compiled
  std::uint64_t authority_epoch = 0;   // cluster_authority.authority_epoch (the nodes' fence)
  nlohmann::json trust_bundle;         // the trust_bundle payload (anchors for a first fetch)
  std::vector<std::string> artifacts;  // wire bytes, one batch for ConfigState::apply
  std::uint64_t full_bytes = 0;        // what full artifacts would have cost (increments)
  int increments = 0;                  // how many components were sent as increments
};

// Compiles, publishes and returns the artifacts of one active node. `have` maps artifact type
// names to the versions the node has applied: a component exactly one version behind is sent
// as a snapshot_increment. Errors: "no_master_key"/"unseal_failed" (503 for the API),
// "node_not_found", crypto errors.
Result<NodeConfig> compile_node_config(pqxx::work& w, std::string_view master_key,
                                       const std::string& cluster_id, const std::string& node_id,
                                       const std::map<std::string, std::uint64_t>& have,
                                       Random& rng);

struct ClusterCompileStats {
  int nodes = 0;
  int published = 0;  // artifacts newly signed
  std::uint64_t bytes = 0;
};
// Compiles and publishes the artifacts of every active node of the cluster (after a change that
// affects many nodes, and for the benchmark).
Result<ClusterCompileStats> compile_cluster_config(pqxx::work& w, std::string_view master_key,
                                                   const std::string& cluster_id, Random& rng);

// What a config-storage node caches (GET /api/v1/node/storage/bundle): the current full
// artifacts of every active node of the cluster, compiled and published first.
struct StorageBundle {
  std::int64_t generation = 0;
  std::map<std::string, std::vector<std::string>> nodes;  // node id -> wire artifacts
  std::uint64_t bytes = 0;
};
Result<StorageBundle> compile_storage_bundle(pqxx::work& w, std::string_view master_key,
                                             const std::string& cluster_id, Random& rng);

// The cluster's config-signing keys, loaded (and unsealed) inside the caller's transaction: the
// compiler signs configuration with them, the access service (routes_access.cpp) access grants
// and route leases. The first use creates the cluster's active key (under the cluster's config
// advisory lock). Errors: "no_master_key", "unseal_failed", crypto errors.
struct ClusterSigningKeys {
  std::optional<config::Signer> active;  // signs everything (always set on success)
  std::optional<config::Signer> bundle;  // the retired key that signs trust bundles in an overlap
  nlohmann::json trust_payload;          // the trust_bundle payload (normalized)
  std::vector<std::string> revoked_key_ids;
};
Result<ClusterSigningKeys> load_signing_keys(pqxx::work& w, std::string_view master_key,
                                             const std::string& cluster_id, Random& rng);

// Rotates the cluster's config-signing key: a new active key; the previous one becomes retired
// and stays trusted for `overlap` (artifacts signed by it keep verifying until re-signed).
// Returns the new key id.
Result<std::string> rotate_config_signing_key(pqxx::work& w, std::string_view master_key,
                                              const std::string& cluster_id, Random& rng,
                                              std::chrono::seconds overlap);

}  // namespace rap::control
