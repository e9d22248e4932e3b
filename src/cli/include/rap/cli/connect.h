// `rapctl connect RESOURCE --org SLUG [--listen 127.0.0.1:0] [--class interactive|bulk]
// [--once] [--ttl SECONDS] [--local-entry [--user-socket PATH]]`: local port forwarding to an
// organization's TCP resource through the mesh (docs/PROTOCOL.md §14). With --local-entry, on an
// entry node's host: the node agent itself listens (an entry-node listener, §14.8) and rapctl
// only keeps its ticket fresh; no forwarder and no TLS leg in the data path.
#pragma once

#include <string>

#include "rap/cli/command.h"
#include "rap/cli/config.h"

namespace rap::cli {

struct ConnectArgs {
  std::string resource;  // name or id
  std::string org;       // organization slug
  std::string listen = "127.0.0.1:0";
  std::string traffic_class = "interactive";
  bool once = false;    // exit after the first connection ends
  int ttl_seconds = 0;  // ticket lifetime asked for (0 = server default)
  bool local_entry = false;
  std::string user_socket;  // "" = the one socket in /run/rap-node-agent
};

// Runs until SIGINT/SIGTERM (or the first connection's end with `once`). Prints the local
// address on the first line of stdout.
int cmd_connect(const Globals& g, const ConnectArgs& a, Io& io, const Config& cfg);

}  // namespace rap::cli
