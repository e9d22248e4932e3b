#include "rap/fabric/session_core.h"

#include <algorithm>
#include <cstring>

#include "rap/crypto/keys.h"

namespace rap::fabric {

namespace {
// The latency guard (PROTOCOL.md §7.3) never shrinks a bulk window below this.
constexpr double kGuardMinWindow = 64 * 1024;
constexpr std::size_t kQuantumUnit = 16 * 1024;
constexpr std::size_t kMinDataChunk = 2048;  // don't cut DATA frames smaller than this at the end
                                             // of a write buffer
constexpr std::size_t kRecentResetMemory = 1024;
constexpr char kAuthContext[] = "RAP-FABRIC-AUTH-V1";

std::vector<std::uint8_t> auth_message(Role signer_role, std::span<const std::uint8_t> binding,
                                       const std::array<std::uint8_t, 32>& hello_hash) {
  std::vector<std::uint8_t> m(kAuthContext, kAuthContext + sizeof(kAuthContext) - 1);
  m.push_back(static_cast<std::uint8_t>(signer_role));
  m.insert(m.end(), binding.begin(), binding.end());
  m.insert(m.end(), hello_hash.begin(), hello_hash.end());
  return m;
}

bool is_local_id(Role role, std::uint32_t id) {
  // Initiator opens odd stream ids, acceptor even ones.
  return (id % 2 == 1) == (role == Role::kInitiator);
}

std::uint64_t ns_since_epoch(TimePoint t) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}
}  // namespace

struct SessionCore::Stream {
  std::uint32_t id = 0;
  TrafficClass cls = TrafficClass::kReliable;
  std::uint64_t route_id = 0;
  std::string service;
  // send side
  ByteQueue send_buf;
  std::deque<std::vector<std::uint8_t>> messages;  // droppable: whole messages
  std::size_t messages_bytes = 0;
  std::uint64_t send_offset = 0;
  std::int64_t send_credit = 0;
  bool close_requested = false;  // app closed; CLOSE_STREAM after the buffer drains
  bool close_sent = false;
  bool in_active = false;
  bool writer_blocked = false;
  std::uint64_t acked = 0;
  // receive side
  ByteQueue recv_buf;
  std::uint64_t recv_offset = 0;  // next expected sequence
  std::uint64_t delivered = 0;    // read by the application
  std::uint64_t recv_limit = 0;   // peer may send up to this offset
  std::uint32_t recv_window = 0;
  TimePoint last_grant{};
  std::uint64_t delivered_at_grant = 0;  // for the consumption rate under the latency guard
  bool remote_closed = false;
  bool eof_seen = false;
  bool released = false;
  StreamStats st;

  std::size_t queued() const { return send_buf.size() + messages_bytes; }
  bool has_data() const { return queued() > 0; }
};

std::string_view to_string(SessionCore::State s) {
  switch (s) {
    case SessionCore::State::kHandshake:
      return "handshake";
    case SessionCore::State::kOpen:
      return "open";
    case SessionCore::State::kDraining:
      return "draining";
    case SessionCore::State::kClosed:
      return "closed";
  }
  return "unknown";
}

SessionCore::SessionCore(SessionConfig config, const Signer& signer, PeerProof peer,
                         SessionObserver* observer)
    : cfg_(std::move(config)), signer_(signer), peer_(std::move(peer)), observer_(observer) {
  static SessionObserver null_observer;
  if (observer_ == nullptr) observer_ = &null_observer;
  cfg_.max_frame_size = std::clamp(cfg_.max_frame_size, kMinMaxFrameSize, kMaxMaxFrameSize);
  cfg_.initial_stream_window =
      std::clamp<std::uint32_t>(cfg_.initial_stream_window, 1024, kMaxWindow);
  cfg_.max_stream_window =
      std::clamp(cfg_.max_stream_window, cfg_.initial_stream_window, kMaxWindow);
  cfg_.session_window = std::clamp(cfg_.session_window, cfg_.initial_stream_window, kMaxWindow);
  next_local_id_ = cfg_.role == Role::kInitiator ? 1 : 2;
  session_recv_limit_ = cfg_.session_window;
}

SessionCore::~SessionCore() = default;

