// ConfigState: the configuration a node has applied, per (type, scope), with the trust that
// verifies the next artifacts. Sans-I/O: the agent fetches artifact bytes, calls apply(), and
// persists serialize() atomically (its StateStore does the file I/O) after a successful apply.
//
// apply(batch) is all-or-nothing. It decodes every artifact, orders them (trust bundles, then
// revocation lists, then full artifacts, then increments by version, then cluster snapshots),
// verifies each one against the state as it would be after the ones before it (so a batch may
// rotate the signing key and carry artifacts signed by the new key, or carry an increment chain
// v6->v7->v8), applies it to a scratch copy, and only when every artifact passed replaces the
// state. On any error the state is untouched and the error names the first refused artifact.
//
// Rules beyond verify() (verifier.h):
//   * trust_bundle: replaces the trust store (TrustStore::succeed: revocations stay sticky);
//     revocation_list: replaces the revocations (revoked signing keys stay revoked).
//   * snapshot_increment: applied to the target's payload; must reproduce result_hash.
//   * cluster_snapshot (per scope): every component the previously applied snapshot listed must
//     be listed again or appear under "removed" (component_dropped); no listed version or
//     removal may be below what was listed or applied before (rollback); each listed component
//     must be applied, after the batch, at exactly the listed version and hash
//     (missing_component, component_mismatch). A removal leaves a tombstone: that (type, scope)
//     can only come back at a higher version.
//   * the highest applied authority epoch becomes the minimum for later artifacts.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rap/common/result.h"
#include "rap/config/artifact.h"
#include "rap/config/trust.h"
#include "rap/config/verifier.h"

namespace rap::config {

struct AppliedEntry {
  ArtifactType type = ArtifactType::peer_directory;
  Scope scope;
  std::uint64_t version = 0;
  std::uint64_t epoch = 0;
  std::string content_hash;   // of `payload`
  std::string artifact_id;    // last artifact applied to this key (an increment's own id)
  std::string signer_key_id;  // of that artifact
  WallTime issued_at{};
  WallTime expires_at{};  // the agent treats an expired entry as stale (degraded policy)
  std::shared_ptr<const Json> payload;  // null for tombstones
  bool removed = false;                 // tombstone of an explicit snapshot removal
};

struct ApplyReport {
  std::vector<std::string> changed;    // state keys whose payload changed, in apply order
  std::vector<std::string> removed;    // state keys removed by a snapshot
  std::vector<std::string> unchanged;  // idempotent re-deliveries
};

class ConfigState {
 public:
  // `anchors`: the config-signing keys the node received at enrollment (over mTLS).
  ConfigState(std::string cluster_id, NodeScope node, TrustStore anchors);

  // Verifies and applies a batch of wire artifacts (at most kMaxBatch). `min_epoch` is the
  // authority epoch the caller requires (e.g. from the cluster authority state).
  static constexpr std::size_t kMaxBatch = 65536;
  Result<ApplyReport> apply(std::span<const std::string> batch, WallTime now,
                            std::uint64_t min_epoch = 0);

  const AppliedEntry* find(ArtifactType type, const Scope& scope) const;  // null if absent
  const Json* payload(ArtifactType type, const Scope& scope) const;       // null if absent/removed
  const std::map<std::string, AppliedEntry, std::less<>>& entries() const { return entries_; }
  const AppliedVersions& applied_versions() const { return versions_; }
  const TrustStore& trust() const { return trust_; }
  const Revocations& revocations() const { return revocations_; }
  std::uint64_t authority_epoch() const { return epoch_; }
  const std::string& cluster_id() const { return cluster_id_; }
  const NodeScope& node() const { return node_; }
  // Membership changes (new org/service assignments) widen or narrow what is accepted next.
  void set_node_scope(NodeScope node) { node_ = std::move(node); }
  void set_clock_skew(std::chrono::seconds skew) { clock_skew_ = skew; }

  // Canonical JSON of the whole state (format "rap-config-state-v1"); deserialize() checks its
  // structure and that every payload matches its content hash (error "state_corrupt"). The
  // persisted state is local trusted data: the agent protects it like state.json (node-key
  // signature, 0600). Signatures are not re-verified on load (increments leave no full artifact).
  std::string serialize() const;
  static Result<ConfigState> deserialize(std::string_view bytes,
                                         const ParseLimits& limits = {256u * 1024 * 1024, 40});

 private:
  ConfigState() = default;
  Result<void> commit(VerifiedArtifact v, ApplyReport& report);
  Result<void> check_snapshot(const VerifiedArtifact& v, const Json& payload) const;
  void put(AppliedEntry e);

  std::string cluster_id_;
  NodeScope node_;
  TrustStore trust_;
  Revocations revocations_;
  std::uint64_t epoch_ = 0;
  std::chrono::seconds clock_skew_{60};
  std::map<std::string, AppliedEntry, std::less<>> entries_;
  AppliedVersions versions_;
};

}  // namespace rap::config
