// Fuzz target for the frame codec (rap/fabric/frame.h).
//
// Input: byte 0 selects the max frame size, the rest is a byte stream decoded frame after frame
// until the decoder needs more bytes or reports an error. Oracles (trap on violation):
//  * decode_frame never consumes more than it was given; a frame consumes exactly 9 + length;
//    kNeedMore consumes nothing; errors that are confined to a stream (stream_error) carry a
//    non-zero stream id and only occur once the whole frame is buffered (SessionCore skips
//    9 + length bytes on them);
//  * the decoded body type matches the header type, and DATA/GOAWAY/... obey the stream id rules;
//  * prefix consistency: the frame's bytes minus one give kNeedMore, exactly its bytes give the
//    same frame;
//  * round trip: encode(decoded body) reproduces the input bytes exactly (except a non-printable
//    RESET_STREAM/GOAWAY reason, which the decoder replaces), decodes again to the same type,
//    stream id, flags and fields (DATA: same sequence and payload bytes), and encoding that
//    second decode gives the same bytes again (idempotence).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>
#include <vector>

#include "fuzz_check.h"
#include "rap/fabric/frame.h"

namespace {

using namespace rap::fabric;
using Status = DecodeResult::Status;

constexpr char kNonPrintableReason[] = "(non-printable reason)";

std::uint32_t pick_max_frame_size(std::uint8_t b) {
  switch (b & 3) {
    case 0:
      return b >> 2;  // 0..63: almost everything is a FRAME_SIZE error
    case 1:
      return kMinMaxFrameSize;
    case 2:
      return 256 * 1024;
    default:
      return kMaxMaxFrameSize;
  }
}

bool same_bytes(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

// Field-by-field equality of two decoded bodies of the same alternative.
struct SameBody {
  bool operator()(const Hello& a, const Hello& b) const {
    return a.min_version == b.min_version && a.max_version == b.max_version &&
           a.capabilities == b.capabilities && a.max_frame_size == b.max_frame_size &&
           a.nonce == b.nonce && a.node_id == b.node_id && a.cluster_id == b.cluster_id;
  }
  bool operator()(const Auth& a, const Auth& b) const {
    return a.method == b.method && a.signature == b.signature;
  }
  bool operator()(const SessionReady& a, const SessionReady& b) const {
    return a.version == b.version && a.max_frame_size == b.max_frame_size &&
           a.initial_stream_window == b.initial_stream_window &&
           a.session_window == b.session_window && a.keepalive_ms == b.keepalive_ms &&
           a.idle_timeout_ms == b.idle_timeout_ms && a.route_epoch == b.route_epoch &&
           a.peer_epoch == b.peer_epoch;
  }
  bool operator()(const OpenStream& a, const OpenStream& b) const {
    return a.traffic_class == b.traffic_class && a.route_id == b.route_id && a.service == b.service;
  }
  bool operator()(const Data& a, const Data& b) const {
    return a.sequence == b.sequence && same_bytes(a.payload, b.payload);
  }
  bool operator()(const Ack& a, const Ack& b) const { return a.offset == b.offset; }
  bool operator()(const Ping& a, const Ping& b) const { return a.opaque == b.opaque; }
  bool operator()(const Pong& a, const Pong& b) const { return a.opaque == b.opaque; }
  bool operator()(const RouteUpdate& a, const RouteUpdate& b) const {
    return a.route_id == b.route_id && a.epoch == b.epoch && a.lease == b.lease;
  }
  bool operator()(const StreamCredit& a, const StreamCredit& b) const {
    return a.increment == b.increment;
  }
  bool operator()(const NodePressure& a, const NodePressure& b) const {
    return a.level == b.level && a.cpu_permille == b.cpu_permille &&
           a.queue_bytes == b.queue_bytes && a.memory_kib == b.memory_kib;
  }
  bool operator()(const CloseStream& a, const CloseStream& b) const {
    return a.final_offset == b.final_offset;
  }
  bool operator()(const ResetStream& a, const ResetStream& b) const {
    return a.code == b.code && a.reason == b.reason;
  }
  bool operator()(const Goaway& a, const Goaway& b) const {
    return a.last_stream_id == b.last_stream_id && a.code == b.code && a.reason == b.reason;
  }
  template <class A, class B>
  bool operator()(const A&, const B&) const {
    return false;
  }
};

// The decoder replaced a non-printable reason: the only sanctioned re-encoding difference.
bool reason_normalized(const FrameBody& body) {
  if (const auto* r = std::get_if<ResetStream>(&body)) return r->reason == kNonPrintableReason;
  if (const auto* g = std::get_if<Goaway>(&body)) return g->reason == kNonPrintableReason;
  return false;
}

void check_round_trip(std::span<const std::uint8_t> raw, const Frame& f, std::uint32_t max) {
  std::vector<std::uint8_t> enc;
  encode(enc, f.header.stream_id, f.body, f.header.flags);
  FUZZ_CHECK(enc.size() >= kHeaderSize);
  if (!same_bytes(enc, raw)) {
    FUZZ_CHECK(reason_normalized(f.body));
  }

  const auto enc_len = static_cast<std::uint32_t>(enc.size() - kHeaderSize);
  auto r2 = decode_frame(enc, std::max(max, enc_len));
  FUZZ_CHECK(r2.status == Status::kFrame);
  FUZZ_CHECK(r2.consumed == enc.size());
  FUZZ_CHECK(r2.frame.header.length == enc_len);
  FUZZ_CHECK(r2.frame.header.type == f.header.type);
  FUZZ_CHECK(r2.frame.header.stream_id == f.header.stream_id);
  FUZZ_CHECK(r2.frame.header.flags == f.header.flags);
  FUZZ_CHECK(r2.frame.body.index() == f.body.index());
  if (const auto* d1 = std::get_if<Data>(&f.body)) {
    const auto& d2 = std::get<Data>(r2.frame.body);
    FUZZ_CHECK(d1->sequence == d2.sequence);
    FUZZ_CHECK(same_bytes(d1->payload, d2.payload));
    // The zero-copy DATA path must frame the payload exactly like `encode`.
    std::vector<std::uint8_t> fast(kDataOverhead + d1->payload.size());
    encode_data_prefix(fast.data(), f.header.stream_id, d1->sequence,
                       static_cast<std::uint32_t>(d1->payload.size()));
    std::copy(d1->payload.begin(), d1->payload.end(), fast.begin() + kDataOverhead);
    FUZZ_CHECK(same_bytes(fast, raw));
  }
  FUZZ_CHECK(std::visit(SameBody{}, f.body, r2.frame.body));

  std::vector<std::uint8_t> enc2;
  encode(enc2, r2.frame.header.stream_id, r2.frame.body, r2.frame.header.flags);
  FUZZ_CHECK(enc2 == enc);
}

void check_frame(std::span<const std::uint8_t> rest, const DecodeResult& r, std::uint32_t max) {
  const Frame& f = r.frame;
  FUZZ_CHECK(r.consumed == kHeaderSize + f.header.length);
  FUZZ_CHECK(r.consumed <= rest.size());
  FUZZ_CHECK(f.header.length <= max);
  FUZZ_CHECK((f.header.stream_id & 0x80000000u) == 0);
  FUZZ_CHECK(frame_type_of(f.body) == f.header.type);
  FUZZ_CHECK(static_cast<std::uint8_t>(f.header.type) == rest[3]);
  FUZZ_CHECK(f.header.flags == rest[4]);
  switch (f.header.type) {
    case FrameType::kHello:
    case FrameType::kAuth:
    case FrameType::kSessionReady:
    case FrameType::kPing:
    case FrameType::kPong:
    case FrameType::kNodePressure:
    case FrameType::kGoaway:
      FUZZ_CHECK(f.header.stream_id == 0);
      break;
    case FrameType::kOpenStream:
    case FrameType::kData:
    case FrameType::kAck:
    case FrameType::kCloseStream:
    case FrameType::kResetStream:
      FUZZ_CHECK(f.header.stream_id != 0);
      break;
    case FrameType::kRouteUpdate:
    case FrameType::kStreamCredit:
      break;
  }
  if (f.header.type != FrameType::kGoaway) FUZZ_CHECK(f.header.flags == 0);
  if (const auto* d = std::get_if<Data>(&f.body)) {
    FUZZ_CHECK(d->payload.size() + kDataPrefix == f.header.length);
    // The payload is a view into the input, right after header + sequence.
    FUZZ_CHECK(d->payload.data() == rest.data() + kDataOverhead);
  }

  // Prefix consistency.
  auto shorter = decode_frame(rest.first(r.consumed - 1), max);
  FUZZ_CHECK(shorter.status == Status::kNeedMore);
  FUZZ_CHECK(shorter.consumed == 0);
  auto exact = decode_frame(rest.first(r.consumed), max);
  FUZZ_CHECK(exact.status == Status::kFrame);
  FUZZ_CHECK(exact.consumed == r.consumed);
  FUZZ_CHECK(std::visit(SameBody{}, exact.frame.body, f.body));

  check_round_trip(rest.first(r.consumed), f, max);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint32_t max = pick_max_frame_size(data[0]);
  const std::span<const std::uint8_t> buf(data + 1, size - 1);
  std::size_t off = 0;
  while (off < buf.size()) {
    const auto rest = buf.subspan(off);
    const DecodeResult r = decode_frame(rest, max);
    if (r.status == Status::kNeedMore) {
      FUZZ_CHECK(r.consumed == 0);
      if (rest.size() >= kHeaderSize) {
        FUZZ_CHECK(kHeaderSize + r.frame.header.length > rest.size());
        FUZZ_CHECK(r.frame.header.length <= max);
      }
      break;
    }
    if (r.status == Status::kError) {
      FUZZ_CHECK(rest.size() >= kHeaderSize);
      FUZZ_CHECK(r.error != ErrorCode::kNoError);
      FUZZ_CHECK(!r.reason.empty());
      FUZZ_CHECK(r.consumed == 0 || r.consumed == kHeaderSize + r.frame.header.length);
      FUZZ_CHECK(r.consumed <= rest.size());
      if (r.stream_error) {
        FUZZ_CHECK(r.frame.header.stream_id != 0);
        FUZZ_CHECK(kHeaderSize + r.frame.header.length <= rest.size());
        FUZZ_CHECK(r.frame.header.length <= max);
      }
      break;
    }
    check_frame(rest, r, max);
    off += r.consumed;
  }
  return 0;
}
