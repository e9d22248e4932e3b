// ConfigSync: the node agent's side of signed configuration (docs/PROTOCOL.md §13) for one
// cluster membership. It fetches the node's artifact batch from rap-control
// (GET /api/v1/node/config over mTLS), hands it to rap::config::ConfigState::apply (which
// verifies every artifact and commits all or nothing), persists the applied state and reports
// every rejection (POST /api/v1/node/config/rejections) so the control plane can audit it.
//
// Trust: with no persisted state yet, the trust anchors come from the response's plain
// "trust_bundle" (trust on first use over the mTLS channel to the pinned control plane, the same
// trust as enrollment). Afterwards they come only from the persisted ConfigState: trust changes
// only through signed trust_bundle artifacts.
//
// Persistence: <dir>/config_state.json (0600, atomic replace via rap::Env), an envelope
//   {"format":"rap-agent-config-v1","meta":{...},"state":"<ConfigState::serialize()>",
//    "signature":hex}
// signed with the membership's node key like state.json; a corrupt, tampered or foreign file is
// refused on load (logged) and the agent starts over with a fresh fetch. Bounded by
// kMaxConfigStateBytes.
//
// Thread safety: every public member may be called from any thread (one internal mutex; sync()
// does its network calls without holding it).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "rap/agent/control_client.h"
#include "rap/common/env.h"
#include "rap/common/result.h"
#include "rap/config/state.h"
#include "rap/crypto/keys.h"

namespace rap::agent {

inline constexpr std::size_t kMaxConfigStateBytes = 8u * 1024 * 1024;
inline constexpr std::size_t kMaxRejectionMessageBytes = 300;

// The two control plane calls ConfigSync makes (the agent implements them with ControlClient and
// the node certificate; unit tests with a fake).
class ConfigTransport {
 public:
  virtual ~ConfigTransport() = default;
  // GET /api/v1/node/config, with "?have=<have>" when `have` is not empty. Transport failures are
  // errors; any HTTP status is a reply.
  virtual Result<HttpReply> fetch(const std::string& have) = 0;
  // POST /api/v1/node/config/rejections with `body` ({"code","message","artifact_id"}).
  virtual Result<HttpReply> report_rejection(const nlohmann::json& body) = 0;
};

struct ConfigRejection {
  std::int64_t at = 0;  // unix seconds
  std::string code;     // a rap::config::errc code
  std::string message;  // at most kMaxRejectionMessageBytes, printable ASCII
  std::string artifact_id;
};

class ConfigSync {
 public:
  // `dir`: the membership's state directory; `label`: the cluster slug (for logs);
  // `cluster_id` / `node_id`: from the node certificate (artifacts must name this cluster, and
  // node-scoped artifacts this node). `key` must outlive this object.
  ConfigSync(Env& env, std::string dir, std::string label, std::string cluster_id,
             std::string node_id, const crypto::Ed25519Key& key);

  std::string path() const { return dir_ + "/config_state.json"; }

  // Loads the persisted state. A missing file is no state; a corrupt, tampered or foreign file is
  // refused with an error log line and ignored (the next sync() starts over). Never fails.
  void load();

  // One round: fetch, apply, persist, report. Returns true when the applied state changed.
  // Errors: transport failures and non-200 replies ("fetch_failed", "not_supported" for 404),
  // and every rejection (its rap::config error code; already reported and logged).
  Result<bool> sync(ConfigTransport& transport, config::WallTime now);

  // {"<type>": version, ...}: the applied version per artifact type (the heartbeat's
  // applied_config_versions; at most 64 entries).
  nlohmann::json applied_versions() const;
  // The generation of the last successful fetch (nullopt before the first one).
  std::optional<std::int64_t> generation() const;
  bool has_state() const;
  // A copy of the applied payload of (type, scope); null when absent or removed.
  nlohmann::json payload(config::ArtifactType type, const config::Scope& scope) const;
  // What the applied state trusts (config-signing keys, revocations, authority epoch), for
  // verifying route leases and access grants; nullopt before anything was applied.
  struct TrustSnapshot {
    config::TrustStore trust;
    config::Revocations revocations;
    std::uint64_t epoch = 0;
  };
  std::optional<TrustSnapshot> trust_snapshot() const;
  // Where the last successful sync() fetched from ("control" or "storage:<node id>"; set by the
  // agent, shown in status).
  void set_source(std::string source);
  std::optional<ConfigRejection> last_rejection() const;
  // For `rap-node-agent status`: applied versions, active signer key ids, authority epoch,
  // generation, last fetch time, last rejection.
  nlohmann::json status_json() const;

  // The status section of a persisted file, read without a running agent (null on any error,
  // with "error" set).
  static nlohmann::json read_status(Env& env, const std::string& dir,
                                    const crypto::Ed25519Key& key);

 private:
  struct Persisted {
    std::unique_ptr<config::ConfigState> state;
    std::optional<std::int64_t> generation;
    std::int64_t last_fetch = 0;
  };
  static Result<Persisted> read_file(Env& env, const std::string& path,
                                     const crypto::Ed25519Key& key);
  Result<void> persist(const config::ConfigState& state, std::int64_t generation,
                       std::int64_t fetched_at);
  std::string have_query() const;
  // Applies one fetched reply to a copy of the current state (or to fresh TOFU anchors).
  Result<std::pair<config::ConfigState, config::ApplyReport>> apply_reply(
      const HttpReply& reply, config::WallTime now, std::int64_t& generation,
      std::string& artifact_id) const;
  void reject(ConfigTransport& transport, const Error& e, const std::string& artifact_id,
              config::WallTime now);

  Env& env_;
  std::string dir_;
  std::string label_;
  std::string cluster_id_;
  std::string node_id_;
  const crypto::Ed25519Key& key_;

  mutable std::mutex mu_;
  std::unique_ptr<config::ConfigState> state_;  // null until something was applied
  std::optional<std::int64_t> generation_;
  std::int64_t last_fetch_ = 0;
  std::optional<ConfigRejection> last_rejection_;
  std::string source_;
};

}  // namespace rap::agent
