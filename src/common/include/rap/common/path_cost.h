// The cost of one fabric hop, in milliseconds of round-trip time, as both the mesh's peer score
// and the control plane's route planner weigh it. Measured on live sessions (not probes):
//   smoothed RTT + 2 x its variation (jitter: delay spikes, retransmission stalls)
//   + 5 ms per TCP retransmit per second on the carrier (loss), at most 200 ms.
#pragma once

#include <algorithm>

namespace rap {

inline double hop_cost_ms(double rtt_ms, double jitter_ms, double retransmits_per_s) {
  return rtt_ms + 2 * std::max(0.0, jitter_ms) +
         std::min(200.0, 5.0 * std::max(0.0, retransmits_per_s));
}

}  // namespace rap
