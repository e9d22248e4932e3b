#include "rap/config/state.h"

#include <algorithm>

#include "internal.h"
#include "rap/config/payload.h"

namespace rap::config {

namespace {

constexpr char kStateFormat[] = "rap-config-state-v1";

int apply_class(ArtifactType t) {
  switch (t) {
    case ArtifactType::trust_bundle:
      return 0;
    case ArtifactType::revocation_list:
      return 1;
    case ArtifactType::snapshot_increment:
      return 3;
    case ArtifactType::cluster_snapshot:
      return 4;
    default:
      return 2;
  }
}

tl::unexpected<Error> corrupt(const std::string& why) {
  return fail(errc::state_corrupt, "config state: " + why);
}

std::map<std::string, const ComponentRef*> by_key(const std::vector<ComponentRef>& refs) {
  std::map<std::string, const ComponentRef*> out;
  for (const auto& r : refs) out.emplace(state_key(r.type, r.scope), &r);
  return out;
}

}  // namespace

ConfigState::ConfigState(std::string cluster_id, NodeScope node, TrustStore anchors)
    : cluster_id_(std::move(cluster_id)), node_(std::move(node)), trust_(std::move(anchors)) {}

const AppliedEntry* ConfigState::find(ArtifactType type, const Scope& scope) const {
  auto it = entries_.find(state_key(type, scope));
  return it == entries_.end() ? nullptr : &it->second;
}

const Json* ConfigState::payload(ArtifactType type, const Scope& scope) const {
  const AppliedEntry* e = find(type, scope);
  return (e == nullptr || e->removed) ? nullptr : e->payload.get();
}

void ConfigState::put(AppliedEntry e) {
  std::string key = state_key(e.type, e.scope);
  versions_[key] = AppliedVersion{e.version, e.content_hash, e.removed};
  entries_[key] = std::move(e);
}

Result<ApplyReport> ConfigState::apply(std::span<const std::string> batch, WallTime now,
                                       std::uint64_t min_epoch) {
  if (batch.size() > kMaxBatch) return fail(errc::malformed, "batch larger than kMaxBatch");
  struct Item {
    Artifact artifact;
    std::size_t index = 0;
    std::string order_key;  // increments: target state key
  };
  std::vector<Item> items;
  items.reserve(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto a = decode_artifact(batch[i]);
    if (!a) {
      return fail(a.error().code, "batch item " + std::to_string(i) + ": " + a.error().message);
    }
    if (is_credential(a->header.type)) {
      return fail(errc::malformed, "batch item " + std::to_string(i) + ": a " +
                                       std::string(to_string(a->header.type)) +
                                       " is a credential, not configuration");
    }
    Item item{std::move(*a), i, {}};
    if (item.artifact.header.type == ArtifactType::snapshot_increment) {
      auto target = increment_target(item.artifact.payload);
      if (target) item.order_key = state_key(*target, item.artifact.header.scope);
    }
    items.push_back(std::move(item));
  }
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    const auto& ha = a.artifact.header;
    const auto& hb = b.artifact.header;
    const int ca = apply_class(ha.type);
    const int cb = apply_class(hb.type);
    if (ca != cb) return ca < cb;
    if (a.order_key != b.order_key) return a.order_key < b.order_key;
    if (ca == 2 || ca == 4) return false;  // keep batch order
    return ha.version < hb.version;
  });

  ConfigState next = *this;  // payloads are shared, so the copy is cheap
  ApplyReport report;
  VerifyContext ctx;
  ctx.cluster_id = next.cluster_id_;
  ctx.node = next.node_;
  ctx.trust = &next.trust_;  // members of `next`: updated in place by each commit
  ctx.revocations = &next.revocations_;
  ctx.applied = &next.versions_;
  ctx.now = now;
  ctx.clock_skew = next.clock_skew_;
  for (auto& item : items) {
    ctx.min_epoch = std::max(min_epoch, next.epoch_);
    const std::size_t index = item.index;
    auto v = verify(std::move(item.artifact), ctx);
    if (!v) {
      return fail(v.error().code, "batch item " + std::to_string(index) + ": " + v.error().message);
    }
    auto ok = next.commit(std::move(*v), report);
    if (!ok) {
      return fail(ok.error().code,
                  "batch item " + std::to_string(index) + ": " + ok.error().message);
    }
  }
  *this = std::move(next);
  return report;
}

