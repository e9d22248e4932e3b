#include "rap/common/random.h"

#include <sodium.h>

#include <cstring>

namespace rap {

void SystemRandom::fill(std::span<std::uint8_t> out) {
  static const bool ok = sodium_init() >= 0;
  (void)ok;
  randombytes_buf(out.data(), out.size());
}

void SeededRandom::fill(std::span<std::uint8_t> out) {
  for (auto& b : out) {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    b = static_cast<std::uint8_t>(state_);
  }
}

}  // namespace rap
