// The node agent: enrolls this host into one or more clusters (one isolated identity each),
// heartbeats over mutual TLS, follows desired state (roles + workloads) by long-poll, runs the
// workloads an explicit role assignment authorizes under the Supervisor, renews its certificate,
// fetches, verifies, applies and persists its signed configuration (ConfigSync, config_sync.h),
// and keeps working from its last valid state while the control plane is unreachable.
//
// Configuration (JSON; `rap-node-agent --help` prints this list):
//   state_dir                  where keys and state live (default /var/lib/rap-node-agent)
//   profile                    "thick" (default) or "thin" (little disk, no artifact storage)
//   heartbeat_interval_seconds 1..300 (default 10)
//   isolate_after_seconds      degraded -> isolated after this long without contact (default 30)
//   programs                   {"name": "/abs/path"}: the only executables workloads may run
//   restart_backoff_initial_ms / restart_backoff_max_seconds / crash_loop_threshold
//                              workload restart policy (1000 ms doubling to 60 s; 5 exits in
//                              2 min = crash loop)
//   config_storage_listen      "ip:port" (port 0 picks one; default: none): when set and a
//                              membership's desired state holds the role "config-storage", the
//                              agent serves that cluster's signed config to its nodes from memory
//                              (mTLS, cluster certificates only) while the control plane is
//                              unreachable, and announces the endpoint in its heartbeats
//   fabric_listen / fabric_advertise, client_ingress_listen / client_ingress_advertise,
//   metrics_listen             the mesh (docs/PROTOCOL.md §14): with entry-node, relay-node or
//                              exit-node assigned, the agent runs the node's one fabric core
//                              (sessions to its signed peer directory, relaying, TCP access entry
//                              and exit); "ip:port" each, all optional (no fabric_listen = dial
//                              out only, as behind NAT)
//   interactive_lane           true or false (default: true, false on thin nodes): run the
//                              mesh's interactive lane, a second fabric core on its own thread
//                              for interactive routes (docs/PROTOCOL.md §15)
//   user_socket_dir            entry nodes (default /run/rap-node-agent; "" = none): the
//                              directory of <cluster>.sock, where users on this host ask for
//                              entry-node listeners (`rapctl connect --local-entry`)
//   memberships                [{cluster, control_url, control_ca_file, join_token_file}]
//     cluster          cluster slug at the control plane
//     control_url      https://host:port of rap-control
//     control_ca_file  PEM pinning rap-control's certificate (or its CA); "" = system store
//     join_token_file  file holding the one-time join token (read only while enrolling)
//
// Workloads: a desired workload of kind "native" has spec {"program", "args", "env",
// "health_tcp_port", "role"}; it runs only if `program` is in `programs` and `role` is one of
// the node's assigned roles (capabilities never authorize anything).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rap/agent/supervisor.h"
#include "rap/common/clock.h"
#include "rap/common/env.h"
#include "rap/common/result.h"

namespace rap::agent {

inline constexpr char kAgentVersion[] = "0.1.0";

struct MembershipConfig {
  std::string cluster;
  std::string control_url;
  std::string control_ca_file;
  std::string join_token_file;
};

struct AgentConfig {
  std::string state_dir = "/var/lib/rap-node-agent";
  std::string profile = "thick";
  std::chrono::seconds heartbeat_interval{10};
  std::chrono::seconds isolate_after{30};
  std::chrono::milliseconds enroll_poll_interval{1000};
  std::chrono::milliseconds restart_backoff_initial{1000};
  std::chrono::seconds restart_backoff_max{60};
  std::uint32_t crash_loop_threshold = 5;
  std::map<std::string, std::string> programs;
  std::string config_storage_listen;  // "" = never serve the config-storage role
  std::string fabric_listen;          // "" = dial out only
  std::string fabric_advertise;
  std::string client_ingress_listen;  // "" = no client ingress (entry-node needs it)
  std::string client_ingress_advertise;
  // Entry nodes: where the user socket for entry-node listeners goes (<dir>/<cluster>.sock;
  // "" = none). The systemd unit's RuntimeDirectory.
  std::string user_socket_dir = "/run/rap-node-agent";
  std::string metrics_listen;
  bool interactive_lane = true;  // docs/PROTOCOL.md §15 (default false on thin nodes)
  std::vector<MembershipConfig> memberships;

  // Validates every key; unknown keys and bad values are errors naming the key.
  static Result<AgentConfig> from_json(const nlohmann::json& j);
  static Result<AgentConfig> load(Env& env, const std::string& path);
  std::string membership_dir(const MembershipConfig& m) const;
};

class Agent {
 public:
  Agent(AgentConfig cfg, Env& env, const Clock& clock, ProcessBackend& backend);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Runs until `stop` becomes true (e.g. from a signal handler). Errors that make running unsafe
  // (tampered state, key permissions) are returned before anything starts.
  Result<void> run(const std::atomic<bool>& stop);

  // The status document `rap-node-agent status` prints (from the state files and the running
  // agent's status.json).
  static Result<nlohmann::json> read_status(const AgentConfig& cfg, Env& env);

 private:
  class Runner;
  void write_status();

  AgentConfig cfg_;
  Env& env_;
  const Clock& clock_;
  std::unique_ptr<Supervisor> supervisor_;
  std::vector<std::unique_ptr<Runner>> runners_;
};

}  // namespace rap::agent
