#include "rap/config/verifier.h"

#include <algorithm>
#include <span>

#include "internal.h"
#include "rap/config/payload.h"

namespace rap::config {

bool NodeScope::accepts(const Scope& scope) const {
  switch (scope.kind) {
    case ScopeKind::cluster:
      return true;
    case ScopeKind::node:
      return std::find(scope.ids.begin(), scope.ids.end(), node_id) != scope.ids.end();
    case ScopeKind::org:
      return std::all_of(scope.ids.begin(), scope.ids.end(),
                         [&](const std::string& id) { return org_ids.count(id) != 0; });
    case ScopeKind::service:
      return std::all_of(scope.ids.begin(), scope.ids.end(),
                         [&](const std::string& id) { return service_ids.count(id) != 0; });
  }
  return false;
}

Result<VerifiedArtifact> verify(std::string_view wire, const VerifyContext& ctx) {
  auto artifact = decode_artifact(wire, ctx.limits);
  if (!artifact) return tl::unexpected(artifact.error());
  return verify(std::move(*artifact), ctx);
}

Result<VerifiedArtifact> verify(Artifact artifact, const VerifyContext& ctx) {
  RAP_ASSERT(ctx.trust != nullptr);
  const ArtifactHeader& h = artifact.header;
  auto valid = h.validate();
  if (!valid) return tl::unexpected(valid.error());
  if (!artifact.payload.is_object()) return detail::malformed("payload is not an object");

  if (h.cluster != ctx.cluster_id) {
    return fail(errc::wrong_cluster, "artifact is for cluster " + h.cluster);
  }
  auto key = ctx.trust->key_for(h.signer_key_id, ctx.now, ctx.revocations);
  if (!key) return tl::unexpected(key.error());
  const std::string msg = signing_bytes(h);
  if (!crypto::verify_ed25519(
          *key, std::span(reinterpret_cast<const std::uint8_t*>(msg.data()), msg.size()),
          artifact.signature)) {
    return fail(errc::bad_signature, "signature does not verify with key " + h.signer_key_id);
  }
  if (sha256_hex(msg) != artifact.id) {
    return fail(errc::hash_mismatch, "artifact id is not the hash of its signed header");
  }
  auto hash = content_hash(artifact.payload);
  if (!hash) return tl::unexpected(hash.error());
  if (*hash != h.content_hash) {
    return fail(errc::hash_mismatch, "payload does not match the signed content hash");
  }
  auto shape = check_payload_for(h.type, artifact.payload);
  if (!shape) return tl::unexpected(shape.error());

  if (!ctx.node.accepts(h.scope)) {
    return fail(errc::wrong_scope, "artifact scope " + h.scope.key() + " is not this node's");
  }
  if (h.epoch < ctx.min_epoch) {
    return fail(errc::stale_epoch, "authority epoch " + std::to_string(h.epoch) + " < " +
                                       std::to_string(ctx.min_epoch));
  }
  if (ctx.now + ctx.clock_skew < h.issued_at) {
    return fail(errc::not_yet_valid, "artifact issued in the future");
  }
  if (ctx.now >= h.expires_at) return fail(errc::expired, "artifact expired");

  VerifiedArtifact out;
  out.target_type = h.type;
  if (h.type == ArtifactType::snapshot_increment) {
    auto target = increment_target(artifact.payload);
    RAP_ASSERT(target.has_value());  // checked by check_payload_for
    out.target_type = *target;
  }
  out.state_key = state_key(out.target_type, h.scope);
  const AppliedVersion* applied = nullptr;
  if (ctx.applied != nullptr) {
    auto it = ctx.applied->find(out.state_key);
    if (it != ctx.applied->end()) applied = &it->second;
  }
  const std::string v = std::to_string(h.version);
  if (h.type == ArtifactType::snapshot_increment) {
    if (h.version != h.base_version + 1) {
      return fail(errc::non_sequential, "increment " + std::to_string(h.base_version) + " -> " + v +
                                            " is not sequential");
    }
    const bool live = applied != nullptr && !applied->removed;
    if (live && h.version == applied->version &&
        artifact.payload.at("result_hash").get_ref<const std::string&>() == applied->content_hash) {
      out.unchanged = true;  // its result is what is applied: idempotent re-delivery
    } else if (applied != nullptr && h.version <= applied->version) {
      return fail(errc::replay,
                  "increment to version " + v + " <= applied " + std::to_string(applied->version));
    } else if (!live || applied->version != h.base_version) {
      return fail(errc::gap_needs_full_refresh, "increment base " + std::to_string(h.base_version) +
                                                    " is not the applied version");
    }
  } else if (applied != nullptr) {
    if (h.version < applied->version || (applied->removed && h.version == applied->version)) {
      return fail(errc::replay, out.state_key + " version " + v + " < applied " +
                                    std::to_string(applied->version));
    }
    if (h.version == applied->version) {
      if (h.content_hash != applied->content_hash) {
        return fail(errc::replay,
                    out.state_key + " version " + v + " already applied with another content hash");
      }
      out.unchanged = true;
    }
  }
  out.artifact = std::move(artifact);
  return out;
}

}  // namespace rap::config
