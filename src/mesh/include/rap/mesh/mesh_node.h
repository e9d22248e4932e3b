// MeshNode: the node's one fabric core, run by the agent (docs/PROTOCOL.md §14). It keeps
// persistent fabric sessions with the peers of its signed peer directory, forwards route streams
// as a relay, and gives services end-to-end protected RouteChannels: the entry side with
// open_route(), the exit side through the exit handler. Services never see sessions, frames or
// hop lists beyond the lease they were handed.
//
// Threading: every member runs on the executor given to create() (one thread); other threads use
// asio::post. Every background task ends on stop().
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "rap/common/clock.h"
#include "rap/common/random.h"
#include "rap/fabric/node.h"
#include "rap/mesh/e2e.h"
#include "rap/mesh/lease.h"

namespace rap::mesh {

namespace asio = boost::asio;
class RouteDeadline;
namespace detail {
class Flow;
}

inline constexpr char kRouteService[] = "rap.route";
inline constexpr std::size_t kMaxControlMessage = 64 * 1024;

// One peer of the signed peer directory.
struct MeshPeer {
  std::string id;
  crypto::PublicKey public_key{};
  std::vector<std::string> roles;
  std::string fabric_endpoint;  // "host:port"; empty when the peer does not listen (NAT)
};

// What the node's applied signed configuration says, handed over on every change.
struct MeshConfig {
  std::vector<MeshPeer> peers;
  std::vector<std::string> roles;  // this node's roles
  TrustView trust;
  // The organization (id) owning this node when it is customer-managed, from its signed service
  // assignment; "" = platform-managed. A customer-managed node refuses every route of another
  // organization, as entry, relay or exit ("foreign_organization").
  std::string owner_org;
};

// Mesh sessions notice a dead peer or a dead link quickly (route failover waits on it): a PING
// every second, closed after 4 s without any frame. The fabric's own defaults (10 s / 30 s) suit
// idle links, not routes.
inline fabric::SessionConfig mesh_session_defaults() {
  fabric::SessionConfig c;
  c.keepalive = std::chrono::seconds(1);
  c.idle_timeout = std::chrono::seconds(4);
  return c;
}

struct MeshOptions {
  // A lane's MeshNode (PROTOCOL.md §15) names its lane, e.g. "interactive": it dials its peers'
  // lane of that name and gets incoming sessions from the main node (serve_lane); it does not
  // listen itself, and fabric_advertise must be the main node's endpoint ("" = the main node).
  std::string lane;
  std::string fabric_listen;     // "ip:port" to accept sessions on ("" = dial out only)
  std::string fabric_advertise;  // "host:port" peers should dial ("" = the listen address)
  fabric::SessionConfig session = mesh_session_defaults();
  std::chrono::milliseconds dial_interval{1000};  // peer manager tick
  // Active peer budget (spec defaults: relay/core 8-20, normal 3-5, thin 1-3): sessions beyond
  // it are not dialed; the best-scored candidates are, the rest stay warm. 0 = by role: 12 for
  // mesh nodes (entry/relay), 4 otherwise.
  std::size_t max_active = 0;
  std::chrono::seconds handshake_timeout{10};  // route open + e2e handshake
  // Sees every byte this node relays (debugging and tests: proves relays only see ciphertext).
  std::function<void(std::span<const std::uint8_t>)> relay_tap;
  // Wall time for lease and grant expiry (injectable for tests).
  std::function<config::WallTime()> wall_clock = [] { return std::chrono::system_clock::now(); };
  // Resumable flows (open_flow, PROTOCOL.md §14.7): unacknowledged bytes kept per direction for
  // resending after a route switch (a writer waits when full), how often the receiver
  // acknowledges, how long the entry tries to move a flow whose route failed, and how long the
  // exit keeps such a flow (and its target connection) waiting for the entry's resume.
  std::size_t flow_resend_limit = 4 * 1024 * 1024;
  std::size_t flow_ack_every = 256 * 1024;
  std::chrono::milliseconds flow_resume_timeout{15000};
  std::chrono::milliseconds flow_resume_grace{20000};
};

// A counted, end-to-end protected byte stream over a route. Errors are Results; nothing throws.
class RouteChannel {
 public:
  virtual ~RouteChannel() = default;
  virtual const Lease& lease() const = 0;
  // The peer's service hello (entry: the exit's answer; exit: the entry's request).
  virtual const nlohmann::json& hello() const = 0;
  // Exit side: answers the entry's hello (exactly once, before data).
  virtual asio::awaitable<Result<void>> answer(const nlohmann::json& reply) = 0;
  // At least one byte; 0 = the other end half-closed (authenticated end record).
  virtual asio::awaitable<Result<std::size_t>> read_some(asio::mutable_buffer buf) = 0;
  virtual asio::awaitable<Result<void>> write(asio::const_buffer buf) = 0;
  virtual asio::awaitable<Result<void>> close_write() = 0;
  virtual void reset(const std::string& reason) = 0;
  virtual std::uint64_t bytes_in() const = 0;   // plaintext received
  virtual std::uint64_t bytes_out() const = 0;  // plaintext sent
  // The route stream's traffic class: services pipe bulk routes at low priority on the node's
  // thread (rap/common/priority.h).
  virtual fabric::TrafficClass traffic_class() const = 0;
};

class MeshNode {
 public:
  using ExitHandler = std::function<asio::awaitable<void>(std::unique_ptr<RouteChannel>)>;

