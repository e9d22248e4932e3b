// SessionCore: the Fabric Data Session V1 state machine. It does no I/O and reads no clock: the
// caller hands it received bytes and the current time, and pulls the bytes to send. The same
// core runs under every carrier (TLS, WebSocket, later QUIC), in tests, and in the fuzzer.
//
//   core.start(now);                               // queues HELLO + AUTH
//   core.on_receive(bytes, now) -> consumed        // feed whole frames; keep the rest
//   core.produce(out, now) -> n                    // coalesced frames to write
//   core.on_tick(now); core.next_deadline()        // keepalive, idle and handshake timers
//
// Applications use open_stream / write / read / close_stream / reset_stream and learn about
// progress through SessionObserver callbacks (called synchronously; they must not re-enter the
// core).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "rap/common/clock.h"
#include "rap/common/result.h"
#include "rap/fabric/byte_queue.h"
#include "rap/fabric/frame.h"
#include "rap/fabric/stats.h"

namespace rap::fabric {

enum class Role : std::uint8_t { kInitiator = 0, kAcceptor = 1 };

// Largest droppable message: it always fits one DATA frame of the smallest legal max frame size,
// so produce() buffers of at least kMinMaxFrameSize bytes can carry any message.
inline constexpr std::size_t kMaxDroppableMessage = kMinMaxFrameSize - kDataOverhead;

struct SessionConfig {
  Role role = Role::kInitiator;
  std::string node_id;
  std::string cluster_id;
  std::uint64_t capabilities = 0;
  std::uint32_t max_frame_size = 256 * 1024;           // largest frame we accept
  std::uint32_t initial_stream_window = 256 * 1024;    // per-stream receive window at open
  std::uint32_t max_stream_window = 16 * 1024 * 1024;  // auto-tuned (BDP) upper bound
  std::uint32_t session_window = 64 * 1024 * 1024;     // all streams' unread bytes together
  std::size_t stream_send_buffer = 1024 * 1024;        // app bytes queued per stream before writes
                                                       // become short (backpressure)
  std::size_t droppable_queue_limit = 64 * 1024;       // per droppable stream; head-dropped beyond
  std::size_t pressure_bytes = 32 * 1024 * 1024;       // queued bytes that mean "under pressure"
  std::size_t max_control_queue = 1024 * 1024;         // peer not reading our control frames
  std::uint32_t max_streams = 4096;
  // Latency guard: while a dns/interactive stream is open, other streams' windows shrink when
  // PINGs show more queueing delay than this (or a quarter of the minimum RTT, if larger).
  Duration latency_target = std::chrono::microseconds(300);
  Duration keepalive = std::chrono::seconds(10);
  Duration idle_timeout = std::chrono::seconds(30);
  Duration handshake_timeout = std::chrono::seconds(10);
  // Weighted sharing below `control` (dns, interactive, reliable, bulk, droppable), in units of
  // 16 KiB per scheduling round.
  std::array<std::uint32_t, kClassCount> class_weights = {0, 8, 8, 4, 2, 1};
  std::uint64_t route_epoch = 0;
  std::uint64_t peer_epoch = 0;
};

// What the carrier proved about the peer (its TLS certificate) and about the channel.
struct PeerProof {
  std::string node_id;
  std::string cluster_id;
  std::uint64_t serial = 0;
  std::array<std::uint8_t, 32> public_key{};
  std::vector<std::uint8_t> channel_binding;  // TLS exporter, same value on both ends
};

// TLS exporter label whose output is PeerProof::channel_binding.
inline constexpr char kExporterLabel[] = "EXPORTER-rap-fabric-auth";
inline constexpr std::size_t kExporterLength = 32;

class Signer {
 public:
  virtual ~Signer() = default;
  virtual std::array<std::uint8_t, 64> sign(std::span<const std::uint8_t> message) const = 0;
};

class SessionObserver {
 public:
  virtual ~SessionObserver() = default;
  virtual void on_ready() {}
  virtual void on_stream_opened(std::uint32_t /*id*/) {}  // peer opened a stream
  virtual void on_readable(std::uint32_t /*id*/) {}       // data or EOF can be read
  virtual void on_writable(std::uint32_t /*id*/) {}       // send room reappeared
  virtual void on_stream_reset(std::uint32_t /*id*/, ErrorCode /*code*/,
                               const std::string& /*reason*/) {}
  virtual void on_output() {}  // produce() has bytes
  virtual void on_goaway(ErrorCode /*code*/, const std::string& /*reason*/) {}
  virtual void on_closed(const Error& /*why*/) {}
  virtual void on_route_update(std::uint32_t /*stream*/, const RouteUpdate& /*u*/) {}
};

struct StreamInfo {
  std::uint32_t id = 0;
  std::string service;
  TrafficClass traffic_class = TrafficClass::kReliable;
  std::uint64_t route_id = 0;
};

class SessionCore {
 public:
  enum class State { kHandshake, kOpen, kDraining, kClosed };

  SessionCore(SessionConfig config, const Signer& signer, PeerProof peer,
              SessionObserver* observer);
  ~SessionCore();
  SessionCore(const SessionCore&) = delete;
  SessionCore& operator=(const SessionCore&) = delete;

  // --- driving (carrier side) ---
  void start(TimePoint now);
  // Consumes whole frames from `data`; returns bytes consumed (the caller keeps the rest).
  std::size_t on_receive(std::span<const std::uint8_t> data, TimePoint now);
  // Writes coalesced frames into `out`; returns bytes written.
  std::size_t produce(std::span<std::uint8_t> out, TimePoint now);
  bool wants_write() const;
  // A dns/interactive stream is open: callers should keep their write batches small.
  bool latency_sensitive() const { return latency_streams_ > 0; }
  void on_tick(TimePoint now);
  TimePoint next_deadline() const;
  // The carrier failed (EOF, reset, TLS error): everything is torn down.
  void on_transport_error(const std::string& reason);