SessionCore::Stream* SessionCore::find(std::uint32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}
const SessionCore::Stream* SessionCore::find(std::uint32_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

void SessionCore::emit_control(std::uint32_t sid, const FrameBody& body, std::uint8_t flags) {
  if (state_ == State::kClosed) return;  // nothing new after close (the final GOAWAY precedes it)
  const std::size_t before = control_.size();
  encode(control_, sid, body, flags);
  const auto t = static_cast<std::size_t>(frame_type_of(body));
  stats_.tx.frames_by_type[t]++;
  stats_.tx.wire_bytes += control_.size() - before;
  observer_->on_output();
}

void SessionCore::start(TimePoint now) {
  RAP_ASSERT(!started_);
  started_ = true;
  start_time_ = now;
  last_rx_ = now;
  last_ping_ = now;
  Hello h;
  h.capabilities = cfg_.capabilities;
  h.max_frame_size = cfg_.max_frame_size;
  h.node_id = cfg_.node_id;
  h.cluster_id = cfg_.cluster_id;
  const auto seed = crypto::sha256(peer_.channel_binding);
  std::copy_n(seed.begin(), h.nonce.size(), h.nonce.begin());
  const std::size_t before = control_.size();
  emit_control(0, h);
  local_hello_hash_ = crypto::sha256(
      std::span<const std::uint8_t>(control_).subspan(before, control_.size() - before));
  Auth a;
  a.signature = signer_.sign(auth_message(cfg_.role, peer_.channel_binding, local_hello_hash_));
  emit_control(0, a);
}

void SessionCore::protocol_failure(ErrorCode code, const std::string& reason) {
  if (state_ == State::kClosed) return;
  stats_.decode_errors += code == ErrorCode::kProtocolError || code == ErrorCode::kFrameSizeError;
  Goaway g;
  g.last_stream_id = last_peer_id_;
  g.code = code;
  g.reason = reason.substr(0, 255);
  emit_control(0, g);
  close_after_flush_ = true;
  finish_close(Error{std::string(to_string(code)), reason});
}

void SessionCore::finish_close(Error why) {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  close_reason_ = std::move(why);
  std::vector<std::uint32_t> ids;
  for (auto& [id, s] : streams_) ids.push_back(id);
  for (auto id : ids) {
    Stream* s = find(id);
    if (s == nullptr) continue;
    if (!(s->close_sent && s->remote_closed)) {
      observer_->on_stream_reset(id, ErrorCode::kCancel,
                                 "session closed: " + close_reason_.message);
    }
  }
  for (auto& q : active_) q.clear();
  observer_->on_closed(close_reason_);
}

void SessionCore::on_transport_error(const std::string& reason) {
  finish_close(Error{"transport_error", reason});
}

std::size_t SessionCore::on_receive(std::span<const std::uint8_t> data, TimePoint now) {
  std::size_t consumed = 0;
  while (state_ != State::kClosed) {
    auto r = decode_frame(data.subspan(consumed), cfg_.max_frame_size);
    if (r.status == DecodeResult::Status::kNeedMore) break;
    if (r.status == DecodeResult::Status::kError) {
      stats_.decode_errors++;
      if (r.stream_error && state_ != State::kHandshake && r.frame.header.stream_id != 0) {
        // Confined to one stream: reset it, keep the session.
        consumed += kHeaderSize + r.frame.header.length;
        Stream* s = find(r.frame.header.stream_id);
        if (s != nullptr) {
          local_reset(*s, r.error, r.reason, true);
        } else {
          emit_control(r.frame.header.stream_id, ResetStream{r.error, r.reason.substr(0, 255)});
        }
        continue;
      }
      protocol_failure(r.error, r.reason);
      break;
    }
    last_rx_ = now;
    const auto raw = data.subspan(consumed, r.consumed);
    consumed += r.consumed;
    stats_.rx.frames_by_type[static_cast<std::size_t>(r.frame.header.type)]++;
    stats_.rx.wire_bytes += r.consumed;
    handle_frame(r.frame, raw, now);
  }
  if (state_ == State::kClosed) return data.size();  // discard the rest
  return consumed;
}

void SessionCore::handle_frame(const Frame& f, std::span<const std::uint8_t> raw, TimePoint now) {
  const FrameType t = f.header.type;
  if (t == FrameType::kHello || t == FrameType::kAuth || t == FrameType::kSessionReady) {
    handle_handshake(f, raw, now);
    return;
  }
  if (t == FrameType::kGoaway) {
    const auto& g = std::get<Goaway>(f.body);
    peer_goaway_ = true;
    peer_goaway_last_ = g.last_stream_id;
    observer_->on_goaway(g.code, g.reason);
    const bool drain = (f.header.flags & kFlagGoawayDrain) != 0 &&
                       (state_ == State::kOpen || state_ == State::kDraining);
    if (!drain) {
      finish_close(Error{"peer_goaway", std::string(to_string(g.code)) + ": " + g.reason});
      return;
    }
    // Streams we opened that the peer never accepted are refused.
    std::vector<std::uint32_t> refused;
    for (auto& [id, s] : streams_) {
      if (is_local_id(cfg_.role, id) && id > g.last_stream_id) refused.push_back(id);
    }
    for (auto id : refused) {
      if (Stream* s = find(id))
        local_reset(*s, ErrorCode::kRefusedStream, "peer going away", false);
    }
    if (state_ == State::kClosed) return;  // the resets above may have finished a drain
    state_ = State::kDraining;
    check_drained();
    return;
  }
  if (state_ == State::kHandshake) {
    protocol_failure(ErrorCode::kProtocolError,
                     std::string(to_string(t)) + " before the handshake completed");
    return;
  }
  switch (t) {
    case FrameType::kPing:
      emit_control(0, Pong{std::get<Ping>(f.body).opaque});
      if (control_.size() - control_head_ > cfg_.max_control_queue) {
        protocol_failure(ErrorCode::kOverloaded, "peer does not read its control frames");
      }
      return;
    case FrameType::kPong: {
      auto it = pings_outstanding_.find(std::get<Pong>(f.body).opaque);
      if (it == pings_outstanding_.end()) return;  // unsolicited or stale: ignore
      const auto rtt = std::chrono::duration_cast<std::chrono::nanoseconds>(now - it->second);
      pings_outstanding_.erase(pings_outstanding_.begin(), std::next(it));
      stats_.rtt_last = rtt;
      if (stats_.rtt_smoothed.count() == 0) {
        stats_.rtt_smoothed = rtt;
        stats_.rtt_var = rtt / 2;
        stats_.rtt_min = rtt;
      } else {
        const auto diff =
            rtt > stats_.rtt_smoothed ? rtt - stats_.rtt_smoothed : stats_.rtt_smoothed - rtt;
        stats_.rtt_var = (stats_.rtt_var * 3 + diff) / 4;
        stats_.rtt_smoothed = (stats_.rtt_smoothed * 7 + rtt) / 8;
        stats_.rtt_min = std::min(stats_.rtt_min, rtt);
      }
      return;
    }
    case FrameType::kNodePressure: {
      const auto& p = std::get<NodePressure>(f.body);
      stats_.peer_pressure_level = p.level;
      stats_.peer_queue_bytes = p.queue_bytes;
      stats_.peer_memory_kib = p.memory_kib;
      stats_.peer_cpu_permille = p.cpu_permille;
      return;
    }
    case FrameType::kStreamCredit:
      if (f.header.stream_id == 0) {
        const auto inc = std::get<StreamCredit>(f.body).increment;
        if (session_send_credit_ + inc > std::int64_t{kMaxWindow}) {
          protocol_failure(ErrorCode::kFlowControlError, "session credit overflow");
          return;
        }
        const bool was_blocked = session_send_credit_ <= 0;
        session_send_credit_ += inc;
        if (was_blocked) {
          for (auto& [id, s] : streams_) activate(*s);
        }
        return;
      }
      handle_stream_frame(f, now);
      return;
    case FrameType::kRouteUpdate:
      observer_->on_route_update(f.header.stream_id, std::get<RouteUpdate>(f.body));
      if (f.header.stream_id != 0) {
        if (Stream* s = find(f.header.stream_id)) {
          s->route_id = std::get<RouteUpdate>(f.body).route_id;
          s->st.route_id = s->route_id;
        }
      }
      return;
    default:
      handle_stream_frame(f, now);
      return;
  }
}

void SessionCore::handle_handshake(const Frame& f, std::span<const std::uint8_t> raw,
                                   TimePoint now) {
  switch (f.header.type) {
    case FrameType::kHello: {
      if (hello_received_) {
        protocol_failure(ErrorCode::kProtocolError, "duplicate HELLO");
        return;
      }
      const auto& h = std::get<Hello>(f.body);
      hello_received_ = true;
      peer_hello_hash_ = crypto::sha256(raw);
      if (h.cluster_id != cfg_.cluster_id) {
        protocol_failure(ErrorCode::kAuthFailed, "peer HELLO names cluster '" + h.cluster_id +
                                                     "', this is cluster '" + cfg_.cluster_id +
                                                     "'");
        return;
      }
      if (h.cluster_id != peer_.cluster_id || h.node_id != peer_.node_id) {
        protocol_failure(ErrorCode::kAuthFailed, "HELLO identity " + h.cluster_id + "/" +
                                                     h.node_id +
                                                     " does not match certificate identity " +
                                                     peer_.cluster_id + "/" + peer_.node_id);
        return;
      }
      const std::uint16_t v = std::min(h.max_version, kProtocolVersionMax);
      if (v < std::max(h.min_version, kProtocolVersionMin)) {
        protocol_failure(ErrorCode::kVersionMismatch,
                         "no common protocol version (peer " + std::to_string(h.min_version) +
                             ".." + std::to_string(h.max_version) + ", local " +
                             std::to_string(kProtocolVersionMin) + ".." +
                             std::to_string(kProtocolVersionMax) + ")");
        return;
      }
      version_ = v;
      peer_capabilities_ = h.capabilities;
      peer_max_frame_ = h.max_frame_size;
      return;
    }
    case FrameType::kAuth: {
      if (!hello_received_ || auth_verified_) {
        protocol_failure(ErrorCode::kProtocolError, "AUTH out of order");
        return;
      }
      const auto& a = std::get<Auth>(f.body);
      const Role peer_role = cfg_.role == Role::kInitiator ? Role::kAcceptor : Role::kInitiator;
      const auto msg = auth_message(peer_role, peer_.channel_binding, peer_hello_hash_);
      if (!crypto::verify_ed25519(peer_.public_key, msg, a.signature)) {
        protocol_failure(ErrorCode::kAuthFailed,
                         "AUTH signature does not verify with the certificate key");
        return;
      }
      auth_verified_ = true;
      SessionReady r;
      r.version = version_;
      r.max_frame_size = cfg_.max_frame_size;
      r.initial_stream_window = cfg_.initial_stream_window;
      r.session_window = cfg_.session_window;
      r.keepalive_ms = static_cast<std::uint32_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.keepalive).count());
      r.idle_timeout_ms = static_cast<std::uint32_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.idle_timeout).count());
      r.route_epoch = cfg_.route_epoch;
      r.peer_epoch = cfg_.peer_epoch;
      emit_control(0, r);
      ready_sent_ = true;
      return;
    }
    case FrameType::kSessionReady: {
      if (!auth_verified_ || ready_received_) {
        protocol_failure(ErrorCode::kProtocolError, "SESSION_READY out of order");
        return;
      }
      const auto& r = std::get<SessionReady>(f.body);
      if (r.version != version_) {
        protocol_failure(ErrorCode::kVersionMismatch, "SESSION_READY version disagrees");
        return;
      }
      ready_received_ = true;
      peer_initial_window_ = r.initial_stream_window;
      session_send_credit_ = r.session_window;
      peer_max_frame_ = std::min(peer_max_frame_, r.max_frame_size);
      state_ = State::kOpen;
      last_ping_ = now;
      ping(now);  // first RTT sample right away
      observer_->on_ready();
      return;
    }
    default:
      return;
  }
}