  static Result<std::unique_ptr<MeshNode>> create(asio::any_io_executor ex,
                                                  const crypto::NodeCredentials& creds,
                                                  MeshOptions options, const Clock& clock,
                                                  Random& random);
  ~MeshNode();

  // Starts the listener (if any) and the peer manager. Returns the bound fabric port (0 = none).
  Result<std::uint16_t> start();
  // Ends every flow and session: drained (GOAWAY) or, with drain=false, at once.
  void stop(const std::string& reason, bool drain = true);

  // Applies a new signed configuration: peers to keep sessions with, trust for leases, and the
  // revocation list (sessions with revoked nodes are closed at once and refused afterwards).
  void update(MeshConfig config);
  const TrustView& trust() const { return config_.trust; }
  const std::string& node_id() const;
  const crypto::Ed25519Key& key() const { return key_; }
  config::WallTime wall_now() const { return options_.wall_clock(); }

  void set_exit_handler(ExitHandler handler) { exit_handler_ = std::move(handler); }

  // Lanes (PROTOCOL.md §15), on the main node before its thread runs: incoming sessions that ask
  // for `lane`'s lane continue on `lane` (another MeshNode of this node, on its own thread, with
  // the same credentials and configuration). `lane` must outlive this node's thread.
  void serve_lane(MeshNode& lane);
  const std::string& lane() const { return options_.lane; }
  std::uint64_t lane_handoffs() const;  // incoming sessions handed to lanes

  // Entry side: opens `lease` (this node must be hops[0]) for `traffic_class`, runs the e2e
  // handshake, sends `hello` and waits for the exit's answer. Errors carry the refusing hop's
  // code (e.g. "next_hop_unreachable", "lease_expired", "not_permitted").
  asio::awaitable<Result<std::unique_ptr<RouteChannel>>> open_route(const Lease& lease,
                                                                    fabric::TrafficClass cls,
                                                                    nlohmann::json hello);

  // Entry side: a resumable flow over the first usable of `leases` (the ticket's primary, then
  // alternates). When its route fails later (a relay dies, a link goes down) the flow moves to the
  // best other lease and resends what the exit has not received, in order and exactly once; the
  // caller only sees a pause. Errors as open_route, once no lease could be opened.
  asio::awaitable<Result<std::unique_ptr<RouteChannel>>> open_flow(std::vector<Lease> leases,
                                                                   fabric::TrafficClass cls,
                                                                   nlohmann::json hello);

  // Access grants the control plane revoked (an organization admin terminated the session),
  // each kept until its expiry. Replaces the previous list: open flows and routes of a newly
  // revoked grant end at once (error "grant_revoked"), and open_route/open_flow refuse the grant
  // from then on with "grant_revoked".
  struct RevokedGrant {
    std::string id;
    config::WallTime expires_at{};
  };
  // Returns how many open flows were cut.
  std::size_t revoke_grants(const std::vector<RevokedGrant>& grants);
  bool grant_revoked(const std::string& grant) const;

  // Closes every session with `peer` at once (an operator's "disconnect", and how benchmarks and
  // tests make a peer vanish): its routes fail over; the peer manager dials it again later.
  std::size_t drop_sessions_with(const std::string& peer, const std::string& reason);

