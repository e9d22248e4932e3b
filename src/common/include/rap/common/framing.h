// Length-prefixed framing: [u32 big-endian length][bytes]. Used by the mesh's control messages,
// the client ingress protocol and the local stream API (docs/PROTOCOL.md §14). Pure.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rap/common/result.h"

namespace rap {

// Appends one frame carrying `body` to `out`.
void append_frame(std::string_view body, std::string& out);
// Writes the 4-byte header of a frame of `n` body bytes at `p` (for frames built in place).
inline void put_frame_header(char* p, std::uint32_t n) {
  p[0] = static_cast<char>(n >> 24);
  p[1] = static_cast<char>(n >> 16);
  p[2] = static_cast<char>(n >> 8);
  p[3] = static_cast<char>(n);
}
inline constexpr std::size_t kFrameHeader = 4;

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

// Splits a chunk stream ([u32 length][bytes]..., a zero-length chunk = the half-close: the client
// ingress and the local stream API) into data pieces without copying: every piece
// is a view into the buffer given to decode(), and a chunk split across reads comes out as
// several pieces, so neither end ever buffers a whole chunk. Pure (fuzzed).
class ChunkDecoder {
 public:
  explicit ChunkDecoder(std::size_t max_chunk) : max_(max_chunk) {}
  // Appends the data of `in` to `out` as views into `in` (never empty views). Sets `ended` at the
  // zero-length chunk (the half-close). Errors "bad_frame": a chunk longer than the limit, or
  // bytes after the half-close. After an error the decoder stays failed.
  Result<void> decode(std::string_view in, std::vector<std::string_view>& out);
  bool ended() const { return ended_; }

 private:
  std::size_t max_;
  std::size_t remaining_ = 0;  // body bytes left in the current chunk
  std::array<unsigned char, 4> hdr_{};
  std::size_t hdr_len_ = 0;
  bool ended_ = false;
  bool failed_ = false;
};

}  // namespace rap