void SessionCore::handle_stream_frame(const Frame& f, TimePoint now) {
  const std::uint32_t sid = f.header.stream_id;
  Stream* s = find(sid);
  if (f.header.type == FrameType::kOpenStream) {
    if (is_local_id(cfg_.role, sid) || sid <= last_peer_id_) {
      protocol_failure(ErrorCode::kProtocolError,
                       "OPEN_STREAM with invalid stream id " + std::to_string(sid));
      return;
    }
    last_peer_id_ = sid;
    const auto& o = std::get<OpenStream>(f.body);
    if (state_ != State::kOpen || streams_.size() >= cfg_.max_streams) {
      stats_.streams_refused++;
      emit_control(
          sid, ResetStream{ErrorCode::kRefusedStream,
                           state_ != State::kOpen ? "session draining" : "stream limit reached"});
      stats_.resets_sent[std::string(to_string(ErrorCode::kRefusedStream))]++;
      return;
    }
    auto ns = std::make_unique<Stream>();
    ns->id = sid;
    ns->cls = o.traffic_class;
    ns->route_id = o.route_id;
    ns->service = o.service;
    ns->send_credit = peer_initial_window_;
    ns->recv_window = cfg_.initial_stream_window;
    ns->recv_limit = cfg_.initial_stream_window;
    ns->last_grant = now;
    ns->st.id = sid;
    ns->st.service = o.service;
    ns->st.traffic_class = o.traffic_class;
    ns->st.route_id = o.route_id;
    add_stream(std::move(ns));
    stats_.streams_opened_remote++;
    observer_->on_stream_opened(sid);
    return;
  }
  if (s == nullptr) {
    const bool known = is_local_id(cfg_.role, sid) ? sid < next_local_id_ : sid <= last_peer_id_;
    if (!known) {
      protocol_failure(ErrorCode::kProtocolError, std::string(to_string(f.header.type)) +
                                                      " on idle stream " + std::to_string(sid));
      return;
    }
    if (f.header.type == FrameType::kData) {
      // Return the session credit the discarded bytes used.
      const auto n = std::get<Data>(f.body).payload.size();
      session_received_ += n;
      session_delivered_ += n;
      if (recently_reset_.count(sid) == 0) {
        emit_control(sid, ResetStream{ErrorCode::kStreamClosed, "data on closed stream"});
        stats_.resets_sent[std::string(to_string(ErrorCode::kStreamClosed))]++;
        recently_reset_.insert(sid);
        recently_reset_order_.push_back(sid);
      }
      grant_credit(nullptr, now, false);
    }
    return;  // late ACK/CREDIT/CLOSE/RESET for a finished stream: ignore
  }
  switch (f.header.type) {
    case FrameType::kData: {
      const auto& d = std::get<Data>(f.body);
      if (s->remote_closed) {
        local_reset(*s, ErrorCode::kStreamClosed, "data after CLOSE_STREAM", true);
        return;
      }
      if (d.sequence != s->recv_offset) {
        local_reset(*s, ErrorCode::kProtocolError,
                    "DATA sequence " + std::to_string(d.sequence) + " expected " +
                        std::to_string(s->recv_offset),
                    true);
        return;
      }
      const std::uint64_t n = d.payload.size();
      if (s->recv_offset + n > s->recv_limit) {
        local_reset(*s, ErrorCode::kFlowControlError, "stream window exceeded", true);
        return;
      }
      if (session_received_ + n > session_recv_limit_) {
        protocol_failure(ErrorCode::kFlowControlError, "session window exceeded");
        return;
      }
      session_received_ += n;
      s->recv_offset += n;
      s->st.bytes_received += n;
      s->st.frames_received++;
      stats_.rx.bytes_by_class[static_cast<std::size_t>(s->cls)] += n;
      if (s->released) {  // nobody will read it: consume at once
        s->delivered += n;
        session_delivered_ += n;
        grant_credit(s, now, false);
        return;
      }
      const bool was_empty = s->recv_buf.empty();
      s->recv_buf.append(d.payload);
      recv_buffered_ += n;
      if (was_empty && n > 0) observer_->on_readable(sid);
      return;
    }
    case FrameType::kAck: {
      const auto off = std::get<Ack>(f.body).offset;
      if (off > s->send_offset) {
        local_reset(*s, ErrorCode::kProtocolError, "ACK beyond sent data", true);
        return;
      }
      s->acked = std::max(s->acked, off);
      s->st.acked_offset = s->acked;
      return;
    }
    case FrameType::kStreamCredit: {
      const auto inc = std::get<StreamCredit>(f.body).increment;
      if (s->send_credit + inc > std::int64_t{kMaxWindow}) {
        local_reset(*s, ErrorCode::kFlowControlError, "stream credit overflow", true);
        return;
      }
      s->send_credit += inc;
      activate(*s);
      return;
    }
    case FrameType::kCloseStream: {
      const auto fin = std::get<CloseStream>(f.body).final_offset;
      if (s->remote_closed || fin != s->recv_offset) {
        local_reset(*s, ErrorCode::kProtocolError, "CLOSE_STREAM final offset mismatch", true);
        return;
      }
      s->remote_closed = true;
      observer_->on_readable(sid);
      maybe_finish(*s);
      return;
    }
    case FrameType::kResetStream: {
      const auto& r = std::get<ResetStream>(f.body);
      stats_.resets_received[std::string(to_string(r.code))]++;
      local_reset(*s, r.code, r.reason, false);
      return;
    }
    default:
      return;
  }
}

