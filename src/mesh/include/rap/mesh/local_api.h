// The node's local stream API (docs/PROTOCOL.md §14.6): service workloads in their own
// processes get route channels from the node's one MeshNode through a Unix socket, and never
// hold peer sessions or choose routes (the lease they present fixes the route).
//
// Authentication: the socket file is created with mode 0660 in a directory only the agent's user
// (and group) can enter, and every connection's peer credentials (SO_PEERCRED: pid, uid) go
// through the caller's `Authorize` check (the agent allows only processes it supervises as
// workloads). Protocol: one length-prefixed JSON request
//   {"v":1, "op":"open", "lease": wire, "class": "interactive|bulk", "hello": {...}}
// answered with {"ok":true, "route": id, "answer": {...}} or {"error":{"code","message"}}, then
// length-prefixed chunks both ways; a zero-length chunk is the half-close.
#pragma once

#include <boost/asio/local/stream_protocol.hpp>
#include <functional>
#include <memory>
#include <string>

#include "rap/mesh/mesh_node.h"

namespace rap::mesh {

struct LocalPeer {
  int pid = 0;
  unsigned uid = 0;
};

class LocalStreamServer {
 public:
  // Returns the workload's name when the peer may open routes, or an error (its message is
  // sent to the peer and logged).
  using Authorize = std::function<Result<std::string>(const LocalPeer&)>;

  // Listens on `path` (an existing file there is replaced). Runs on `mesh`'s executor thread.
  static Result<std::unique_ptr<LocalStreamServer>> start(const asio::any_io_executor& ex,
                                                          MeshNode& mesh, const std::string& path,
                                                          Authorize authorize);
  ~LocalStreamServer();
  void stop();
  const std::string& path() const { return path_; }
  std::uint64_t opened() const { return opened_; }
  std::uint64_t refused() const { return refused_; }

 private:
  LocalStreamServer(asio::any_io_executor ex, MeshNode& mesh, std::string path, Authorize a);
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(asio::local::stream_protocol::socket sock);

  asio::any_io_executor ex_;
  MeshNode& mesh_;
  std::string path_;
  Authorize authorize_;
  std::shared_ptr<asio::local::stream_protocol::acceptor> acceptor_;
  std::uint64_t opened_ = 0;
  std::uint64_t refused_ = 0;
};

}  // namespace rap::mesh
