#include "mesh_runtime.h"

#include <fmt/format.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include "rap/common/priority.h"
#include "rap/common/prometheus.h"
#include "rap/common/thread_slice.h"
#include "rap/config/canonical.h"

namespace rap::agent {

namespace asio = boost::asio;

namespace {

using json = nlohmann::json;
constexpr std::size_t kMaxQueuedRecords = 10000;
constexpr std::size_t kMaxReportedSessions = 128;  // the control plane accepts at most this many
constexpr std::size_t kMaxRevokedGrants = 4096;

std::string advertise(const std::string& explicit_ep, const std::string& listen,
                      std::uint16_t port) {
  if (!explicit_ep.empty()) return explicit_ep;
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) return {};
  const std::string host = listen.substr(0, colon);
  if (host == "0.0.0.0" || host == "::" || host == "[::]") return {};
  return host + ":" + std::to_string(port);
}

// Adds the lane's numbers to the main lane's status, so the node's status shows the node: open
// flows (marked with their lane), counters, relayed bytes, route switches.
void merge_lane_status(json& st, const json& lane) {
  auto& flows = st["open_flows"];
  for (auto f : lane.value("open_flows", json::array())) {
    f["lane"] = lane.value("lane", std::string());
    flows.push_back(std::move(f));
  }
  auto& counters = st["counters"];
  const auto lane_counters = lane.value("counters", json::object());
  for (const auto& [k, v] : lane_counters.items()) {
    if (v.is_number_unsigned())
      counters[k] = counters.value(k, std::uint64_t{0}) + v.get<std::uint64_t>();
  }
  for (const char* k : {"active_routes", "active_relays", "relay_bytes"}) {
    st[k] = st.value(k, std::uint64_t{0}) + lane.value(k, std::uint64_t{0});
  }
  auto& rh = st["route_health"];
  const auto lrh = lane.value("route_health", json::object());
  rh["flows"] = rh.value("flows", std::uint64_t{0}) + lrh.value("flows", std::uint64_t{0});
  rh["resend_bytes"] =
      rh.value("resend_bytes", std::uint64_t{0}) + lrh.value("resend_bytes", std::uint64_t{0});
  for (const auto& sw : lrh.value("switches", json::array())) rh["switches"].push_back(sw);
}

template <class F>
auto on_io(asio::io_context& io, F f) {
  return asio::co_spawn(
             io, [&]() -> asio::awaitable<decltype(f())> { co_return f(); }, asio::use_future)
      .get();
}

// Runs `f` on `io` now and every 500 ms until the loop stops (the snapshot refreshers).
template <class F>
void every_half_second(asio::io_context& io, F f) {
  asio::co_spawn(
      io,
      [f]() -> asio::awaitable<void> {
        asio::steady_timer t(co_await asio::this_coro::executor);
        for (;;) {
          f();
          t.expires_after(std::chrono::milliseconds(500));
          auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
          if (ec) co_return;
        }
      },
      asio::detached);
}

}  // namespace

