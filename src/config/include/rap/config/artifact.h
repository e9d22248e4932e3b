// Signed configuration artifacts: the unit the control plane's config compiler produces from
// PostgreSQL and every node verifies before applying
// (shared/spec/FABRIC_STORAGE_CONFIG_SERVICE.md).
//
// An artifact is immutable. Its identity is `id` = SHA-256 of its signed header bytes
// (signing_bytes()), which include `content_hash` = SHA-256 of the canonical payload. Storage
// addresses artifacts by `id`; a new configuration is a new artifact with a higher `version`.
// Wire format and the exact signed bytes: docs/PROTOCOL.md, "Signed configuration artifacts".
//
// This header only models and (de)serializes artifacts. Nothing here decides trust: decode a
// wire artifact with decode_artifact() and check it with verify() (verifier.h), or hand whole
// batches to ConfigState::apply() (state.h).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rap/common/result.h"
#include "rap/config/canonical.h"
#include "rap/crypto/keys.h"

namespace rap::config {

// Wall-clock time (artifacts carry unix seconds; sub-second parts are dropped when signing).
using WallTime = std::chrono::system_clock::time_point;

inline constexpr char kFormat[] = "rap-config-v1";
// Domain separation prefix of the signed bytes (followed by one 0x00 byte).
inline constexpr char kSignatureDomain[] = "RAP-CONFIG-ARTIFACT-V1";

enum class ArtifactType : std::uint8_t {
  cluster_snapshot,    // lists the component artifacts of a scope (type, scope, version, hash)
  snapshot_increment,  // ops turning version N of one (type, scope) into N+1
  peer_directory,      // peers a node may dial
  trust_bundle,        // config-signing keys (cluster scope only)
  revocation_list,     // revoked node ids, certificate serials, signing keys (cluster scope)
  service_assignment_bundle,  // services assigned to a node
  route_policy_bundle,
  qos_policy_bundle,
  update_manifest,
  storage_directory,
  // Credentials, not configuration: signed by the same config-signing key and checked with
  // verify(), but never part of a config batch (ConfigState::apply refuses them).
  route_lease,   // one route's hop list for one access grant (docs/PROTOCOL.md §14)
  access_grant,  // a user's short-lived permission to reach one resource
};
// The configuration families (everything ConfigState applies).
inline constexpr std::array<ArtifactType, 10> kAllArtifactTypes = {
    ArtifactType::cluster_snapshot,    ArtifactType::snapshot_increment,
    ArtifactType::peer_directory,      ArtifactType::trust_bundle,
    ArtifactType::revocation_list,     ArtifactType::service_assignment_bundle,
    ArtifactType::route_policy_bundle, ArtifactType::qos_policy_bundle,
    ArtifactType::update_manifest,     ArtifactType::storage_directory,
};
inline constexpr bool is_credential(ArtifactType t) {
  return t == ArtifactType::route_lease || t == ArtifactType::access_grant;
}
std::string_view to_string(ArtifactType type);
std::optional<ArtifactType> artifact_type_from_string(std::string_view name);

enum class ScopeKind : std::uint8_t { cluster, node, org, service };
std::string_view to_string(ScopeKind kind);
std::optional<ScopeKind> scope_kind_from_string(std::string_view name);

// Who an artifact is for. `cluster` has no ids; the other kinds name 1..64 ids, sorted and
// unique, each 1..128 bytes of [A-Za-z0-9._-]. A node accepts an artifact when (NodeScope in
// verifier.h): cluster — always; node — its node id is listed; org / service — EVERY listed id
// is an organization / service the node serves (an artifact spanning another org is refused).
struct Scope {
  ScopeKind kind = ScopeKind::cluster;
  std::vector<std::string> ids;

  static Scope cluster() { return {}; }
  static Scope node(std::string id) { return {ScopeKind::node, {std::move(id)}}; }
  static Scope org(std::string id) { return {ScopeKind::org, {std::move(id)}}; }
  static Scope service(std::string id) { return {ScopeKind::service, {std::move(id)}}; }

  // "cluster", "node:n1", "org:o1,o2", ...: stable text used in state keys.
  std::string key() const;
  Json to_json() const;  // {"ids":[...],"kind":"node"}
  static Result<Scope> from_json(const Json& j);
  Result<void> validate() const;
  bool operator==(const Scope&) const = default;
};

// The key of applied state: "<type>@<scope key>", e.g. "peer_directory@node:n1". Increments are
// applied under the key of their target type.
std::string state_key(ArtifactType type, const Scope& scope);

// Everything the signature covers.
struct ArtifactHeader {
  ArtifactType type = ArtifactType::cluster_snapshot;
  std::string cluster;  // cluster id, 1..128 bytes of [A-Za-z0-9._-]
  Scope scope;
  std::uint64_t version = 0;       // >= 1; per (type, scope) it only grows
  std::uint64_t base_version = 0;  // snapshot_increment: the version it applies to; else 0
  std::uint64_t epoch = 0;         // cluster authority epoch
  WallTime issued_at{};
  WallTime expires_at{};      // refresh deadline; must be after issued_at
  std::string signer_key_id;  // key_id_for(public key): 16 lower-case hex digits
  std::string content_hash;   // sha256_hex(canonical_encode(payload))

  Result<void> validate() const;  // field syntax and ranges ("malformed")
};

struct Artifact {
  std::string id;  // artifact_id(header)
  ArtifactHeader header;
  Json payload;  // JSON object; rules in payload.h
  crypto::Signature signature{};
};

// The exact bytes the Ed25519 signature covers:
//   "RAP-CONFIG-ARTIFACT-V1" 0x00 canonical_json(header object)
// where the header object has the members base_version, cluster, content_hash, epoch,
// expires_at, format, issued_at, scope, signer, type, version (docs/PROTOCOL.md).
std::string signing_bytes(const ArtifactHeader& header);
// SHA-256 hex of signing_bytes(): the artifact's content address.
std::string artifact_id(const ArtifactHeader& header);
// Key id of a config-signing key: the first 16 hex digits of SHA-256(raw public key).
std::string key_id_for(const crypto::PublicKey& key);

// Wire form: one canonical JSON object, the header members plus "id", "payload" and
// "signature" (128 hex digits). Fails only when the payload is not canonical-encodable.
Result<std::string> encode_artifact(const Artifact& artifact);
// Strict decode of wire bytes. Checks syntax only (no signature, hash or trust checks): unknown
// or missing members, wrong types, invalid header fields are "malformed".
Result<Artifact> decode_artifact(std::string_view wire, const ParseLimits& limits = {});

// Timestamps on the wire are unix seconds in 0..kMaxUnixSeconds (year 2242): larger values would
// overflow the nanosecond time points of std::chrono::system_clock.
inline constexpr std::int64_t kMaxUnixSeconds = std::int64_t{1} << 33;
// Unix seconds <-> WallTime.
std::int64_t to_unix_seconds(WallTime t);
WallTime from_unix_seconds(std::int64_t s);

}  // namespace rap::config
