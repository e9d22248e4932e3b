// Injectable randomness: production uses the OS CSPRNG (libsodium), tests may use a seeded one.
#pragma once

#include <cstdint>
#include <span>

namespace rap {

class Random {
 public:
  virtual ~Random() = default;
  virtual void fill(std::span<std::uint8_t> out) = 0;
};

// SystemRandom: libsodium's randombytes_buf (getrandom(2) underneath).
class SystemRandom final : public Random {
 public:
  void fill(std::span<std::uint8_t> out) override;
};

// SeededRandom: deterministic xorshift stream for tests only. NOT cryptographic.
class SeededRandom final : public Random {
 public:
  explicit SeededRandom(std::uint64_t seed) : state_(seed ? seed : 1) {}
  void fill(std::span<std::uint8_t> out) override;

 private:
  std::uint64_t state_;
};

}  // namespace rap
