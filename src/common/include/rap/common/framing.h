// Length-prefixed framing: [u32 big-endian length][bytes]. Used by the mesh's control messages,
// the client ingress protocol and the local stream API (docs/PROTOCOL.md §14). Pure.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "rap/common/result.h"

namespace rap {

// Appends one frame carrying `body` to `out`.
void append_frame(std::string_view body, std::string& out);

// Splits a byte stream fed in arbitrary pieces into frames.
class FrameReader {
 public:
  explicit FrameReader(std::size_t max) : max_(max) {}
  void feed(const void* data, std::size_t n);
  // The next whole frame (possibly empty), nullopt when more bytes are needed. The view stays
  // valid until the next feed(). Error "bad_frame": longer than the limit.
  Result<std::optional<std::string_view>> next();
  // Bytes fed but not yet returned as frames (they move to the next owner, e.g. a record reader).
  std::string_view rest() const { return std::string_view(buf_).substr(pos_); }
  std::size_t buffered() const { return buf_.size() - pos_; }
  void set_max(std::size_t max) { max_ = max; }

 private:
  std::size_t max_;
  std::string buf_;
  std::size_t pos_ = 0;
};

}  // namespace rap
