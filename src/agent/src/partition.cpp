#include "rap/agent/partition.h"

namespace rap::agent {

const char* to_string(PartitionState s) {
  switch (s) {
    case PartitionState::kHealthy:
      return "healthy";
    case PartitionState::kDegraded:
      return "degraded";
    case PartitionState::kIsolated:
      return "isolated";
    case PartitionState::kRecovery:
      return "recovery";
  }
  return "unknown";
}

void PartitionTracker::on_failure(TimePoint now, const std::string& why) {
  last_error_ = why;
  if (state_ == PartitionState::kHealthy || state_ == PartitionState::kRecovery) {
    state_ = PartitionState::kDegraded;
    first_failure_ = now;
  }
}

void PartitionTracker::on_success(TimePoint now, bool full_sync) {
  last_success_ = now;
  if (state_ == PartitionState::kDegraded || state_ == PartitionState::kIsolated) {
    // Contact is back; healthy only after a later full sync (heartbeat acknowledged and desired
    // state fetched again), so recovery is always a visible step.
    state_ = PartitionState::kRecovery;
    return;
  }
  if (state_ == PartitionState::kRecovery && full_sync) {
    state_ = PartitionState::kHealthy;
    last_error_.clear();
  }
}

PartitionState PartitionTracker::state(TimePoint now) const {
  if (state_ == PartitionState::kDegraded && now - first_failure_ >= isolate_after_) {
    return PartitionState::kIsolated;
  }
  return state_;
}

}  // namespace rap::agent
