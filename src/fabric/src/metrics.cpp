#include "rap/fabric/metrics.h"

#include <fmt/format.h>

namespace rap::fabric {
namespace {

std::string esc(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\' || c == '"') o.push_back('\\');
    if (c == '\n') {
      o += "\\n";
      continue;
    }
    o.push_back(c);
  }
  return o;
}

void help(std::string& out, const char* name, const char* type, const char* text) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, text, name, type);
}

}  // namespace

std::string render_prometheus(const std::vector<SessionSnapshot>& sessions) {
  std::string out;
  help(out, "rap_fabric_sessions", "gauge", "Fabric sessions by state.");
  out += fmt::format("rap_fabric_sessions {}\n", sessions.size());
  help(out, "rap_fabric_session_bytes_total", "counter",
       "DATA payload bytes by direction and traffic class.");
  for (const auto& s : sessions) {
    const auto base = fmt::format("local=\"{}\",peer=\"{}\",carrier=\"{}\"", esc(s.local_node),
                                  esc(s.peer_node), esc(s.carrier));
    for (std::size_t c = 0; c < kClassCount; ++c) {
      const auto cls = to_string(static_cast<TrafficClass>(c));
      out += fmt::format("rap_fabric_session_bytes_total{{{},dir=\"tx\",class=\"{}\"}} {}\n", base,
                         cls, s.stats.tx.bytes_by_class[c]);
      out += fmt::format("rap_fabric_session_bytes_total{{{},dir=\"rx\",class=\"{}\"}} {}\n", base,
                         cls, s.stats.rx.bytes_by_class[c]);
    }
  }
  help(out, "rap_fabric_session_frames_total", "counter", "Frames by direction and type.");
  for (const auto& s : sessions) {
    const auto base = fmt::format("local=\"{}\",peer=\"{}\"", esc(s.local_node), esc(s.peer_node));
    for (std::size_t t = 1; t < kFrameTypeCount; ++t) {
      const auto name = to_string(static_cast<FrameType>(t));
      if (s.stats.tx.frames_by_type[t] != 0) {
        out += fmt::format("rap_fabric_session_frames_total{{{},dir=\"tx\",type=\"{}\"}} {}\n",
                           base, name, s.stats.tx.frames_by_type[t]);
      }
      if (s.stats.rx.frames_by_type[t] != 0) {
        out += fmt::format("rap_fabric_session_frames_total{{{},dir=\"rx\",type=\"{}\"}} {}\n",
                           base, name, s.stats.rx.frames_by_type[t]);
      }
    }
  }
  help(out, "rap_fabric_session_rtt_seconds", "gauge", "Smoothed RTT from PING/PONG.");
  help(out, "rap_fabric_session_queue_bytes", "gauge", "Bytes queued for sending.");
  help(out, "rap_fabric_session_open_streams", "gauge", "Open streams.");
  help(out, "rap_fabric_session_resets_total", "counter", "Stream resets by direction and code.");
  help(out, "rap_fabric_session_decode_errors_total", "counter", "Malformed frames received.");
  help(out, "rap_fabric_session_droppable_shed_bytes_total", "counter",
       "Droppable bytes shed under pressure.");
  help(out, "rap_fabric_session_peer_pressure_level", "gauge", "Peer NODE_PRESSURE level.");
  help(out, "rap_fabric_session_latency_guard_shrinks_total", "counter",
       "Bulk stream windows cut to keep interactive streams' queueing delay low.");
  for (const auto& s : sessions) {
    const auto base = fmt::format("local=\"{}\",peer=\"{}\"", esc(s.local_node), esc(s.peer_node));
    out += fmt::format("rap_fabric_session_rtt_seconds{{{}}} {:.6f}\n", base,
                       static_cast<double>(s.stats.rtt_smoothed.count()) / 1e9);
    out += fmt::format("rap_fabric_session_queue_bytes{{{}}} {}\n", base,
                       s.stats.send_queue_bytes + s.stats.control_queue_bytes);
    out += fmt::format("rap_fabric_session_open_streams{{{}}} {}\n", base, s.stats.open_streams);
    for (const auto& [code, n] : s.stats.resets_sent) {
      out += fmt::format("rap_fabric_session_resets_total{{{},dir=\"tx\",code=\"{}\"}} {}\n", base,
                         esc(code), n);
    }
    for (const auto& [code, n] : s.stats.resets_received) {
      out += fmt::format("rap_fabric_session_resets_total{{{},dir=\"rx\",code=\"{}\"}} {}\n", base,
                         esc(code), n);
    }
    out += fmt::format("rap_fabric_session_decode_errors_total{{{}}} {}\n", base,
                       s.stats.decode_errors);
    out += fmt::format("rap_fabric_session_droppable_shed_bytes_total{{{}}} {}\n", base,
                       s.stats.droppable_bytes_shed);
    out += fmt::format("rap_fabric_session_peer_pressure_level{{{}}} {}\n", base,
                       s.stats.peer_pressure_level);
    out += fmt::format("rap_fabric_session_latency_guard_shrinks_total{{{}}} {}\n", base,
                       s.stats.latency_guard_shrinks);
  }
  help(out, "rap_fabric_stream_bytes_total", "counter", "Per-stream payload bytes.");
  help(out, "rap_fabric_stream_queue_bytes", "gauge", "Per-stream send queue.");
  for (const auto& s : sessions) {
    for (const auto& st : s.streams) {
      const auto base = fmt::format(
          "peer=\"{}\",stream=\"{}\",service=\"{}\",class=\"{}\",route=\"{}\"", esc(s.peer_node),
          st.id, esc(st.service), to_string(st.traffic_class), st.route_id);
      out +=
          fmt::format("rap_fabric_stream_bytes_total{{{},dir=\"tx\"}} {}\n", base, st.bytes_sent);
      out += fmt::format("rap_fabric_stream_bytes_total{{{},dir=\"rx\"}} {}\n", base,
                         st.bytes_received);
      out += fmt::format("rap_fabric_stream_queue_bytes{{{}}} {}\n", base, st.send_queue_bytes);
    }
  }
  return out;
}

}  // namespace rap::fabric