Result<std::unique_ptr<MeshRuntime>> MeshRuntime::start(const crypto::NodeCredentials& creds,
                                                        const MeshRuntimeOptions& options,
                                                        const std::string& cluster_label) {
  std::unique_ptr<MeshRuntime> r(new MeshRuntime());
  r->options_ = options;
  r->label_ = cluster_label;
  r->io_ = std::make_unique<asio::io_context>(1);
  mesh::MeshOptions mo;
  mo.fabric_listen = options.fabric_listen;
  mo.fabric_advertise = options.fabric_advertise;
  mo.max_active = options.max_active;
  auto m = mesh::MeshNode::create(r->io_->get_executor(), creds, mo, r->clock_, r->random_);
  if (!m) return tl::unexpected(m.error());
  r->mesh_ = std::move(*m);
  auto sink = [raw = r.get()](services::tcp::AccessRecord rec) {
    std::lock_guard g(raw->mu_);
    if (raw->records_.size() >= kMaxQueuedRecords) {
      raw->records_.pop_front();
      raw->records_dropped_++;
    }
    raw->records_.push_back(std::move(rec));
  };
  r->exit_ =
      std::make_unique<services::tcp::TcpAccessExit>(r->io_->get_executor(), *r->mesh_, sink);
  auto port = r->mesh_->start();
  if (!port) return tl::unexpected(port.error());
  r->fabric_endpoint_ = r->mesh_->advertised_endpoint();
  if (options.interactive_lane) {
    // The interactive lane (PROTOCOL.md §15): same identity and configuration, its own thread;
    // it dials the peers this node dials (same advertised endpoint) and gets its incoming
    // sessions from the main listener by ALPN.
    r->lane_io_ = std::make_unique<asio::io_context>(1);
    mesh::MeshOptions lo = mo;
    lo.lane = "interactive";
    lo.fabric_listen.clear();
    lo.fabric_advertise = r->fabric_endpoint_;
    auto lm = mesh::MeshNode::create(r->lane_io_->get_executor(), creds, lo, r->clock_, r->random_);
    if (!lm) return tl::unexpected(lm.error());
    r->lane_mesh_ = std::move(*lm);
    r->lane_exit_ = std::make_unique<services::tcp::TcpAccessExit>(r->lane_io_->get_executor(),
                                                                   *r->lane_mesh_, sink);
    if (auto lp = r->lane_mesh_->start(); !lp) return tl::unexpected(lp.error());
    r->mesh_->serve_lane(*r->lane_mesh_);
  }
  if (!options.client_ingress_listen.empty()) {
    auto e = services::tcp::TcpAccessEntry::start(r->io_->get_executor(), *r->mesh_, creds,
                                                  options.client_ingress_listen, sink);
    if (!e) return tl::unexpected(e.error());
    r->entry_ = std::move(*e);
    r->ingress_endpoint_ = advertise(options.client_ingress_advertise,
                                     options.client_ingress_listen, r->entry_->port());
    if (r->lane_mesh_) {
      r->lane_entry_ =
          services::tcp::TcpAccessEntry::lane(r->lane_io_->get_executor(), *r->lane_mesh_, sink);
      services::tcp::TcpAccessEntry::pair_lanes(*r->entry_, *r->lane_entry_);
    }
    if (!options.user_socket.empty()) {
      auto u = services::tcp::UserSocketServer::start(r->io_->get_executor(), *r->entry_,
                                                      options.user_socket);
      if (u) {
        r->users_ = std::move(*u);
      } else {  // degraded, not fatal: the client ingress works without it
        spdlog::error("cluster {}: entry-node listeners off: {}", cluster_label, u.error().message);
      }
    }
  }
  if (!options.local_socket.empty()) {
    auto l = mesh::LocalStreamServer::start(r->io_->get_executor(), *r->mesh_, options.local_socket,
                                            options.authorize_local);
    if (l) {
      r->local_ = std::move(*l);
    } else {  // degraded, not fatal: routing and TCP access work without it
      spdlog::error("cluster {}: local stream API off: {}", cluster_label, l.error().message);
    }
  }
  if (!options.metrics_listen.empty()) {
    const auto colon = options.metrics_listen.rfind(':');
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(options.metrics_listen.substr(0, colon), ec);
    if (ec || colon == std::string::npos)
      return fail("bad_config", "metrics_listen must be ip:port");
    auto* raw = r.get();
    auto mp = fabric::serve_metrics(
        r->io_->get_executor(),
        {addr, static_cast<std::uint16_t>(std::stoul(options.metrics_listen.substr(colon + 1)))},
        [raw] {
          std::string users;
          if (raw->users_) {  // entry-node listeners open
            users = "# TYPE rap_tcp_access_entry_listeners gauge\nrap_tcp_access_entry_listeners " +
                    std::to_string(raw->users_->listeners()) + "\n";
          }
          services::tcp::TcpCounters lane_entry, lane_exit;
          std::string lanes, lane_prom, lane_name;
          {
            std::lock_guard g(raw->mu_);
            lane_entry = raw->lane_entry_counters_;
            lane_exit = raw->lane_exit_counters_;
            lane_prom = raw->lane_prometheus_;
            if (raw->lane_status_.is_object()) {
              const auto& ls = raw->lane_status_;
              lanes = "# TYPE rap_mesh_lane_sessions gauge\nrap_mesh_lane_sessions{lane=\"" +
                      ls.value("lane", std::string()) + "\"} " +
                      std::to_string(ls.value("lane_sessions", 0)) +
                      "\n# TYPE rap_mesh_lane_open_flows gauge\nrap_mesh_lane_open_flows{lane=\"" +
                      ls.value("lane", std::string()) + "\"} " +
                      std::to_string(ls.value("open_flows", 0)) + "\n";
              lane_name = ls.value("lane", std::string());
              // 0: the kernel keeps its own slice for the lane's thread.
              lanes +=
                  "# TYPE rap_mesh_lane_thread_slice_seconds gauge\n"
                  "rap_mesh_lane_thread_slice_seconds{lane=\"" +
                  lane_name + "\"} " +
                  fmt::format("{:g}",
                              static_cast<double>(
                                  ls.value("thread_slice", json::object()).value("granted_us", 0)) /
                                  1e6) +
                  "\n";
            }
          }
          // Hand-overs are counted on the main thread (the prometheus callback's).
          lanes +=
              "# TYPE rap_fabric_lane_handoffs_total counter\nrap_fabric_lane_handoffs_total " +
              std::to_string(raw->mesh_->lane_handoffs()) + "\n";
          if (raw->entry_) {
            lanes +=
                "# TYPE rap_tcp_access_lane_handoffs_total counter\n"
                "rap_tcp_access_lane_handoffs_total " +
                std::to_string(raw->entry_->lane_handoffs()) + "\n";
          }
          // The TCP access counters are the node's: both lanes summed.
          return merge_prometheus(raw->mesh_->prometheus(), lane_prom, "lane", lane_name) +
                 services::tcp::tcp_prometheus(
                     (raw->entry_ ? raw->entry_->counters() : services::tcp::TcpCounters{}) +
                         lane_entry,
                     raw->exit_->counters() + lane_exit) +
                 users + lanes;
        },
        [raw] { return raw->status().dump(); });
    if (!mp) return tl::unexpected(mp.error());
  }
  // Snapshot refresher: other threads read status and sessions from a copy.
  auto* raw = r.get();
  every_half_second(*r->io_, [raw] { raw->refresh_snapshot(); });
  if (r->lane_io_) {
    every_half_second(*r->lane_io_, [raw] { raw->refresh_lane_snapshot(); });
    r->lane_thread_ = std::thread([raw] {
      ::pthread_setname_np(::pthread_self(), "rap-fabric-il");
      // The lane's thread asks for a short time slice, so that it preempts a busy bulk thread
      // when a packet wakes it (rap/common/thread_slice.h).
      const auto s = request_thread_slice(kInteractiveThreadSlice);
      json slice{{"requested_us", kInteractiveThreadSlice.count()},
                 {"granted_us", s ? s->count() : 0}};
      if (s) {
        spdlog::info("interactive lane thread: time slice {} us", s->count());
      } else {
        slice["reason"] = s.error().code;
        spdlog::info("interactive lane thread keeps the kernel's time slice ({}: {})",
                     s.error().code, s.error().message);
      }
      {
        std::lock_guard g(raw->mu_);
        raw->lane_slice_ = std::move(slice);
      }
      run_prioritised(*raw->lane_io_);
    });
  }
  // The node's main fabric thread: bulk routes run at low priority (rap/common/priority.h).
  r->thread_ = std::thread([raw] {
    ::pthread_setname_np(::pthread_self(), "rap-fabric");
    run_prioritised(*raw->io_);
  });
  spdlog::info("cluster {}: mesh node {} started (fabric {}, client ingress {}, lanes {})",
               cluster_label, r->mesh_->node_id(),
               r->fabric_endpoint_.empty() ? "dial-out only" : r->fabric_endpoint_,
               r->ingress_endpoint_.empty() ? "off" : r->ingress_endpoint_,
               r->lane_mesh_ ? "main+interactive" : "main");
  return r;
}

