#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/err.h>
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
#include <cerrno>
#include <cstdint>
#include <cstring>

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

// A socket BIO that sends with MSG_NOSIGNAL: OpenSSL's own socket BIO uses write(2), which
// raises SIGPIPE (killing the process) when the peer has reset the connection.
int bio_write(BIO* b, const char* data, int len) {
  const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(b)));
  BIO_clear_retry_flags(b);
  const ssize_t n = ::send(fd, data, static_cast<std::size_t>(len), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    BIO_set_retry_write(b);
  }
  return static_cast<int>(n);
}

int bio_read(BIO* b, char* data, int len) {
  const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(b)));
  BIO_clear_retry_flags(b);
  const ssize_t n = ::recv(fd, data, static_cast<std::size_t>(len), 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    BIO_set_retry_read(b);
  }
  return static_cast<int>(n);
}

long bio_ctrl(BIO* /*b*/, int cmd, long /*num*/, void* /*ptr*/) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int bio_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

const BIO_METHOD* nosignal_socket_method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "rap-socket");
    BIO_meth_set_write(meth, bio_write);
    BIO_meth_set_read(meth, bio_read);
    BIO_meth_set_ctrl(meth, bio_ctrl);
    BIO_meth_set_create(meth, bio_create);
    return meth;
  }();
  return m;
}

struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};

// TLS directly on a non-blocking socket: OpenSSL reads and writes the file descriptor itself and
// Asio only waits for readiness. Compared with asio::ssl::stream this drops two 17 KiB staging
// buffers per connection and one copy of every byte; with SSL_MODE_RELEASE_BUFFERS an idle
// connection holds no record buffers at all.
class TlsSocket {
 public:
  TlsSocket(tcp::socket sock, SSL* ssl)
      : sock_(std::move(sock)), fd_(sock_.native_handle()), ssl_(ssl) {}

  SSL* ssl() const { return ssl_.get(); }
  tcp::socket& socket() { return sock_; }
  int fd() const { return fd_; }

  // Runs `op` until it succeeds, waiting for socket readiness as OpenSSL asks.
  template <class Op>
  asio::awaitable<Result<std::size_t>> drive(Op op, const char* what) {
    for (;;) {
      ERR_clear_error();
      std::size_t n = 0;
      const int rc = op(n);
      if (rc == 1) co_return n;
      const int err = SSL_get_error(ssl_.get(), rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        auto [ec] = co_await sock_.async_wait(
            err == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write, kTuple);
        if (ec) co_return fail(std::string("carrier_") + what, ec.message());
        continue;
      }
      if (err == SSL_ERROR_ZERO_RETURN)
        co_return fail(std::string("carrier_") + what, "peer closed TLS");
      const unsigned long e = ERR_get_error();
      std::string msg;
      if (e != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        msg = buf;
      } else if (err == SSL_ERROR_SYSCALL) {
        msg = errno != 0 ? std::strerror(errno) : "connection closed";
      } else {
        msg = "TLS error " + std::to_string(err);
      }
      co_return fail(std::string("carrier_") + what, msg);
    }
  }

  void close() {
    boost::system::error_code ec;
    sock_.shutdown(tcp::socket::shutdown_both, ec);
    sock_.close(ec);
  }

 private:
  tcp::socket sock_;
  int fd_;  // sock_'s descriptor (TCP_INFO)
  std::unique_ptr<SSL, SslFree> ssl_;
};

class TlsCarrier final : public Carrier {
 public:
  TlsCarrier(std::unique_ptr<TlsSocket> s, PeerProof p, std::string remote)
      : s_(std::move(s)), peer_(std::move(p)), remote_(std::move(remote)) {}

  asio::awaitable<Result<std::size_t>> read_some(asio::mutable_buffer buf) override {
    auto r = co_await s_->drive(
        [&](std::size_t& n) { return SSL_read_ex(s_->ssl(), buf.data(), buf.size(), &n); }, "read");
    if (!r) co_return r;
    // SSL_read returns one record (<= 16 KiB) per call: keep reading what is already available
    // so the session sees large batches.
    std::size_t total = *r;
    auto* base = static_cast<std::uint8_t*>(buf.data());
    while (total < buf.size()) {
      std::size_t n = 0;
      ERR_clear_error();
      if (SSL_read_ex(s_->ssl(), base + total, buf.size() - total, &n) != 1) break;
      total += n;
    }
    co_return total;
  }
  asio::awaitable<Result<void>> write(asio::const_buffer buf) override {
    const auto* p = static_cast<const std::uint8_t*>(buf.data());
    std::size_t left = buf.size();
    while (left > 0) {
      auto r = co_await s_->drive(
          [&](std::size_t& n) { return SSL_write_ex(s_->ssl(), p, left, &n); }, "write");
      if (!r) co_return tl::unexpected(r.error());
      p += *r;
      left -= *r;
    }
    co_return Result<void>{};
  }
  const PeerProof& peer() const override { return peer_; }
  std::string_view kind() const override { return "tls"; }
  std::string remote_endpoint() const override { return remote_; }
  void close() override { s_->close(); }
  std::optional<TransportInfo> transport_info() const override {
    return detail::tcp_transport_info(s_->fd());
  }

 private:
  std::unique_ptr<TlsSocket> s_;
  PeerProof peer_;
  std::string remote_;
};

asio::awaitable<Result<std::unique_ptr<Carrier>>> tls_handshake(std::shared_ptr<TlsContext> ctx,
                                                                tcp::socket sock, bool server,
                                                                Duration timeout) {
  auto ex = co_await asio::this_coro::executor;
  detail::tune_socket(sock);
  boost::system::error_code ec;
  sock.non_blocking(true, ec);
  if (ec) co_return fail("socket_error", ec.message());
  SSL* raw = SSL_new(ctx->native().native_handle());
  if (raw == nullptr) co_return fail("tls_error", "SSL_new failed");
  SSL_set_mode(raw, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                        SSL_MODE_RELEASE_BUFFERS);
  BIO* bio = BIO_new(nosignal_socket_method());
  if (bio == nullptr) {
    SSL_free(raw);
    co_return fail("tls_error", "BIO_new failed");
  }
  // The BIO's data is the file descriptor itself (no allocation to own).
  BIO_set_data(bio, reinterpret_cast<void*>(  // NOLINT(performance-no-int-to-ptr)
                        static_cast<std::intptr_t>(sock.native_handle())));
  SSL_set_bio(raw, bio, bio);
  if (server) {
    SSL_set_accept_state(raw);
  } else {
    SSL_set_connect_state(raw);
  }
  auto ts = std::make_unique<TlsSocket>(std::move(sock), raw);
  detail::Deadline deadline(ex, timeout, [t = ts.get()] { t->close(); });
  auto hs = co_await ts->drive(
      [&](std::size_t& n) {
        n = 0;
        return SSL_do_handshake(ts->ssl());
      },
      "handshake");
  if (!hs) {
    std::string why = crypto::verify_failure_reason(ts->ssl());
    std::string msg = deadline.expired() ? "TLS handshake timed out" : hs.error().message;
    if (!why.empty()) msg += " (certificate: " + why + ")";
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
                                                              Duration timeout) {
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
  co_return co_await tls_handshake(std::move(ctx), std::move(sock), false, timeout);
}

asio::awaitable<Result<std::unique_ptr<Carrier>>> tls_accept(std::shared_ptr<TlsContext> ctx,
                                                             tcp::socket socket, Duration timeout) {
  co_return co_await tls_handshake(std::move(ctx), std::move(socket), true, timeout);
}

}  // namespace rap::fabric
