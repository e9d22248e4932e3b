// PartitionTracker: the agent's view of its contact with the control plane.
//
//   healthy --(a call fails)--> degraded --(no success for isolate_after)--> isolated
//   degraded / isolated --(a call succeeds)--> recovery --(a later full sync)--> healthy
//
// In degraded and isolated the agent keeps running the workloads its last valid state
// authorizes and starts nothing that needs fresh authority. Pure logic: time is passed in.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "rap/common/clock.h"

namespace rap::agent {

enum class PartitionState : std::uint8_t { kHealthy, kDegraded, kIsolated, kRecovery };
const char* to_string(PartitionState s);

class PartitionTracker {
 public:
  explicit PartitionTracker(Duration isolate_after = std::chrono::seconds(30))
      : isolate_after_(isolate_after) {}

  void on_failure(TimePoint now, const std::string& why);
  // A call succeeded. `full_sync`: heartbeat acknowledged and desired state fetched.
  void on_success(TimePoint now, bool full_sync);
  PartitionState state(TimePoint now) const;
  const std::string& last_error() const { return last_error_; }
  TimePoint last_success() const { return last_success_; }

 private:
  Duration isolate_after_;
  PartitionState state_ = PartitionState::kHealthy;
  TimePoint last_success_{};
  TimePoint first_failure_{};
  std::string last_error_;
};

}  // namespace rap::agent
