// The entry node's user socket (docs/PROTOCOL.md §14.8): how a user logged in on an entry host
// gets an entry-node listener (`rapctl connect RESOURCE --local-entry`), with no TLS leg and no
// forwarder process between their application and the fabric.
//
// A Unix socket any local user may connect to (mode 0666): the ticket it is handed is the
// authorization (sealed to this node's key, checked like the client ingress's), and the
// connection's SO_PEERCRED uid is the local identity the listener then serves. One length-
// prefixed JSON message each way per request (rap/common/framing.h):
//   {"v":1,"op":"hello"}                         -> {"ok":true,"node":ID}
//   {"v":1,"op":"listen","ticket":B64,"listen":"127.0.0.1:0","class":"interactive|bulk"}
//                                                -> {"ok":true,"listen":"127.0.0.1:PORT"}
//   {"v":1,"op":"ticket","ticket":B64}           -> {"ok":true}   (renewal)
// errors: {"error":{"code","message"}}. One listener per connection; it stops when the connection
// closes (open connections through it run to their end), and stop() closes every connection.
// The listeners' TcpAccessEntry must outlive the loop's last turn.
#pragma once

#include <boost/asio/local/stream_protocol.hpp>
#include <memory>
#include <set>
#include <string>

#include "rap/services/tcp_access/tcp_access.h"

namespace rap::services::tcp {

class UserSocketServer {
 public:
  static constexpr std::size_t kMaxConnections = 64;

  // Listens on `path` (an existing socket there is replaced). Runs on `entry`'s executor.
  static Result<std::unique_ptr<UserSocketServer>> start(const asio::any_io_executor& ex,
                                                         TcpAccessEntry& entry,
                                                         const std::string& path);
  ~UserSocketServer();
  void stop();
  const std::string& path() const { return path_; }
  std::size_t connections() const { return shared_->connections; }
  std::size_t listeners() const { return shared_->listeners; }
  std::uint64_t refused() const { return shared_->refused; }

 private:
  // What the connections' coroutines share with the server: they may outlive it by a turn of
  // the loop after stop() closed their sockets.
  struct Shared {
    std::size_t connections = 0;
    std::size_t listeners = 0;
    std::uint64_t refused = 0;
    std::set<asio::local::stream_protocol::socket*> open;
  };
  explicit UserSocketServer(std::string path) : path_(std::move(path)) {}
  static asio::awaitable<void> accept_loop(
      std::shared_ptr<asio::local::stream_protocol::acceptor> acc, std::shared_ptr<Shared> sh,
      TcpAccessEntry& entry);
  static asio::awaitable<void> serve(std::shared_ptr<Shared> sh, TcpAccessEntry& entry,
                                     asio::local::stream_protocol::socket sock);

  std::string path_;
  std::shared_ptr<asio::local::stream_protocol::acceptor> acceptor_;
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
};

}  // namespace rap::services::tcp
