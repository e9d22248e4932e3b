// MeshRuntime: the agent's one fabric core for one cluster membership (docs/PROTOCOL.md §14). It
// runs MeshNode, the TCP access entry (when the node holds entry-node and client ingress is
// configured) and exit on its own I/O thread, plus the interactive lane (a second MeshNode, entry
// and exit on a second thread, docs/PROTOCOL.md §15) unless turned off; feeds them the applied
// signed configuration, and hands the heartbeat what it must advertise (endpoints, live sessions,
// RTTs) and the access records to report. Started and stopped by the membership's heartbeat
// thread with the roles.
#pragma once

#include <boost/asio/io_context.hpp>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "rap/agent/config_sync.h"
#include "rap/agent/peer_transition.h"
#include "rap/common/clock.h"
#include "rap/common/random.h"
#include "rap/mesh/local_api.h"
#include "rap/mesh/mesh_node.h"
#include "rap/services/tcp_access/tcp_access.h"
#include "rap/services/tcp_access/user_api.h"

namespace rap::agent {

struct MeshRuntimeOptions {
  std::string fabric_listen;             // "ip:port" ("" = dial out only, e.g. behind NAT)
  std::string fabric_advertise;          // "host:port" peers dial ("" = the listen address)
  std::string client_ingress_listen;     // "ip:port" for entry nodes ("" = no client ingress)
  std::string client_ingress_advertise;  // "host:port" users connect to ("" = listen address)
  std::string metrics_listen;            // "ip:port": Prometheus /metrics and /status ("" = none)
  std::size_t max_active = 0;            // active peer budget (0 = by role; thin profile: 2)
  // The local stream API for service workloads ("" = off) and who may use it.
  std::string local_socket;
  mesh::LocalStreamServer::Authorize authorize_local;
  // Entry nodes: the user socket for entry-node listeners (user_api.h; "" = off).
  std::string user_socket;
  // The interactive lane (docs/PROTOCOL.md §15): a second fabric core on its own thread carries
  // interactive routes, so bulk piping never delays them. Off = one thread for every class.
  bool interactive_lane = true;
};

class MeshRuntime {
 public:
  static Result<std::unique_ptr<MeshRuntime>> start(const crypto::NodeCredentials& creds,
                                                    const MeshRuntimeOptions& options,
                                                    const std::string& cluster_label);
  ~MeshRuntime();  // stops every task and joins the I/O thread
  MeshRuntime(const MeshRuntime&) = delete;
  MeshRuntime& operator=(const MeshRuntime&) = delete;

  // Hands the applied configuration to the mesh (peers, trust, revocations, egress targets).
  // Peers apply make-before-break (PeerTransition); a service_assignment_bundle lapsed under
  // policy "stop" leaves the exit without egress.
  // `roles`: this node's role names. `authority_offline`: the membership cannot reach the control
  // plane (degraded or isolated): expired tickets are renewed from cached policy up to their
  // signed offline horizon (mesh::TrustView). Returns false when there is no applied config yet.
  bool apply(const ConfigSync& config, const std::string& node_id,
             const std::vector<std::string>& roles, bool authority_offline = false);

  // Heartbeat additions: {"fabric": "host:port", "client_ingress": "host:port"} (present ones),
  // live sessions [{"peer": id}] sorted, and {"<peer>": rtt_ms}.
  nlohmann::json endpoints() const;
  nlohmann::json sessions() const;
  nlohmann::json peer_rtts() const;
  // {"<peer id>": jitter ms} (RTT variation on the live session).
  nlohmann::json peer_jitters() const;
  // {"<peer id>": TCP retransmits per second on the session's carrier} (loss).
  nlohmann::json peer_retransmits() const;
  // The entry's open access sessions for the heartbeat's access.active (at most
  // kMaxReportedSessions, oldest first): [{grant, user, org, resource, started_at, expires_at,
  // bytes_up, bytes_down}]. Null when this node runs no client ingress (only entries report).
  nlohmann::json access_active() const;
  // The control plane's revoked grants ([{grant, expires_at}] from the desired state): open
  // flows of a newly revoked grant are cut and the grant is refused (grant_revoked).
  void revoke_grants(const nlohmann::json& revoked);
  // Access records not yet reported (at most `max`).
  std::vector<services::tcp::AccessRecord> take_records(std::size_t max);
  void return_records(std::vector<services::tcp::AccessRecord> records);  // report failed
  nlohmann::json status() const;

 private:
  MeshRuntime() = default;
  void refresh_snapshot();       // I/O thread: copies status/sessions for other threads
  void refresh_lane_snapshot();  // lane thread: the same for the interactive lane

  SystemClock clock_;
  SystemRandom random_;
  MeshRuntimeOptions options_;
  std::string label_;
  std::unique_ptr<mesh::MeshNode> mesh_;
  std::unique_ptr<services::tcp::TcpAccessExit> exit_;
  std::unique_ptr<services::tcp::TcpAccessEntry> entry_;
  std::unique_ptr<mesh::LocalStreamServer> local_;
  std::unique_ptr<services::tcp::UserSocketServer> users_;
  std::unique_ptr<boost::asio::io_context> io_;  // reset last, after the mesh (see ~MeshRuntime)
  std::thread thread_;
  // The interactive lane: its own loop, thread, MeshNode, exit and entry (when entry_ is set).
  // Destroyed before the main loop's objects (hand-overs hold main-thread objects).
  std::unique_ptr<boost::asio::io_context> lane_io_;
  std::unique_ptr<mesh::MeshNode> lane_mesh_;
  std::unique_ptr<services::tcp::TcpAccessExit> lane_exit_;
  std::unique_ptr<services::tcp::TcpAccessEntry> lane_entry_;
  std::thread lane_thread_;
  std::string fabric_endpoint_;
  std::string ingress_endpoint_;
  PeerTransition transition_;                          // I/O thread
  std::map<std::string, mesh::MeshPeer> known_peers_;  // I/O thread: directory + retiring peers

  mutable std::mutex mu_;  // guards the snapshot and the record queue
  std::map<std::string, double> rtts_;
  std::map<std::string, double> jitters_;
  std::map<std::string, double> retransmits_;
  std::vector<services::tcp::ActiveAccess> active_;
  nlohmann::json status_ = nlohmann::json::object();
  // The lane thread's copy: its status, open sessions and TCP counters (entry, exit).
  nlohmann::json lane_status_ = nullptr;       // what status() shows under lanes
  nlohmann::json lane_full_status_ = nullptr;  // merged into the node's numbers
  nlohmann::json lane_slice_ = nullptr;        // the lane thread's scheduler slice (its thread)
  std::string lane_prometheus_;
  std::vector<services::tcp::ActiveAccess> lane_active_;
  services::tcp::TcpCounters lane_entry_counters_, lane_exit_counters_;
  std::deque<services::tcp::AccessRecord> records_;
  std::uint64_t records_dropped_ = 0;
  nlohmann::json retiring_ = nlohmann::json::array();  // peers kept by make-before-break
  nlohmann::json pending_ = nlohmann::json::array();   // added peers without a session yet
  bool egress_stopped_ = false;
};

}  // namespace rap::agent
