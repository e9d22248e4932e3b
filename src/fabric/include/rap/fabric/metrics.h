// Prometheus text exposition of fabric counters (per session, per stream).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "rap/fabric/stats.h"

namespace rap::fabric {

struct SessionSnapshot {
  std::string local_node;
  std::string peer_node;
  std::string carrier;  // tls / wss
  std::string state;
  SessionStats stats;
  std::vector<StreamStats> streams;
  std::optional<TransportInfo> transport;  // the carrier's TCP_INFO, when it has one
};

// Renders `rap_fabric_*` metrics. Label values are escaped per the exposition format.
std::string render_prometheus(const std::vector<SessionSnapshot>& sessions);

}  // namespace rap::fabric