Result<void> ConfigState::commit(VerifiedArtifact v, ApplyReport& report) {
  if (v.unchanged) {
    report.unchanged.push_back(v.state_key);
    return {};
  }
  Artifact& a = v.artifact;
  const ArtifactHeader& h = a.header;
  AppliedEntry e;
  e.type = v.target_type;
  e.scope = h.scope;
  e.version = h.version;
  e.epoch = h.epoch;
  e.artifact_id = a.id;
  e.signer_key_id = h.signer_key_id;
  e.issued_at = h.issued_at;
  e.expires_at = h.expires_at;

  switch (h.type) {
    case ArtifactType::snapshot_increment: {
      auto it = entries_.find(v.state_key);
      RAP_ASSERT(it != entries_.end() && it->second.payload != nullptr);  // verify() checked
      auto result = apply_increment_payload(*it->second.payload, a.payload);
      if (!result) return tl::unexpected(result.error());
      e.content_hash = a.payload.at("result_hash").get<std::string>();
      // Trust and revocations follow their payload whether it came whole or as an increment.
      if (v.target_type == ArtifactType::trust_bundle) {
        auto store = TrustStore::from_trust_bundle(*result);
        if (!store) return tl::unexpected(store.error());
        trust_ = trust_.succeed(std::move(*store));
      } else if (v.target_type == ArtifactType::revocation_list) {
        auto r = Revocations::from_payload(*result);
        if (!r) return tl::unexpected(r.error());
        for (const auto& k : revocations_.key_ids) r->key_ids.insert(k);  // sticky
        revocations_ = std::move(*r);
      }
      e.payload = std::make_shared<const Json>(std::move(*result));
      break;
    }
    case ArtifactType::trust_bundle: {
      auto store = TrustStore::from_trust_bundle(a.payload);
      RAP_ASSERT(store.has_value());  // verify() checked the shape
      trust_ = trust_.succeed(std::move(*store));
      break;
    }
    case ArtifactType::revocation_list: {
      auto r = Revocations::from_payload(a.payload);
      RAP_ASSERT(r.has_value());
      for (const auto& k : revocations_.key_ids) r->key_ids.insert(k);  // sticky
      revocations_ = std::move(*r);
      break;
    }
    case ArtifactType::cluster_snapshot: {
      auto ok = check_snapshot(v, a.payload);
      if (!ok) return ok;
      auto contents = snapshot_contents(a.payload);
      RAP_ASSERT(contents.has_value());
      for (const auto& r : contents->removed) {
        const std::string key = state_key(r.type, r.scope);
        auto it = entries_.find(key);
        if (it != entries_.end() && it->second.removed && it->second.version >= r.version) {
          continue;  // already removed
        }
        AppliedEntry t;
        t.type = r.type;
        t.scope = r.scope;
        t.version = r.version;
        t.epoch = h.epoch;
        t.artifact_id = a.id;
        t.signer_key_id = h.signer_key_id;
        t.issued_at = h.issued_at;
        t.expires_at = h.expires_at;
        t.removed = true;
        put(std::move(t));
        report.removed.push_back(key);
      }
      break;
    }
    default:
      break;
  }
  if (h.type != ArtifactType::snapshot_increment) {
    e.content_hash = h.content_hash;
    e.payload = std::make_shared<const Json>(std::move(a.payload));
  }
  epoch_ = std::max(epoch_, h.epoch);
  put(std::move(e));
  report.changed.push_back(v.state_key);
  return {};
}

