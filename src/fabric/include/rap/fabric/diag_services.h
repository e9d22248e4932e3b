// Built-in diagnostic services every node can offer (health checks, `rap-fabric ping/push`,
// benchmarks):
//   echo    — returns every byte it reads, then half-closes after the peer does;
//   discard — reads to EOF, then replies with the decimal byte count and half-closes.
#pragma once

#include "rap/fabric/node.h"

namespace rap::fabric {

asio::awaitable<void> echo_service(std::shared_ptr<Stream> stream);
asio::awaitable<void> discard_service(std::shared_ptr<Stream> stream);

inline void register_diagnostic_services(FabricNode& node) {
  node.register_service("echo", echo_service);
  node.register_service("discard", discard_service);
}

}  // namespace rap::fabric
