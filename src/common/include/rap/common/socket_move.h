// Moving a connected TCP socket to another thread's executor (fabric lanes, PROTOCOL.md §15): a
// connection accepted on one io_context continues on another one. The descriptor, its socket
// options and everything the kernel has buffered stay as they are; only the Asio object that
// waits for readiness changes. No operation may be pending on the socket.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "rap/common/result.h"

namespace rap {

// Returns a socket on `ex` for the connection `sock` held. Errors: "socket_error" (the socket
// was closed or its descriptor could not be released); `sock` is closed then.
Result<boost::asio::ip::tcp::socket> move_socket(boost::asio::ip::tcp::socket sock,
                                                 const boost::asio::any_io_executor& ex);

}  // namespace rap