MeshRuntime::~MeshRuntime() {
  if (thread_.joinable()) {
    asio::post(*io_, [this] {
      if (users_) users_->stop();
      if (entry_) entry_->stop();
      if (local_) local_->stop();
      mesh_->stop("node agent stopping");
    });
    if (lane_thread_.joinable()) {
      asio::post(*lane_io_, [this] { lane_mesh_->stop("node agent stopping"); });
    }
    // Let GOAWAYs go out, then end the loops.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    io_->stop();
    thread_.join();
  }
  if (lane_thread_.joinable()) {
    lane_io_->stop();
    lane_thread_.join();
  }
  // The loops have stopped: nothing runs any more. The mesh's I/O objects (acceptors, timers)
  // must go while their io_context still exists; suspended coroutine frames are destroyed
  // (never resumed) with the io_context afterwards. The lane goes first: its connections may
  // hold main-thread objects (an entry-node listener), never the other way round.
  lane_entry_.reset();
  lane_exit_.reset();
  lane_mesh_.reset();
  lane_io_.reset();
  users_.reset();
  entry_.reset();
  local_.reset();
  exit_.reset();
  mesh_.reset();
  io_.reset();
  spdlog::info("cluster {}: mesh node stopped", label_);
}

void MeshRuntime::refresh_snapshot() {
  auto health = mesh_->session_health();
  auto active = entry_ ? entry_->active_sessions() : std::vector<services::tcp::ActiveAccess>{};
  json st = mesh_->status();
  st["tcp_access"] = services::tcp::tcp_status(
      entry_ ? entry_->counters() : services::tcp::TcpCounters{}, exit_->counters());
  st["client_ingress"] = ingress_endpoint_.empty() ? json(nullptr) : json(ingress_endpoint_);
  if (users_) {
    st["user_socket"] = {{"socket", users_->path()},
                         {"connections", users_->connections()},
                         {"listeners", users_->listeners()},
                         {"refused", users_->refused()}};
  }
  if (local_) {
    st["local_api"] = {{"socket", local_->path()},
                       {"routes_opened", local_->opened()},
                       {"refused", local_->refused()}};
  }
  std::lock_guard g(mu_);
  rtts_.clear();
  jitters_.clear();
  retransmits_.clear();
  for (const auto& [peer, h] : health) {
    rtts_[peer] = h.rtt_ms;
    jitters_[peer] = h.jitter_ms;
    retransmits_[peer] = h.retransmits_per_s;
  }
  active_ = std::move(active);
  if (lane_status_.is_object()) {
    merge_lane_status(st, lane_full_status_);
    st["lanes"] = {{"interactive", lane_status_}};
    st["tcp_access"] = services::tcp::tcp_status(
        (entry_ ? entry_->counters() : services::tcp::TcpCounters{}) + lane_entry_counters_,
        exit_->counters() + lane_exit_counters_);
    if (entry_) {
      st["tcp_access"]["lane_handoffs"] = entry_->lane_handoffs();
    }
  }
  st["access_records_pending"] = records_.size();
  st["access_records_dropped"] = records_dropped_;
  status_ = std::move(st);
}

