// TCP application access over the mesh (issue 7; docs/PROTOCOL.md §14): the entry listener
// takes user connections (ingress.h), opens the ticket's route through MeshNode and pipes bytes;
// the exit side checks the grant and its signed egress list, connects to the target and pipes.
// Both run on the MeshNode's executor and depend on rap_mesh's public API only.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "rap/crypto/tls.h"
#include "rap/crypto/tls_socket.h"
#include "rap/mesh/mesh_node.h"
#include "rap/services/tcp_access/ingress.h"

namespace rap::services::tcp {

// A resource this node may connect to as an exit (its signed service_assignment_bundle "egress").
struct EgressTarget {
  std::string resource;
  std::string org;
  std::string address;  // "host:port"
};

// One access, reported to the control plane for the audit log (never payload).
struct AccessRecord {
  std::string grant, user, org, resource, route;
  std::int64_t started_at = 0, ended_at = 0;   // unix seconds
  std::uint64_t bytes_up = 0, bytes_down = 0;  // user -> target, target -> user
  std::string outcome;                         // "ok" | "refused"
  std::string reason, message;                 // refusals
  // The grant was past its expiry and renewed from cached policy while the node could not reach
  // the control plane (mesh::TrustView::authority_offline).
  bool offline_renewal = false;
  nlohmann::json to_json() const;
};
// Called on the mesh thread; must not block (the agent queues and posts them).
using AccessSink = std::function<void(AccessRecord)>;

// One open access session at the entry (the heartbeat's access.active): who uses which resource
// under which grant, since when and how many bytes so far. Never payload, never the route.
struct ActiveAccess {
  std::string grant, user, org, resource;
  std::int64_t started_at = 0, expires_at = 0;  // unix seconds (expires_at: the grant's
                                                // offline horizon when later)
  std::uint64_t bytes_up = 0, bytes_down = 0;   // user -> target, target -> user
};

struct TcpCounters {
  std::uint64_t accepted = 0, refused = 0, active = 0, bytes_up = 0, bytes_down = 0;
  std::uint64_t offline_renewals = 0;  // grants used past expiry under the offline horizon
  std::map<std::string, std::uint64_t> refused_by_code;
};
// The sum of two sets of counters (a node's lanes, PROTOCOL.md §15).
TcpCounters operator+(TcpCounters a, const TcpCounters& b);

class TcpAccessExit {
 public:
  // Installs itself as `mesh`'s exit handler. `mesh` must outlive this object.
  TcpAccessExit(asio::any_io_executor ex, mesh::MeshNode& mesh, AccessSink sink);
  void set_egress(std::vector<EgressTarget> targets) { egress_ = std::move(targets); }
  const TcpCounters& counters() const { return counters_; }

 private:
  asio::awaitable<void> serve(std::unique_ptr<mesh::RouteChannel> ch);
  asio::any_io_executor ex_;
  mesh::MeshNode& mesh_;
  AccessSink sink_;
  std::vector<EgressTarget> egress_;
  TcpCounters counters_;
};

class TcpAccessEntry;

// An entry-node listener (docs/PROTOCOL.md §14.8): a loopback port on the entry node itself,
// bound to one user's ticket and to the local uid that asked for it (user_api.h). Each accepted
// connection whose socket belongs to that uid (rap/common/sock_owner.h) is routed like a client
// ingress connection with the current ticket, with no TLS leg and no forwarder in between; other
// uids, and anything not on this host, are refused ("not_listener_owner") and audited.
class EntryListener {
 public:
  std::uint16_t port() const { return port_; }
  std::uint32_t uid() const { return uid_; }
  // Replaces the ticket for new connections (the holder renews it at half its lifetime). Checked
  // like a new listener's: it must be a ticket of the same organization and resource for this
  // entry. Open connections keep their route.
  Result<void> set_ticket(const std::string& sealed_ticket);
  // Stops accepting; open connections run to their end.
  void stop();
  std::uint64_t accepted() const { return accepted_; }
  std::uint64_t refused() const { return refused_; }

