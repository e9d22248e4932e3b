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
// Recovery order (spec FABRIC_STORAGE_CONFIG_SERVICE.md §11): sync() takes the sources in the
// order the agent planned them (plan_recovery(), config_storage.h): the nearby storage node, live
// peers that advertise storage, the other storages of the last signed storage_directory, then
// the control plane. It tries each until one yields a configuration that applies; a source that
// is unreachable, answers with an error, is behind the generation the control plane announced
// or the one already applied ("stale"), or serves artifacts the verifier refuses ("rejected",
// reported to the control plane) is recorded with its reason and the next is tried. When none
// succeeds the last valid local snapshot stays in force (its per-artifact lapse policy decides
// what keeps running, lapses()). Storage replies never carry trust anchors and never move the
// authority fence; the control plane's replies carry "authority_epoch", which becomes the
// persisted minimum epoch for every later artifact from any source (stale_epoch).
//
// Lapse policy: an applied artifact past its expires_at has lapsed. Its signed payload says what
// the agent does then: "lapse_policy": "keep" (default: keep serving, reported as lapsed) or
// "stop" (stop the affected service: for the node's service_assignment_bundle, its workloads and
// exit egress).
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
#include <span>
#include <string>
#include <vector>

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

// Where a fetch can come from, in recovery order.
enum class SourceKind { nearby_storage, peer_storage, bootstrap_storage, control };
std::string_view to_string(SourceKind kind);

struct ConfigSource {
  SourceKind kind = SourceKind::control;
  std::string id;  // storage node id; "" for the control plane
  ConfigTransport* transport = nullptr;
  // "control", or "<kind>:<id>" ("nearby-storage:n7", "peer-storage:n8", "bootstrap-storage:n9").
  std::string label() const;
};

// One source tried by a sync() round.
struct SourceAttempt {
  std::string source;   // ConfigSource::label()
  std::string outcome;  // applied | unchanged | unreachable | refused | stale | rejected | skipped
  std::string reason;   // printable, at most kMaxRejectionMessageBytes
  nlohmann::json to_json() const;
};

// What lapse policy an applied artifact carries and whether it has lapsed.
struct ArtifactLapse {
  std::string state_key;
  config::ArtifactType type = config::ArtifactType::peer_directory;
  std::int64_t expires_at = 0;  // unix seconds
  std::string policy;           // keep | stop
  bool lapsed = false;
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

  // One round over `sources` in order (see the file comment): fetch, apply, persist; rejections
  // are reported through `reporter` (the control plane). `announced_generation`: the generation
  // the last heartbeat announced (-1 = unknown); a storage reply below it (or below the applied
  // one) is stale. Returns true when the applied state changed. When every source fails: the
  // control plane's error if it was tried ("fetch_failed", "not_supported" for 404, or the
  // rejection's rap::config code), else the last source's.
  Result<bool> sync(std::span<const ConfigSource> sources, ConfigTransport& reporter,
                    config::WallTime now, std::int64_t announced_generation = -1);
  // The control plane as the only source.
  Result<bool> sync(ConfigTransport& transport, config::WallTime now);
  // The sources the last round tried, in order, with their outcomes.
  std::vector<SourceAttempt> last_attempts() const;
  // The minimum authority epoch (the highest the control plane announced, persisted).
  std::uint64_t authority_fence() const;
  // Lapse policy and state of every applied artifact at `now` (tombstones excluded).
  std::vector<ArtifactLapse> lapses(config::WallTime now) const;
  // True when the applied artifact (type, scope) has lapsed under policy "stop".
  bool stopped_by_lapse(config::ArtifactType type, const config::Scope& scope,
                        config::WallTime now) const;
  // [{"artifact": state key, "policy", "expires_at"}] of the lapsed artifacts (heartbeat).
  nlohmann::json lapsed_json(config::WallTime now) const;

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
  // Where the last successful sync() fetched from (ConfigSource::label(); empty before).
  std::string source() const;
  std::optional<ConfigRejection> last_rejection() const;
  // For `rap-node-agent status`: applied versions, active signer key ids, authority epoch and
  // fence, generation, last fetch time and source, the sources the last round tried, whether the
  // node runs on its last local snapshot, lapsed artifacts (at `now`), last rejection.
  nlohmann::json status_json(config::WallTime now) const;
  nlohmann::json status_json() const { return status_json(std::chrono::system_clock::now()); }

  // The status section of a persisted file, read without a running agent (null on any error,
  // with "error" set).
  static nlohmann::json read_status(Env& env, const std::string& dir,
                                    const crypto::Ed25519Key& key);

 private:
  struct Persisted {
    std::unique_ptr<config::ConfigState> state;
    std::optional<std::int64_t> generation;
    std::int64_t last_fetch = 0;
    std::uint64_t fence = 0;
  };
  static Result<Persisted> read_file(Env& env, const std::string& path,
                                     const crypto::Ed25519Key& key);
  Result<void> persist(const config::ConfigState& state, std::int64_t generation,
                       std::int64_t fetched_at, std::uint64_t fence);
  std::string have_query() const;
  // Applies one fetched reply to a copy of the current state (or to fresh TOFU anchors).
  Result<std::pair<config::ConfigState, config::ApplyReport>> apply_reply(
      const HttpReply& reply, config::WallTime now, std::uint64_t min_epoch,
      std::int64_t& generation, std::string& artifact_id) const;
  // One source of a round: fetch (and once more in full on an increment gap), check, apply,
  // persist. `attempt` gets the outcome.
  Result<bool> sync_from(const ConfigSource& src, ConfigTransport& reporter, config::WallTime now,
                         std::int64_t announced_generation, SourceAttempt& attempt);
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
  std::uint64_t fence_ = 0;
  std::vector<SourceAttempt> attempts_;
  bool on_local_snapshot_ = false;  // the last round found no source
};

}  // namespace rap::agent