void SessionCore::local_reset(Stream& s, ErrorCode code, const std::string& reason,
                              bool notify_peer) {
  const std::uint32_t id = s.id;
  if (notify_peer) {
    emit_control(id, ResetStream{code, reason.substr(0, 255)});
    stats_.resets_sent[std::string(to_string(code))]++;
  }
  // Unread bytes return their session credit.
  session_delivered_ += s.recv_buf.size();
  recv_buffered_ -= s.recv_buf.size();
  send_queued_ -= s.queued();
  auto& q = active_[static_cast<std::size_t>(s.cls)];
  q.erase(std::remove(q.begin(), q.end(), id), q.end());
  recently_reset_.insert(id);
  recently_reset_order_.push_back(id);
  while (recently_reset_order_.size() > kRecentResetMemory) {
    recently_reset_.erase(recently_reset_order_.front());
    recently_reset_order_.pop_front();
  }
  const bool released = s.released;
  erase_stream(id);
  if (!released) observer_->on_stream_reset(id, code, reason);
  check_drained();
}

void SessionCore::maybe_finish(Stream& s) {
  if (s.close_sent && s.remote_closed && s.recv_buf.empty() && (s.eof_seen || s.released)) {
    const std::uint32_t id = s.id;
    stats_.streams_closed++;
    erase_stream(id);
    check_drained();
  }
}

void SessionCore::check_drained() {
  if (state_ == State::kDraining && streams_.empty()) {
    close_after_flush_ = true;
    finish_close(Error{"drained", "session drained after GOAWAY"});
  }
}

