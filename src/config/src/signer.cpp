#include "rap/config/signer.h"

#include <span>

#include "rap/config/payload.h"

namespace rap::config {

Signer::Signer(std::string cluster_id, crypto::Ed25519Key key)
    : cluster_id_(std::move(cluster_id)), key_(std::move(key)) {
  key_id_ = key_id_for(key_.public_key());
}

TrustedKey Signer::trusted_key(WallTime not_before, WallTime not_after, KeyStatus status) const {
  return TrustedKey{key_id_, key_.public_key(), status,
                    from_unix_seconds(to_unix_seconds(not_before)),
                    from_unix_seconds(to_unix_seconds(not_after))};
}

Result<Artifact> Signer::sign(ArtifactDraft draft) const {
  auto payload = normalize_payload(std::move(draft.payload));
  if (!payload) return tl::unexpected(payload.error());
  auto shape = check_payload_for(draft.type, *payload);
  if (!shape) return tl::unexpected(shape.error());
  // The wire object adds one level above the payload, and wire parsing allows 32.
  auto hash = content_hash(*payload, ParseLimits{}.max_depth - 1);
  if (!hash) return tl::unexpected(hash.error());

  Artifact a;
  ArtifactHeader& h = a.header;
  h.type = draft.type;
  h.cluster = cluster_id_;
  h.scope = std::move(draft.scope);
  h.version = draft.version;
  h.base_version = draft.base_version;
  h.epoch = draft.epoch;
  h.issued_at = from_unix_seconds(to_unix_seconds(draft.issued_at));
  h.expires_at = from_unix_seconds(to_unix_seconds(draft.expires_at));
  h.signer_key_id = key_id_;
  h.content_hash = std::move(*hash);
  auto valid = h.validate();
  if (!valid) return tl::unexpected(valid.error());
  const std::string msg = signing_bytes(h);
  a.signature = key_.sign(std::span(reinterpret_cast<const std::uint8_t*>(msg.data()), msg.size()));
  a.id = sha256_hex(msg);
  a.payload = std::move(*payload);
  return a;
}

Result<Artifact> Signer::sign_increment(ArtifactType target, const Scope& scope,
                                        std::uint64_t base_version, const Json& base_payload,
                                        const Json& new_payload, std::uint64_t epoch,
                                        WallTime issued_at, WallTime expires_at) const {
  auto inc = make_increment_payload(target, base_payload, new_payload);
  if (!inc) return tl::unexpected(inc.error());
  ArtifactDraft d;
  d.type = ArtifactType::snapshot_increment;
  d.scope = scope;
  d.version = base_version + 1;
  d.base_version = base_version;
  d.epoch = epoch;
  d.issued_at = issued_at;
  d.expires_at = expires_at;
  d.payload = std::move(*inc);
  return sign(std::move(d));
}

}  // namespace rap::config