  // "host:port" this node advertises for fabric sessions ("" = none).
  std::string advertised_endpoint() const;
  // Peers with an open session (for the heartbeat's fabric.sessions) and their RTT in ms.
  std::map<std::string, double> session_peers() const;
  // Route health measured on the live sessions (not probes): smoothed RTT and its variation
  // (jitter; loss shows up here as retransmission delay), bytes queued for the peer, stream
  // resets. Feeds the peer score and the heartbeat (route planning).
  struct PeerHealth {
    double rtt_ms = 0, jitter_ms = 0;
    std::uint64_t queued_bytes = 0, resets = 0;
    std::uint64_t tcp_retransmits = 0;  // the carrier's TCP_INFO (loss), over the session's life
    double retransmits_per_s = 0;       // their rate between the last two peer ticks
    std::uint32_t tcp_lost = 0;
    double tcp_rtt_ms = -1;  // the kernel's smoothed RTT (-1: the carrier has no TCP_INFO)
  };
  std::map<std::string, PeerHealth> session_health() const;
  nlohmann::json status() const;
  std::string prometheus() const;

 private:
  MeshNode(asio::any_io_executor ex, std::unique_ptr<fabric::FabricNode> fabric,
           crypto::Ed25519Key key, MeshOptions options, const Clock& clock, Random& random);
  asio::awaitable<void> peer_loop();
  asio::awaitable<void> dial(MeshPeer peer);
  bool should_dial(const MeshPeer& peer) const;
  asio::awaitable<void> on_route_stream(std::shared_ptr<fabric::Stream> stream);
  asio::awaitable<void> relay(std::shared_ptr<fabric::Stream> in, const Lease& lease,
                              std::size_t hop, nlohmann::json open, std::string leftover,
                              class RouteDeadline& setup);
  void count(const std::string& what) { counters_[what]++; }
  // Exit side: a route whose hello starts or resumes a flow goes to the flow, others to the
  // exit handler as they are.
  asio::awaitable<void> serve_exit(std::unique_ptr<RouteChannel> ch);
  // A flow moved from one route to another after `ms` (status, metrics).
  void flow_switched(const std::string& flow, const std::string& from, const std::string& to,
                     const std::string& reason, const std::string& detail, double ms);
  friend class detail::Flow;

  struct PeerState {
    // connected | dialing | backoff | warm (ranked below the active budget) | waiting (they dial)
    // | cold (no endpoint, bootstrap only) | revoked
    std::string state = "idle";
    std::string tier;                        // active | warm | cold
    std::string reason;                      // why this peer is (not) dialed, for status
    std::uint32_t failures = 0;              // consecutive, for backoff
    std::vector<TimePoint> recent_failures;  // last 10 minutes (score), at most 16
    double rtt_ms = -1;                      // last measured on a session (-1 = never)
    double jitter_ms = 0;                    // RTT variation on that session
    std::uint64_t retransmits = 0;           // TCP retransmits on it at the last tick
    double retransmit_rate = 0;              // per second, between the last two ticks
    double score = 0;
    TimePoint next_attempt{};
    std::string last_error;
  };
  // Lower is better: RTT + 2 x jitter (50 ms when never measured) + 200 per failure in the last 10
  // minutes
  // + role suitability (relays first, then entries, then others).
  double score(const MeshPeer& peer, PeerState& st, TimePoint now) const;

  asio::any_io_executor ex_;
  std::unique_ptr<fabric::FabricNode> fabric_;
  crypto::Ed25519Key key_;
  MeshOptions options_;
  const Clock& clock_;
  Random& random_;
  MeshConfig config_;
  std::map<std::string, PeerState> peers_;
  std::set<std::string> revoked_;
  std::map<std::string, config::WallTime> revoked_grants_;  // grant id -> its expiry
  ExitHandler exit_handler_;
  std::uint16_t port_ = 0;
  bool stopped_ = false;
  std::shared_ptr<asio::steady_timer> tick_;
  std::map<std::string, std::uint64_t> counters_;  // relayed, refused_<code>, routes_opened...
  std::uint64_t relay_bytes_ = 0;
  std::uint32_t active_relays_ = 0;
  std::uint32_t active_routes_ = 0;
  std::map<std::string, std::weak_ptr<detail::Flow>> flows_;  // open flows by id
  std::vector<nlohmann::json> switches_;                      // the last 32 route switches
  std::vector<double> recovery_ms_;                           // the last 256 switch times
  // Relays of routes that failed recently: routes through them are tried after the others for
  // kDemotion (demoted, kept as fallbacks).
  std::map<std::string, TimePoint> failed_relays_;
  void note_route_failure(const Lease& lease);
  bool recently_failed(const Lease& lease) const;
  // "foreign_organization" when this node is customer-managed and the lease is another org's.
  Result<void> check_owner(const Lease& lease) const;
};

}  // namespace rap::mesh
