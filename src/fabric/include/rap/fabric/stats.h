// Counters per session and per stream, read by the metrics endpoint (Prometheus text).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "rap/fabric/frame.h"

namespace rap::fabric {

inline constexpr std::size_t kFrameTypeCount = 15;  // index = FrameType value

struct DirectionCounters {
  std::array<std::uint64_t, kClassCount> bytes_by_class{};  // DATA payload bytes
  std::array<std::uint64_t, kFrameTypeCount> frames_by_type{};
  std::uint64_t wire_bytes = 0;  // all frame bytes including headers
};

// What the transport underneath measured (TCP_INFO for TCP carriers): loss shows here first.
struct TransportInfo {
  std::uint64_t retransmits = 0;  // segments retransmitted over the connection's life
  std::uint32_t lost = 0;         // segments currently considered lost
  double rtt_ms = 0;              // the kernel's smoothed RTT
};

struct SessionStats {
  DirectionCounters tx;
  DirectionCounters rx;
  std::uint64_t streams_opened_local = 0;
  std::uint64_t streams_opened_remote = 0;
  std::uint64_t streams_closed = 0;
  std::uint64_t streams_refused = 0;
  std::map<std::string, std::uint64_t> resets_sent;      // by reason code
  std::map<std::string, std::uint64_t> resets_received;  // by reason code
  std::uint64_t decode_errors = 0;
  std::uint64_t droppable_messages_shed = 0;
  std::uint64_t droppable_bytes_shed = 0;
  std::uint64_t latency_guard_shrinks = 0;  // bulk windows cut to protect interactive streams
  std::uint64_t send_queue_bytes = 0;       // app bytes queued, not yet framed
  std::uint64_t control_queue_bytes = 0;
  std::uint64_t recv_buffered_bytes = 0;  // received, not yet read by the application
  std::uint32_t open_streams = 0;
  std::uint64_t session_send_credit = 0;
  std::chrono::nanoseconds rtt_last{0};
  std::chrono::nanoseconds rtt_smoothed{0};
  std::chrono::nanoseconds rtt_min{0};
  std::chrono::nanoseconds rtt_var{0};
  std::uint8_t local_pressure_level = 0;
  std::uint8_t peer_pressure_level = 0;
  std::uint32_t peer_queue_bytes = 0;
  std::uint32_t peer_memory_kib = 0;
  std::uint16_t peer_cpu_permille = 0;
};

struct StreamStats {
  std::uint32_t id = 0;
  std::string service;
  TrafficClass traffic_class = TrafficClass::kReliable;
  std::uint64_t route_id = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t frames_sent = 0;
  std::uint64_t frames_received = 0;
  std::uint64_t send_queue_bytes = 0;
  std::uint64_t recv_queue_bytes = 0;
  std::int64_t send_credit = 0;
  std::uint32_t recv_window = 0;
  std::uint64_t acked_offset = 0;
};

}  // namespace rap::fabric
