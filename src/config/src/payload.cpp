#include "rap/config/payload.h"

#include <algorithm>
#include <map>
#include <set>

#include "internal.h"
#include "rap/config/trust.h"

namespace rap::config {

using detail::malformed;

namespace {

constexpr std::size_t kMaxFieldName = 128;

bool valid_field_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxFieldName && name.find('/') == std::string_view::npos;
}

// The id of a collection element, or nullptr when the element has none.
const std::string* element_id(const Json& element) {
  if (!element.is_object()) return nullptr;
  auto it = element.find("id");
  if (it == element.end() || !it->is_string()) return nullptr;
  const auto* s = it->get_ptr<const std::string*>();
  return s->empty() ? nullptr : s;
}

Result<void> check_collection(const std::string& name, const Json& array) {
  const std::string* prev = nullptr;
  for (const auto& element : array) {
    const std::string* id = element_id(element);
    if (id == nullptr) {
      return malformed("collection \"" + name + "\": element without a non-empty string id");
    }
    if (prev != nullptr) {
      if (*prev == *id) {
        return fail(errc::duplicate_entry,
                    "collection \"" + name + "\" lists id \"" + id->substr(0, 64) + "\" twice");
      }
      if (*id < *prev) return malformed("collection \"" + name + "\" is not sorted by id");
    }
    prev = id;
  }
  return {};
}

tl::unexpected<Error> mismatch(std::string message) {
  return fail(errc::increment_mismatch, std::move(message));
}

Result<ComponentRef> component_from_json(const Json& e, bool removal) {
  auto shape = removal ? detail::only_members(e, {"id", "scope", "type", "version"}, "removal")
                       : detail::only_members(e, {"content_hash", "id", "scope", "type", "version"},
                                              "component");
  if (!shape) return tl::unexpected(shape.error());
  ComponentRef c;
  auto type_name = detail::get_string(e, "type");
  if (!type_name) return tl::unexpected(type_name.error());
  auto type = artifact_type_from_string(*type_name);
  if (!type || *type == ArtifactType::snapshot_increment ||
      *type == ArtifactType::cluster_snapshot) {
    return malformed("component type must be a full artifact type other than cluster_snapshot");
  }
  c.type = *type;
  auto scope_it = e.find("scope");
  if (scope_it == e.end()) return malformed("component scope missing");
  auto scope = Scope::from_json(*scope_it);
  if (!scope) return tl::unexpected(scope.error());
  c.scope = std::move(*scope);
  auto version = detail::get_u64(e, "version");
  if (!version) return tl::unexpected(version.error());
  if (*version == 0) return malformed("component version must be >= 1");
  c.version = *version;
  if (!removal) {
    auto hash = detail::get_string(e, "content_hash");
    if (!hash) return tl::unexpected(hash.error());
    if (!detail::is_hex(*hash, 64)) return malformed("component content hash is not hex");
    c.content_hash = std::move(*hash);
  }
  if (e.at("id").get<std::string>() != state_key(c.type, c.scope)) {
    return malformed("component id must be \"<type>@<scope key>\"");
  }
  return c;
}

struct Op {
  std::string field;  // top-level member
  std::string key;    // element id (element ops only)
  std::string op;
  const Json* value = nullptr;
};

Result<std::vector<Op>> parse_ops(const Json& increment) {
  std::vector<Op> ops;
  const auto& arr = increment.at("ops");
  ops.reserve(arr.size());
  for (const auto& e : arr) {
    auto shape = detail::only_members(e, {"id", "op", "value"}, "increment op");
    if (!shape) return tl::unexpected(shape.error());
    auto op_name = detail::get_string(e, "op");
    if (!op_name) return tl::unexpected(op_name.error());
    Op op;
    op.op = *op_name;
    const auto& id = e.at("id").get_ref<const std::string&>();
    const auto slash = id.find('/');
    const bool element_op = op.op == "upsert" || op.op == "remove";
    const bool field_op = op.op == "set" || op.op == "unset";
    if (!element_op && !field_op) return malformed("unknown increment op \"" + op.op + "\"");
    if (element_op) {
      if (slash == std::string::npos) return malformed("element op id is \"<collection>/<key>\"");
      op.field = id.substr(0, slash);
      op.key = id.substr(slash + 1);
      if (op.key.empty()) return malformed("element op with an empty key");
    } else {
      if (slash != std::string::npos) return malformed("field op id names a top-level member");
      op.field = id;
    }
    if (!valid_field_name(op.field)) return malformed("invalid member name in increment op");
    auto v = e.find("value");
    const bool needs_value = op.op == "upsert" || op.op == "set";
    if (needs_value != (v != e.end())) return malformed("increment op value present/missing");
    if (needs_value) op.value = &*v;
    if (op.op == "upsert") {
      const std::string* vid = element_id(*op.value);
      if (vid == nullptr || *vid != op.key)
        return malformed("upsert value id differs from its key");
    }
    ops.push_back(std::move(op));
  }
  return ops;
}

Result<void> check_increment_shape(const Json& p) {
  auto generic = check_payload(p);
  if (!generic) return generic;
  auto shape = detail::only_members(p, {"ops", "result_hash", "target_type"}, "increment");
  if (!shape) return shape;
  auto target = increment_target(p);
  if (!target) return tl::unexpected(target.error());
  auto hash = detail::get_string(p, "result_hash");
  if (!hash) return tl::unexpected(hash.error());
  if (!detail::is_hex(*hash, 64)) return malformed("result_hash is not 64 hex digits");
  auto ops_it = p.find("ops");
  if (ops_it == p.end() || !ops_it->is_array()) return malformed("increment ops missing");
  auto ops = parse_ops(p);
  if (!ops) return tl::unexpected(ops.error());
  return {};
}

}  // namespace

