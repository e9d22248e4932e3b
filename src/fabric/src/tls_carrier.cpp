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

#include "carrier_util.h"
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

std::string describe_tls_failure(SSL* ssl, const boost::system::error_code& ec) {
  std::string why = crypto::verify_failure_reason(ssl);
  std::string msg = ec.message();
  if (!why.empty()) msg += " (certificate: " + why + ")";
  return msg;
}

}  // namespace detail

namespace {

class TlsCarrier final : public Carrier {
 public:
  TlsCarrier(asio::ssl::stream<tcp::socket> s, PeerProof p, std::string remote)
      : stream_(std::move(s)), peer_(std::move(p)), remote_(std::move(remote)) {}

  asio::awaitable<Result<std::size_t>> read_some(asio::mutable_buffer buf) override {
    auto [ec, n] = co_await stream_.async_read_some(buf, kTuple);
    if (ec) co_return fail("carrier_read", ec.message());
    co_return n;
  }
  asio::awaitable<Result<void>> write(asio::const_buffer buf) override {
    auto [ec, n] = co_await asio::async_write(stream_, buf, kTuple);
    (void)n;
    if (ec) co_return fail("carrier_write", ec.message());
    co_return Result<void>{};
  }
  const PeerProof& peer() const override { return peer_; }
  std::string_view kind() const override { return "tls"; }
  std::string remote_endpoint() const override { return remote_; }
  void close() override {
    boost::system::error_code ec;
    stream_.lowest_layer().shutdown(tcp::socket::shutdown_both, ec);
    stream_.lowest_layer().close(ec);
  }

 private:
  asio::ssl::stream<tcp::socket> stream_;
  PeerProof peer_;
  std::string remote_;
};

std::string endpoint_string(const tcp::socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "unknown";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

}  // namespace

asio::awaitable<Result<std::unique_ptr<Carrier>>> tls_connect(std::shared_ptr<TlsContext> ctx,
                                                              std::string host,
                                                              std::uint16_t port,
                                                              Duration timeout) {
  auto ex = co_await asio::this_coro::executor;
  asio::ssl::stream<tcp::socket> stream(ex, ctx->native());
  detail::Deadline deadline(ex, timeout, [&] {
    boost::system::error_code ec;
    stream.lowest_layer().close(ec);
  });
  tcp::resolver resolver(ex);
  auto [rec, results] = co_await resolver.async_resolve(host, std::to_string(port), kTuple);
  if (rec) co_return fail("resolve_failed", host + ": " + rec.message());
  auto [cec, ep] = co_await asio::async_connect(stream.lowest_layer(), results, kTuple);
  if (cec) {
    co_return fail("connect_failed", host + ":" + std::to_string(port) + ": " +
                                         (deadline.expired() ? "timed out" : cec.message()));
  }
  detail::tune_socket(stream.next_layer());
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, kTuple);
  if (hec) {
    co_return fail("tls_handshake_failed",
                   deadline.expired() ? "TLS handshake timed out"
                                      : detail::describe_tls_failure(stream.native_handle(), hec));
  }
  auto proof = detail::proof_from_ssl(stream.native_handle());
  if (!proof) co_return tl::unexpected(proof.error());
  deadline.cancel();
  std::string remote = endpoint_string(stream.next_layer());
  co_return std::make_unique<TlsCarrier>(std::move(stream), std::move(*proof), std::move(remote));
}

asio::awaitable<Result<std::unique_ptr<Carrier>>> tls_accept(std::shared_ptr<TlsContext> ctx,
                                                             tcp::socket socket,
                                                             Duration timeout) {
  auto ex = co_await asio::this_coro::executor;
  detail::tune_socket(socket);
  asio::ssl::stream<tcp::socket> stream(std::move(socket), ctx->native());
  detail::Deadline deadline(ex, timeout, [&] {
    boost::system::error_code ec;
    stream.lowest_layer().close(ec);
  });
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kTuple);
  if (hec) {
    co_return fail("tls_handshake_failed",
                   deadline.expired() ? "TLS handshake timed out"
                                      : detail::describe_tls_failure(stream.native_handle(), hec));
  }
  auto proof = detail::proof_from_ssl(stream.native_handle());
  if (!proof) co_return tl::unexpected(proof.error());
  deadline.cancel();
  std::string remote = endpoint_string(stream.next_layer());
  co_return std::make_unique<TlsCarrier>(std::move(stream), std::move(*proof), std::move(remote));
}

}  // namespace rap::fabric
