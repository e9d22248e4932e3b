#include "rap/config/artifact.h"

#include <algorithm>
#include <span>

#include "internal.h"

namespace rap::config {

using detail::malformed;

namespace {

constexpr std::array<std::string_view, 12> kTypeNames = {
    "cluster_snapshot", "snapshot_increment",        "peer_directory",      "trust_bundle",
    "revocation_list",  "service_assignment_bundle", "route_policy_bundle", "qos_policy_bundle",
    "update_manifest",  "storage_directory",         "route_lease",         "access_grant",
};
constexpr std::array<std::string_view, 4> kScopeNames = {"cluster", "node", "org", "service"};
constexpr std::size_t kMaxScopeIds = 64;

// Header members in the order the canonical object sorts them (documentation only; the
// canonical encoder sorts anyway).
Json header_json(const ArtifactHeader& h) {
  Json j = Json::object();
  j["base_version"] = h.base_version;
  j["cluster"] = h.cluster;
  j["content_hash"] = h.content_hash;
  j["epoch"] = h.epoch;
  j["expires_at"] = to_unix_seconds(h.expires_at);
  j["format"] = kFormat;
  j["issued_at"] = to_unix_seconds(h.issued_at);
  j["scope"] = h.scope.to_json();
  j["signer"] = h.signer_key_id;
  j["type"] = std::string(to_string(h.type));
  j["version"] = h.version;
  return j;
}

}  // namespace

std::string_view to_string(ArtifactType type) {
  return kTypeNames[static_cast<std::size_t>(type)];
}

std::optional<ArtifactType> artifact_type_from_string(std::string_view name) {
  for (std::size_t i = 0; i < kTypeNames.size(); ++i) {
    if (kTypeNames[i] == name) return static_cast<ArtifactType>(i);
  }
  return std::nullopt;
}

std::string_view to_string(ScopeKind kind) {
  return kScopeNames[static_cast<std::size_t>(kind)];
}

std::optional<ScopeKind> scope_kind_from_string(std::string_view name) {
  for (std::size_t i = 0; i < kScopeNames.size(); ++i) {
    if (kScopeNames[i] == name) return static_cast<ScopeKind>(i);
  }
  return std::nullopt;
}

std::string Scope::key() const {
  std::string out(to_string(kind));
  for (std::size_t i = 0; i < ids.size(); ++i) {
    out += (i == 0 ? ':' : ',');
    out += ids[i];
  }
  return out;
}

Json Scope::to_json() const {
  return Json{{"ids", ids}, {"kind", std::string(to_string(kind))}};
}

Result<void> Scope::validate() const {
  if (kind == ScopeKind::cluster) {
    if (!ids.empty()) return malformed("cluster scope names no ids");
    return {};
  }
  if (ids.empty() || ids.size() > kMaxScopeIds) return malformed("scope must name 1..64 ids");
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (!detail::valid_id(ids[i])) return malformed("invalid scope id");
    if (i > 0 && !(ids[i - 1] < ids[i])) return malformed("scope ids must be sorted and unique");
  }
  return {};
}

Result<Scope> Scope::from_json(const Json& j) {
  auto shape = detail::only_members(j, {"ids", "kind"}, "scope");
  if (!shape) return tl::unexpected(shape.error());
  auto kind_name = detail::get_string(j, "kind");
  if (!kind_name) return tl::unexpected(kind_name.error());
  auto kind = scope_kind_from_string(*kind_name);
  if (!kind) return malformed("unknown scope kind");
  auto it = j.find("ids");
  if (it == j.end() || !it->is_array()) return malformed("scope ids missing or not an array");
  Scope s;
  s.kind = *kind;
  for (const auto& id : *it) {
    if (!id.is_string()) return malformed("scope id is not a string");
    s.ids.push_back(id.get<std::string>());
  }
  auto ok = s.validate();
  if (!ok) return tl::unexpected(ok.error());
  return s;
}

std::string state_key(ArtifactType type, const Scope& scope) {
  std::string out(to_string(type));
  out += '@';
  out += scope.key();
  return out;
}

Result<void> ArtifactHeader::validate() const {
  if (!detail::valid_id(cluster)) return malformed("invalid cluster id");
  auto s = scope.validate();
  if (!s) return s;
  if (version == 0) return malformed("version must be >= 1");
  if (type == ArtifactType::snapshot_increment) {
    if (base_version == 0) return malformed("an increment names a base version >= 1");
  } else if (base_version != 0) {
    return malformed("base_version is only for snapshot_increment");
  }
  if ((type == ArtifactType::trust_bundle || type == ArtifactType::revocation_list) &&
      scope.kind != ScopeKind::cluster) {
    return malformed("trust bundles and revocation lists are cluster-scoped");
  }
  if (to_unix_seconds(issued_at) < 0 || to_unix_seconds(expires_at) > kMaxUnixSeconds) {
    return malformed("timestamps outside 1970..2242");
  }
  if (!(issued_at < expires_at)) return malformed("expires_at must be after issued_at");
  if (!detail::is_hex(signer_key_id, 16)) return malformed("signer key id is not 16 hex digits");
  if (!detail::is_hex(content_hash, 64)) return malformed("content hash is not 64 hex digits");
  return {};
}

