#include "rap/agent/state_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <set>

namespace rap::agent {

using json = nlohmann::json;

namespace {

std::string hex(std::span<const std::uint8_t> b) {
  static const char* d = "0123456789abcdef";
  std::string out;
  out.reserve(b.size() * 2);
  for (auto c : b) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

bool unhex(const std::string& s, std::span<std::uint8_t> out) {
  if (s.size() != out.size() * 2) return false;
  auto v = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = v(s[2 * i]);
    const int lo = v(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return true;
}

std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// What is signed: a per-file domain-separation prefix and the canonical (sorted-key) dump of
// the record ("rap-agent-state-v1\n" + state for state.json).
std::string signed_message(const std::string& name, const json& record) {
  return "rap-agent-" + name + "-v1\n" + record.dump();
}

bool printable(const std::string& s, std::size_t max) {
  return s.size() <= max &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

bool is_hex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// The record member of a cache file, or "state_corrupt" naming what is wrong.
template <class T, class F>
Result<T> parse_record(const char* what, F&& f) {
  try {
    return f();
  } catch (const json::exception& e) {
    return fail("state_corrupt", std::string(what) + " has the wrong shape: " + e.what());
  }
}

// A JSON array of at most `max` printable strings.
bool strings(const json& j, std::size_t max, std::vector<std::string>& out) {
  if (!j.is_array() || j.size() > max) return false;
  for (const auto& e : j) {
    out.push_back(e.get<std::string>());
    if (out.back().empty() || !printable(out.back(), 128)) return false;
  }
  return true;
}

}  // namespace

json MembershipState::to_json() const {
  return json{{"cluster", cluster},
              {"control_url", control_url},
              {"enroll_status", enroll_status},
              {"request_id", request_id},
              {"node_id", node_id},
              {"cert_pem", cert_pem},
              {"ca_pem", ca_pem},
              {"cert_not_after", cert_not_after},
              {"desired_version", desired_version},
              {"roles", roles},
              {"workloads", workloads},
              {"revoked_grants", revoked_grants},
              {"last_contact", last_contact},
              {"partition_state", partition_state},
              {"last_error", last_error},
              {"profile", profile}};
}

Result<MembershipState> MembershipState::from_json(const json& j) {
  if (!j.is_object()) return fail("state_corrupt", "state is not a JSON object");
  MembershipState s;
  try {
    s.cluster = j.at("cluster").get<std::string>();
    s.control_url = j.at("control_url").get<std::string>();
    s.enroll_status = j.at("enroll_status").get<std::string>();
    s.request_id = j.at("request_id").get<std::string>();
    s.node_id = j.at("node_id").get<std::string>();
    s.cert_pem = j.at("cert_pem").get<std::string>();
    s.ca_pem = j.at("ca_pem").get<std::string>();
    s.cert_not_after = j.at("cert_not_after").get<std::int64_t>();
    s.desired_version = j.at("desired_version").get<std::int64_t>();
    s.roles = j.at("roles");
    s.workloads = j.at("workloads");
    s.revoked_grants = j.value("revoked_grants", json::array());
    s.last_contact = j.at("last_contact").get<std::int64_t>();
    s.partition_state = j.at("partition_state").get<std::string>();
    s.last_error = j.at("last_error").get<std::string>();
    s.profile = j.value("profile", std::string("thick"));
  } catch (const json::exception& e) {
    return fail("state_corrupt", std::string("state has the wrong shape: ") + e.what());
  }
  if (!s.roles.is_array() || !s.workloads.is_array() || !s.revoked_grants.is_array()) {
    return fail("state_corrupt", "roles, workloads and revoked_grants must be arrays");
  }
  return s;
}

Result<crypto::Ed25519Key> StateStore::load_or_create_key() {
  if (auto d = env_.make_dirs(dir_, 0700); !d) return tl::unexpected(d.error());
  const std::string path = key_path();
  if (!env_.exists(path)) {
    auto k = crypto::Ed25519Key::generate();
    if (!k) return k;
    if (auto w = env_.write_file_atomic(path, k->private_pem(), 0600); !w) {
      return tl::unexpected(w.error());
    }
    spdlog::info("generated node key {} (public {})", path,
                 crypto::sha256_hex(k->public_key()).substr(0, 16));
    return k;
  }
  auto mode = env_.file_mode(path);
  if (!mode) return tl::unexpected(mode.error());
  if ((*mode & 077) != 0) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04o", *mode & 07777u);
    return fail("key_permissions", "key file " + path + " has mode " + buf +
                                       "; it must be readable by its owner only (chmod 600 " +
                                       path + ")");
  }
  auto pem = env_.read_file(path);
  if (!pem) return tl::unexpected(pem.error());
  auto k = crypto::Ed25519Key::from_pem(*pem);
  if (!k) return fail("bad_key", "key file " + path + " is not an Ed25519 private key");
  return k;
}

Result<std::optional<json>> StateStore::read_signed(const std::string& path,
                                                    const std::string& name,
                                                    const crypto::Ed25519Key& key) {
  if (!env_.exists(path)) return std::optional<json>();
  auto text = env_.read_file(path);
  if (!text) return tl::unexpected(text.error());
  if (text->size() > kMaxStateBytes) {
    return fail("state_too_large", path + " is larger than " + std::to_string(kMaxStateBytes));
  }
  json doc = json::parse(*text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains(name) || !doc.contains("signature") ||
      !doc["signature"].is_string()) {
    return fail("state_corrupt", path + " is not a signed agent " + name + " file");
  }
  crypto::Signature sig{};
  const std::string msg = signed_message(name, doc[name]);
  if (!unhex(doc["signature"].get<std::string>(), sig) ||
      !crypto::verify_ed25519(key.public_key(), bytes(msg), sig)) {
    return fail("state_tampered", path +
                                      " does not carry a valid signature of this node's key: "
                                      "it was modified outside the agent; refusing to use it");
  }
  return std::optional<json>(std::move(doc[name]));
}

Result<void> StateStore::write_signed(const std::string& path, const std::string& name,
                                      const json& record, const crypto::Ed25519Key& key) {
  const auto sig = key.sign(bytes(signed_message(name, record)));
  const std::string text = json{{name, record}, {"signature", hex(sig)}}.dump(2);
  if (text.size() > kMaxStateBytes) {
    return fail("state_too_large",
                "agent " + name + " would exceed " + std::to_string(kMaxStateBytes) + " bytes");
  }
  return env_.write_file_atomic(path, text, 0600);
}

Result<std::optional<MembershipState>> StateStore::load(const crypto::Ed25519Key& key) {
  auto rec = read_signed(state_path(), "state", key);
  if (!rec) {
    if (rec.error().code == "state_tampered") {
      return fail(rec.error().code, rec.error().message + " (move it away to re-enroll)");
    }
    return tl::unexpected(rec.error());
  }
  if (!*rec) return std::optional<MembershipState>();
  auto st = MembershipState::from_json(**rec);
  if (!st) return tl::unexpected(st.error());
  return std::optional<MembershipState>(std::move(*st));
}

Result<void> StateStore::save(const MembershipState& state, const crypto::Ed25519Key& key) {
  return write_signed(state_path(), "state", state.to_json(), key);
}

// ---- caches and the pending update slot ----

json PeerCache::to_json() const {
  json arr = json::array();
  for (const auto& p : peers) {
    arr.push_back({{"id", p.id},
                   {"endpoint", p.endpoint},
                   {"roles", p.roles},
                   {"tier", p.tier},
                   {"state", p.state},
                   {"rtt_ms", p.rtt_ms},
                   {"last_connected", p.last_connected}});
  }
  return json{
      {"updated", updated}, {"peer_directory_version", peer_directory_version}, {"peers", arr}};
}

Result<PeerCache> PeerCache::from_json(const json& j) {
  return parse_record<PeerCache>("peer cache", [&]() -> Result<PeerCache> {
    PeerCache c;
    c.updated = j.at("updated").get<std::int64_t>();
    c.peer_directory_version = j.at("peer_directory_version").get<std::uint64_t>();
    const auto& arr = j.at("peers");
    if (!arr.is_array() || arr.size() > kMaxCachedPeers) {
      return fail("state_corrupt",
                  "peer cache holds more than " + std::to_string(kMaxCachedPeers) + " peers");
    }
    for (const auto& e : arr) {
      PeerCacheEntry p;
      p.id = e.at("id").get<std::string>();
      p.endpoint = e.at("endpoint").get<std::string>();
      if (!strings(e.at("roles"), 16, p.roles)) {
        return fail("state_corrupt", "peer cache entry has invalid roles");
      }
      p.tier = e.at("tier").get<std::string>();
      p.state = e.at("state").get<std::string>();
      p.rtt_ms = e.at("rtt_ms").get<double>();
      p.last_connected = e.at("last_connected").get<std::int64_t>();
      if (p.id.empty() || !printable(p.id, 128) || !printable(p.endpoint, 255) ||
          !printable(p.tier, 16) || !printable(p.state, 32)) {
        return fail("state_corrupt", "peer cache entry has invalid fields");
      }
      c.peers.push_back(std::move(p));
    }
    return c;
  });
}

std::map<std::string, double> PeerCache::rtts() const {
  std::map<std::string, double> out;
  for (const auto& p : peers) {
    if (p.rtt_ms >= 0) out[p.id] = p.rtt_ms;
  }
  return out;
}

json RouteCache::to_json() const {
  json arr = json::array();
  for (const auto& r : routes) {
    arr.push_back({{"route", r.route},
                   {"hops", r.hops},
                   {"role", r.role},
                   {"side", r.side},
                   {"last_seen", r.last_seen}});
  }
  return json{{"updated", updated}, {"routes", arr}};
}

Result<RouteCache> RouteCache::from_json(const json& j) {
  return parse_record<RouteCache>("route cache", [&]() -> Result<RouteCache> {
    RouteCache c;
    c.updated = j.at("updated").get<std::int64_t>();
    const auto& arr = j.at("routes");
    if (!arr.is_array() || arr.size() > kMaxCachedRoutes) {
      return fail("state_corrupt",
                  "route cache holds more than " + std::to_string(kMaxCachedRoutes) + " routes");
    }
    for (const auto& e : arr) {
      RouteCacheEntry r;
      r.route = e.at("route").get<std::string>();
      if (!strings(e.at("hops"), 16, r.hops)) {
        return fail("state_corrupt", "route cache entry has invalid hops");
      }
      r.role = e.at("role").get<std::string>();
      r.side = e.at("side").get<std::string>();
      r.last_seen = e.at("last_seen").get<std::int64_t>();
      if (r.route.empty() || !printable(r.route, 128) || !printable(r.role, 16) ||
          !printable(r.side, 16)) {
        return fail("state_corrupt", "route cache entry has invalid fields");
      }
      c.routes.push_back(std::move(r));
    }
    return c;
  });
}

json PendingUpdate::to_json() const {
  return json{{"target_version", target_version}, {"artifact_hash", artifact_hash},
              {"staged_path", staged_path},       {"state", state},
              {"updated_at", updated_at},         {"error", error}};
}

Result<PendingUpdate> PendingUpdate::from_json(const json& j) {
  static const std::set<std::string> kStates = {"staged",  "verified", "applying",
                                                "applied", "failed",   "rolled_back"};
  return parse_record<PendingUpdate>("pending update", [&]() -> Result<PendingUpdate> {
    PendingUpdate u;
    u.target_version = j.at("target_version").get<std::string>();
    u.artifact_hash = j.at("artifact_hash").get<std::string>();
    u.staged_path = j.at("staged_path").get<std::string>();
    u.state = j.at("state").get<std::string>();
    u.updated_at = j.at("updated_at").get<std::int64_t>();
    u.error = j.at("error").get<std::string>();
    if (u.target_version.empty() || !printable(u.target_version, 64)) {
      return fail("state_corrupt", "pending update: target_version must be 1..64 printable bytes");
    }
    if (!is_hex64(u.artifact_hash)) {
      return fail("state_corrupt", "pending update: artifact_hash must be a SHA-256 hex digest");
    }
    if (u.staged_path.empty() || u.staged_path.front() != '/' || !printable(u.staged_path, 4096) ||
        u.staged_path.find("/../") != std::string::npos || u.staged_path.ends_with("/..")) {
      return fail("state_corrupt", "pending update: staged_path must be an absolute path");
    }
    if (!kStates.contains(u.state)) {
      return fail("state_corrupt", "pending update: unknown state '" + u.state + "'");
    }
    if (!printable(u.error, 300)) return fail("state_corrupt", "pending update: bad error text");
    return u;
  });
}

namespace {

template <class T>
Result<std::optional<T>> decode(Result<std::optional<json>> rec) {
  if (!rec) return tl::unexpected(rec.error());
  if (!*rec || (*rec)->is_null()) return std::optional<T>();  // absent, or an emptied slot
  auto v = T::from_json(**rec);
  if (!v) return tl::unexpected(v.error());
  return std::optional<T>(std::move(*v));
}

// A record is checked on save as on load, so nothing written can be refused later.
template <class T>
Result<json> encode(const T& record) {
  json j = record.to_json();
  if (auto back = T::from_json(j); !back) return tl::unexpected(back.error());
  return j;
}

}  // namespace

Result<std::optional<PeerCache>> StateStore::load_peer_cache(const crypto::Ed25519Key& key) {
  return decode<PeerCache>(read_signed(peer_cache_path(), "peer_cache", key));
}

Result<void> StateStore::save_peer_cache(const PeerCache& cache, const crypto::Ed25519Key& key) {
  auto j = encode(cache);
  if (!j) return tl::unexpected(j.error());
  return write_signed(peer_cache_path(), "peer_cache", *j, key);
}

Result<std::optional<RouteCache>> StateStore::load_route_cache(const crypto::Ed25519Key& key) {
  return decode<RouteCache>(read_signed(route_cache_path(), "route_cache", key));
}

Result<void> StateStore::save_route_cache(const RouteCache& cache, const crypto::Ed25519Key& key) {
  auto j = encode(cache);
  if (!j) return tl::unexpected(j.error());
  return write_signed(route_cache_path(), "route_cache", *j, key);
}

Result<std::optional<PendingUpdate>> StateStore::load_pending_update(
    const crypto::Ed25519Key& key) {
  return decode<PendingUpdate>(read_signed(pending_update_path(), "pending_update", key));
}

Result<void> StateStore::save_pending_update(const PendingUpdate& update,
                                             const crypto::Ed25519Key& key) {
  auto j = encode(update);
  if (!j) return tl::unexpected(j.error());
  return write_signed(pending_update_path(), "pending_update", *j, key);
}

Result<void> StateStore::clear_pending_update(const crypto::Ed25519Key& key) {
  // An emptied slot is a signed null record (written atomically like any other).
  return write_signed(pending_update_path(), "pending_update", json(nullptr), key);
}

json StateStore::caches_status(const crypto::Ed25519Key& key) {
  json out = json::object();
  if (auto pc = load_peer_cache(key); !pc) {
    out["peer_cache"] = {{"error", pc.error().message}};
  } else if (*pc) {
    std::size_t connected = 0;
    for (const auto& p : (*pc)->peers) connected += p.state == "connected" ? 1 : 0;
    out["peer_cache"] = {{"updated", (*pc)->updated},
                         {"peers", (*pc)->peers.size()},
                         {"connected", connected},
                         {"peer_directory_version", (*pc)->peer_directory_version}};
  }
  if (auto rc = load_route_cache(key); !rc) {
    out["route_cache"] = {{"error", rc.error().message}};
  } else if (*rc) {
    out["route_cache"] = {{"updated", (*rc)->updated}, {"routes", (*rc)->routes.size()}};
  }
  if (auto pu = load_pending_update(key); !pu) {
    out["pending_update"] = {{"error", pu.error().message}};
  } else if (*pu) {
    out["pending_update"] = (*pu)->to_json();
  }
  return out;
}

}  // namespace rap::agent