Result<void> ConfigState::check_snapshot(const VerifiedArtifact& v, const Json& payload) const {
  auto contents = snapshot_contents(payload);
  if (!contents) return tl::unexpected(contents.error());
  const auto listed = by_key(contents->components);
  const auto removed = by_key(contents->removed);

  // Against the previously applied snapshot of this scope.
  auto prev_it = entries_.find(v.state_key);
  if (prev_it != entries_.end() && !prev_it->second.removed && prev_it->second.payload) {
    auto prev = snapshot_contents(*prev_it->second.payload);
    RAP_ASSERT(prev.has_value());
    for (const auto& pc : prev->components) {
      const std::string key = state_key(pc.type, pc.scope);
      if (auto l = listed.find(key); l != listed.end()) {
        const ComponentRef& c = *l->second;
        if (c.version < pc.version ||
            (c.version == pc.version && c.content_hash != pc.content_hash)) {
          return fail(errc::rollback, key + " listed at version " + std::to_string(c.version) +
                                          " after " + std::to_string(pc.version));
        }
      } else if (auto r = removed.find(key); r != removed.end()) {
        if (r->second->version <= pc.version) {
          return fail(errc::rollback, key + " removal at version " +
                                          std::to_string(r->second->version) + " <= listed " +
                                          std::to_string(pc.version));
        }
      } else {
        return fail(errc::component_dropped,
                    key + " was listed by the previous snapshot and is neither listed nor removed");
      }
    }
  }
  // Against the applied state (after the batch's other artifacts).
  for (const auto& [key, c] : listed) {
    auto it = entries_.find(key);
    const std::string ver = std::to_string(c->version);
    if (it != entries_.end() && it->second.version > c->version) {
      return fail(errc::rollback, detail::cat({key, " listed at version ", ver, " but ",
                                               std::to_string(it->second.version), " is applied"}));
    }
    if (it == entries_.end() || it->second.removed || it->second.version < c->version) {
      if (it != entries_.end() && it->second.removed && it->second.version >= c->version) {
        return fail(errc::rollback,
                    detail::cat({key, " listed at version ", ver, " after its removal"}));
      }
      return fail(errc::missing_component,
                  detail::cat({key, " version ", ver, " is neither applied nor in the batch"}));
    }
    if (it->second.content_hash != c->content_hash) {
      return fail(errc::component_mismatch,
                  detail::cat({key, " version ", ver, " has another content hash"}));
    }
  }
  for (const auto& [key, r] : removed) {
    auto it = entries_.find(key);
    if (it == entries_.end()) continue;
    const AppliedEntry& e = it->second;
    if (e.version > r->version || (!e.removed && e.version == r->version)) {
      return fail(errc::rollback, key + " removal at version " + std::to_string(r->version) +
                                      " is not newer than applied " + std::to_string(e.version));
    }
  }
  return {};
}

std::string ConfigState::serialize() const {
  Json j = Json::object();
  j["format"] = kStateFormat;
  j["cluster"] = cluster_id_;
  j["node"] = Json{
      {"node_id", node_.node_id}, {"org_ids", node_.org_ids}, {"service_ids", node_.service_ids}};
  j["epoch"] = epoch_;
  j["clock_skew"] = clock_skew_.count();
  j["trust"] = trust_.to_payload();
  j["revocations"] = revocations_.to_payload();
  Json entries = Json::array();
  for (const auto& [key, e] : entries_) {
    Json je{{"key", key},
            {"type", std::string(to_string(e.type))},
            {"scope", e.scope.to_json()},
            {"version", e.version},
            {"epoch", e.epoch},
            {"content_hash", e.content_hash},
            {"artifact_id", e.artifact_id},
            {"signer", e.signer_key_id},
            {"issued_at", to_unix_seconds(e.issued_at)},
            {"expires_at", to_unix_seconds(e.expires_at)},
            {"removed", e.removed}};
    if (!e.removed) je["payload"] = *e.payload;
    entries.push_back(std::move(je));
  }
  j["entries"] = std::move(entries);
  auto text = canonical_encode(j, 64);
  RAP_ASSERT(text.has_value());  // every payload was canonical when applied
  return std::move(*text);
}

