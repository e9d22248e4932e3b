// `rapctl connect RESOURCE --org SLUG [--listen 127.0.0.1:0] [--class interactive|bulk]
// [--once] [--ttl SECONDS]`: local port forwarding to an organization's TCP resource through the
// mesh (docs/PROTOCOL.md §14).
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
};

// Runs until SIGINT/SIGTERM (or the first connection's end with `once`). Prints the local
// address on the first line of stdout.
int cmd_connect(const Globals& g, const ConnectArgs& a, Io& io, const Config& cfg);

}  // namespace rap::cli
