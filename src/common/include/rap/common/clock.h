// Injectable time. Protocol cores take the current time as an argument; runtimes read it from a
// Clock so tests can drive time by hand.
#pragma once

#include <chrono>
#include <cstdint>

namespace rap {

using Duration = std::chrono::nanoseconds;
using TimePoint = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
};

// ManualClock: time only moves when a test says so.
class ManualClock final : public Clock {
 public:
  TimePoint now() const override { return now_; }
  void advance(Duration d) { now_ += d; }

 private:
  TimePoint now_{};
};

}  // namespace rap
