// StateStore: the agent's crash-safe local state for one cluster membership, in its own
// directory (one host may belong to several clusters, each with an isolated identity):
//
//   <dir>/node.key     Ed25519 private key, PKCS#8 PEM, mode 0600, generated here, never sent
//   <dir>/state.json   {"state": {...}, "signature": hex}  — signed with node.key
//
// Writes are atomic (temp file + fsync + rename, via rap::Env). On load the signature is
// checked, so an edited or corrupted state file is refused with a clear message instead of being
// acted on; a key file readable by group/others is refused too. Size is bounded (kMaxStateBytes).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

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

 private:
  Env& env_;
  std::string dir_;
};

}  // namespace rap::agent