  // --- application side ---
  Result<std::uint32_t> open_stream(const std::string& service, TrafficClass cls,
                                    std::uint64_t route_id);
  // Queues bytes; returns how many were accepted (short when the stream's send buffer is full:
  // wait for on_writable). For droppable streams each call is one message, kept whole.
  Result<std::size_t> write(std::uint32_t id, std::span<const std::uint8_t> data);
  // Returns bytes read; 0 with eof=true at the end of the stream; 0 with eof=false when empty.
  Result<std::size_t> read(std::uint32_t id, std::span<std::uint8_t> out, bool& eof, TimePoint now);
  // Half-close: no more writes; CLOSE_STREAM goes out after the queued bytes.
  Result<void> close_stream(std::uint32_t id);
  void reset_stream(std::uint32_t id, ErrorCode code, const std::string& reason);
  // Forget a finished stream (the application holds no handle any more).
  void release_stream(std::uint32_t id);
  void goaway(ErrorCode code, const std::string& reason, bool drain);
  Result<void> send_route_update(std::uint32_t stream_id, const RouteUpdate& update);
  void set_node_load(std::uint16_t cpu_permille, std::uint32_t memory_kib);
  void ping(TimePoint now);

  // --- introspection ---
  State state() const { return state_; }
  bool is_open() const { return state_ == State::kOpen; }
  bool is_closed() const { return state_ == State::kClosed; }
  const Error& close_reason() const { return close_reason_; }
  const PeerProof& peer() const { return peer_; }
  std::uint16_t negotiated_version() const { return version_; }
  std::uint64_t peer_capabilities() const { return peer_capabilities_; }
  std::optional<StreamInfo> stream_info(std::uint32_t id) const;
  std::size_t send_room(std::uint32_t id) const;
  SessionStats stats() const;
  std::vector<StreamStats> stream_stats() const;

 private:
  struct Stream;

  void emit_control(std::uint32_t sid, const FrameBody& body, std::uint8_t flags = 0);
  void protocol_failure(ErrorCode code, const std::string& reason);
  void handle_frame(const Frame& f, std::span<const std::uint8_t> raw, TimePoint now);
  void handle_handshake(const Frame& f, std::span<const std::uint8_t> raw, TimePoint now);
  void handle_stream_frame(const Frame& f, TimePoint now);
  void local_reset(Stream& s, ErrorCode code, const std::string& reason, bool notify_peer);
  void maybe_finish(Stream& s);
  bool can_send(const Stream& s) const;
  void activate(Stream& s);
  void grant_credit(Stream* s, TimePoint now, bool force);
  bool latency_guarded(const Stream& s) const;
  void add_stream(std::unique_ptr<Stream> s);
  void erase_stream(std::uint32_t id);
  void check_drained();
  void update_pressure();
  std::size_t fill_data(std::uint8_t* out, std::size_t cap);
  void finish_close(Error why);
  Stream* find(std::uint32_t id);
  const Stream* find(std::uint32_t id) const;

  SessionConfig cfg_;
  const Signer& signer_;
  PeerProof peer_;
  SessionObserver* observer_;
  State state_ = State::kHandshake;
  Error close_reason_;
  TimePoint start_time_{};
  TimePoint last_rx_{};
  TimePoint last_ping_{};
  bool started_ = false;
  bool hello_received_ = false;
  bool auth_verified_ = false;
  bool ready_sent_ = false;
  bool ready_received_ = false;
  std::array<std::uint8_t, 32> local_hello_hash_{};
  std::array<std::uint8_t, 32> peer_hello_hash_{};
  std::uint16_t version_ = 0;
  std::uint64_t peer_capabilities_ = 0;
  std::uint32_t peer_max_frame_ = kMinMaxFrameSize;
  std::uint32_t peer_initial_window_ = 0;
  bool peer_goaway_ = false;
  std::uint32_t peer_goaway_last_ = 0;
  bool close_after_flush_ = false;

  std::vector<std::uint8_t> control_;  // encoded control frames, sent before any DATA
  std::size_t control_head_ = 0;
  std::map<std::uint32_t, std::unique_ptr<Stream>> streams_;
  std::vector<std::uint32_t> finish_candidates_;
  std::set<std::uint32_t> recently_reset_;
  std::deque<std::uint32_t> recently_reset_order_;
  std::array<std::deque<std::uint32_t>, kClassCount> active_;
  std::array<std::int64_t, kClassCount> deficit_{};
  std::size_t rr_class_ = 1;
  std::uint32_t next_local_id_ = 0;
  std::uint32_t last_peer_id_ = 0;
  std::int64_t session_send_credit_ = 0;
  std::uint64_t session_recv_limit_ = 0;
  std::uint64_t session_received_ = 0;
  std::uint64_t session_delivered_ = 0;
  std::uint64_t send_queued_ = 0;
  std::uint64_t recv_buffered_ = 0;
  std::map<std::uint64_t, TimePoint> pings_outstanding_;
  std::uint64_t ping_counter_ = 0;
  std::uint32_t latency_streams_ = 0;  // open dns/interactive streams
  SessionStats stats_;
  std::uint16_t load_cpu_ = 0;
  std::uint32_t load_mem_ = 0;
};

std::string_view to_string(SessionCore::State s);

}  // namespace rap::fabric
