#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstdint>
#include <cstring>

#include "carrier_util.h"
#include "rap/crypto/tls_socket.h"
#include "rap/fabric/carrier.h"

namespace rap::fabric {

using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

Result<std::shared_ptr<TlsContext>> TlsContext::create(
    const crypto::NodeCredentials& creds,
    std::shared_ptr<const crypto::RevocationList> revocations) {
  std::shared_ptr<TlsContext> c(new TlsContext());
  c->revocations_ = std::move(revocations);
  auto ok = crypto::configure_mutual_tls(c->ctx_.native_handle(), creds, c->revocations_.get());
  if (!ok) return tl::unexpected(ok.error());
  // Server side of lanes: pick the client's "rap-fabric/1+<lane>" when this node serves it.
  SSL_CTX_set_alpn_select_cb(
      c->ctx_.native_handle(),
      [](SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
         unsigned inlen, void* arg) -> int {
        const auto* self = static_cast<const TlsContext*>(arg);
        const std::string_view prefix(kAlpnPrefix);
        for (unsigned i = 0; i < inlen;) {
          const unsigned len = in[i];
          if (i + 1 + len > inlen) break;
          const std::string_view proto(reinterpret_cast<const char*>(in + i + 1), len);
          if (proto.starts_with(prefix)) {
            const auto lane = proto.substr(prefix.size());
            for (const auto& l : self->lanes()) {
              if (l == lane) {
                *out = in + i + 1;
                *outlen = static_cast<unsigned char>(len);
                return SSL_TLSEXT_ERR_OK;
              }
            }
          }
          i += 1 + len;
        }
        return SSL_TLSEXT_ERR_NOACK;
      },
      c.get());
  auto id = crypto::identity_from_pem(creds.cert_pem);
  if (!id) return tl::unexpected(id.error());
  c->local_ = *id;
  return c;
}

namespace detail {

Result<PeerProof> proof_from_ssl(SSL* ssl) {
  auto id = crypto::peer_identity(ssl);
  if (!id) return tl::unexpected(id.error());
  auto binding = crypto::export_keying_material(ssl, kExporterLabel, kExporterLength);
  if (!binding) return tl::unexpected(binding.error());
  PeerProof p;
  p.node_id = id->node_id;
  p.cluster_id = id->cluster_id;
  p.serial = id->serial;
  p.public_key = id->public_key;
  p.channel_binding = std::move(*binding);
  return p;
}

void tune_socket(tcp::socket& s) {
  boost::system::error_code ec;
  s.set_option(tcp::no_delay(true), ec);
  const int lowat = kNotSentLowat;
  ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
}

std::optional<TransportInfo> tcp_transport_info(int fd) {
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (fd < 0 || ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return std::nullopt;
  TransportInfo out;
  out.retransmits = ti.tcpi_total_retrans;
  out.lost = ti.tcpi_lost;
  out.rtt_ms = static_cast<double>(ti.tcpi_rtt) / 1000.0;
  return out;
}

std::string endpoint_string(const tcp::socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "unknown";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

std::string describe_tls_failure(SSL* ssl, const boost::system::error_code& ec) {
  std::string why = crypto::verify_failure_reason(ssl);
  std::string msg = ec.message();
  if (!why.empty()) msg += " (certificate: " + why + ")";
  return msg;
}

}  // namespace detail

namespace {

using crypto::TlsSocket;

class TlsCarrier final : public Carrier {
 public:
  TlsCarrier(std::unique_ptr<TlsSocket> s, PeerProof p, std::string remote)
      : s_(std::move(s)), peer_(std::move(p)), remote_(std::move(remote)) {}

  asio::awaitable<Result<std::size_t>> read_some(asio::mutable_buffer buf) override {
    // Large batches: TlsSocket keeps reading records already available up to buf.size().
    co_return co_await s_->read_some(buf);
  }
  asio::awaitable<Result<void>> write(asio::const_buffer buf) override {
    co_return co_await s_->write(buf);
  }
  const PeerProof& peer() const override { return peer_; }
  std::string_view kind() const override { return "tls"; }
  std::string remote_endpoint() const override { return remote_; }
  void close() override { s_->close(); }
  std::optional<TransportInfo> transport_info() const override {
    return detail::tcp_transport_info(s_->fd());
  }
  std::string lane() const override {
    const auto a = s_->alpn();
    const std::string_view prefix(kAlpnPrefix);
    return a.starts_with(prefix) ? a.substr(prefix.size()) : std::string();
  }
  Result<void> rebind(const asio::any_io_executor& ex) override { return s_->rebind(ex); }

 private:
  std::unique_ptr<TlsSocket> s_;
  PeerProof peer_;
  std::string remote_;
};

asio::awaitable<Result<std::unique_ptr<Carrier>>> tls_handshake(std::shared_ptr<TlsContext> ctx,
                                                                tcp::socket sock, bool server,
                                                                Duration timeout,
                                                                const std::string& lane) {
  auto ex = co_await asio::this_coro::executor;
  detail::tune_socket(sock);
  auto wrapped = TlsSocket::wrap(std::move(sock), ctx->native().native_handle(), server, "carrier");
  if (!wrapped) co_return tl::unexpected(wrapped.error());
  std::unique_ptr<TlsSocket> ts = std::move(*wrapped);
  if (!lane.empty()) {
    if (auto a = ts->offer_alpn(kAlpnPrefix + lane); !a) co_return tl::unexpected(a.error());
  }
  detail::Deadline deadline(ex, timeout, [t = ts.get()] { t->close(); });
  if (auto hs = co_await ts->handshake(); !hs) {
    std::string msg = deadline.expired() ? "TLS handshake timed out" : hs.error().message;
    co_return fail("tls_handshake_failed", msg);
  }
  auto proof = detail::proof_from_ssl(ts->ssl());
  if (!proof) co_return tl::unexpected(proof.error());
  deadline.cancel();
  std::string remote = detail::endpoint_string(ts->socket());
  co_return std::make_unique<TlsCarrier>(std::move(ts), std::move(*proof), std::move(remote));
}

}  // namespace

asio::awaitable<Result<std::unique_ptr<Carrier>>> tls_connect(std::shared_ptr<TlsContext> ctx,
                                                              std::string host, std::uint16_t port,
                                                              Duration timeout, std::string lane) {
  auto ex = co_await asio::this_coro::executor;
  tcp::socket sock(ex);
  detail::Deadline deadline(ex, timeout, [&] {
    boost::system::error_code ec;
    sock.close(ec);
  });
  tcp::resolver resolver(ex);
  auto [rec, results] = co_await resolver.async_resolve(host, std::to_string(port), kTuple);
  if (rec) co_return fail("resolve_failed", host + ": " + rec.message());
  auto [cec, ep] = co_await asio::async_connect(sock, results, kTuple);
  if (cec) {
    co_return fail("connect_failed", host + ":" + std::to_string(port) + ": " +
                                         (deadline.expired() ? "timed out" : cec.message()));
  }
  deadline.cancel();
  co_return co_await tls_handshake(std::move(ctx), std::move(sock), false, timeout, lane);
}

asio::awaitable<Result<std::unique_ptr<Carrier>>> tls_accept(std::shared_ptr<TlsContext> ctx,
                                                             tcp::socket socket, Duration timeout) {
  co_return co_await tls_handshake(std::move(ctx), std::move(socket), true, timeout, {});
}

}  // namespace rap::fabric
