#include "rap/fabric/frame.h"

#include <cstring>

namespace rap::fabric {
namespace {

// Big-endian writer appending to a vector.
class Writer {
 public:
  explicit Writer(std::vector<std::uint8_t>& out) : out_(out) {}
  void u8(std::uint8_t v) { out_.push_back(v); }
  void u16(std::uint16_t v) {
    u8(static_cast<std::uint8_t>(v >> 8));
    u8(static_cast<std::uint8_t>(v));
  }
  void u32(std::uint32_t v) {
    u16(static_cast<std::uint16_t>(v >> 16));
    u16(static_cast<std::uint16_t>(v));
  }
  void u64(std::uint64_t v) {
    u32(static_cast<std::uint32_t>(v >> 32));
    u32(static_cast<std::uint32_t>(v));
  }
  void bytes(std::span<const std::uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void str8(const std::string& s) {
    const std::size_t n = s.size() > 255 ? 255 : s.size();
    u8(static_cast<std::uint8_t>(n));
    out_.insert(out_.end(), s.begin(), s.begin() + static_cast<std::ptrdiff_t>(n));
  }

 private:
  std::vector<std::uint8_t>& out_;
};

// Bounds-checked big-endian reader over a payload view.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> b) : b_(b) {}
  bool u8(std::uint8_t& v) {
    if (!need(1)) return false;
    v = b_[pos_++];
    return true;
  }
  bool u16(std::uint16_t& v) {
    if (!need(2)) return false;
    v = static_cast<std::uint16_t>((b_[pos_] << 8) | b_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool u32(std::uint32_t& v) {
    if (!need(4)) return false;
    v = (std::uint32_t{b_[pos_]} << 24) | (std::uint32_t{b_[pos_ + 1]} << 16) |
        (std::uint32_t{b_[pos_ + 2]} << 8) | std::uint32_t{b_[pos_ + 3]};
    pos_ += 4;
    return true;
  }
  bool u64(std::uint64_t& v) {
    std::uint32_t hi = 0;
    std::uint32_t lo = 0;
    if (!u32(hi) || !u32(lo)) return false;
    v = (std::uint64_t{hi} << 32) | lo;
    return true;
  }
  bool raw(std::uint8_t* dst, std::size_t n) {
    if (!need(n)) return false;
    std::memcpy(dst, b_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool str8(std::string& s, std::size_t min_len, std::size_t max_len) {
    std::uint8_t n = 0;
    if (!u8(n) || n < min_len || n > max_len || !need(n)) return false;
    s.assign(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return true;
  }
  std::span<const std::uint8_t> rest() const { return b_.subspan(pos_); }
  bool done() const { return pos_ == b_.size(); }

 private:
  bool need(std::size_t n) const { return b_.size() - pos_ >= n; }
  std::span<const std::uint8_t> b_;
  std::size_t pos_ = 0;
};

bool printable(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// Which stream ids each frame type may use: 0 = session only, 1 = stream only, 2 = either.
int stream_rule(FrameType t) {
  switch (t) {
    case FrameType::kHello:
    case FrameType::kAuth:
    case FrameType::kSessionReady:
    case FrameType::kPing:
    case FrameType::kPong:
    case FrameType::kNodePressure:
    case FrameType::kGoaway:
      return 0;
    case FrameType::kOpenStream:
    case FrameType::kData:
    case FrameType::kAck:
    case FrameType::kCloseStream:
    case FrameType::kResetStream:
      return 1;
    case FrameType::kRouteUpdate:
    case FrameType::kStreamCredit:
      return 2;
  }
  return -1;
}

std::uint8_t allowed_flags(FrameType t) {
  return t == FrameType::kGoaway ? kFlagGoawayDrain : 0;
}

}  // namespace

std::string_view to_string(FrameType t) {
  switch (t) {
    case FrameType::kHello:
      return "HELLO";
    case FrameType::kAuth:
      return "AUTH";
    case FrameType::kSessionReady:
      return "SESSION_READY";
    case FrameType::kOpenStream:
      return "OPEN_STREAM";
    case FrameType::kData:
      return "DATA";
    case FrameType::kAck:
      return "ACK";
    case FrameType::kPing:
      return "PING";
    case FrameType::kPong:
      return "PONG";
    case FrameType::kRouteUpdate:
      return "ROUTE_UPDATE";
    case FrameType::kStreamCredit:
      return "STREAM_CREDIT";
    case FrameType::kNodePressure:
      return "NODE_PRESSURE";
    case FrameType::kCloseStream:
      return "CLOSE_STREAM";
    case FrameType::kResetStream:
      return "RESET_STREAM";
    case FrameType::kGoaway:
      return "GOAWAY";
  }
  return "UNKNOWN";
}

std::string_view to_string(TrafficClass c) {
  switch (c) {
    case TrafficClass::kControl:
      return "control";
    case TrafficClass::kDns:
      return "dns";
    case TrafficClass::kInteractive:
      return "interactive";
    case TrafficClass::kReliable:
      return "reliable";
    case TrafficClass::kBulk:
      return "bulk";
    case TrafficClass::kDroppable:
      return "droppable";
  }
  return "unknown";
}

bool parse_traffic_class(std::string_view s, TrafficClass& out) {
  for (std::uint8_t i = 0; i < kClassCount; ++i) {
    if (to_string(static_cast<TrafficClass>(i)) == s) {
      out = static_cast<TrafficClass>(i);
      return true;
    }
  }
  return false;
}

std::string_view to_string(ErrorCode c) {
  switch (c) {
    case ErrorCode::kNoError:
      return "no_error";
    case ErrorCode::kProtocolError:
      return "protocol_error";
    case ErrorCode::kFrameSizeError:
      return "frame_size_error";
    case ErrorCode::kFlowControlError:
      return "flow_control_error";
    case ErrorCode::kStreamClosed:
      return "stream_closed";
    case ErrorCode::kRefusedStream:
      return "refused_stream";
    case ErrorCode::kCancel:
      return "cancel";
    case ErrorCode::kAuthFailed:
      return "auth_failed";
    case ErrorCode::kVersionMismatch:
      return "version_mismatch";
    case ErrorCode::kIdleTimeout:
      return "idle_timeout";
    case ErrorCode::kInternalError:
      return "internal_error";
    case ErrorCode::kOverloaded:
      return "overloaded";
    case ErrorCode::kShutdown:
      return "shutdown";
    case ErrorCode::kUnknownService:
      return "unknown_service";
  }
  return "unknown_error";
}

FrameType frame_type_of(const FrameBody& body) {
  return static_cast<FrameType>(body.index() + 1);
}

DecodeResult decode_frame(std::span<const std::uint8_t> buf, std::uint32_t max_frame_size) {
  DecodeResult r;
  if (buf.size() < kHeaderSize) return r;
  FrameHeader& h = r.frame.header;
  h.length = (std::uint32_t{buf[0]} << 16) | (std::uint32_t{buf[1]} << 8) | buf[2];
  const std::uint8_t type = buf[3];
  h.flags = buf[4];
  const std::uint32_t sid = (std::uint32_t{buf[5]} << 24) | (std::uint32_t{buf[6]} << 16) |
                            (std::uint32_t{buf[7]} << 8) | buf[8];
  auto error = [&](ErrorCode code, std::string reason, bool stream_level = false) {
    r.status = DecodeResult::Status::kError;
    r.error = code;
    r.reason = std::move(reason);
    r.stream_error = stream_level;
    return r;
  };
  if ((sid & 0x80000000u) != 0)
    return error(ErrorCode::kProtocolError, "reserved stream id bit set");
  h.stream_id = sid;
  if (type < 0x01 || type > 0x0e) {
    return error(ErrorCode::kProtocolError, "unknown frame type " + std::to_string(type));
  }
  h.type = static_cast<FrameType>(type);
  if (h.length > max_frame_size) {
    return error(ErrorCode::kFrameSizeError,
                 std::string(to_string(h.type)) + " of " + std::to_string(h.length) +
                     " bytes exceeds max frame size " + std::to_string(max_frame_size));
  }
  if ((h.flags & ~allowed_flags(h.type)) != 0) {
    return error(ErrorCode::kProtocolError, "undefined flags on " + std::string(to_string(h.type)));
  }
  const int rule = stream_rule(h.type);
  if (rule == 0 && sid != 0) {
    return error(ErrorCode::kProtocolError, std::string(to_string(h.type)) + " on stream " +
                                                std::to_string(sid) + " (must be 0)");
  }
  if (rule == 1 && sid == 0) {
    return error(ErrorCode::kProtocolError, std::string(to_string(h.type)) + " on stream 0");
  }
  if (buf.size() < kHeaderSize + h.length) return r;  // need more
  r.consumed = kHeaderSize + h.length;
  Reader rd(buf.subspan(kHeaderSize, h.length));
  const std::string tname(to_string(h.type));
  auto malformed = [&](const char* what, bool stream_level = false) {
    return error(ErrorCode::kProtocolError, "malformed " + tname + ": " + what, stream_level);
  };
  switch (h.type) {
    case FrameType::kHello: {
      Hello v;
      std::uint32_t magic = 0;
      if (!rd.u32(magic) || magic != kMagic) return malformed("bad magic");
      if (!rd.u16(v.min_version) || !rd.u16(v.max_version) || v.min_version > v.max_version ||
          v.min_version == 0) {
        return malformed("bad version range");
      }
      if (!rd.u64(v.capabilities) || !rd.u32(v.max_frame_size)) return malformed("truncated");
      if (v.max_frame_size < kMinMaxFrameSize || v.max_frame_size > kMaxMaxFrameSize) {
        return malformed("max frame size out of range");
      }
      if (!rd.raw(v.nonce.data(), v.nonce.size()) || !rd.str8(v.node_id, 1, 128) ||
          !rd.str8(v.cluster_id, 1, 128) || !rd.done()) {
        return malformed("bad identity fields");
      }
      if (!printable(v.node_id) || !printable(v.cluster_id)) return malformed("non-printable id");
      r.frame.body = std::move(v);
      break;
    }
    case FrameType::kAuth: {
      Auth v;
      std::uint8_t len = 0;
      if (!rd.u8(v.method) || v.method != 1) return malformed("unknown auth method");
      if (!rd.u8(len) || len != 64 || !rd.raw(v.signature.data(), 64) || !rd.done()) {
        return malformed("bad signature length");
      }
      r.frame.body = v;
      break;
    }
    case FrameType::kSessionReady: {
      SessionReady v;
      std::uint16_t reserved = 0;
      if (!rd.u16(v.version) || !rd.u16(reserved) || !rd.u32(v.max_frame_size) ||
          !rd.u32(v.initial_stream_window) || !rd.u32(v.session_window) ||
          !rd.u32(v.keepalive_ms) || !rd.u32(v.idle_timeout_ms) || !rd.u64(v.route_epoch) ||
          !rd.u64(v.peer_epoch) || !rd.done()) {
        return malformed("wrong length");
      }
      if (reserved != 0) return malformed("reserved field not zero");
      if (v.initial_stream_window == 0 || v.initial_stream_window > kMaxWindow ||
          v.session_window == 0 || v.session_window > kMaxWindow) {
        return malformed("window out of range");
      }
      if (v.max_frame_size < kMinMaxFrameSize || v.max_frame_size > kMaxMaxFrameSize) {
        return malformed("max frame size out of range");
      }
      r.frame.body = v;
      break;
    }
    case FrameType::kOpenStream: {
      OpenStream v;
      std::uint8_t cls = 0;
      std::uint8_t reserved = 0;
      if (!rd.u8(cls) || !rd.u8(reserved) || !rd.u64(v.route_id) || !rd.str8(v.service, 1, 64) ||
          !rd.done()) {
        return malformed("wrong length");
      }
      if (cls >= kClassCount) return malformed("unknown traffic class");
      if (reserved != 0) return malformed("reserved field not zero");
      if (!printable(v.service)) return malformed("non-printable service id");
      v.traffic_class = static_cast<TrafficClass>(cls);
      r.frame.body = std::move(v);
      break;
    }
    case FrameType::kData: {
      Data v;
      if (!rd.u64(v.sequence)) return malformed("missing sequence", true);
      v.payload = rd.rest();
      r.frame.body = v;
      break;
    }
    case FrameType::kAck: {
      Ack v;
      if (!rd.u64(v.offset) || !rd.done()) return malformed("wrong length", true);
      r.frame.body = v;
      break;
    }
    case FrameType::kPing: {
      Ping v;
      if (!rd.u64(v.opaque) || !rd.done()) return malformed("wrong length");
      r.frame.body = v;
      break;
    }
    case FrameType::kPong: {
      Pong v;
      if (!rd.u64(v.opaque) || !rd.done()) return malformed("wrong length");
      r.frame.body = v;
      break;
    }
    case FrameType::kRouteUpdate: {
      RouteUpdate v;
      std::uint16_t len = 0;
      if (!rd.u64(v.route_id) || !rd.u64(v.epoch) || !rd.u16(len)) return malformed("truncated");
      auto rest = rd.rest();
      if (rest.size() != len) return malformed("lease length mismatch");
      v.lease.assign(rest.begin(), rest.end());
      r.frame.body = std::move(v);
      break;
    }
    case FrameType::kStreamCredit: {
      StreamCredit v;
      if (!rd.u32(v.increment) || !rd.done()) return malformed("wrong length", sid != 0);
      if (v.increment == 0 || v.increment > kMaxWindow) {
        return error(ErrorCode::kFlowControlError, "credit increment out of range", sid != 0);
      }
      r.frame.body = v;
      break;
    }
    case FrameType::kNodePressure: {
      NodePressure v;
      std::uint8_t reserved = 0;
      if (!rd.u8(v.level) || !rd.u8(reserved) || !rd.u16(v.cpu_permille) ||
          !rd.u32(v.queue_bytes) || !rd.u32(v.memory_kib) || !rd.done()) {
        return malformed("wrong length");
      }
      if (v.level > 3 || reserved != 0 || v.cpu_permille > 1000) {
        return malformed("field out of range");
      }
      r.frame.body = v;
      break;
    }
    case FrameType::kCloseStream: {
      CloseStream v;
      if (!rd.u64(v.final_offset) || !rd.done()) return malformed("wrong length", true);
      r.frame.body = v;
      break;
    }
    case FrameType::kResetStream: {
      ResetStream v;
      std::uint32_t code = 0;
      if (!rd.u32(code) || !rd.str8(v.reason, 0, 255) || !rd.done()) {
        return malformed("wrong length", true);
      }
      v.code = static_cast<ErrorCode>(code);
      if (!printable(v.reason)) v.reason = "(non-printable reason)";
      r.frame.body = std::move(v);
      break;
    }
    case FrameType::kGoaway: {
      Goaway v;
      std::uint32_t code = 0;
      if (!rd.u32(v.last_stream_id) || !rd.u32(code) || !rd.str8(v.reason, 0, 255) || !rd.done()) {
        return malformed("wrong length");
      }
      if ((v.last_stream_id & 0x80000000u) != 0) return malformed("reserved bit set");
      v.code = static_cast<ErrorCode>(code);
      if (!printable(v.reason)) v.reason = "(non-printable reason)";
      r.frame.body = std::move(v);
      break;
    }
  }
  r.status = DecodeResult::Status::kFrame;
  return r;
}

namespace {

void put_header(std::uint8_t* p, std::uint32_t len, FrameType t, std::uint8_t flags,
                std::uint32_t sid) {
  p[0] = static_cast<std::uint8_t>(len >> 16);
  p[1] = static_cast<std::uint8_t>(len >> 8);
  p[2] = static_cast<std::uint8_t>(len);
  p[3] = static_cast<std::uint8_t>(t);
  p[4] = flags;
  p[5] = static_cast<std::uint8_t>(sid >> 24);
  p[6] = static_cast<std::uint8_t>(sid >> 16);
  p[7] = static_cast<std::uint8_t>(sid >> 8);
  p[8] = static_cast<std::uint8_t>(sid);
}

struct BodyWriter {
  Writer& w;
  void operator()(const Hello& v) const {
    w.u32(kMagic);
    w.u16(v.min_version);
    w.u16(v.max_version);
    w.u64(v.capabilities);
    w.u32(v.max_frame_size);
    w.bytes(v.nonce);
    w.str8(v.node_id);
    w.str8(v.cluster_id);
  }
  void operator()(const Auth& v) const {
    w.u8(v.method);
    w.u8(64);
    w.bytes(v.signature);
  }
  void operator()(const SessionReady& v) const {
    w.u16(v.version);
    w.u16(0);
    w.u32(v.max_frame_size);
    w.u32(v.initial_stream_window);
    w.u32(v.session_window);
    w.u32(v.keepalive_ms);
    w.u32(v.idle_timeout_ms);
    w.u64(v.route_epoch);
    w.u64(v.peer_epoch);
  }
  void operator()(const OpenStream& v) const {
    w.u8(static_cast<std::uint8_t>(v.traffic_class));
    w.u8(0);
    w.u64(v.route_id);
    w.str8(v.service);
  }
  void operator()(const Data& v) const {
    w.u64(v.sequence);
    w.bytes(v.payload);
  }
  void operator()(const Ack& v) const { w.u64(v.offset); }
  void operator()(const Ping& v) const { w.u64(v.opaque); }
  void operator()(const Pong& v) const { w.u64(v.opaque); }
  void operator()(const RouteUpdate& v) const {
    w.u64(v.route_id);
    w.u64(v.epoch);
    w.u16(static_cast<std::uint16_t>(v.lease.size()));
    w.bytes(v.lease);
  }
  void operator()(const StreamCredit& v) const { w.u32(v.increment); }
  void operator()(const NodePressure& v) const {
    w.u8(v.level);
    w.u8(0);
    w.u16(v.cpu_permille);
    w.u32(v.queue_bytes);
    w.u32(v.memory_kib);
  }
  void operator()(const CloseStream& v) const { w.u64(v.final_offset); }
  void operator()(const ResetStream& v) const {
    w.u32(static_cast<std::uint32_t>(v.code));
    w.str8(v.reason);
  }
  void operator()(const Goaway& v) const {
    w.u32(v.last_stream_id);
    w.u32(static_cast<std::uint32_t>(v.code));
    w.str8(v.reason);
  }
};

}  // namespace

void encode(std::vector<std::uint8_t>& out, std::uint32_t stream_id, const FrameBody& body,
            std::uint8_t flags) {
  const std::size_t start = out.size();
  out.resize(start + kHeaderSize);
  Writer w(out);
  std::visit(BodyWriter{w}, body);
  const auto len = static_cast<std::uint32_t>(out.size() - start - kHeaderSize);
  put_header(out.data() + start, len, frame_type_of(body), flags, stream_id);
}

void encode_data_prefix(std::uint8_t* out, std::uint32_t stream_id, std::uint64_t sequence,
                        std::uint32_t payload_len) {
  put_header(out, payload_len + static_cast<std::uint32_t>(kDataPrefix), FrameType::kData, 0,
             stream_id);
  for (int i = 0; i < 8; ++i) {
    out[kHeaderSize + static_cast<std::size_t>(i)] =
        static_cast<std::uint8_t>(sequence >> (56 - 8 * i));
  }
}

}  // namespace rap::fabric