Result<ConfigState> ConfigState::deserialize(std::string_view bytes, const ParseLimits& limits) {
  auto parsed = parse_strict(bytes, limits);
  if (!parsed) return corrupt(parsed.error().message);
  const Json& j = *parsed;
  auto shape = detail::only_members(
      j, {"clock_skew", "cluster", "entries", "epoch", "format", "node", "revocations", "trust"},
      "state");
  if (!shape) return corrupt(shape.error().message);
  auto format = detail::get_string(j, "format");
  if (!format || *format != kStateFormat) return corrupt("unknown format");
  ConfigState s;
  auto cluster = detail::get_string(j, "cluster");
  if (!cluster || !detail::valid_id(*cluster)) return corrupt("bad cluster");
  s.cluster_id_ = *cluster;
  auto epoch = detail::get_u64(j, "epoch");
  if (!epoch) return corrupt("bad epoch");
  s.epoch_ = *epoch;
  auto skew = detail::get_u64(j, "clock_skew");
  if (!skew || *skew > 86400) return corrupt("bad clock_skew");
  s.clock_skew_ = std::chrono::seconds(static_cast<std::int64_t>(*skew));
  auto node = j.find("node");
  if (node == j.end() || !node->is_object()) return corrupt("bad node");
  auto node_shape = detail::only_members(*node, {"node_id", "org_ids", "service_ids"}, "node");
  if (!node_shape) return corrupt(node_shape.error().message);
  auto node_id = detail::get_string(*node, "node_id");
  if (!node_id) return corrupt("bad node id");
  s.node_.node_id = *node_id;
  for (const char* m : {"org_ids", "service_ids"}) {
    auto it = node->find(m);
    if (it == node->end() || !it->is_array()) return corrupt("bad node ids");
    for (const auto& id : *it) {
      if (!id.is_string()) return corrupt("bad node ids");
      (std::string_view(m) == "org_ids" ? s.node_.org_ids : s.node_.service_ids)
          .insert(id.get<std::string>());
    }
  }
  auto trust_it = j.find("trust");
  if (trust_it == j.end()) return corrupt("no trust");
  auto trust = TrustStore::from_trust_bundle(*trust_it);
  if (!trust) return corrupt(trust.error().message);
  s.trust_ = std::move(*trust);
  auto rev_it = j.find("revocations");
  if (rev_it == j.end()) return corrupt("no revocations");
  auto rev = Revocations::from_payload(*rev_it);
  if (!rev) return corrupt(rev.error().message);
  s.revocations_ = std::move(*rev);

  auto entries = j.find("entries");
  if (entries == j.end() || !entries->is_array()) return corrupt("no entries");
  for (const auto& je : *entries) {
    auto es =
        detail::only_members(je,
                             {"artifact_id", "content_hash", "epoch", "expires_at", "issued_at",
                              "key", "payload", "removed", "scope", "signer", "type", "version"},
                             "entry");
    if (!es) return corrupt(es.error().message);
    AppliedEntry e;
    auto type_name = detail::get_string(je, "type");
    auto type = type_name ? artifact_type_from_string(*type_name) : std::nullopt;
    if (!type || *type == ArtifactType::snapshot_increment) return corrupt("bad entry type");
    e.type = *type;
    auto scope_it = je.find("scope");
    if (scope_it == je.end()) return corrupt("entry without scope");
    auto scope = Scope::from_json(*scope_it);
    if (!scope) return corrupt(scope.error().message);
    e.scope = std::move(*scope);
    auto key = detail::get_string(je, "key");
    if (!key || *key != state_key(e.type, e.scope)) return corrupt("entry key mismatch");
    auto version = detail::get_u64(je, "version");
    auto ep = detail::get_u64(je, "epoch");
    auto issued = detail::get_i64(je, "issued_at");
    auto expires = detail::get_i64(je, "expires_at");
    auto hash = detail::get_string(je, "content_hash");
    auto id = detail::get_string(je, "artifact_id");
    auto signer = detail::get_string(je, "signer");
    auto removed = je.find("removed");
    if (!version || !ep || !issued || !expires || !hash || !id || !signer || removed == je.end() ||
        !removed->is_boolean()) {
      return corrupt("entry field missing or of the wrong type");
    }
    if (*issued < 0 || *issued > kMaxUnixSeconds || *expires < 0 || *expires > kMaxUnixSeconds) {
      return corrupt("entry time out of range");
    }
    e.version = *version;
    e.epoch = *ep;
    e.issued_at = from_unix_seconds(*issued);
    e.expires_at = from_unix_seconds(*expires);
    e.content_hash = *hash;
    e.artifact_id = *id;
    e.signer_key_id = *signer;
    e.removed = removed->get<bool>();
    auto payload = je.find("payload");
    if (e.removed != (payload == je.end())) return corrupt("payload presence differs from removed");
    if (!e.removed) {
      auto check = check_payload_for(e.type, *payload);
      if (!check) return corrupt(check.error().message);
      auto h = content_hash(*payload);
      if (!h || *h != e.content_hash) return corrupt(*key + ": payload does not match its hash");
      e.payload = std::make_shared<const Json>(*payload);
    }
    if (s.entries_.count(*key) != 0) return corrupt("entry listed twice");
    s.put(std::move(e));
  }
  return s;
}

}  // namespace rap::config
