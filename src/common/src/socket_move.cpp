#include "rap/common/socket_move.h"

#include <unistd.h>

namespace rap {

Result<boost::asio::ip::tcp::socket> move_socket(boost::asio::ip::tcp::socket sock,
                                                 const boost::asio::any_io_executor& ex) {
  boost::system::error_code ec;
  if (!sock.is_open()) return fail("socket_error", "socket is closed");
  const auto protocol = sock.local_endpoint(ec).protocol();
  if (ec) {
    sock.close(ec);
    return fail("socket_error", "local endpoint: " + ec.message());
  }
  const int fd = sock.release(ec);
  if (ec) {
    sock.close(ec);
    return fail("socket_error", "release: " + ec.message());
  }
  boost::asio::ip::tcp::socket out(ex);
  out.assign(protocol, fd, ec);
  if (ec) {
    ::close(fd);
    return fail("socket_error", "assign: " + ec.message());
  }
  return out;
}

}  // namespace rap
