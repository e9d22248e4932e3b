// StateStore: the agent's crash-safe local state for one cluster membership, in its own
// directory (one host may belong to several clusters, each with an isolated identity):
//
//   <dir>/node.key            Ed25519 private key, PKCS#8 PEM, mode 0600, generated here, never
//                             sent
//   <dir>/state.json          {"state": {...}, "signature": hex}  — signed with node.key
//   <dir>/peer_cache.json     {"peer_cache": {...}, "signature": hex}: what the mesh last knew
//                             of its peers (tier, state, RTT, last session), so a restarted
//                             agent ranks peers and nearby storages before any fresh measurement
//   <dir>/route_cache.json    {"route_cache": {...}, "signature": hex}: the routes (signed lease
//                             ids and hops) the node last carried
//   <dir>/pending_update.json {"pending_update": {...}, "signature": hex}: the one staged update
//                             (target version, artifact hash, staged path, state)
//
// Every file's signature covers a per-file domain ("rap-agent-<name>-v1\n") and the canonical
// dump of its record, so a record cannot be moved into another file either.
//
// Writes are atomic (temp file + fsync + rename, via rap::Env). On load the signature is
// checked, so an edited or corrupted state file is refused with a clear message instead of being
// acted on; a key file readable by group/others is refused too. Size is bounded (kMaxStateBytes).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "rap/common/env.h"
#include "rap/common/result.h"
#include "rap/crypto/keys.h"

namespace rap::agent {

inline constexpr std::size_t kMaxStateBytes = 1024 * 1024;

struct MembershipState {
  std::string cluster;                // cluster slug
  std::string control_url;            // https://host:port
  std::string enroll_status = "new";  // new | pending | approved | rejected | revoked
  std::string request_id;
  std::string node_id;
  std::string cert_pem;             // current node certificate
  std::string ca_pem;               // cluster CA (trust bundle)
  std::int64_t cert_not_after = 0;  // unix seconds
  std::int64_t desired_version = 0;
  nlohmann::json roles = nlohmann::json::array();      // last valid desired state
  nlohmann::json workloads = nlohmann::json::array();  // last valid desired state
  // Access grants the control plane revoked for this entry ([{grant, expires_at}], desired state).
  nlohmann::json revoked_grants = nlohmann::json::array();
  std::int64_t last_contact = 0;  // unix seconds of the last success
  std::string partition_state = "healthy";
  std::string last_error;
  std::string profile = "thick";  // thin | thick (thin: no artifact storage)

  nlohmann::json to_json() const;
  static Result<MembershipState> from_json(const nlohmann::json& j);
};

inline constexpr std::size_t kMaxCachedPeers = 1024;
inline constexpr std::size_t kMaxCachedRoutes = 256;
inline constexpr std::size_t kMaxCacheBytes = 1024 * 1024;

struct PeerCacheEntry {
  std::string id;
  std::string endpoint;  // fabric endpoint ("" = it dials us)
  std::vector<std::string> roles;
  std::string tier;                 // active | warm | cold
  std::string state;                // connected | dialing | waiting | ...
  double rtt_ms = -1;               // last measured (-1 = never)
  std::int64_t last_connected = 0;  // unix seconds of the last time a session was up (0 = never)
  bool operator==(const PeerCacheEntry&) const = default;
};

struct PeerCache {
  std::int64_t updated = 0;                  // unix seconds
  std::uint64_t peer_directory_version = 0;  // of the applied peer_directory it was built on
  std::vector<PeerCacheEntry> peers;         // at most kMaxCachedPeers, sorted by id
  nlohmann::json to_json() const;
  static Result<PeerCache> from_json(const nlohmann::json& j);
  // RTT per peer id of the entries that have one.
  std::map<std::string, double> rtts() const;
};

struct RouteCacheEntry {
  std::string route;  // signed route lease id
  std::vector<std::string> hops;
  std::string role;  // primary | alternate
  std::string side;  // entry | exit | relay
  std::int64_t last_seen = 0;
  bool operator==(const RouteCacheEntry&) const = default;
};

struct RouteCache {
  std::int64_t updated = 0;
  std::vector<RouteCacheEntry> routes;  // at most kMaxCachedRoutes, sorted by route id
  nlohmann::json to_json() const;
  static Result<RouteCache> from_json(const nlohmann::json& j);
};

// The one update an agent has staged (update_manifest work fills it; the agent shows it).
struct PendingUpdate {
  std::string target_version;  // 1..64 printable bytes
  std::string artifact_hash;   // SHA-256, 64 lower-case hex digits
  std::string staged_path;     // absolute path of the staged artifact, no ".."
  std::string state;           // staged | verified | applying | applied | failed | rolled_back
  std::int64_t updated_at = 0;
  std::string error;  // why it failed (printable, at most 300 bytes)
  nlohmann::json to_json() const;
  static Result<PendingUpdate> from_json(const nlohmann::json& j);
};

class StateStore {
 public:
  StateStore(Env& env, std::string dir) : env_(env), dir_(std::move(dir)) {}

  const std::string& dir() const { return dir_; }
  std::string key_path() const { return dir_ + "/node.key"; }
  std::string state_path() const { return dir_ + "/state.json"; }

  // Loads node.key, or generates and stores it (0600) when absent. Errors: "key_permissions"
  // (group/other bits set), "bad_key" (unparseable), I/O errors.
  Result<crypto::Ed25519Key> load_or_create_key();
  // nullopt when there is no state yet. Errors: "state_tampered" (signature mismatch),
  // "state_corrupt" (not JSON / wrong shape), "state_too_large".
  Result<std::optional<MembershipState>> load(const crypto::Ed25519Key& key);
  Result<void> save(const MembershipState& state, const crypto::Ed25519Key& key);

  // The caches and the pending update slot: nullopt when absent; the same errors as load() (a
  // tampered or corrupt file is refused, its message names the file); save() refuses records
  // beyond their bounds ("state_too_large") or with invalid fields ("state_corrupt").
  std::string peer_cache_path() const { return dir_ + "/peer_cache.json"; }
  std::string route_cache_path() const { return dir_ + "/route_cache.json"; }
  std::string pending_update_path() const { return dir_ + "/pending_update.json"; }
  Result<std::optional<PeerCache>> load_peer_cache(const crypto::Ed25519Key& key);
  Result<void> save_peer_cache(const PeerCache& cache, const crypto::Ed25519Key& key);
  Result<std::optional<RouteCache>> load_route_cache(const crypto::Ed25519Key& key);
  Result<void> save_route_cache(const RouteCache& cache, const crypto::Ed25519Key& key);
  Result<std::optional<PendingUpdate>> load_pending_update(const crypto::Ed25519Key& key);
  Result<void> save_pending_update(const PendingUpdate& update, const crypto::Ed25519Key& key);
  Result<void> clear_pending_update(const crypto::Ed25519Key& key);

  // {"peer_cache": {...summary}|{"error"}, "route_cache": ..., "pending_update": ...} for status.
  nlohmann::json caches_status(const crypto::Ed25519Key& key);

 private:
  // One signed record file: {"<name>": record, "signature": hex}.
  Result<std::optional<nlohmann::json>> read_signed(const std::string& path,
                                                    const std::string& name,
                                                    const crypto::Ed25519Key& key);
  Result<void> write_signed(const std::string& path, const std::string& name,
                            const nlohmann::json& record, const crypto::Ed25519Key& key);

  Env& env_;
  std::string dir_;
};

}  // namespace rap::agent
