// Fabric Data Session V1 frame codec. Pure functions over byte buffers: no I/O, no allocation
// proportional to untrusted lengths. Byte layout: docs/PROTOCOL.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace rap::fabric {

inline constexpr std::uint32_t kMagic = 0x52415046;  // "RAPF"
inline constexpr std::uint16_t kProtocolVersionMin = 1;
inline constexpr std::uint16_t kProtocolVersionMax = 1;
inline constexpr std::size_t kHeaderSize = 9;
inline constexpr std::uint32_t kMinMaxFrameSize = 16 * 1024;
inline constexpr std::uint32_t kMaxMaxFrameSize = (1u << 24) - 1;
inline constexpr std::uint32_t kMaxWindow = 0x7fffffff;
inline constexpr std::size_t kDataPrefix = 8;  // DATA payload starts with the u64 sequence

enum class FrameType : std::uint8_t {
  kHello = 0x01,
  kAuth = 0x02,
  kSessionReady = 0x03,
  kOpenStream = 0x04,
  kData = 0x05,
  kAck = 0x06,
  kPing = 0x07,
  kPong = 0x08,
  kRouteUpdate = 0x09,
  kStreamCredit = 0x0a,
  kNodePressure = 0x0b,
  kCloseStream = 0x0c,
  kResetStream = 0x0d,
  kGoaway = 0x0e,
};
std::string_view to_string(FrameType t);

// Traffic classes in scheduling order. `control` is strict priority; the rest share by weight.
enum class TrafficClass : std::uint8_t {
  kControl = 0,
  kDns = 1,
  kInteractive = 2,
  kReliable = 3,
  kBulk = 4,
  kDroppable = 5,
};
inline constexpr std::size_t kClassCount = 6;
std::string_view to_string(TrafficClass c);
bool parse_traffic_class(std::string_view s, TrafficClass& out);

// Error codes carried by RESET_STREAM and GOAWAY.
enum class ErrorCode : std::uint32_t {
  kNoError = 0,
  kProtocolError = 1,
  kFrameSizeError = 2,
  kFlowControlError = 3,
  kStreamClosed = 4,
  kRefusedStream = 5,
  kCancel = 6,
  kAuthFailed = 7,
  kVersionMismatch = 8,
  kIdleTimeout = 9,
  kInternalError = 10,
  kOverloaded = 11,
  kShutdown = 12,
  kUnknownService = 13,
};
std::string_view to_string(ErrorCode c);

inline constexpr std::uint8_t kFlagGoawayDrain = 0x01;

struct FrameHeader {
  std::uint32_t length = 0;  // payload bytes after the 9-byte header
  FrameType type{};
  std::uint8_t flags = 0;
  std::uint32_t stream_id = 0;
};

struct Hello {
  std::uint16_t min_version = kProtocolVersionMin;
  std::uint16_t max_version = kProtocolVersionMax;
  std::uint64_t capabilities = 0;
  std::uint32_t max_frame_size = 0;
  std::array<std::uint8_t, 16> nonce{};
  std::string node_id;
  std::string cluster_id;
};
struct Auth {
  std::uint8_t method = 1;  // 1 = Ed25519 signature over the TLS exporter (docs/PROTOCOL.md)
  std::array<std::uint8_t, 64> signature{};
};
struct SessionReady {
  std::uint16_t version = 1;
  std::uint32_t max_frame_size = 0;
  std::uint32_t initial_stream_window = 0;
  std::uint32_t session_window = 0;
  std::uint32_t keepalive_ms = 0;
  std::uint32_t idle_timeout_ms = 0;
  std::uint64_t route_epoch = 0;
  std::uint64_t peer_epoch = 0;
};
struct OpenStream {
  TrafficClass traffic_class = TrafficClass::kReliable;
  std::uint64_t route_id = 0;
  std::string service;
};
struct Data {
  std::uint64_t sequence = 0;             // stream byte offset of payload[0]
  std::span<const std::uint8_t> payload;  // view into the decode buffer
};
struct Ack {
  std::uint64_t offset = 0;  // bytes delivered to the application so far
};
struct Ping {
  std::uint64_t opaque = 0;
};
struct Pong {
  std::uint64_t opaque = 0;
};
struct RouteUpdate {
  std::uint64_t route_id = 0;
  std::uint64_t epoch = 0;
  std::vector<std::uint8_t> lease;  // signed lease, verified by the routing layer
};
struct StreamCredit {
  std::uint32_t increment = 0;
};
struct NodePressure {
  std::uint8_t level = 0;  // 0 none, 1 elevated, 2 high, 3 critical
  std::uint16_t cpu_permille = 0;
  std::uint32_t queue_bytes = 0;
  std::uint32_t memory_kib = 0;
};
struct CloseStream {
  std::uint64_t final_offset = 0;
};
struct ResetStream {
  ErrorCode code = ErrorCode::kNoError;
  std::string reason;
};
struct Goaway {
  std::uint32_t last_stream_id = 0;
  ErrorCode code = ErrorCode::kNoError;
  std::string reason;
};

using FrameBody =
    std::variant<Hello, Auth, SessionReady, OpenStream, Data, Ack, Ping, Pong, RouteUpdate,
                 StreamCredit, NodePressure, CloseStream, ResetStream, Goaway>;

struct Frame {
  FrameHeader header;
  FrameBody body;
};

// Decode outcome. kNeedMore: not a whole frame yet. kError: `error`/`reason` say why, and
// `stream_error` says whether the fault is confined to `header.stream_id` (RESET_STREAM) or the
// whole session (GOAWAY).
struct DecodeResult {
  enum class Status { kFrame, kNeedMore, kError } status = Status::kNeedMore;
  std::size_t consumed = 0;
  Frame frame;
  ErrorCode error = ErrorCode::kNoError;
  bool stream_error = false;
  std::string reason;
};

// Decodes at most one frame from the front of `buf`. Frames longer than `max_frame_size` are
// refused as soon as the header is visible (before buffering them).
DecodeResult decode_frame(std::span<const std::uint8_t> buf, std::uint32_t max_frame_size);

// Encoding. `encode` appends one whole frame. DATA payloads are written by `encode_data_prefix`
// (header + sequence) followed by the caller copying the payload right after it, so the payload
// is copied exactly once into the outgoing buffer.
void encode(std::vector<std::uint8_t>& out, std::uint32_t stream_id, const FrameBody& body,
            std::uint8_t flags = 0);
inline constexpr std::size_t kDataOverhead = kHeaderSize + kDataPrefix;
void encode_data_prefix(std::uint8_t* out, std::uint32_t stream_id, std::uint64_t sequence,
                        std::uint32_t payload_len);

FrameType frame_type_of(const FrameBody& body);

}  // namespace rap::fabric