bool SessionCore::can_send(const Stream& s) const {
  if (s.cls == TrafficClass::kDroppable) {
    // Messages go whole: the first one must fit both credits.
    if (s.messages.empty()) return false;
    const auto m = static_cast<std::int64_t>(s.messages.front().size());
    return m <= s.send_credit && m <= session_send_credit_;
  }
  return s.has_data() && s.send_credit > 0 && session_send_credit_ > 0;
}

void SessionCore::activate(Stream& s) {
  if (s.in_active) return;
  const bool sendable = can_send(s) || (s.close_requested && !s.close_sent && !s.has_data());
  if (!sendable) return;
  s.in_active = true;
  active_[static_cast<std::size_t>(s.cls)].push_back(s.id);
  observer_->on_output();
}

bool SessionCore::wants_write() const {
  if (control_.size() > control_head_) return true;
  if (state_ == State::kClosed || state_ == State::kHandshake) return false;
  for (const auto& q : active_) {
    if (!q.empty()) return true;
  }
  return false;
}

std::size_t SessionCore::produce(std::span<std::uint8_t> out, TimePoint /*now*/) {
  std::size_t n = 0;
  // 1. Control frames first, always (credit, ACK, PING/PONG, OPEN, CLOSE, RESET, GOAWAY).
  const std::size_t pending = control_.size() - control_head_;
  if (pending > 0) {
    const std::size_t take = std::min(pending, out.size());
    std::memcpy(out.data(), control_.data() + control_head_, take);
    control_head_ += take;
    n += take;
    if (control_head_ == control_.size()) {
      control_.clear();
      control_head_ = 0;
    }
  }
  if (state_ == State::kClosed || state_ == State::kHandshake) return n;
  // 2. Stream data by class.
  n += fill_data(out.data() + n, out.size() - n);
  for (auto id : finish_candidates_) {
    if (Stream* s = find(id)) maybe_finish(*s);
  }
  finish_candidates_.clear();
  return n;
}

std::size_t SessionCore::fill_data(std::uint8_t* out, std::size_t cap) {
  std::size_t n = 0;
  const std::size_t max_payload = peer_max_frame_ - kDataPrefix;
  auto send_from = [&](Stream& s, std::size_t budget) -> std::size_t {
    // Returns payload bytes framed.
    std::size_t sent = 0;
    while (budget > 0 && cap - n > kDataOverhead) {
      const std::size_t room = cap - n - kDataOverhead;
      if (s.cls == TrafficClass::kDroppable) {
        if (s.messages.empty()) break;
        const auto& m = s.messages.front();
        if (static_cast<std::int64_t>(m.size()) > s.send_credit ||
            static_cast<std::int64_t>(m.size()) > session_send_credit_ || m.size() > room) {
          break;
        }
        encode_data_prefix(out + n, s.id, s.send_offset, static_cast<std::uint32_t>(m.size()));
        if (!m.empty()) std::memcpy(out + n + kDataOverhead, m.data(), m.size());
        n += kDataOverhead + m.size();
        s.send_offset += m.size();
        s.send_credit -= static_cast<std::int64_t>(m.size());
        session_send_credit_ -= static_cast<std::int64_t>(m.size());
        s.messages_bytes -= m.size();
        send_queued_ -= m.size();
        sent += m.size();
        budget = budget > m.size() ? budget - m.size() : 0;
        s.st.frames_sent++;
        stats_.tx.frames_by_type[static_cast<std::size_t>(FrameType::kData)]++;
        s.messages.pop_front();
        continue;
      }
      if (s.send_buf.empty()) break;
      std::size_t take =
          std::min({s.send_buf.size(), budget, max_payload, room,
                    static_cast<std::size_t>(std::max<std::int64_t>(0, s.send_credit)),
                    static_cast<std::size_t>(std::max<std::int64_t>(0, session_send_credit_))});
      if (take == 0) break;
      if (take < kMinDataChunk && take < s.send_buf.size() && take == room) break;
      encode_data_prefix(out + n, s.id, s.send_offset, static_cast<std::uint32_t>(take));
      std::size_t copied = 0;
      while (copied < take) {
        auto f = s.send_buf.front();
        const std::size_t c = std::min(f.size(), take - copied);
        std::memcpy(out + n + kDataOverhead + copied, f.data(), c);
        s.send_buf.consume(c);
        copied += c;
      }
      n += kDataOverhead + take;
      s.send_offset += take;
      s.send_credit -= static_cast<std::int64_t>(take);
      session_send_credit_ -= static_cast<std::int64_t>(take);
      send_queued_ -= take;
      sent += take;
      budget -= take;
      s.st.frames_sent++;
      stats_.tx.frames_by_type[static_cast<std::size_t>(FrameType::kData)]++;
    }
    s.st.bytes_sent += sent;
    stats_.tx.bytes_by_class[static_cast<std::size_t>(s.cls)] += sent;
    stats_.tx.wire_bytes += sent;
    if (sent > 0 && s.writer_blocked && s.queued() < cfg_.stream_send_buffer) {
      s.writer_blocked = false;
      observer_->on_writable(s.id);
    }
    return sent;
  };
  // Returns true when the stream stays in its active queue.
  auto after_send = [&](Stream& s) -> bool {
    if (!s.has_data() && s.close_requested && !s.close_sent) {
      emit_control(s.id, CloseStream{s.send_offset});
      s.close_sent = true;
      if (s.remote_closed) finish_candidates_.push_back(s.id);
    }
    const bool keep = can_send(s);
    if (!keep) s.in_active = false;
    return keep;
  };
  // Strict priority: control-class streams.
  auto& cq = active_[0];
  while (!cq.empty() && cap - n > kDataOverhead) {
    Stream* s = find(cq.front());
    cq.pop_front();
    if (s == nullptr) continue;
    send_from(*s, SIZE_MAX);
    if (after_send(*s)) {
      cq.push_front(s->id);
      break;  // out of room
    }
  }
  // Deficit round robin over the other classes.
  int idle_rounds = 0;
  while (cap - n > kDataOverhead && idle_rounds < static_cast<int>(kClassCount)) {
    const std::size_t c = rr_class_;
    rr_class_ = rr_class_ + 1 < kClassCount ? rr_class_ + 1 : 1;
    auto& q = active_[c];
    if (q.empty()) {
      deficit_[c] = 0;
      idle_rounds++;
      continue;
    }
    const std::size_t round_start = n;
    deficit_[c] += static_cast<std::int64_t>(cfg_.class_weights[c] * kQuantumUnit);
    while (!q.empty() && deficit_[c] > 0 && cap - n > kDataOverhead) {
      Stream* s = find(q.front());
      q.pop_front();
      if (s == nullptr) continue;
      const std::size_t before = n;
      const std::size_t sent = send_from(*s, static_cast<std::size_t>(deficit_[c]));
      deficit_[c] -= static_cast<std::int64_t>(sent);
      const bool keep = after_send(*s);
      if (keep) q.push_back(s->id);
      if (n == before && keep) break;  // no room for this stream's next frame
    }
    if (q.empty()) deficit_[c] = 0;
    // A class that could not send (message larger than the room left, say) counts as idle, so
    // the loop always ends.
    idle_rounds = n > round_start ? 0 : idle_rounds + 1;
    if (cap - n <= kDataOverhead + kMinDataChunk) break;
  }
  // CLOSE frames queued while filling go out on the next produce() (after this DATA).
  return n;
}

