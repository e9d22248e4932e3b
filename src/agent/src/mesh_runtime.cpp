#include "mesh_runtime.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include "rap/common/priority.h"
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

template <class F>
auto on_io(asio::io_context& io, F f) {
  return asio::co_spawn(
             io, [&]() -> asio::awaitable<decltype(f())> { co_return f(); }, asio::use_future)
      .get();
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
  if (!options.client_ingress_listen.empty()) {
    auto e = services::tcp::TcpAccessEntry::start(r->io_->get_executor(), *r->mesh_, creds,
                                                  options.client_ingress_listen, sink);
    if (!e) return tl::unexpected(e.error());
    r->entry_ = std::move(*e);
    r->ingress_endpoint_ = advertise(options.client_ingress_advertise,
                                     options.client_ingress_listen, r->entry_->port());
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
          return raw->mesh_->prometheus() +
                 services::tcp::tcp_prometheus(
                     raw->entry_ ? raw->entry_->counters() : services::tcp::TcpCounters{},
                     raw->exit_->counters()) +
                 users;
        },
        [raw] { return raw->status().dump(); });
    if (!mp) return tl::unexpected(mp.error());
  }
  // Snapshot refresher: other threads read status and sessions from a copy.
  auto* raw = r.get();
  asio::co_spawn(
      *r->io_,
      [raw]() -> asio::awaitable<void> {
        asio::steady_timer t(co_await asio::this_coro::executor);
        for (;;) {
          raw->refresh_snapshot();
          t.expires_after(std::chrono::milliseconds(500));
          auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
          if (ec) co_return;
        }
      },
      asio::detached);
  // The node's one fabric thread: bulk routes run at low priority (rap/common/priority.h).
  r->thread_ = std::thread([raw] { run_prioritised(*raw->io_); });
  spdlog::info("cluster {}: mesh node {} started (fabric {}, client ingress {})", cluster_label,
               r->mesh_->node_id(),
               r->fabric_endpoint_.empty() ? "dial-out only" : r->fabric_endpoint_,
               r->ingress_endpoint_.empty() ? "off" : r->ingress_endpoint_);
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
    // Let GOAWAYs go out, then end the loop.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    io_->stop();
    thread_.join();
  }
  // The loop has stopped: nothing runs any more. The mesh's I/O objects (acceptors, timers)
  // must go while their io_context still exists; suspended coroutine frames are destroyed
  // (never resumed) with the io_context afterwards.
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
  st["access_records_pending"] = records_.size();
  st["access_records_dropped"] = records_dropped_;
  status_ = std::move(st);
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
    mesh_->update(std::move(mc));
    exit_->set_egress(std::move(egress));
    return 0;
  });
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
  for (const auto& a : active_) {
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
  const std::size_t cut = on_io(*io_, [&] { return mesh_->revoke_grants(grants); });
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
