// Signer: the control plane's per-cluster config-signing key. The config compiler builds an
// ArtifactDraft per (type, scope, version) from PostgreSQL and signs it here; the result is
// encoded with encode_artifact() and published (immutable, addressed by Artifact::id).
//
// The private key never reaches nodes; nodes learn the public half through a trust_bundle
// (TrustedKey from trusted_key()) or, at enrollment, as a trust anchor.
#pragma once

#include <string>

#include "rap/common/result.h"
#include "rap/config/artifact.h"
#include "rap/config/trust.h"
#include "rap/crypto/keys.h"

namespace rap::config {

struct ArtifactDraft {
  ArtifactType type = ArtifactType::peer_directory;
  Scope scope;
  std::uint64_t version = 0;
  std::uint64_t base_version = 0;  // snapshot_increment only
  std::uint64_t epoch = 0;
  WallTime issued_at{};
  WallTime expires_at{};
  Json payload = Json::object();
};

class Signer {
 public:
  Signer(std::string cluster_id, crypto::Ed25519Key key);

  const std::string& cluster_id() const { return cluster_id_; }
  const std::string& key_id() const { return key_id_; }
  crypto::PublicKey public_key() const { return key_.public_key(); }
  // This key's entry for a trust bundle.
  TrustedKey trusted_key(WallTime not_before, WallTime not_after,
                         KeyStatus status = KeyStatus::active) const;

  // Normalizes the payload (sorts keyed collections), checks it (check_payload_for) and the
  // header, computes the content hash, signs, and derives the id. Times are truncated to whole
  // seconds. Errors: "malformed", "duplicate_entry" — the signer never emits an artifact a node
  // would refuse for its shape.
  Result<Artifact> sign(ArtifactDraft draft) const;

  // Convenience for the compiler: the increment turning (target, scope) version `base_version`
  // with `base_payload` into version base_version + 1 with `new_payload`.
  Result<Artifact> sign_increment(ArtifactType target, const Scope& scope,
                                  std::uint64_t base_version, const Json& base_payload,
                                  const Json& new_payload, std::uint64_t epoch, WallTime issued_at,
                                  WallTime expires_at) const;

 private:
  std::string cluster_id_;
  crypto::Ed25519Key key_;
  std::string key_id_;
};

}  // namespace rap::config
