// FabricNode: one node's fabric endpoint. It owns the TLS identity, accepts and dials sessions
// on any carrier, dispatches incoming streams to registered services by service id, and keeps a
// registry of live sessions for metrics and status.
//
// Services register a handler per service id; the fabric resets streams for unknown services
// with UNKNOWN_SERVICE. Services never see carriers or frames.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "rap/fabric/metrics.h"
#include "rap/fabric/session.h"

namespace rap::fabric {

enum class CarrierKind { kTls, kWss };
bool parse_carrier_kind(std::string_view s, CarrierKind& out);

class FabricNode {
 public:
  using StreamHandler = std::function<asio::awaitable<void>(std::shared_ptr<Stream>)>;

  // `base` supplies limits/timeouts; node and cluster ids come from the certificate.
  static Result<std::unique_ptr<FabricNode>> create(asio::any_io_executor ex,
                                                    const crypto::NodeCredentials& creds,
                                                    SessionConfig base, const Clock& clock);

  std::shared_ptr<crypto::RevocationList> revocations() { return revocations_; }
  const crypto::NodeIdentity& identity() const { return ctx_->local_identity(); }

  void register_service(const std::string& service, StreamHandler handler);

  // Accept loop on `ep` for `kind`; returns the bound port (ep port 0 = ephemeral).
  Result<std::uint16_t> listen(CarrierKind kind, const asio::ip::tcp::endpoint& ep);
  // `lane` (TLS only): dial the peer's lane of that name (PROTOCOL.md §15); fails with
  // "lane_unsupported" when the peer does not serve it.
  asio::awaitable<Result<std::shared_ptr<Session>>> connect(CarrierKind kind, std::string host,
                                                            std::uint16_t port,
                                                            std::string lane = {});

  // Lanes, acceptor side (PROTOCOL.md §15). Incoming TLS connections that ask for `lane` by ALPN
  // are handed, right after the handshake, to `handler` (on this node's thread), which moves them
  // to the lane's node (Carrier::rebind, then adopt() on that node's thread). Call before the
  // node's thread runs (before or after listen()).
  using LaneHandler = std::function<void(std::unique_ptr<Carrier>)>;
  void serve_lane(const std::string& lane, LaneHandler handler);
  // Runs a carrier another node accepted as an incoming session of this node (a lane's node).
  // On this node's thread.
  void adopt(std::unique_ptr<Carrier> carrier);
  std::uint64_t lane_handoffs() const { return lane_handoffs_; }
  // Closes the listeners and ends every session: with `drain`, by GOAWAY (open streams finish);
  // without, at once (open streams are reset, as when the process dies).
  void stop(const std::string& reason, bool drain = true);

  // The newest open session with `node_id` (either direction), or nullptr.
  std::shared_ptr<Session> session_to(const std::string& node_id) const;
  // Closes every session with `node_id` (e.g. the peer was revoked); returns how many.
  std::size_t close_sessions_with(const std::string& node_id, const std::string& reason);

  std::vector<SessionSnapshot> snapshot() const;
  std::string prometheus() const;
  std::size_t session_count() const { return sessions_.size(); }

 private:
  FabricNode(asio::any_io_executor ex, std::shared_ptr<TlsContext> ctx,
             std::shared_ptr<crypto::RevocationList> rl, crypto::Ed25519Key key, SessionConfig base,
             const Clock& clock);
  asio::awaitable<void> accept_loop(std::shared_ptr<asio::ip::tcp::acceptor> acc, CarrierKind kind);
  asio::awaitable<void> run_session(std::shared_ptr<Session> s);
  asio::awaitable<void> serve_incoming(asio::ip::tcp::socket sock, CarrierKind kind);
  asio::awaitable<void> serve_carrier(std::unique_ptr<Carrier> carrier, std::string remote);
  void track(const std::shared_ptr<Session>& s);

  asio::any_io_executor ex_;
  std::shared_ptr<TlsContext> ctx_;
  std::shared_ptr<crypto::RevocationList> revocations_;
  KeySigner signer_;
  SessionConfig base_;
  const Clock& clock_;
  std::map<std::string, StreamHandler> services_;
  std::map<std::string, LaneHandler> lanes_;
  std::uint64_t lane_handoffs_ = 0;
  std::vector<std::shared_ptr<asio::ip::tcp::acceptor>> acceptors_;
  std::vector<std::weak_ptr<Session>> sessions_;
  // Node totals that survive session ends (closed sessions fold their counters in here).
  DirectionCounters closed_tx_;
  DirectionCounters closed_rx_;
  std::uint64_t sessions_established_ = 0;
  std::uint64_t sessions_closed_ = 0;
  std::map<std::string, std::uint64_t> sessions_refused_;  // by reason code
  bool stopped_ = false;
};

// Minimal HTTP/1.1 endpoint serving `render()` at GET /metrics (Prometheus text) and
// `status()` at GET /status (JSON). Returns the bound port.
Result<std::uint16_t> serve_metrics(const asio::any_io_executor& ex,
                                    const asio::ip::tcp::endpoint& ep,
                                    std::function<std::string()> render,
                                    std::function<std::string()> status);

}  // namespace rap::fabric