 private:
  friend class TcpAccessEntry;
  EntryListener(TcpAccessEntry& entry, std::uint32_t uid, fabric::TrafficClass cls)
      : entry_(entry), uid_(uid), cls_(cls) {}
  TcpAccessEntry& entry_;
  std::uint32_t uid_;
  fabric::TrafficClass cls_;
  std::string ticket_;
  AccessRecord holder_;  // the current ticket's grant, user, organization and resource
  std::shared_ptr<asio::ip::tcp::acceptor> acceptor_;
  std::uint16_t port_ = 0;
  // Counted on the thread that carried the connection (an interactive lane's, PROTOCOL.md §15).
  std::atomic<std::uint64_t> accepted_ = 0, refused_ = 0;
};

class TcpAccessEntry {
 public:
  // Listens on `listen` ("ip:port", port 0 = ephemeral) with TLS 1.3 and the node certificate.
  static Result<std::unique_ptr<TcpAccessEntry>> start(const asio::any_io_executor& ex,
                                                       mesh::MeshNode& mesh,
                                                       const crypto::NodeCredentials& creds,
                                                       const std::string& listen, AccessSink sink);
  // The entry of an interactive lane (PROTOCOL.md §15): no listener of its own; it carries the
  // connections its main entry hands over, on `ex` (the lane's thread) through `mesh` (the
  // lane's MeshNode).
  static std::unique_ptr<TcpAccessEntry> lane(const asio::any_io_executor& ex, mesh::MeshNode& mesh,
                                              AccessSink sink);
  // From then on `main` hands every admitted interactive connection (client ingress and
  // entry-node listeners) to `lane`, which opens its route there; a route the lane has no
  // session for ("next_hop_unreachable": a peer without lanes, or still being dialed) comes
  // back to `main`. Call before traffic; both must live until both threads have stopped.
  static void pair_lanes(TcpAccessEntry& main, TcpAccessEntry& lane);
  std::uint16_t port() const { return port_; }
  void stop();
  const TcpCounters& counters() const { return counters_; }
  // Connections handed to the lane (main) and handed back (lane), on this entry's thread.
  std::uint64_t lane_handoffs() const { return lane_handoffs_; }
  std::uint64_t lane_returns() const { return lane_returns_; }
  // The open sessions (mesh thread), oldest first.
  std::vector<ActiveAccess> active_sessions() const;
  const std::string& node_id() const { return mesh_.node_id(); }

  // Opens an entry-node listener on `listen` (a loopback "ip:port", port 0 = ephemeral) for the
  // local user `uid` holding `sealed_ticket` (checked at once: "bad_ticket", "grant_expired",
  // "wrong_entry", ...). Errors also: "listen_not_loopback", "listen_failed". On the mesh thread.
  Result<std::shared_ptr<EntryListener>> listen_local(const std::string& listen, std::uint32_t uid,
                                                      const std::string& sealed_ticket,
                                                      fabric::TrafficClass cls);

 private:
  friend class EntryListener;
  // A ticket checked for this entry: its grant, and the leases of that grant still valid.
  struct Admitted {
    mesh::Ticket ticket;
    mesh::Grant grant;
    std::vector<mesh::Lease> leases;
  };
  TcpAccessEntry(asio::any_io_executor ex, mesh::MeshNode& mesh, AccessSink sink);
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(asio::ip::tcp::socket sock);
  // Opens the sealed ticket and checks its grant and leases; fills `rec`'s who/what.
  Result<Admitted> admit(const std::string& sealed_ticket, AccessRecord& rec);
  // Opens the admitted route through the mesh (the mesh picks among the leases).
  asio::awaitable<Result<std::unique_ptr<mesh::RouteChannel>>> open_route(const Admitted& a,
                                                                          fabric::TrafficClass cls,
                                                                          AccessRecord& rec);
  // Books an open session in open_ and the counters; returns its key for close_session().
  std::uint64_t open_session(const Admitted& a, const AccessRecord& rec,
                             const mesh::RouteChannel* ch);
  void close_session(std::uint64_t key, const mesh::RouteChannel& ch);
  void refused(const Error& e, AccessRecord& rec);
  asio::awaitable<void> serve_local(std::shared_ptr<EntryListener> l, asio::ip::tcp::socket sock);
  // An admitted user connection: client ingress (chunks over TLS) or entry-node listener (plain).
  struct Conn {
    std::shared_ptr<crypto::TlsSocket> tls;
    std::optional<asio::ip::tcp::socket> plain;
    std::shared_ptr<EntryListener> listener;
    std::string rest;  // client bytes that came with the hello
    Admitted admitted;
    AccessRecord rec;
    fabric::TrafficClass cls = fabric::TrafficClass::kInteractive;
    bool returned = false;  // came back from the lane: stays here
  };
  // Opens the route (on the lane for interactive connections) and pipes until both ends closed.
  asio::awaitable<void> carry(Conn c);
  asio::awaitable<void> refuse_conn(Conn& c, const Error& e);
  // Moves `c` to `to`'s thread and carries it there; false when the socket could not be moved.
  bool hand_over(Conn& c, TcpAccessEntry& to);
  asio::awaitable<void> pipe_ingress(crypto::TlsSocket& tls, mesh::RouteChannel& ch,
                                     const std::string& first, bool bulk);

  asio::any_io_executor ex_;
  mesh::MeshNode& mesh_;
  AccessSink sink_;
  std::shared_ptr<asio::ssl::context> tls_;
  std::shared_ptr<asio::ip::tcp::acceptor> acceptor_;
  std::uint16_t port_ = 0;
  TcpCounters counters_;
  struct Open {
    ActiveAccess info;
    const mesh::RouteChannel* ch = nullptr;  // valid while the session is in open_
  };
  std::map<std::uint64_t, Open> open_;
  std::uint64_t next_open_ = 0;
  TcpAccessEntry* lane_ = nullptr;  // the interactive lane's entry (main entry only)
  TcpAccessEntry* main_ = nullptr;  // the main entry (lane entry only)
  std::uint64_t lane_handoffs_ = 0, lane_returns_ = 0;
};

// Counters of both sides as Prometheus text and JSON (for status).
std::string tcp_prometheus(const TcpCounters& entry, const TcpCounters& exit);
nlohmann::json tcp_status(const TcpCounters& entry, const TcpCounters& exit);

}  // namespace rap::services::tcp
