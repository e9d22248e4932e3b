// Carrier: an authenticated, ordered byte pipe between two nodes that a Session runs over.
// TLS over TCP and WebSocket over TLS implement it today; QUIC can be added behind the same
// interface without touching sessions or services.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rap/common/clock.h"
#include "rap/common/result.h"
#include "rap/crypto/tls.h"
#include "rap/fabric/session_core.h"
#include "rap/fabric/stats.h"

namespace rap::fabric {

namespace asio = boost::asio;

class Carrier {
 public:
  virtual ~Carrier() = default;
  // Reads at least one byte; an error (including EOF) ends the carrier.
  virtual asio::awaitable<Result<std::size_t>> read_some(asio::mutable_buffer buf) = 0;
  // Writes all of `buf`.
  virtual asio::awaitable<Result<void>> write(asio::const_buffer buf) = 0;
  // The peer as proven by its certificate, plus the channel binding for AUTH.
  virtual const PeerProof& peer() const = 0;
  virtual std::string_view kind() const = 0;  // "tls", "wss"
  virtual std::string remote_endpoint() const = 0;
  virtual void close() = 0;
  // The transport's own counters, when it has any.
  virtual std::optional<TransportInfo> transport_info() const { return std::nullopt; }
  // The lane the handshake agreed on ("" = the default lane; FabricNode::serve_lane).
  virtual std::string lane() const { return {}; }
  // Continues the carrier on `ex` (another thread); only TLS carriers can ("lane_unsupported").
  // Called with no operation pending, on the thread that ran the handshake.
  virtual Result<void> rebind(const asio::any_io_executor& /*ex*/) {
    return fail("lane_unsupported", std::string(kind()) + " carriers stay on their thread");
  }
};

// Lanes (docs/PROTOCOL.md §15): a node can run a second fabric core on its own thread for
// latency-sensitive traffic classes. Its sessions are separate TLS connections to the same
// listener, told apart by ALPN: "rap-fabric/1+<lane>"; the default lane offers no ALPN.
inline constexpr char kAlpnPrefix[] = "rap-fabric/1+";

// Mutual-TLS context shared by all carriers of a process (client and server roles).
class TlsContext {
 public:
  static Result<std::shared_ptr<TlsContext>> create(
      const crypto::NodeCredentials& creds,
      std::shared_ptr<const crypto::RevocationList> revocations);
  asio::ssl::context& native() { return ctx_; }
  const crypto::NodeIdentity& local_identity() const { return local_; }
  // Lanes this listener accepts by ALPN (set before accepting; other offers get no ALPN answer,
  // so the dialer sees that the lane is missing).
  void set_lanes(std::vector<std::string> lanes) { lanes_ = std::move(lanes); }
  const std::vector<std::string>& lanes() const { return lanes_; }

 private:
  TlsContext() : ctx_(asio::ssl::context::tls) {}
  asio::ssl::context ctx_;
  crypto::NodeIdentity local_;
  std::shared_ptr<const crypto::RevocationList> revocations_;
  std::vector<std::string> lanes_;
};

// TLS 1.3 over TCP. A `lane` other than "" is offered by ALPN; the carrier's lane() says whether
// the listener agreed.
asio::awaitable<Result<std::unique_ptr<Carrier>>> tls_connect(std::shared_ptr<TlsContext> ctx,
                                                              std::string host, std::uint16_t port,
                                                              Duration timeout,
                                                              std::string lane = {});
asio::awaitable<Result<std::unique_ptr<Carrier>>> tls_accept(std::shared_ptr<TlsContext> ctx,
                                                             asio::ip::tcp::socket socket,
                                                             Duration timeout);

// WebSocket (binary messages) over TLS, for networks that only pass HTTPS. Path /fabric/v1.
asio::awaitable<Result<std::unique_ptr<Carrier>>> wss_connect(std::shared_ptr<TlsContext> ctx,
                                                              std::string host, std::uint16_t port,
                                                              Duration timeout);
asio::awaitable<Result<std::unique_ptr<Carrier>>> wss_accept(std::shared_ptr<TlsContext> ctx,
                                                             asio::ip::tcp::socket socket,
                                                             Duration timeout);

}  // namespace rap::fabric