void SessionCore::grant_credit(Stream* sp, TimePoint now, bool force) {
  // Session-level credit: return what the application consumed, in batches of 1/4 window.
  const std::uint64_t session_free = session_delivered_ + cfg_.session_window - session_recv_limit_;
  if (session_free >= cfg_.session_window / 4 || (force && session_free > 0)) {
    emit_control(0, StreamCredit{static_cast<std::uint32_t>(session_free)});
    session_recv_limit_ += session_free;
  }
  if (sp == nullptr) return;  // session-only grant
  Stream& s = *sp;
  if (s.remote_closed) return;
  // Saturating: the latency guard may have shrunk the window below what is already granted.
  std::uint64_t free =
      s.delivered + s.recv_window > s.recv_limit ? s.delivered + s.recv_window - s.recv_limit : 0;
  if (free < s.recv_window / 2 && !(force && free > 0)) return;
  // Window auto-tuning (bandwidth-delay product): when half a window is consumed within about
  // two *minimum* RTTs, the window — not the path — is the bottleneck: double it. Using the
  // minimum RTT (not the smoothed one, which queueing inflates) keeps windows small where the
  // receiver, not the path, is the bottleneck.
  const auto base_rtt =
      stats_.rtt_min.count() > 0 ? stats_.rtt_min : std::chrono::nanoseconds(1'000'000);
  const auto since = now - s.last_grant;
  if (latency_guarded(s)) {
    // Latency guard: a dns/interactive stream is open on this session, so bytes this stream has
    // in flight sit in the same TCP/TLS pipe ahead of that stream's next message. Measure the
    // queueing delay with PINGs (their PONGs come back through the loaded direction) and, while
    // it exceeds the target, shrink the window to rate x (min RTT + target): enough for the path's
    // bandwidth-delay product, no deep queue behind it.
    const auto target = std::max<Duration>(cfg_.latency_target, base_rtt / 4);
    if (now - last_ping_ >=
        std::max<Duration>(2 * stats_.rtt_smoothed, std::chrono::microseconds(500))) {
      ping(now);
    }
    const auto queueing = stats_.rtt_last - base_rtt;
    if (queueing > target && since.count() > 0) {
      const double secs = std::chrono::duration<double>(since).count();
      const double rate = static_cast<double>(s.delivered - s.delivered_at_grant) / secs;
      const double fit = rate * std::chrono::duration<double>(base_rtt + target).count();
      // Floor: four 16 KiB TLS records (or the initial window when smaller). The initial window
      // (256 KiB by default) as floor left up to 2.6 ms of bulk ahead of each interactive
      // message at 100 MB/s on a relay's sessions (docs/PERFORMANCE.md).
      const double floor = std::min<double>(cfg_.initial_stream_window, kGuardMinWindow);
      const auto shrunk = static_cast<std::uint32_t>(
          std::clamp<double>(fit, floor, static_cast<double>(s.recv_window)));
      if (shrunk < s.recv_window) {
        s.recv_window = shrunk;
        stats_.latency_guard_shrinks++;
      }
      // Grant only what keeps the stream within its (smaller) window.
      free = s.delivered + s.recv_window > s.recv_limit ? s.delivered + s.recv_window - s.recv_limit
                                                        : 0;
      s.last_grant = now;
      s.delivered_at_grant = s.delivered;
      if (free == 0) return;
      emit_control(s.id, StreamCredit{static_cast<std::uint32_t>(free)});
      emit_control(s.id, Ack{s.delivered});
      s.recv_limit += free;
      return;
    }
  }
  if (since < 2 * base_rtt && s.recv_window < cfg_.max_stream_window) {
    const std::uint32_t grown = std::min(cfg_.max_stream_window, s.recv_window * 2);
    free += grown - s.recv_window;
    s.recv_window = grown;
  }
  s.delivered_at_grant = s.delivered;
  s.last_grant = now;
  emit_control(s.id, StreamCredit{static_cast<std::uint32_t>(free)});
  emit_control(s.id, Ack{s.delivered});
  s.recv_limit += free;
}

