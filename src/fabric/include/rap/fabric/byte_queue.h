// ByteQueue: FIFO of bytes in 64 KiB chunks. Appends copy once; reads hand out contiguous views.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <span>
#include <vector>

namespace rap::fabric {

class ByteQueue {
 public:
  static constexpr std::size_t kChunk = 64 * 1024;

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  void append(std::span<const std::uint8_t> data) {
    while (!data.empty()) {
      if (chunks_.empty() || chunks_.back().size() == chunks_.back().capacity()) {
        chunks_.emplace_back();
        chunks_.back().reserve(std::max(kChunk, std::min<std::size_t>(data.size(), 1u << 20)));
      }
      auto& tail = chunks_.back();
      const std::size_t n = std::min(data.size(), tail.capacity() - tail.size());
      tail.insert(tail.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
      data = data.subspan(n);
      size_ += n;
    }
  }

  // Largest contiguous readable span at the front.
  std::span<const std::uint8_t> front() const {
    if (chunks_.empty()) return {};
    return std::span<const std::uint8_t>(chunks_.front()).subspan(head_);
  }

  void consume(std::size_t n) {
    size_ -= n;
    while (n > 0) {
      const std::size_t avail = chunks_.front().size() - head_;
      if (n < avail) {
        head_ += n;
        return;
      }
      n -= avail;
      chunks_.pop_front();
      head_ = 0;
    }
    if (size_ == 0 && !chunks_.empty() && chunks_.front().size() == head_) {
      chunks_.pop_front();
      head_ = 0;
    }
  }

  // Copies up to out.size() bytes from the front into `out` and consumes them.
  std::size_t read(std::span<std::uint8_t> out) {
    std::size_t done = 0;
    while (done < out.size() && size_ > 0) {
      auto f = front();
      const std::size_t n = std::min(f.size(), out.size() - done);
      std::memcpy(out.data() + done, f.data(), n);
      consume(n);
      done += n;
    }
    return done;
  }

  void clear() {
    chunks_.clear();
    head_ = 0;
    size_ = 0;
  }

 private:
  std::deque<std::vector<std::uint8_t>> chunks_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace rap::fabric
