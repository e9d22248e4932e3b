// NodeHotState: the per-instance, in-memory state of the node hot path (heartbeats and
// desired-state polls), owned by Api. Nothing here is durable or authoritative: every entry is
// a cache of PostgreSQL, bounded in size and age, and can be dropped at any time.
//
//  * Verified certificates: certificate PEM -> its parsed identity and the CA PEM it chained to
//    (a pure function of the two PEMs; up to 5 min).
//  * Node authentication rows: certificate serial -> the node/certificate/CA row the mTLS
//    lookup reads (status, revocation, expiry, desired_state_version). Fresh for `auth_ttl`
//    (default 2 s) and dropped at once when this or another rap-control instance changes the
//    node (invalidate_node, fed by the "node.changed" notification), so revocation and new
//    desired state reach the node within the notification delay, bounded by auth_ttl if a
//    notification is lost.
//  * Last durable heartbeat write per node (the write throttle of ApiOptions).
//  * Presence: nodes seen since the last flush, written to LiveState (Redis) in one batch per
//    second by Api's presence flusher.
//  * Access sessions: the open sessions entries reported (heartbeat access.active) since the
//    last flush, per organization, written to LiveState by the same flusher.
//
// Thread-safe. No I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "rap/crypto/certs.h"

namespace rap::control::detail {

// The row the mTLS node lookup reads (routes_node.cpp).
struct NodeAuthRow {
  std::string ca_pem, node_id, cluster_id, node_status, public_key;
  bool cert_revoked = false;
  std::int64_t cert_not_after = 0;  // unix seconds
  std::int64_t desired_state_version = 0;
  std::int64_t config_generation = 0;  // cluster_authority.config_generation
};

struct NodeHotCounters {
  std::uint64_t auth_hits = 0, auth_misses = 0, invalidations = 0;
  std::uint64_t heartbeats_memory = 0, heartbeats_db = 0;
  std::uint64_t presence_written = 0, presence_errors = 0;
};

class NodeHotState {
 public:
  using Steady = std::chrono::steady_clock;
  static constexpr std::size_t kMaxEntries = 200000;

  explicit NodeHotState(std::chrono::milliseconds auth_ttl = std::chrono::seconds(2))
      : auth_ttl_(auth_ttl) {}

  // --- verified certificates ---
  struct VerifiedCert {
    crypto::NodeIdentity id;
    std::string ca_pem;
  };
  std::optional<VerifiedCert> find_cert(const std::string& pem, Steady::time_point now);
  void store_cert(const std::string& pem, VerifiedCert v, Steady::time_point now);

  // --- node authentication rows ---
  // The row of `serial` if it was read less than auth_ttl ago and not invalidated since.
  std::optional<NodeAuthRow> find_auth(std::int64_t serial, Steady::time_point now);
  // Stores a row read from PostgreSQL at `read_at` unless the node was invalidated after
  // `read_at` (a concurrent change must not be overwritten by an older read).
  void store_auth(std::int64_t serial, NodeAuthRow row, Steady::time_point read_at);
  void invalidate_node(const std::string& node_id, Steady::time_point now);
  void invalidate_all(Steady::time_point now);

  // --- heartbeat write throttle ---
  // True if `durable` equals the last written durable state of the node and that write is
  // younger than the node's share of `interval`: a fixed fraction between 1/2 and 1 per node
  // (so that nodes started together spread their writes).
  bool write_is_fresh(const std::string& node_id, const std::string& durable,
                      std::chrono::seconds interval, Steady::time_point now);
  void record_write(const std::string& node_id, std::string durable, Steady::time_point now);

  // --- presence ---
  void note_seen(const std::string& cluster_id, const std::string& node_id, std::int64_t unix_ms);
  // Nodes seen since the last call: (cluster, node) -> last seen (unix ms).
  std::map<std::pair<std::string, std::string>, std::int64_t> take_seen();

  // --- access sessions (heartbeat access.active of entries) ---
  // The entry's latest report (validated sessions; each names its org).
  void note_access(const std::string& node_id, nlohmann::json active);
  // Reports since the last call: entry node -> org id -> JSON array of that org's sessions. An
  // org the entry reported last time and no longer does gets "[]" (its sessions ended).
  std::map<std::string, std::map<std::string, std::string>> take_access();

  NodeHotCounters counters();
  void count_heartbeat(bool from_memory);
  void count_presence(std::uint64_t written, std::uint64_t errors);

 private:
  struct CertEntry {
    VerifiedCert v;
    Steady::time_point at;
  };
  struct AuthEntry {
    NodeAuthRow row;
    Steady::time_point at;
  };
  struct LastWrite {
    Steady::time_point at;
    std::string durable;
  };

  const std::chrono::milliseconds auth_ttl_;
  std::mutex mu_;
  std::unordered_map<std::string, CertEntry> certs_;                // guarded by mu_
  std::unordered_map<std::int64_t, AuthEntry> auth_;                // guarded by mu_
  std::unordered_map<std::string, Steady::time_point> changed_at_;  // node -> last invalidation
  Steady::time_point all_changed_at_{};                             // last invalidate_all
  std::unordered_map<std::string, LastWrite> writes_;               // guarded by mu_
  std::map<std::pair<std::string, std::string>, std::int64_t> seen_;
  std::map<std::string, nlohmann::json> access_;              // node -> access.active
  std::map<std::string, std::set<std::string>> access_orgs_;  // node -> orgs last written
  NodeHotCounters counters_;
};

}  // namespace rap::control::detail
