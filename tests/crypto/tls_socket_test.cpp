// TlsSocket (rap/crypto/tls_socket.h) outside the fabric: closing is final.
#include "rap/crypto/tls_socket.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace rap::crypto {
namespace {

using tcp = asio::ip::tcp;

// Regression: after close() the descriptor number can be reused by another socket of the
// process; a later read or write must fail without OpenSSL touching that descriptor.
TEST(TlsSocket, OperationsAfterCloseFailWithoutTouchingTheDescriptor) {
  asio::io_context io;
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket client(io);
  client.connect(acc.local_endpoint());
  tcp::socket server = acc.accept();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  ASSERT_NE(ctx, nullptr);
  auto s = TlsSocket::wrap(std::move(client), ctx, false, "test");
  ASSERT_TRUE(s);
  const int old_fd = (*s)->fd();
  (*s)->close();
  EXPECT_FALSE((*s)->is_open());
  // Take the old descriptor number for another socket: nothing may be sent on it.
  tcp::socket other(io);
  tcp::socket peer(io);
  other.connect(acc.local_endpoint());
  peer = acc.accept();
  EXPECT_EQ(other.native_handle(), old_fd);
  auto fut = asio::co_spawn(
      io,
      [&]() -> asio::awaitable<std::pair<bool, bool>> {
        const char data[] = "x";
        auto w = co_await (*s)->write(asio::buffer(data, 1));
        char buf[8];
        auto r = co_await (*s)->read_some(asio::buffer(buf));
        if (!w) {
          EXPECT_EQ(w.error().code, "test_write");
        }
        co_return std::pair{w.has_value(), r.has_value()};
      },
      asio::use_future);
  io.run();
  const auto [wrote, read] = fut.get();
  EXPECT_FALSE(wrote);
  EXPECT_FALSE(read);
  peer.non_blocking(true);
  char got[64];
  boost::system::error_code ec;
  EXPECT_EQ(peer.read_some(asio::buffer(got), ec), 0U);  // no ClientHello, no "x"
  EXPECT_EQ(ec, asio::error::would_block);
  SSL_CTX_free(ctx);
}

}  // namespace
}  // namespace rap::crypto
