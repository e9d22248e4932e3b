// The node agent's config-storage role (docs/ARCHITECTURE.md "Node agent model", spec
// FABRIC_STORAGE_CONFIG_SERVICE.md): the pieces that do not depend on the network.
//
//  * StorageCache: the in-memory copy of the control plane's storage bundle
//    (GET /api/v1/node/storage/bundle: {"config_generation": N, "nodes": {"<id>": [wire...]}}),
//    bounded by kMaxStorageCacheBytes; it answers a node's GET /api/v1/node/config the way the
//    control plane would, minus the trust bundle (a node never takes anchors from a storage node).
//    It never changes or signs anything and checks only that every artifact decodes.
//  * parse_storage_directory: the storage endpoints of an applied storage_directory payload.
//  * plan_recovery: the recovery order of a node's config fetches over the storages it knows
//    (ConfigSync::sync() tries them in this order, then the control plane).
//
// Thread safety: StorageCache is internally locked.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "rap/agent/config_sync.h"
#include "rap/common/result.h"
#include "rap/crypto/certs.h"
#include "rap/crypto/tls.h"

namespace rap::agent {

inline constexpr std::size_t kMaxStorageCacheBytes = 64u * 1024 * 1024;
inline constexpr std::size_t kMaxStorageNodes = 10000;
inline constexpr std::size_t kMaxHaveQueryBytes = 4096;

class StorageCache {
 public:
  // Replaces the cache with a bundle reply body. Errors ("malformed", "too_large") leave the
  // previous cache untouched.
  Result<void> load_bundle(const nlohmann::json& body);
  // The generation of the cached bundle (nullopt before the first load).
  std::optional<std::int64_t> generation() const;
  std::size_t node_count() const;
  std::size_t total_bytes() const;
  // The reply to GET /api/v1/node/config[?have=<have>] from `node_id`: 200 with the node's
  // artifacts minus those whose type:version appear in `have`, 404 unknown_node, 400 bad_request.
  HttpReply lookup(const std::string& node_id, const std::string& have) const;

 private:
  struct Entry {
    std::string type;
    std::uint64_t version = 0;
    std::string wire;
  };
  mutable std::mutex mu_;
  std::optional<std::int64_t> generation_;
  std::map<std::string, std::vector<Entry>> nodes_;
  std::size_t bytes_ = 0;
};

// "type:version,..." → set of (type, version). Errors: "bad_request".
Result<std::vector<std::pair<std::string, std::uint64_t>>> parse_have(const std::string& have);

struct StorageEndpoint {
  std::string id;
  std::string endpoint;  // host:port
};
// The storages of a storage_directory payload ({"storages":[{"id","endpoint"}]}), in order,
// without `self_id`. Malformed entries are skipped; a malformed payload yields none.
std::vector<StorageEndpoint> parse_storage_directory(const nlohmann::json& payload,
                                                     const std::string& self_id);

// The storage sources of one sync round, in recovery order (spec FABRIC_STORAGE_CONFIG_SERVICE.md
// §11), from the storages of the applied storage_directory:
//   1. nearby-storage: the one with the lowest measured RTT (`rtt_ms`: the fabric session's RTT
//      when the node has one to it, else the latency of the last fetch from it); none when no
//      storage was measured yet;
//   2. peer-storage: the other storages this node has a live fabric session with (`live`), by RTT;
//   3. bootstrap-storage: the remaining storages of the last signed storage_directory, measured
//      ones by RTT first, then in listed order.
// The control plane comes after these (the agent appends it).
struct PlannedSource {
  SourceKind kind = SourceKind::bootstrap_storage;
  StorageEndpoint storage;
};
std::vector<PlannedSource> plan_recovery(const std::vector<StorageEndpoint>& storages,
                                         const std::map<std::string, double>& rtt_ms,
                                         const std::set<std::string>& live);

// ---- network side ----------------------------------------------------------------------------

inline constexpr std::size_t kMaxStorageConnections = 64;

// HTTPS (TLS 1.3 only) server for the config-storage role. Server certificate: this node's node
// certificate; a client certificate chaining to the cluster CA and naming this cluster is
// required, and the node id comes from it; a client whose node id or certificate serial is in
// `revocations` (fed from the applied revocation_list) is refused in the handshake and, should
// it be revoked between handshake and request, with 403 "revoked". Serves
// GET /api/v1/node/config[?have=...] from `cache`. At most kMaxStorageConnections connections,
// 10 s per connection, one request each. reload() swaps in renewed credentials for the next
// connections (no restart; open connections finish on the old ones).
class ConfigStorageServer {
 public:
  // `listen`: "host:port" (an IP address; port 0 picks one).
  static Result<std::unique_ptr<ConfigStorageServer>> start(
      const std::string& listen, const crypto::NodeCredentials& creds, std::string cluster_id,
      std::shared_ptr<const StorageCache> cache,
      std::shared_ptr<const crypto::RevocationList> revocations);
  // New credentials (a renewed certificate) for every later handshake. Errors leave the current
  // ones in use.
  Result<void> reload(const crypto::NodeCredentials& creds);
  ~ConfigStorageServer();
  ConfigStorageServer(const ConfigStorageServer&) = delete;
  ConfigStorageServer& operator=(const ConfigStorageServer&) = delete;

  void stop();                                               // joins the thread; idempotent
  const std::string& endpoint() const { return endpoint_; }  // host:actual port
  std::uint64_t requests() const { return requests_->load(); }
  std::uint64_t refused() const { return refused_->load(); }

 private:
  struct Impl;
  explicit ConfigStorageServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::string endpoint_;
  std::shared_ptr<std::atomic<std::uint64_t>> requests_;
  std::shared_ptr<std::atomic<std::uint64_t>> refused_;
  std::thread thread_;
};

// A ConfigTransport to one storage node: mTLS with this node's credentials; the server must
// chain to the cluster CA and name `cluster_id` / `storage_id` (else "tls_failed" /
// "wrong_peer"). report_rejection is not supported (storage nodes take no reports).
class StorageConfigTransport : public ConfigTransport {
 public:
  StorageConfigTransport(std::string endpoint, crypto::NodeCredentials creds,
                         std::string cluster_id, std::string storage_id,
                         std::chrono::seconds timeout = std::chrono::seconds(10))
      : endpoint_(std::move(endpoint)),
        creds_(std::move(creds)),
        cluster_id_(std::move(cluster_id)),
        storage_id_(std::move(storage_id)),
        timeout_(timeout) {}
  Result<HttpReply> fetch(const std::string& have) override;
  Result<HttpReply> report_rejection(const nlohmann::json& body) override;

 private:
  std::string endpoint_;
  crypto::NodeCredentials creds_;
  std::string cluster_id_;
  std::string storage_id_;
  std::chrono::seconds timeout_;
};

// "host:port" → (host, port); brackets around an IPv6 host are removed.
Result<std::pair<std::string, std::string>> split_host_port(const std::string& hostport);

}  // namespace rap::agent