void MeshRuntime::refresh_lane_snapshot() {
  json st = lane_mesh_->status();
  // Trimmed to what tells the lane apart; the peer table and routing are the main node's too.
  json ls{{"lane", st.value("lane", std::string())},
          {"open_flows", st.value("open_flows", json::array()).size()},
          {"peers", st.value("peers", json::array())}};
  ls["lane_sessions"] = lane_mesh_->session_peers().size();
  if (lane_entry_) ls["tcp_returns_to_main"] = lane_entry_->lane_returns();
  auto active =
      lane_entry_ ? lane_entry_->active_sessions() : std::vector<services::tcp::ActiveAccess>{};
  auto entry_counters = lane_entry_ ? lane_entry_->counters() : services::tcp::TcpCounters{};
  auto exit_counters = lane_exit_->counters();
  auto prom = lane_mesh_->prometheus();
  std::lock_guard g(mu_);
  ls["thread_slice"] = lane_slice_;
  lane_full_status_ = std::move(st);
  lane_prometheus_ = std::move(prom);
  lane_status_ = std::move(ls);
  lane_active_ = std::move(active);
  lane_entry_counters_ = std::move(entry_counters);
  lane_exit_counters_ = std::move(exit_counters);
}

bool MeshRuntime::apply(const ConfigSync& config, const std::string& node_id,
                        const std::vector<std::string>& roles, bool authority_offline) {
  auto trust = config.trust_snapshot();
  if (!trust) return false;
  mesh::MeshConfig mc;
  mc.roles = roles;
  mc.trust.trust = std::move(trust->trust);
  mc.trust.revocations = std::move(trust->revocations);
  mc.trust.min_epoch = trust->epoch;
  mc.trust.authority_offline = authority_offline;
  const auto pd =
      config.payload(config::ArtifactType::peer_directory, config::Scope::node(node_id));
  if (pd.is_object() && pd.contains("peers") && pd["peers"].is_array()) {
    for (const auto& p : pd["peers"]) {
      mesh::MeshPeer peer;
      peer.id = p.value("id", std::string());
      if (peer.id.empty() || peer.id == node_id) continue;
      if (!config::from_hex(p.value("public_key", std::string()), peer.public_key)) continue;
      if (p.contains("roles") && p["roles"].is_array()) {
        for (const auto& r : p["roles"])
          if (r.is_string()) peer.roles.push_back(r.get<std::string>());
      }
      peer.fabric_endpoint = p.value("fabric_endpoint", std::string());
      mc.peers.push_back(std::move(peer));
    }
  }
  const auto now = std::chrono::system_clock::now();
  std::vector<services::tcp::EgressTarget> egress;
  const auto node_scope = config::Scope::node(node_id);
  const auto sab = config.payload(config::ArtifactType::service_assignment_bundle, node_scope);
  // A service assignment lapsed under policy "stop": the exit serves no resource any more.
  const bool sab_stopped =
      config.stopped_by_lapse(config::ArtifactType::service_assignment_bundle, node_scope, now);
  // Ownership is a safety property, not a service: kept even when the assignment lapsed.
  if (sab.is_object()) mc.owner_org = sab.value("owner_org", std::string());
  if (!sab_stopped && sab.is_object() && sab.contains("egress") && sab["egress"].is_array()) {
    for (const auto& e : sab["egress"]) {
      services::tcp::EgressTarget t{e.value("id", std::string()), e.value("org", std::string()),
                                    e.value("address", std::string())};
      if (!t.resource.empty() && !t.address.empty()) egress.push_back(std::move(t));
    }
  }
  mesh::MeshConfig lane_mc;  // the same configuration for the interactive lane
  std::vector<services::tcp::EgressTarget> lane_egress;
  on_io(*io_, [&] {
    // Make-before-break: peers that left the directory stay until the added ones are up.
    std::set<std::string> directory;
    for (const auto& p : mc.peers) {
      directory.insert(p.id);
      known_peers_[p.id] = p;
    }
    std::set<std::string> live;
    for (const auto& [peer, h] : mesh_->session_health()) live.insert(peer);
    const auto kept =
        transition_.update(directory, live, mc.trust.revocations.node_ids, clock_.now());
    for (const auto& id : kept) {
      if (auto it = known_peers_.find(id); it != known_peers_.end()) mc.peers.push_back(it->second);
    }
    std::erase_if(known_peers_, [&](const auto& kv) {
      return !directory.contains(kv.first) && !kept.contains(kv.first);
    });
    {
      std::lock_guard g(mu_);
      retiring_ = json(std::vector<std::string>(kept.begin(), kept.end()));
      pending_ = json(
          std::vector<std::string>(transition_.pending().begin(), transition_.pending().end()));
      egress_stopped_ = sab_stopped;
    }
    if (lane_mesh_) {
      lane_mc = mc;
      lane_egress = egress;
    }
    mesh_->update(std::move(mc));
    exit_->set_egress(std::move(egress));
    return 0;
  });
  if (lane_mesh_) {
    on_io(*lane_io_, [&] {
      lane_mesh_->update(std::move(lane_mc));
      lane_exit_->set_egress(std::move(lane_egress));
      return 0;
    });
  }
  return true;
}

