// Shared helpers for the fuzz targets: an oracle check that traps (so libFuzzer records the
// input as a crash) and a cursor that hands out input bytes, returning zeros once exhausted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>

#define FUZZ_CHECK(cond)                                                                    \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "%s:%d: fuzz oracle violated: %s\n", __FILE__, __LINE__, #cond); \
      std::fflush(stderr);                                                                  \
      __builtin_trap();                                                                     \
    }                                                                                       \
  } while (0)

namespace rap::fuzz {

class Cursor {
 public:
  Cursor(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  std::size_t remaining() const { return size_ - pos_; }

  std::uint8_t u8() { return empty() ? 0 : data_[pos_++]; }
  std::uint16_t u16() {
    const auto hi = u8();
    return static_cast<std::uint16_t>((hi << 8) | u8());
  }
  std::uint32_t u32() {
    const std::uint32_t hi = u16();
    return (hi << 16) | u16();
  }
  std::uint64_t u64() {
    const std::uint64_t hi = u32();
    return (hi << 32) | u32();
  }
  // Up to `n` bytes (fewer when the input runs out).
  std::span<const std::uint8_t> take(std::size_t n) {
    if (n > remaining()) n = remaining();
    std::span<const std::uint8_t> out(data_ + pos_, n);
    pos_ += n;
    return out;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

}  // namespace rap::fuzz