bool SessionCore::latency_guarded(const Stream& s) const {
  return latency_streams_ > 0 && s.cls != TrafficClass::kDns &&
         s.cls != TrafficClass::kInteractive && s.cls != TrafficClass::kControl;
}

void SessionCore::add_stream(std::unique_ptr<Stream> s) {
  if (s->cls == TrafficClass::kDns || s->cls == TrafficClass::kInteractive) ++latency_streams_;
  const std::uint32_t id = s->id;
  streams_.emplace(id, std::move(s));
}

void SessionCore::erase_stream(std::uint32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  if (it->second->cls == TrafficClass::kDns || it->second->cls == TrafficClass::kInteractive) {
    --latency_streams_;
  }
  streams_.erase(it);
}

Result<std::uint32_t> SessionCore::open_stream(const std::string& service, TrafficClass cls,
                                               std::uint64_t route_id) {
  if (state_ != State::kOpen) {
    return fail("session_not_open", "session is " + std::string(to_string(state_)));
  }
  if (peer_goaway_) return fail("session_going_away", "peer sent GOAWAY");
  if (service.empty() || service.size() > 64 ||
      !std::all_of(service.begin(), service.end(), [](char c) { return c >= 0x20 && c <= 0x7e; })) {
    return fail("bad_service", "service id must be 1..64 printable ASCII characters");
  }
  if (streams_.size() >= cfg_.max_streams) return fail("too_many_streams", "stream limit reached");
  if (next_local_id_ > 0x7ffffffd) return fail("stream_ids_exhausted", "open a new session");
  const std::uint32_t id = next_local_id_;
  next_local_id_ += 2;
  auto s = std::make_unique<Stream>();
  s->id = id;
  s->cls = cls;
  s->route_id = route_id;
  s->service = service;
  s->send_credit = peer_initial_window_;
  s->recv_window = cfg_.initial_stream_window;
  s->recv_limit = cfg_.initial_stream_window;
  s->st.id = id;
  s->st.service = service;
  s->st.traffic_class = cls;
  s->st.route_id = route_id;
  add_stream(std::move(s));
  stats_.streams_opened_local++;
  emit_control(id, OpenStream{cls, route_id, service});
  return id;
}

Result<std::size_t> SessionCore::write(std::uint32_t id, std::span<const std::uint8_t> data) {
  Stream* s = find(id);
  if (s == nullptr) return fail("stream_closed", "stream " + std::to_string(id) + " is not open");
  if (s->close_requested) return fail("stream_closed", "stream was closed for writing");
  if (state_ == State::kClosed) return fail("session_closed", close_reason_.message);
  if (s->cls == TrafficClass::kDroppable) {
    if (data.size() > kMaxDroppableMessage) {
      return fail("message_too_large", "droppable messages are at most " +
                                           std::to_string(kMaxDroppableMessage) + " bytes");
    }
    // Head drop: the oldest messages go first.
    const bool pressure = send_queued_ + data.size() > cfg_.pressure_bytes;
    while (!s->messages.empty() &&
           (s->messages_bytes + data.size() > cfg_.droppable_queue_limit || pressure)) {
      stats_.droppable_messages_shed++;
      stats_.droppable_bytes_shed += s->messages.front().size();
      s->messages_bytes -= s->messages.front().size();
      send_queued_ -= s->messages.front().size();
      s->messages.pop_front();
    }
    s->messages.emplace_back(data.begin(), data.end());
    s->messages_bytes += data.size();
    send_queued_ += data.size();
    activate(*s);
    return data.size();
  }
  const std::size_t room = s->send_buf.size() >= cfg_.stream_send_buffer
                               ? 0
                               : cfg_.stream_send_buffer - s->send_buf.size();
  const std::size_t take = std::min(room, data.size());
  if (take < data.size()) s->writer_blocked = true;
  if (take > 0) {
    s->send_buf.append(data.first(take));
    send_queued_ += take;
    activate(*s);
  }
  return take;
}

std::size_t SessionCore::send_room(std::uint32_t id) const {
  const Stream* s = find(id);
  if (s == nullptr) return 0;
  return s->send_buf.size() >= cfg_.stream_send_buffer
             ? 0
             : cfg_.stream_send_buffer - s->send_buf.size();
}

Result<std::size_t> SessionCore::read(std::uint32_t id, std::span<std::uint8_t> out, bool& eof,
                                      TimePoint now) {
  eof = false;
  Stream* s = find(id);
  if (s == nullptr) return fail("stream_closed", "stream " + std::to_string(id) + " is not open");
  const std::size_t n = s->recv_buf.read(out);
  if (n > 0) {
    s->delivered += n;
    session_delivered_ += n;
    recv_buffered_ -= n;
    grant_credit(s, now, false);
  }
  if (n == 0 && s->recv_buf.empty() && s->remote_closed) {
    eof = true;
    s->eof_seen = true;
    maybe_finish(*s);
  }
  return n;
}

Result<void> SessionCore::close_stream(std::uint32_t id) {
  Stream* s = find(id);
  if (s == nullptr) return fail("stream_closed", "stream " + std::to_string(id) + " is not open");
  if (s->close_requested) return {};
  s->close_requested = true;
  if (!s->has_data()) {
    emit_control(id, CloseStream{s->send_offset});
    s->close_sent = true;
    maybe_finish(*s);
  }
  return {};
}

void SessionCore::reset_stream(std::uint32_t id, ErrorCode code, const std::string& reason) {
  Stream* s = find(id);
  if (s == nullptr) return;
  s->released = true;  // the application asked for it: no callback
  local_reset(*s, code, reason, state_ != State::kClosed);
}

