// Resumable flows (docs/PROTOCOL.md §14.7): the sequencing that lets an open stream move to
// another route without the application noticing. Each side numbers the bytes it sends, keeps
// them until the other side acknowledges them, and after a route switch resends from the
// position the other side reports; the receiver delivers each position exactly once and drops
// anything older (a late frame from the old route, the overlap of a resend).
//
// This header is the protocol core only (no I/O, no clock): frame header codec, the receive
// sequencer and the send-side resend buffer. MeshNode drives them over route channels.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include "rap/common/result.h"

namespace rap::mesh {

// Frame: u8 type | u32 length (big-endian) | u64 offset (big-endian) | payload (DATA only).
//   DATA: payload holds the bytes at sequence positions [offset, offset+length).
//   ACK:  no payload; offset = every position below it was delivered.
//   END:  no payload; the sender's half-close occupies position `offset` (one position).
//   ABORT: no payload, offset 0; the sender ended the flow for good (a reset or a revoked grant):
//         the receiver ends its side at once instead of holding it for a resume.
enum class FlowFrameType : std::uint8_t { kData = 1, kAck = 2, kEnd = 3, kAbort = 4 };
inline constexpr std::size_t kFlowHeaderSize = 13;
inline constexpr std::size_t kMaxFlowData = 64 * 1024;

struct FlowFrameHeader {
  FlowFrameType type = FlowFrameType::kData;
  std::uint32_t length = 0;
  std::uint64_t offset = 0;
};

void encode_flow_header(const FlowFrameHeader& h, std::uint8_t* out);
// nullopt: fewer than kFlowHeaderSize bytes. Error "flow_bad_frame": unknown type, payload on
// ACK/END, DATA longer than kMaxFlowData.
Result<std::optional<FlowFrameHeader>> decode_flow_header(std::span<const std::uint8_t> in);

// Receive side: `next` is the first position not yet delivered.
struct FlowRx {
  std::uint64_t next = 0;
  std::uint64_t stale = 0;  // bytes dropped as already delivered
  // For a DATA frame at `offset` of `length` bytes: how many leading bytes are old (to drop).
  // Error "flow_gap" when the frame starts beyond `next` (bytes would be missing).
  Result<std::size_t> old_prefix(std::uint64_t offset, std::size_t length) const;
};

// Send side: positions handed out, acknowledged, and the bytes kept for resending.
class FlowTx {
 public:
  std::uint64_t next() const { return data_end_ + (end_ ? 1 : 0); }
  std::uint64_t acked() const { return acked_; }
  bool ended() const { return end_; }
  // Bytes sent but not acknowledged (what a resend would carry).
  std::size_t unacked_bytes() const { return kept_; }
  // Keeps `data`, returns its first position.
  std::uint64_t push(std::span<const std::uint8_t> data);
  // The half-close; returns its position. At most once.
  std::uint64_t push_end();
  // Everything below `upto` was delivered. Error "flow_bad_ack" when upto > next().
  Result<void> ack(std::uint64_t upto);
  // Calls f(offset, bytes) for every kept byte at or after `from` (in order, in chunks), then
  // end(offset) if the half-close is at or after `from`.
  template <typename Data, typename End>
  void resend_from(std::uint64_t from, Data&& f, End&& end) const {
    for (const auto& c : chunks_) {
      const std::uint64_t stop = c.offset + c.bytes.size();
      if (stop <= from) continue;
      const std::uint64_t start = from > c.offset ? from : c.offset;
      f(start, std::span<const std::uint8_t>(c.bytes).subspan(start - c.offset));
    }
    if (end_ && data_end_ >= from) end(data_end_);
  }

 private:
  struct Chunk {
    std::uint64_t offset;
    std::vector<std::uint8_t> bytes;
  };
  std::deque<Chunk> chunks_;
  std::uint64_t data_end_ = 0;
  std::uint64_t acked_ = 0;
  std::size_t kept_ = 0;
  bool end_ = false;
};

}  // namespace rap::mesh
