// Who may sign configuration: the trust store of config-signing keys (from a trust_bundle
// artifact, or the anchors a node received at enrollment) and the revocation list.
//
// Rotation: the control plane publishes a trust bundle (signed by a currently trusted key) that
// adds the new key as "active" and marks the old one "retired" with a not_after in the future.
// Until then artifacts signed by either key verify; afterwards the old key is "signer_expired".
// A "revoked" key is refused at once ("revoked_signer"), and revocation is sticky: a later
// trust bundle cannot bring a key back once this node has seen it revoked (TrustStore::succeed).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "rap/common/result.h"
#include "rap/config/artifact.h"
#include "rap/crypto/keys.h"

namespace rap::config {

enum class KeyStatus : std::uint8_t { active, retired, revoked };
std::string_view to_string(KeyStatus status);

struct TrustedKey {
  std::string key_id;  // key_id_for(public_key)
  crypto::PublicKey public_key{};
  KeyStatus status = KeyStatus::active;
  WallTime not_before{};
  WallTime not_after{};

  // For a trust_bundle payload: {"id","not_after","not_before","public_key","status"}.
  Json to_json() const;
};

// Revoked identities, from the revocation_list artifact (versioned like every artifact).
struct Revocations {
  std::set<std::string> key_ids;    // config-signing keys
  std::set<std::string> node_ids;   // nodes (feed crypto::RevocationList::revoke_node)
  std::set<std::uint64_t> serials;  // node certificate serials (revoke_serial)

  // {"keys":[{"id":..}],"nodes":[{"id":..}],"serials":[{"id":"<decimal>"}]}
  Json to_payload() const;
  static Result<Revocations> from_payload(const Json& payload);
  bool operator==(const Revocations&) const = default;
};

class TrustStore {
 public:
  TrustStore() = default;
  // Errors: "malformed" (key id not derived from the key, duplicate ids, not_after <= not_before).
  static Result<TrustStore> from_keys(std::vector<TrustedKey> keys);
  // From a trust_bundle payload (see to_payload()).
  static Result<TrustStore> from_trust_bundle(const Json& payload);
  // {"keys":[TrustedKey::to_json()...]} sorted by key id: the trust_bundle payload.
  Json to_payload() const;

  // The key that verifies an artifact signed by `key_id` at `now`. Errors: "unknown_signer",
  // "revoked_signer" (status revoked, or listed in `revocations`), "signer_expired" (outside
  // not_before..not_after).
  Result<crypto::PublicKey> key_for(const std::string& key_id, WallTime now,
                                    const Revocations* revocations = nullptr) const;

  // The store that replaces this one when `next` (a newly verified trust bundle) is applied:
  // `next`, except that every key revoked here stays revoked.
  TrustStore succeed(TrustStore next) const;

  const std::map<std::string, TrustedKey>& keys() const { return keys_; }
  bool empty() const { return keys_.empty(); }

 private:
  std::map<std::string, TrustedKey> keys_;
};

}  // namespace rap::config