void SessionCore::release_stream(std::uint32_t id) {
  Stream* s = find(id);
  if (s == nullptr) return;
  s->released = true;
  if (state_ == State::kClosed) {
    recv_buffered_ -= s->recv_buf.size();
    send_queued_ -= s->queued();
    erase_stream(id);
    return;
  }
  // Unread input is dropped; its credit goes back to the peer.
  if (!s->recv_buf.empty()) {
    const auto n = s->recv_buf.size();
    s->recv_buf.clear();
    s->delivered += n;
    session_delivered_ += n;
    recv_buffered_ -= n;
    grant_credit(s, last_rx_, true);
  }
  if (s->close_sent && s->remote_closed) {
    maybe_finish(*s);
    return;
  }
  if (s->close_requested) return;  // linger: queued bytes and CLOSE_STREAM still go out
  local_reset(*s, ErrorCode::kCancel, "stream released by application", true);
}

void SessionCore::goaway(ErrorCode code, const std::string& reason, bool drain) {
  if (state_ == State::kClosed) return;
  Goaway g;
  g.last_stream_id = last_peer_id_;
  g.code = code;
  g.reason = reason.substr(0, 255);
  emit_control(0, g, drain ? kFlagGoawayDrain : 0);
  if (drain && state_ == State::kOpen) {
    state_ = State::kDraining;
    check_drained();
  } else {
    close_after_flush_ = true;
    finish_close(Error{"local_goaway", reason});
  }
}

Result<void> SessionCore::send_route_update(std::uint32_t stream_id, const RouteUpdate& update) {
  if (state_ != State::kOpen && state_ != State::kDraining) {
    return fail("session_not_open", "session is " + std::string(to_string(state_)));
  }
  // route id + epoch + u16 length + lease must fit the peer's frame size.
  if (update.lease.size() > 0xffff || update.lease.size() + 18 > peer_max_frame_) {
    return fail("lease_too_large", "route lease does not fit one frame");
  }
  if (stream_id != 0) {
    if (Stream* s = find(stream_id)) {
      s->route_id = update.route_id;
      s->st.route_id = update.route_id;
    }
  }
  emit_control(stream_id, update);
  return {};
}

void SessionCore::set_node_load(std::uint16_t cpu_permille, std::uint32_t memory_kib) {
  load_cpu_ = std::min<std::uint16_t>(cpu_permille, 1000);
  load_mem_ = memory_kib;
}

void SessionCore::ping(TimePoint now) {
  const std::uint64_t opaque = (ns_since_epoch(now) << 8) | (ping_counter_++ & 0xff);
  pings_outstanding_[opaque] = now;
  while (pings_outstanding_.size() > 8) pings_outstanding_.erase(pings_outstanding_.begin());
  last_ping_ = now;
  emit_control(0, Ping{opaque});
}

void SessionCore::update_pressure() {
  const std::uint64_t q = send_queued_ + (control_.size() - control_head_);
  std::uint8_t level = 0;
  if (q >= cfg_.pressure_bytes) {
    level = 3;
  } else if (q >= cfg_.pressure_bytes * 3 / 4) {
    level = 2;
  } else if (q >= cfg_.pressure_bytes / 2) {
    level = 1;
  }
  if (level == stats_.local_pressure_level) return;
  stats_.local_pressure_level = level;
  if (state_ != State::kOpen && state_ != State::kDraining) return;
  NodePressure p;
  p.level = level;
  p.cpu_permille = load_cpu_;
  p.queue_bytes = static_cast<std::uint32_t>(std::min<std::uint64_t>(q, UINT32_MAX));
  p.memory_kib = load_mem_;
  emit_control(0, p);
  if (level >= 2) {
    // Shed droppable data first.
    for (auto& [id, s] : streams_) {
      if (s->cls != TrafficClass::kDroppable) continue;
      while (s->messages.size() > 1) {
        stats_.droppable_messages_shed++;
        stats_.droppable_bytes_shed += s->messages.front().size();
        s->messages_bytes -= s->messages.front().size();
        send_queued_ -= s->messages.front().size();
        s->messages.pop_front();
      }
    }
  }
}

void SessionCore::on_tick(TimePoint now) {
  if (state_ == State::kClosed) return;
  if (state_ == State::kHandshake) {
    if (now - start_time_ >= cfg_.handshake_timeout) {
      protocol_failure(ErrorCode::kAuthFailed, "handshake timed out");
    }
    return;
  }
  if (now - last_rx_ >= cfg_.idle_timeout) {
    protocol_failure(ErrorCode::kIdleTimeout, "no frames from peer within the idle timeout");
    return;
  }
  if (now - last_ping_ >= cfg_.keepalive) ping(now);
  update_pressure();
}

TimePoint SessionCore::next_deadline() const {
  if (state_ == State::kHandshake) return start_time_ + cfg_.handshake_timeout;
  return std::min(last_rx_ + cfg_.idle_timeout, last_ping_ + cfg_.keepalive);
}

std::optional<StreamInfo> SessionCore::stream_info(std::uint32_t id) const {
  const Stream* s = find(id);
  if (s == nullptr) return std::nullopt;
  return StreamInfo{s->id, s->service, s->cls, s->route_id};
}

SessionStats SessionCore::stats() const {
  SessionStats out = stats_;
  out.send_queue_bytes = send_queued_;
  out.control_queue_bytes = control_.size() - control_head_;
  out.recv_buffered_bytes = recv_buffered_;
  out.open_streams = static_cast<std::uint32_t>(streams_.size());
  out.session_send_credit =
      static_cast<std::uint64_t>(std::max<std::int64_t>(0, session_send_credit_));
  return out;
}

std::vector<StreamStats> SessionCore::stream_stats() const {
  std::vector<StreamStats> out;
  out.reserve(streams_.size());
  for (const auto& [id, s] : streams_) {
    StreamStats st = s->st;
    st.send_queue_bytes = s->queued();
    st.recv_queue_bytes = s->recv_buf.size();
    st.send_credit = s->send_credit;
    st.recv_window = s->recv_window;
    out.push_back(std::move(st));
  }
  return out;
}

}  // namespace rap::fabric