json MeshRuntime::endpoints() const {
  json j = json::object();
  if (!fabric_endpoint_.empty()) j["fabric"] = fabric_endpoint_;
  if (!ingress_endpoint_.empty()) j["client_ingress"] = ingress_endpoint_;
  return j;
}

json MeshRuntime::sessions() const {
  std::lock_guard g(mu_);
  json out = json::array();
  for (const auto& [peer, rtt] : rtts_) out.push_back({{"peer", peer}});
  return out;
}

json MeshRuntime::peer_jitters() const {
  std::lock_guard g(mu_);
  json out = json::object();
  for (const auto& [peer, j] : jitters_) out[peer] = j;
  return out;
}

json MeshRuntime::peer_retransmits() const {
  std::lock_guard g(mu_);
  json out = json::object();
  for (const auto& [peer, r] : retransmits_) out[peer] = r;
  return out;
}

json MeshRuntime::peer_rtts() const {
  std::lock_guard g(mu_);
  json out = json::object();
  for (const auto& [peer, rtt] : rtts_) out[peer] = rtt;
  return out;
}

std::vector<services::tcp::AccessRecord> MeshRuntime::take_records(std::size_t max) {
  std::lock_guard g(mu_);
  std::vector<services::tcp::AccessRecord> out;
  while (!records_.empty() && out.size() < max) {
    out.push_back(std::move(records_.front()));
    records_.pop_front();
  }
  return out;
}

