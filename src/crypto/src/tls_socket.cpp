#include "rap/crypto/tls_socket.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "rap/common/socket_move.h"
#include "rap/crypto/tls.h"

namespace rap::crypto {

namespace {

using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadAhead = 64 * 1024;

int fd_of(BIO* b) {
  return static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(b)));
}

// OpenSSL's own socket BIO uses write(2), which raises SIGPIPE (killing the process) when the
// peer has reset the connection; this one sends with MSG_NOSIGNAL.
int bio_write(BIO* b, const char* data, int len) {
  BIO_clear_retry_flags(b);
  const ssize_t n = ::send(fd_of(b), data, static_cast<std::size_t>(len), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_write(b);
  return static_cast<int>(n);
}

int bio_read(BIO* b, char* data, int len) {
  BIO_clear_retry_flags(b);
  const ssize_t n = ::recv(fd_of(b), data, static_cast<std::size_t>(len), 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(b);
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

}  // namespace

Result<std::unique_ptr<TlsSocket>> TlsSocket::wrap(tcp::socket sock, SSL_CTX* ctx, bool server,
                                                   std::string error_prefix) {
  boost::system::error_code ec;
  sock.non_blocking(true, ec);
  if (ec) return fail("socket_error", ec.message());
  SSL* raw = SSL_new(ctx);
  if (raw == nullptr) return fail("tls_error", "SSL_new failed");
  SSL_set_mode(raw, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                        SSL_MODE_RELEASE_BUFFERS);
  // Read ahead into a 64 KiB buffer: one recv(2) brings several records (without it OpenSSL
  // makes two per record, header then body). Released when empty, so idle costs nothing.
  SSL_set_read_ahead(raw, 1);
  SSL_set_default_read_buffer_len(raw, kReadAhead);
  BIO* bio = BIO_new(nosignal_socket_method());
  if (bio == nullptr) {
    SSL_free(raw);
    return fail("tls_error", "BIO_new failed");
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
  return std::unique_ptr<TlsSocket>(new TlsSocket(std::move(sock), raw, std::move(error_prefix)));
}

TlsSocket::TlsSocket(tcp::socket sock, SSL* ssl, std::string prefix)
    : sock_(std::move(sock)), fd_(sock_.native_handle()), ssl_(ssl), prefix_(std::move(prefix)) {}

TlsSocket::~TlsSocket() {
  SSL_free(ssl_);
}

template <class Op>
asio::awaitable<Result<std::size_t>> TlsSocket::drive(Op op, const char* what) {
  for (;;) {
    // After close() the descriptor number may already belong to another socket of this
    // process: never let OpenSSL touch it again.
    if (!sock_.is_open()) co_return fail(prefix_ + "_" + what, "connection closed");
    ERR_clear_error();
    errno = 0;
    std::size_t n = 0;
    const int rc = op(n);
    if (rc == 1) co_return n;
    const int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      auto [ec] = co_await sock_.async_wait(
          err == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write, kTuple);
      if (ec) co_return fail(prefix_ + "_" + what, ec.message());
      continue;
    }
    if (err == SSL_ERROR_ZERO_RETURN) co_return fail(prefix_ + "_" + what, "peer closed TLS");
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
    co_return fail(prefix_ + "_" + what, msg);
  }
}

asio::awaitable<Result<void>> TlsSocket::handshake() {
  auto r = co_await drive(
      [&](std::size_t& n) {
        n = 0;
        return SSL_do_handshake(ssl_);
      },
      "handshake");
  if (!r) {
    Error e = r.error();
    const std::string why = verify_failure_reason(ssl_);
    if (!why.empty()) e.message += " (certificate: " + why + ")";
    co_return tl::unexpected(std::move(e));
  }
  co_return Result<void>{};
}

asio::awaitable<Result<std::size_t>> TlsSocket::read_some(asio::mutable_buffer buf) {
  auto r = co_await drive(
      [&](std::size_t& n) { return SSL_read_ex(ssl_, buf.data(), buf.size(), &n); }, "read");
  if (!r) co_return r;
  std::size_t total = *r;
  auto* base = static_cast<std::uint8_t*>(buf.data());
  while (total < buf.size()) {
    std::size_t n = 0;
    ERR_clear_error();
    if (SSL_read_ex(ssl_, base + total, buf.size() - total, &n) != 1) break;
    total += n;
  }
  co_return total;
}

asio::awaitable<Result<void>> TlsSocket::write(asio::const_buffer buf) {
  const auto* p = static_cast<const std::uint8_t*>(buf.data());
  std::size_t left = buf.size();
  while (left > 0) {
    auto r =
        co_await drive([&](std::size_t& n) { return SSL_write_ex(ssl_, p, left, &n); }, "write");
    if (!r) co_return tl::unexpected(r.error());
    p += *r;
    left -= *r;
  }
  co_return Result<void>{};
}

Result<void> TlsSocket::offer_alpn(std::string_view protocol) {
  if (protocol.empty() || protocol.size() > 255) return fail("tls_error", "bad ALPN protocol");
  std::string wire(1, static_cast<char>(protocol.size()));
  wire += protocol;
  // SSL_set_alpn_protos returns 0 on success.
  if (SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(wire.data()),
                          static_cast<unsigned>(wire.size())) != 0) {
    return fail("tls_error", "SSL_set_alpn_protos failed");
  }
  return {};
}

std::string TlsSocket::alpn() const {
  const unsigned char* p = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl_, &p, &len);
  return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), len);
}

Result<void> TlsSocket::rebind(const asio::any_io_executor& ex) {
  auto moved = move_socket(std::move(sock_), ex);
  if (!moved) {
    sock_ = tcp::socket(ex);  // closed: every later operation fails cleanly
    return tl::unexpected(moved.error());
  }
  sock_ = std::move(*moved);
  return {};
}

void TlsSocket::close() {
  boost::system::error_code ec;
  sock_.shutdown(tcp::socket::shutdown_both, ec);
  sock_.close(ec);
}

}  // namespace rap::crypto
