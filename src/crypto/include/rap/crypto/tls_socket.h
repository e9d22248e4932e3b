// TLS straight on a non-blocking TCP socket: OpenSSL reads and writes the file descriptor itself
// (through a BIO that sends with MSG_NOSIGNAL) and Asio only waits for readiness.
//
// Compared with asio::ssl::stream this drops two 17 KiB staging buffers per connection and one
// copy of every byte in each direction; with SSL_MODE_RELEASE_BUFFERS an idle connection holds no
// record buffers. Used by the fabric's TLS carrier and by the client ingress protocol (both ends).
//
// Errors are Result values with code "<prefix>_handshake", "<prefix>_read" or "<prefix>_write"
// (the prefix is given at construction, e.g. "carrier"); a clean TLS close by the peer is an
// error too ("peer closed TLS"): the protocols above carry their own end-of-stream marker.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "rap/common/result.h"

namespace rap::crypto {

namespace asio = boost::asio;

class TlsSocket {
 public:
  // Takes `sock` (connected) and makes a new SSL of `ctx` on its descriptor, in the server or
  // client role. The socket becomes non-blocking. Errors: "tls_error" (OpenSSL allocation) and
  // "socket_error".
  static Result<std::unique_ptr<TlsSocket>> wrap(asio::ip::tcp::socket sock, SSL_CTX* ctx,
                                                 bool server, std::string error_prefix);
  ~TlsSocket();
  TlsSocket(const TlsSocket&) = delete;
  TlsSocket& operator=(const TlsSocket&) = delete;

  // Runs the TLS handshake. On failure the message includes the certificate verification
  // failure OpenSSL reported, if any.
  asio::awaitable<Result<void>> handshake();
  // Reads at least one byte, then whatever more whole records are already available, up to
  // `buf.size()` (SSL_read returns one record of at most 16 KiB per call).
  asio::awaitable<Result<std::size_t>> read_some(asio::mutable_buffer buf);
  // Writes all of `buf`.
  asio::awaitable<Result<void>> write(asio::const_buffer buf);
  // Shuts the TCP connection down both ways and closes it; pending operations fail. Idempotent.
  void close();
  bool is_open() const { return sock_.is_open(); }

  // Client role, before handshake(): offers `protocol` by ALPN (RFC 7301). Errors: "tls_error".
  Result<void> offer_alpn(std::string_view protocol);
  // The protocol ALPN agreed on in the handshake ("" = none).
  std::string alpn() const;
  // Continues the connection on `ex` (another thread's io_context), TLS state included. Call it
  // on the current executor's thread with no operation pending; the caller then only uses the
  // socket from `ex`'s thread. Errors: "socket_error" (the connection is closed then).
  Result<void> rebind(const asio::any_io_executor& ex);

  SSL* ssl() const { return ssl_; }
  asio::ip::tcp::socket& socket() { return sock_; }
  // The descriptor the SSL uses (for TCP_INFO); valid while is_open().
  int fd() const { return fd_; }

 private:
  TlsSocket(asio::ip::tcp::socket sock, SSL* ssl, std::string prefix);
  // Runs `op` (an SSL call returning 1 on success and its byte count in `n`) until it succeeds,
  // waiting for socket readiness as OpenSSL asks.
  template <class Op>
  asio::awaitable<Result<std::size_t>> drive(Op op, const char* what);

  asio::ip::tcp::socket sock_;
  int fd_;
  SSL* ssl_;
  std::string prefix_;
};

}  // namespace rap::crypto
