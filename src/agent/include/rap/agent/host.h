// What the host really offers and how loaded it is, read from /proc and the system.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace rap::agent {

// Facts sent with the join request: hostname, os, arch, cpus, memory_mb, addresses.
nlohmann::json host_facts();

// Capabilities detected on this host (reported, never a permission):
// can_route_mesh, can_accept_client_ingress and can_run_tcp_exit always; can_run_rdp_worker when
// FreeRDP is installed; can_store_config unless the node profile is "thin".
std::vector<std::string> detect_capabilities(const std::string& profile);

// Load sampler: CPU and network rates are deltas between successive calls.
class LoadSampler {
 public:
  // {cpu_permille, memory_kib, net_rx_bps, net_tx_bps, open_sessions, fds}
  nlohmann::json sample(std::uint32_t open_sessions);

 private:
  std::uint64_t cpu_busy_ = 0, cpu_total_ = 0;
  std::uint64_t rx_ = 0, tx_ = 0;
  double last_ = 0;
};

}  // namespace rap::agent