std::string signing_bytes(const ArtifactHeader& header) {
  auto text = canonical_encode(header_json(header));
  RAP_ASSERT(text.has_value());  // header members are ids, hex and integers
  std::string out(kSignatureDomain);
  out.push_back('\0');
  out += *text;
  return out;
}

std::string artifact_id(const ArtifactHeader& header) {
  return sha256_hex(signing_bytes(header));
}

std::string key_id_for(const crypto::PublicKey& key) {
  return crypto::sha256_hex(std::span<const std::uint8_t>(key.data(), key.size())).substr(0, 16);
}

Result<std::string> encode_artifact(const Artifact& artifact) {
  Json j = header_json(artifact.header);
  j["id"] = artifact.id;
  j["payload"] = artifact.payload;
  j["signature"] = to_hex(artifact.signature);
  return canonical_encode(j);
}

Result<Artifact> decode_artifact(std::string_view wire, const ParseLimits& limits) {
  auto parsed = parse_strict(wire, limits);
  if (!parsed) return tl::unexpected(parsed.error());
  Json& j = *parsed;
  auto shape = detail::only_members(
      j,
      {"base_version", "cluster", "content_hash", "epoch", "expires_at", "format", "id",
       "issued_at", "payload", "scope", "signature", "signer", "type", "version"},
      "artifact");
  if (!shape) return tl::unexpected(shape.error());
  auto format = detail::get_string(j, "format");
  if (!format) return tl::unexpected(format.error());
  if (*format != kFormat) return malformed("unknown artifact format");

  Artifact a;
  ArtifactHeader& h = a.header;
  auto type_name = detail::get_string(j, "type");
  if (!type_name) return tl::unexpected(type_name.error());
  auto type = artifact_type_from_string(*type_name);
  if (!type) return malformed("unknown artifact type");
  h.type = *type;
  auto cluster = detail::get_string(j, "cluster");
  if (!cluster) return tl::unexpected(cluster.error());
  h.cluster = std::move(*cluster);
  auto scope_it = j.find("scope");
  if (scope_it == j.end()) return malformed("scope missing");
  auto scope = Scope::from_json(*scope_it);
  if (!scope) return tl::unexpected(scope.error());
  h.scope = std::move(*scope);
  auto version = detail::get_u64(j, "version");
  if (!version) return tl::unexpected(version.error());
  h.version = *version;
  auto base = detail::get_u64(j, "base_version");
  if (!base) return tl::unexpected(base.error());
  h.base_version = *base;
  auto epoch = detail::get_u64(j, "epoch");
  if (!epoch) return tl::unexpected(epoch.error());
  h.epoch = *epoch;
  auto issued = detail::get_i64(j, "issued_at");
  if (!issued) return tl::unexpected(issued.error());
  auto expires = detail::get_i64(j, "expires_at");
  if (!expires) return tl::unexpected(expires.error());
  if (*issued < 0 || *issued > kMaxUnixSeconds || *expires < 0 || *expires > kMaxUnixSeconds) {
    return malformed("timestamp out of range");
  }
  h.issued_at = from_unix_seconds(*issued);
  h.expires_at = from_unix_seconds(*expires);
  auto signer = detail::get_string(j, "signer");
  if (!signer) return tl::unexpected(signer.error());
  h.signer_key_id = std::move(*signer);
  auto hash = detail::get_string(j, "content_hash");
  if (!hash) return tl::unexpected(hash.error());
  h.content_hash = std::move(*hash);
  auto valid = h.validate();
  if (!valid) return tl::unexpected(valid.error());

  auto id = detail::get_string(j, "id");
  if (!id) return tl::unexpected(id.error());
  if (!detail::is_hex(*id, 64)) return malformed("artifact id is not 64 hex digits");
  a.id = std::move(*id);
  auto sig = detail::get_string(j, "signature");
  if (!sig) return tl::unexpected(sig.error());
  if (!from_hex(*sig, a.signature)) return malformed("signature is not 128 hex digits");
  auto payload = j.find("payload");
  if (payload == j.end() || !payload->is_object()) return malformed("payload is not an object");
  a.payload = std::move(*payload);
  return a;
}

std::int64_t to_unix_seconds(WallTime t) {
  return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

WallTime from_unix_seconds(std::int64_t s) {
  return WallTime(std::chrono::seconds(s));
}

}  // namespace rap::config
