#include "rap/config/trust.h"

#include <charconv>

#include "internal.h"
#include "rap/config/payload.h"

namespace rap::config {

using detail::malformed;

std::string_view to_string(KeyStatus status) {
  switch (status) {
    case KeyStatus::active:
      return "active";
    case KeyStatus::retired:
      return "retired";
    case KeyStatus::revoked:
      return "revoked";
  }
  return "revoked";
}

Json TrustedKey::to_json() const {
  return Json{{"id", key_id},
              {"not_after", to_unix_seconds(not_after)},
              {"not_before", to_unix_seconds(not_before)},
              {"public_key", to_hex(public_key)},
              {"status", std::string(to_string(status))}};
}

Json Revocations::to_payload() const {
  auto list = [](const auto& ids) {
    Json arr = Json::array();
    for (const auto& id : ids) arr.push_back(Json{{"id", id}});
    return arr;
  };
  std::set<std::string> serial_text;
  for (auto s : serials) serial_text.insert(std::to_string(s));
  Json p{{"keys", list(key_ids)}, {"nodes", list(node_ids)}, {"serials", list(serial_text)}};
  auto normalized = normalize_payload(std::move(p));
  RAP_ASSERT(normalized.has_value());
  return std::move(*normalized);
}

Result<Revocations> Revocations::from_payload(const Json& payload) {
  auto generic = check_payload(payload);
  if (!generic) return tl::unexpected(generic.error());
  auto shape = detail::only_members(payload, {"keys", "nodes", "serials"}, "revocation list");
  if (!shape) return tl::unexpected(shape.error());
  Revocations r;
  for (const char* member : {"keys", "nodes", "serials"}) {
    auto it = payload.find(member);
    if (it == payload.end()) continue;
    if (!it->is_array()) return malformed(std::string(member) + " is not a list");
    for (const auto& e : *it) {
      auto only_id = detail::only_members(e, {"id"}, "revocation entry");
      if (!only_id) return tl::unexpected(only_id.error());
      const auto& id = e.at("id").get_ref<const std::string&>();
      const std::string_view m(member);
      if (m == "serials") {
        std::uint64_t serial = 0;
        auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), serial);
        if (ec != std::errc() || end != id.data() + id.size() || std::to_string(serial) != id) {
          return malformed("revoked serial is not a canonical decimal");
        }
        r.serials.insert(serial);
      } else {
        if (!detail::valid_id(id)) return malformed("invalid revoked id");
        (m == "keys" ? r.key_ids : r.node_ids).insert(id);
      }
    }
  }
  return r;
}

Result<TrustStore> TrustStore::from_keys(std::vector<TrustedKey> keys) {
  TrustStore store;
  for (auto& k : keys) {
    if (k.key_id != key_id_for(k.public_key)) {
      return malformed("trusted key id is not derived from its public key");
    }
    if (!(k.not_before < k.not_after)) return malformed("trusted key not_after <= not_before");
    if (to_unix_seconds(k.not_before) < 0 || to_unix_seconds(k.not_after) > kMaxUnixSeconds) {
      return malformed("trusted key validity outside 1970..2242");
    }
    const std::string id = k.key_id;
    if (!store.keys_.emplace(id, std::move(k)).second) return malformed("trusted key listed twice");
  }
  return store;
}

Result<TrustStore> TrustStore::from_trust_bundle(const Json& payload) {
  auto generic = check_payload(payload);
  if (!generic) return tl::unexpected(generic.error());
  auto shape = detail::only_members(payload, {"keys"}, "trust bundle");
  if (!shape) return tl::unexpected(shape.error());
  auto it = payload.find("keys");
  if (it == payload.end() || !it->is_array()) return malformed("trust bundle has no keys list");
  std::vector<TrustedKey> keys;
  for (const auto& e : *it) {
    auto only = detail::only_members(e, {"id", "not_after", "not_before", "public_key", "status"},
                                     "trusted key");
    if (!only) return tl::unexpected(only.error());
    TrustedKey k;
    k.key_id = e.at("id").get<std::string>();
    auto pub = detail::get_string(e, "public_key");
    if (!pub) return tl::unexpected(pub.error());
    if (!from_hex(*pub, k.public_key)) return malformed("public key is not 64 hex digits");
    auto status = detail::get_string(e, "status");
    if (!status) return tl::unexpected(status.error());
    if (*status == "active") {
      k.status = KeyStatus::active;
    } else if (*status == "retired") {
      k.status = KeyStatus::retired;
    } else if (*status == "revoked") {
      k.status = KeyStatus::revoked;
    } else {
      return malformed("unknown key status");
    }
    auto nb = detail::get_i64(e, "not_before");
    if (!nb) return tl::unexpected(nb.error());
    auto na = detail::get_i64(e, "not_after");
    if (!na) return tl::unexpected(na.error());
    if (*nb < 0 || *na < 0 || *nb > kMaxUnixSeconds || *na > kMaxUnixSeconds) {
      return malformed("key validity out of range");
    }
    k.not_before = from_unix_seconds(*nb);
    k.not_after = from_unix_seconds(*na);
    keys.push_back(std::move(k));
  }
  return from_keys(std::move(keys));
}

Json TrustStore::to_payload() const {
  Json arr = Json::array();
  for (const auto& [id, k] : keys_) arr.push_back(k.to_json());
  return Json{{"keys", std::move(arr)}};
}

Result<crypto::PublicKey> TrustStore::key_for(const std::string& key_id, WallTime now,
                                              const Revocations* revocations) const {
  auto it = keys_.find(key_id);
  if (it == keys_.end()) {
    return fail(errc::unknown_signer, "signer key " + key_id.substr(0, 16) + " is not trusted");
  }
  const TrustedKey& k = it->second;
  if (k.status == KeyStatus::revoked ||
      (revocations != nullptr && revocations->key_ids.count(key_id) != 0)) {
    return fail(errc::revoked_signer, "signer key " + key_id + " is revoked");
  }
  if (now < k.not_before || now >= k.not_after) {
    return fail(errc::signer_expired, "signer key " + key_id + " is outside its validity");
  }
  return k.public_key;
}

TrustStore TrustStore::succeed(TrustStore next) const {
  for (const auto& [id, k] : keys_) {
    if (k.status != KeyStatus::revoked) continue;
    auto it = next.keys_.find(id);
    if (it != next.keys_.end()) {
      it->second.status = KeyStatus::revoked;
    } else {
      next.keys_.emplace(id, k);
    }
  }
  return next;
}

}  // namespace rap::config