void MeshRuntime::return_records(std::vector<services::tcp::AccessRecord> records) {
  std::lock_guard g(mu_);
  for (auto it = records.rbegin(); it != records.rend(); ++it) {
    if (records_.size() >= kMaxQueuedRecords) break;
    records_.push_front(std::move(*it));
  }
}

json MeshRuntime::access_active() const {
  if (!entry_) return nullptr;
  std::lock_guard g(mu_);
  json out = json::array();
  // Both lanes' sessions, oldest first.
  std::vector<services::tcp::ActiveAccess> all = active_;
  all.insert(all.end(), lane_active_.begin(), lane_active_.end());
  std::stable_sort(all.begin(), all.end(),
                   [](const auto& a, const auto& b) { return a.started_at < b.started_at; });
  for (const auto& a : all) {
    if (out.size() >= kMaxReportedSessions) break;
    out.push_back({{"grant", a.grant},
                   {"user", a.user},
                   {"org", a.org},
                   {"resource", a.resource},
                   {"started_at", a.started_at},
                   {"expires_at", a.expires_at},
                   {"bytes_up", a.bytes_up},
                   {"bytes_down", a.bytes_down}});
  }
  return out;
}

void MeshRuntime::revoke_grants(const json& revoked) {
  std::vector<mesh::MeshNode::RevokedGrant> grants;
  if (revoked.is_array()) {
    for (const auto& r : revoked) {
      if (!r.is_object() || grants.size() >= kMaxRevokedGrants) continue;
      const auto id = r.value("grant", std::string());
      const auto exp = r.value("expires_at", std::int64_t{0});
      if (!id.empty() && exp > 0) grants.push_back({id, config::from_unix_seconds(exp)});
    }
  }
  std::size_t cut = on_io(*io_, [&] { return mesh_->revoke_grants(grants); });
  if (lane_mesh_) cut += on_io(*lane_io_, [&] { return lane_mesh_->revoke_grants(grants); });
  if (cut > 0) spdlog::info("cluster {}: {} flows of revoked grants cut", label_, cut);
}

json MeshRuntime::status() const {
  std::lock_guard g(mu_);
  json st = status_;
  st["peers_retiring"] = retiring_;
  st["peers_pending"] = pending_;
  if (egress_stopped_) st["egress_stopped"] = "service_assignment_bundle lapsed (policy stop)";
  return st;
}

}  // namespace rap::agent
