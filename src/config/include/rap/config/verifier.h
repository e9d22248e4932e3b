// Verification of one artifact against what this node trusts and has applied. Pure: the caller
// passes the bytes and the current time. ConfigState::apply() runs this for every artifact of a
// batch; the agent may also call it directly (e.g. to pre-check a fetched artifact).
//
// Checks, in this order (the first failure is returned; codes in errors.h):
//   1. strict decode, header and generic payload shape              malformed
//   2. cluster == expected cluster                                   wrong_cluster
//   3. signer key: known, not revoked, within validity at now        unknown_signer,
//                                                                    revoked_signer, signer_expired
//   4. Ed25519 signature over signing_bytes(header)                  bad_signature
//   5. id == artifact_id(header); sha256(canonical payload) == content_hash   hash_mismatch
//   6. payload: collections unique and sorted, type-specific shape   duplicate_entry, malformed
//   7. scope covers this node (NodeScope::accepts)                   wrong_scope
//   8. epoch >= min_epoch                                            stale_epoch
//   9. issued_at <= now + clock_skew; now < expires_at               not_yet_valid, expired
//  10. against the applied (type, scope) — for an increment, its target type's key:
//      full artifact
//        version < applied, or == applied with another content hash        replay
//        version <= a removal tombstone                                    replay
//        version == applied with the same content hash: accepted with `unchanged` set
//        (idempotent re-delivery; nothing to apply)
//      increment
//        version != base_version + 1                                       non_sequential
//        version == applied and result_hash == applied hash: `unchanged` (re-delivery)
//        version <= applied otherwise                                      replay
//        nothing applied, or base_version != applied version               gap_needs_full_refresh
#pragma once

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "rap/common/result.h"
#include "rap/config/artifact.h"
#include "rap/config/trust.h"

namespace rap::config {

// What this node serves (from its membership: node id, assigned organizations and services).
struct NodeScope {
  std::string node_id;
  std::set<std::string> org_ids;
  std::set<std::string> service_ids;

  bool accepts(const Scope& scope) const;
  bool operator==(const NodeScope&) const = default;
};

// The applied version of one state key (state_key()).
struct AppliedVersion {
  std::uint64_t version = 0;
  std::string content_hash;
  bool removed = false;  // tombstone of an explicit removal at `version`
};
using AppliedVersions = std::map<std::string, AppliedVersion, std::less<>>;

struct VerifyContext {
  std::string cluster_id;
  NodeScope node;
  const TrustStore* trust = nullptr;         // required
  const Revocations* revocations = nullptr;  // optional
  const AppliedVersions* applied = nullptr;  // optional (nothing applied)
  std::uint64_t min_epoch = 0;
  WallTime now{};
  std::chrono::seconds clock_skew{60};  // tolerated for issued_at only
  ParseLimits limits{};
};

struct VerifiedArtifact {
  Artifact artifact;
  // The (type, scope) this artifact changes: its own type, or an increment's target type.
  ArtifactType target_type = ArtifactType::peer_directory;
  std::string state_key;
  // Same version and content hash as already applied: nothing to do (idempotent re-delivery).
  bool unchanged = false;
};

Result<VerifiedArtifact> verify(std::string_view wire, const VerifyContext& ctx);
// The same checks from step 2 on, for an artifact decoded already (decode_artifact()).
Result<VerifiedArtifact> verify(Artifact artifact, const VerifyContext& ctx);

}  // namespace rap::config