Result<void> check_payload(const Json& payload) {
  if (!payload.is_object()) return malformed("payload is not a JSON object");
  for (const auto& [name, value] : payload.items()) {
    if (!valid_field_name(name)) return malformed("invalid payload member name");
    if (value.is_array()) {
      auto ok = check_collection(name, value);
      if (!ok) return ok;
    }
  }
  return {};
}

Result<Json> normalize_payload(Json payload) {
  if (!payload.is_object()) return malformed("payload is not a JSON object");
  for (auto& [name, value] : payload.items()) {
    if (!value.is_array()) continue;
    for (const auto& element : value) {
      if (element_id(element) == nullptr) {
        return malformed("collection \"" + name + "\": element without a string id");
      }
    }
    std::stable_sort(value.begin(), value.end(),
                     [](const Json& a, const Json& b) { return *element_id(a) < *element_id(b); });
  }
  auto ok = check_payload(payload);
  if (!ok) return tl::unexpected(ok.error());
  return payload;
}

Result<void> check_payload_for(ArtifactType type, const Json& payload) {
  auto ok = check_payload(payload);
  if (!ok) return ok;
  switch (type) {
    case ArtifactType::trust_bundle: {
      auto store = TrustStore::from_trust_bundle(payload);
      if (!store) return tl::unexpected(store.error());
      return {};
    }
    case ArtifactType::revocation_list: {
      auto r = Revocations::from_payload(payload);
      if (!r) return tl::unexpected(r.error());
      return {};
    }
    case ArtifactType::cluster_snapshot: {
      auto c = snapshot_contents(payload);
      if (!c) return tl::unexpected(c.error());
      return {};
    }
    case ArtifactType::snapshot_increment:
      return check_increment_shape(payload);
    default:
      return {};
  }
}

Result<std::string> content_hash(const Json& payload, std::size_t max_depth) {
  auto text = canonical_encode(payload, max_depth);
  if (!text) return tl::unexpected(text.error());
  return sha256_hex(*text);
}

Json ComponentRef::to_json() const {
  Json j{{"id", state_key(type, scope)},
         {"scope", scope.to_json()},
         {"type", std::string(to_string(type))},
         {"version", version}};
  if (!content_hash.empty()) j["content_hash"] = content_hash;
  return j;
}

Result<SnapshotContents> snapshot_contents(const Json& payload) {
  auto generic = check_payload(payload);
  if (!generic) return tl::unexpected(generic.error());
  SnapshotContents out;
  std::set<std::string> seen;
  for (const char* member : {"components", "removed"}) {
    auto it = payload.find(member);
    if (it == payload.end()) {
      if (std::string_view(member) == "components") return malformed("snapshot has no components");
      continue;
    }
    if (!it->is_array()) return malformed(std::string(member) + " is not an array");
    const bool removal = std::string_view(member) == "removed";
    for (const auto& e : *it) {
      auto c = component_from_json(e, removal);
      if (!c) return tl::unexpected(c.error());
      if (!seen.insert(state_key(c->type, c->scope)).second) {
        return fail(errc::duplicate_entry, "component both listed and removed");
      }
      (removal ? out.removed : out.components).push_back(std::move(*c));
    }
  }
  return out;
}

Json make_snapshot_payload(const std::vector<ComponentRef>& components,
                           const std::vector<ComponentRef>& removed) {
  Json p = Json::object();
  p["components"] = Json::array();
  for (const auto& c : components) p["components"].push_back(c.to_json());
  if (!removed.empty()) {
    p["removed"] = Json::array();
    for (const auto& c : removed) {
      ComponentRef r = c;
      r.content_hash.clear();
      p["removed"].push_back(r.to_json());
    }
  }
  auto normalized = normalize_payload(std::move(p));
  RAP_ASSERT(normalized.has_value());
  return std::move(*normalized);
}

Result<ArtifactType> increment_target(const Json& increment) {
  auto name = detail::get_string(increment, "target_type");
  if (!name) return tl::unexpected(name.error());
  auto type = artifact_type_from_string(*name);
  if (!type || *type == ArtifactType::snapshot_increment) {
    return malformed("increment target_type must be a full artifact type");
  }
  return *type;
}

Result<Json> make_increment_payload(ArtifactType target, const Json& from, const Json& to) {
  if (target == ArtifactType::snapshot_increment) return malformed("increment of an increment");
  auto ok_from = check_payload(from);
  if (!ok_from) return tl::unexpected(ok_from.error());
  auto ok_to = check_payload(to);
  if (!ok_to) return tl::unexpected(ok_to.error());
  auto result_hash = content_hash(to);
  if (!result_hash) return tl::unexpected(result_hash.error());

  Json ops = Json::array();
  auto field_op = [&](const std::string& name, const Json* value) {
    Json op{{"id", name}, {"op", value != nullptr ? "set" : "unset"}};
    if (value != nullptr) op["value"] = *value;
    ops.push_back(std::move(op));
  };
  std::set<std::string> names;
  for (const auto& [k, v] : from.items()) names.insert(k);
  for (const auto& [k, v] : to.items()) names.insert(k);
  for (const auto& name : names) {
    auto a = from.find(name);
    auto b = to.find(name);
    if (b == to.end()) {
      field_op(name, nullptr);
      continue;
    }
    if (a == from.end() || !a->is_array() || !b->is_array()) {
      if (a == from.end() || *a != *b) field_op(name, &*b);
      continue;
    }
    // Both keyed collections, sorted by id: merge.
    std::size_t i = 0;
    std::size_t j = 0;
    while (i < a->size() || j < b->size()) {
      const std::string* ia = i < a->size() ? element_id((*a)[i]) : nullptr;
      const std::string* jb = j < b->size() ? element_id((*b)[j]) : nullptr;
      if (jb == nullptr || (ia != nullptr && *ia < *jb)) {
        ops.push_back(Json{{"id", name + "/" + *ia}, {"op", "remove"}});
        ++i;
      } else if (ia == nullptr || *jb < *ia) {
        ops.push_back(Json{{"id", name + "/" + *jb}, {"op", "upsert"}, {"value", (*b)[j]}});
        ++j;
      } else {
        if ((*a)[i] != (*b)[j]) {
          ops.push_back(Json{{"id", name + "/" + *jb}, {"op", "upsert"}, {"value", (*b)[j]}});
        }
        ++i;
        ++j;
      }
    }
  }
  Json inc = Json::object();
  inc["ops"] = std::move(ops);
  inc["result_hash"] = *result_hash;
  inc["target_type"] = std::string(to_string(target));
  return normalize_payload(std::move(inc));
}

Result<Json> apply_increment_payload(const Json& base, const Json& increment) {
  auto shape = check_increment_shape(increment);
  if (!shape) return tl::unexpected(shape.error());
  auto ops = parse_ops(increment);
  if (!ops) return tl::unexpected(ops.error());
  if (!base.is_object()) return mismatch("increment base is not an object");
  Json result = base;
  // Field ops first.
  for (const auto& op : *ops) {
    if (op.op == "set") {
      result[op.field] = *op.value;
    } else if (op.op == "unset") {
      if (result.erase(op.field) == 0) return mismatch("unset of a missing member " + op.field);
    }
  }
  auto sorted = check_payload(result);
  if (!sorted) return mismatch("payload after field ops breaks the collection rule");
  // Then element ops, each on a sorted collection.
  for (const auto& op : *ops) {
    if (op.op != "upsert" && op.op != "remove") continue;
    auto it = result.find(op.field);
    if (it == result.end()) {
      if (op.op == "remove") return mismatch("remove from a missing collection " + op.field);
      it = result.emplace(op.field, Json::array()).first;
    }
    if (!it->is_array()) return mismatch("element op on a member that is not a collection");
    auto& arr = *it;
    auto pos = std::lower_bound(arr.begin(), arr.end(), op.key,
                                [](const Json& e, const auto& k) { return *element_id(e) < k; });
    const bool found = pos != arr.end() && *element_id(*pos) == op.key;
    if (op.op == "remove") {
      if (!found) return mismatch("remove of a missing element " + op.field + "/" + op.key);
      arr.erase(pos);
    } else if (found) {
      *pos = *op.value;
    } else {
      arr.insert(pos, *op.value);
    }
  }
  auto ok = check_payload(result);
  if (!ok) return mismatch("increment result breaks the collection rule");
  auto hash = content_hash(result);
  if (!hash) return mismatch("increment result is not encodable");
  if (*hash != increment.at("result_hash").get_ref<const std::string&>()) {
    return mismatch("increment result does not match its result_hash");
  }
  return result;
}

}  // namespace rap::config
