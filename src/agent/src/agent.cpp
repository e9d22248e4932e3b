#include "rap/agent/agent.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <set>
#include <thread>

#include "mesh_runtime.h"
#include "rap/agent/config_storage.h"
#include "rap/agent/config_sync.h"
#include "rap/agent/control_client.h"
#include "rap/agent/host.h"
#include "rap/agent/partition.h"
#include "rap/agent/state_store.h"
#include "rap/crypto/certs.h"
#include "rap/crypto/keys.h"

namespace rap::agent {

using json = nlohmann::json;

namespace {

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string hex(std::span<const std::uint8_t> b) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (auto c : b) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

// The agent refreshes its signed configuration at least this often, whatever heartbeats say.
constexpr std::chrono::minutes kConfigRefresh{5};

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  while (!s.empty() && s.front() == ' ') s.erase(0, 1);
  return s;
}

}  // namespace

// ---------------- configuration ----------------

Result<AgentConfig> AgentConfig::from_json(const json& j) {
  if (!j.is_object()) return fail("bad_config", "configuration must be a JSON object");
  AgentConfig c;
  static const std::set<std::string> kKeys = {"state_dir",
                                              "profile",
                                              "heartbeat_interval_seconds",
                                              "isolate_after_seconds",
                                              "programs",
                                              "memberships",
                                              "enroll_poll_ms",
                                              "restart_backoff_initial_ms",
                                              "restart_backoff_max_seconds",
                                              "crash_loop_threshold",
                                              "config_storage_listen",
                                              "fabric_listen",
                                              "fabric_advertise",
                                              "client_ingress_listen",
                                              "client_ingress_advertise",
                                              "user_socket_dir",
                                              "metrics_listen",
                                              "interactive_lane"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (kKeys.count(it.key()) == 0) return fail("bad_config", "unknown key '" + it.key() + "'");
  }
  try {
    c.state_dir = j.value("state_dir", c.state_dir);
    c.profile = j.value("profile", c.profile);
    if (c.profile != "thick" && c.profile != "thin") {
      return fail("bad_config", "profile must be \"thick\" or \"thin\"");
    }
    const auto hb = j.value("heartbeat_interval_seconds", std::int64_t{10});
    if (hb < 1 || hb > 300) return fail("bad_config", "heartbeat_interval_seconds must be 1..300");
    c.heartbeat_interval = std::chrono::seconds(hb);
    const auto iso = j.value("isolate_after_seconds", std::int64_t{30});
    if (iso < 1 || iso > 86400) return fail("bad_config", "isolate_after_seconds must be 1..86400");
    c.isolate_after = std::chrono::seconds(iso);
    const auto poll = j.value("enroll_poll_ms", std::int64_t{1000});
    if (poll < 50 || poll > 60000) return fail("bad_config", "enroll_poll_ms must be 50..60000");
    c.enroll_poll_interval = std::chrono::milliseconds(poll);
    const auto bi = j.value("restart_backoff_initial_ms", std::int64_t{1000});
    if (bi < 10 || bi > 600000)
      return fail("bad_config", "restart_backoff_initial_ms must be 10..600000");
    c.restart_backoff_initial = std::chrono::milliseconds(bi);
    const auto bm = j.value("restart_backoff_max_seconds", std::int64_t{60});
    if (bm < 1 || bm > 3600)
      return fail("bad_config", "restart_backoff_max_seconds must be 1..3600");
    c.restart_backoff_max = std::chrono::seconds(bm);
    const auto cl = j.value("crash_loop_threshold", std::int64_t{5});
    if (cl < 1 || cl > 100) return fail("bad_config", "crash_loop_threshold must be 1..100");
    c.crash_loop_threshold = static_cast<std::uint32_t>(cl);
    if (j.contains("interactive_lane") && !j["interactive_lane"].is_boolean())
      return fail("bad_config", "interactive_lane must be true or false");
    // Thin nodes (few resources) run one fabric thread unless told otherwise.
    c.interactive_lane = j.value("interactive_lane", c.profile != "thin");
    c.user_socket_dir = j.value("user_socket_dir", c.user_socket_dir);
    if (!c.user_socket_dir.empty() && c.user_socket_dir.front() != '/')
      return fail("bad_config", "user_socket_dir must be an absolute path (or \"\" for none)");
    c.config_storage_listen = j.value("config_storage_listen", std::string());
    if (!c.config_storage_listen.empty()) {
      auto hp = split_host_port(c.config_storage_listen);
      if (!hp) return fail("bad_config", "config_storage_listen: " + hp.error().message);
    }
    for (auto [key, field] : {std::pair{"fabric_listen", &c.fabric_listen},
                              std::pair{"fabric_advertise", &c.fabric_advertise},
                              std::pair{"client_ingress_listen", &c.client_ingress_listen},
                              std::pair{"client_ingress_advertise", &c.client_ingress_advertise},
                              std::pair{"metrics_listen", &c.metrics_listen}}) {
      *field = j.value(key, std::string());
      if (field->empty()) continue;
      auto hp = split_host_port(*field);
      if (!hp) return fail("bad_config", std::string(key) + ": " + hp.error().message);
    }
    if (j.contains("programs")) {
      if (!j["programs"].is_object()) return fail("bad_config", "programs must be an object");
      for (auto it = j["programs"].begin(); it != j["programs"].end(); ++it) {
        const std::string path = it.value().get<std::string>();
        if (!valid_name(it.key()) || path.empty() || path.front() != '/') {
          return fail("bad_config",
                      "programs: '" + it.key() + "' needs a [a-z0-9-] name and an absolute path");
        }
        c.programs[it.key()] = path;
      }
    }
    if (!j.contains("memberships") || !j["memberships"].is_array() || j["memberships"].empty()) {
      return fail("bad_config", "memberships must be a non-empty array");
    }
    std::set<std::string> seen;
    for (const auto& m : j["memberships"]) {
      if (!m.is_object()) return fail("bad_config", "each membership must be an object");
      for (auto it = m.begin(); it != m.end(); ++it) {
        if (it.key() != "cluster" && it.key() != "control_url" && it.key() != "control_ca_file" &&
            it.key() != "join_token_file") {
          return fail("bad_config", "memberships: unknown key '" + it.key() + "'");
        }
      }
      MembershipConfig mc;
      mc.cluster = m.at("cluster").get<std::string>();
      mc.control_url = m.at("control_url").get<std::string>();
      mc.control_ca_file = m.value("control_ca_file", std::string());
      mc.join_token_file = m.value("join_token_file", std::string());
      if (!valid_name(mc.cluster)) return fail("bad_config", "memberships: bad cluster slug");
      if (!seen.insert(mc.cluster).second) {
        return fail("bad_config", "memberships: cluster '" + mc.cluster + "' listed twice");
      }
      c.memberships.push_back(std::move(mc));
    }
  } catch (const json::exception& e) {
    return fail("bad_config", std::string("configuration has a wrong type: ") + e.what());
  }
  return c;
}

Result<AgentConfig> AgentConfig::load(Env& env, const std::string& path) {
  auto text = env.read_file(path);
  if (!text) return tl::unexpected(text.error());
  json j = json::parse(*text, nullptr, false);
  if (j.is_discarded()) return fail("bad_config", path + " is not valid JSON");
  auto c = from_json(j);
  if (!c) return fail("bad_config", path + ": " + c.error().message);
  return c;
}

std::string AgentConfig::membership_dir(const MembershipConfig& m) const {
  return state_dir + "/clusters/" + m.cluster;
}

// ---------------- one cluster membership ----------------

class Agent::Runner {
 public:
  Runner(const AgentConfig& cfg, MembershipConfig mc, Env& env, const Clock& clock)
      : cfg_(cfg),
        mc_(std::move(mc)),
        env_(env),
        clock_(clock),
        store_(env, cfg.membership_dir(mc_)),
        tracker_(cfg.isolate_after) {}

  ~Runner() { join(); }

  // Loads key and state; refuses tampered state or a badly protected key.
  Result<void> open() {
    auto k = store_.load_or_create_key();
    if (!k) return tl::unexpected(k.error());
    key_ = std::make_unique<crypto::Ed25519Key>(std::move(*k));
    auto st = store_.load(*key_);
    if (!st) return tl::unexpected(st.error());
    if (*st) {
      state_ = std::move(**st);
      if (state_.cluster != mc_.cluster) {
        return fail("state_corrupt", store_.state_path() + " belongs to cluster '" +
                                         state_.cluster + "', not '" + mc_.cluster + "'");
      }
      spdlog::info("cluster {}: resuming (status {}, node {}, desired version {})", mc_.cluster,
                   state_.enroll_status, state_.node_id, state_.desired_version);
    } else {
      state_.cluster = mc_.cluster;
    }
    state_.control_url = mc_.control_url;
    state_.profile = cfg_.profile;
    load_caches();
    std::string ca;
    if (!mc_.control_ca_file.empty()) {
      auto pem = env_.read_file(mc_.control_ca_file);
      if (!pem) return tl::unexpected(pem.error());
      ca = *pem;
    }
    auto client = ControlClient::create(mc_.control_url, ca);
    if (!client) return tl::unexpected(client.error());
    client_ = std::make_unique<ControlClient>(std::move(*client));
    return {};
  }

  void start(const std::atomic<bool>& stop) {
    stop_ = &stop;
    main_ = std::thread([this] { main_loop(); });
  }

  void wake() { cv_.notify_all(); }
  void join() {
    cv_.notify_all();
    {
      std::lock_guard g(config_mu_);
      config_cv_.notify_all();
    }
    if (main_.joinable()) main_.join();
    if (poller_.joinable()) poller_.join();
    if (config_thread_.joinable()) config_thread_.join();
    stop_storage();
    stop_mesh();
  }

  // The fabric caches of the last run: peer RTTs rank nearby storages before anything is
  // measured. A refused (tampered, corrupt) cache is logged and rebuilt from the live mesh.
  void load_caches() {
    auto pc = store_.load_peer_cache(*key_);
    if (!pc) {
      spdlog::error("cluster {}: refusing the peer cache ({}: {}); it is rebuilt from the mesh",
                    mc_.cluster, pc.error().code, pc.error().message);
    } else if (*pc) {
      peer_cache_ = std::move(**pc);
      storage_fetch_ms_ = peer_cache_.rtts();
    }
    auto rc = store_.load_route_cache(*key_);
    if (!rc) {
      spdlog::error("cluster {}: refusing the route cache ({}: {}); it is rebuilt from the mesh",
                    mc_.cluster, rc.error().code, rc.error().message);
    } else if (*rc) {
      route_cache_ = std::move(**rc);
    }
    auto pu = store_.load_pending_update(*key_);
    if (!pu) {
      spdlog::error("cluster {}: refusing the pending update record ({}: {})", mc_.cluster,
                    pu.error().code, pu.error().message);
    } else if (*pu) {
      pending_update_ = std::move(*pu);
    }
  }

  // Heartbeat thread: persists what the mesh knows of its peers and routes when it changed
  // (at most every kCacheInterval; atomic replace + fsync, signed, bounded).
  void update_caches() {
    auto m = mesh();
    if (!m) return;
    const auto now = clock_.now();
    if (now < next_cache_write_) return;
    next_cache_write_ = now + kCacheInterval;
    const json st = m->status();
    const std::int64_t t = unix_now();
    std::map<std::string, PeerCacheEntry> peers;
    for (const auto& p : st.value("peers", json::array())) {
      if (!p.is_object() || peers.size() >= kMaxCachedPeers) continue;
      PeerCacheEntry e;
      e.id = p.value("id", std::string());
      if (e.id.empty()) continue;
      e.endpoint = p.value("endpoint", std::string());
      for (const auto& r : p.value("roles", json::array()))
        if (r.is_string() && e.roles.size() < 16) e.roles.push_back(r.get<std::string>());
      e.tier = p.value("tier", std::string());
      e.state = p.value("state", std::string());
      e.rtt_ms = p.value("rtt_ms", -1.0);
      e.last_connected = e.state == "connected" ? t : 0;
      for (const auto& old : peer_cache_.peers) {
        if (old.id != e.id) continue;
        if (e.last_connected == 0) e.last_connected = old.last_connected;
        if (e.rtt_ms < 0) e.rtt_ms = old.rtt_ms;  // keep the last measurement
      }
      peers[e.id] = std::move(e);
    }
    PeerCache pc;
    pc.updated = t;
    if (const auto cs = config_sync()) {
      const auto v = cs->applied_versions();
      pc.peer_directory_version = v.value("peer_directory", std::uint64_t{0});
    }
    for (auto& [id, e] : peers) pc.peers.push_back(std::move(e));
    std::map<std::string, RouteCacheEntry> routes;
    for (const auto& f : st.value("open_flows", json::array())) {
      if (!f.is_object() || routes.size() >= kMaxCachedRoutes) continue;
      RouteCacheEntry r;
      r.route = f.value("route", std::string());
      if (r.route.empty()) continue;
      for (const auto& h : f.value("hops", json::array()))
        if (h.is_string() && r.hops.size() < 16) r.hops.push_back(h.get<std::string>());
      r.role = f.value("route_role", std::string());
      r.side = f.value("side", std::string());
      r.last_seen = t;
      routes[r.route] = std::move(r);
    }
    RouteCache rc;
    rc.updated = t;
    for (auto& [id, r] : routes) rc.routes.push_back(std::move(r));
    const auto same_peers = [](const PeerCache& a, const PeerCache& b) {
      return a.peer_directory_version == b.peer_directory_version && a.peers == b.peers;
    };
    std::lock_guard g(cache_mu_);
    if (!same_peers(pc, peer_cache_) || peer_cache_.updated == 0) {
      if (auto w = store_.save_peer_cache(pc, *key_); !w) {
        spdlog::error("cluster {}: cannot save the peer cache: {}", mc_.cluster, w.error().message);
      }
      peer_cache_ = std::move(pc);
    }
    // Routes carry last_seen: compare the route set only.
    const auto ids = [](const RouteCache& c) {
      std::vector<std::string> out;
      for (const auto& r : c.routes) out.push_back(r.route);
      return out;
    };
    if (ids(rc) != ids(route_cache_) || route_cache_.updated == 0) {
      if (auto w = store_.save_route_cache(rc, *key_); !w) {
        spdlog::error("cluster {}: cannot save the route cache: {}", mc_.cluster,
                      w.error().message);
      }
      route_cache_ = std::move(rc);
    }
  }

  json caches_json() const {
    std::lock_guard g(cache_mu_);
    std::size_t connected = 0;
    for (const auto& p : peer_cache_.peers) connected += p.state == "connected" ? 1 : 0;
    json out{{"peer_cache",
              {{"updated", peer_cache_.updated},
               {"peers", peer_cache_.peers.size()},
               {"connected", connected},
               {"peer_directory_version", peer_cache_.peer_directory_version}}},
             {"route_cache",
              {{"updated", route_cache_.updated}, {"routes", route_cache_.routes.size()}}}};
    out["pending_update"] = pending_update_ ? pending_update_->to_json() : json(nullptr);
    return out;
  }

  // Workloads authorized by this membership's last valid desired state (empty once revoked).
  std::vector<WorkloadSpec> authorized(std::vector<std::string>* refused) const {
    std::lock_guard g(mu_);
    std::vector<WorkloadSpec> out;
    if (state_.enroll_status != "approved") return out;
    if (config_ && config_->stopped_by_lapse(config::ArtifactType::service_assignment_bundle,
                                             config::Scope::node(state_.node_id),
                                             std::chrono::system_clock::now())) {
      // The signed service assignments expired under policy "stop": no authority to run them.
      if (refused != nullptr && !state_.workloads.empty()) {
        refused->push_back(mc_.cluster +
                           ": every workload: the service_assignment_bundle lapsed (policy stop)");
      }
      return out;
    }
    std::set<std::string> roles;
    for (const auto& r : state_.roles) {
      if (r.is_object() && r.contains("role") && r["role"].is_string()) {
        roles.insert(r["role"].get<std::string>());
      }
    }
    for (const auto& w : state_.workloads) {
      const std::string name = w.value("name", std::string());
      const json spec = w.value("spec", json::object());
      auto refuse = [&](const std::string& why) {
        if (refused == nullptr) return;
        std::string line = mc_.cluster;
        line.append("/").append(name).append(": ").append(why);
        refused->push_back(std::move(line));
      };
      if (w.value("kind", std::string()) != "native") {
        refuse("kind '" + w.value("kind", std::string()) + "' is not supported by this agent");
        continue;
      }
      const std::string role = spec.value("role", std::string());
      if (role.empty() || roles.count(role) == 0) {
        refuse("no role assignment authorizes it (needs role '" + role + "')");
        continue;
      }
      WorkloadSpec s;
      s.name = mc_.cluster + "-" + name;
      s.kind = spec.value("program", std::string());
      if (spec.contains("args") && spec["args"].is_array()) {
        for (const auto& a : spec["args"]) {
          if (a.is_string()) s.args.push_back(a.get<std::string>());
        }
      }
      if (spec.contains("env") && spec["env"].is_object()) {
        for (auto it = spec["env"].begin(); it != spec["env"].end(); ++it) {
          if (it.value().is_string()) s.env[it.key()] = it.value().get<std::string>();
        }
      }
      const auto port = spec.value("health_tcp_port", 0);
      if (port > 0 && port < 65536) s.health_tcp_port = static_cast<std::uint16_t>(port);
      s.version = w.value("version", std::uint64_t{0});
      out.push_back(std::move(s));
    }
    return out;
  }

  const std::string& cluster() const { return mc_.cluster; }

  // Running workloads of this membership by pid (who may use the local stream API).
  struct WorkloadPids {
    std::mutex mu;
    std::map<int, std::string> by_pid;
  };
  void set_workload_pids(std::map<int, std::string> pids) {
    std::lock_guard g(workload_pids_->mu);
    workload_pids_->by_pid = std::move(pids);
  }

  void set_workload_report(json report) {
    std::lock_guard g(mu_);
    workload_report_ = std::move(report);
  }

  json status_json() const {
    std::lock_guard g(mu_);
    json j = state_.to_json();
    j.erase("cert_pem");
    j.erase("ca_pem");
    j["partition_state"] = to_string(contact_state());
    j["last_error"] = contact_error().empty() ? state_.last_error : contact_error();
    j["public_key_sha256"] = key_ ? crypto::sha256_hex(key_->public_key()) : "";
    if (config_) j["config"] = config_->status_json();
    if (auto m = mesh()) j["mesh"] = m->status();
    j["caches"] = caches_json();
    {
      std::lock_guard sg(storage_mu_);
      json st{{"serving", storage_server_ != nullptr},
              {"endpoint", storage_server_ ? json(storage_server_->endpoint()) : json(nullptr)},
              {"requests", storage_requests_ + (storage_server_ ? storage_server_->requests() : 0)},
              {"refused", storage_refused_ + (storage_server_ ? storage_server_->refused() : 0)},
              {"cache_nodes", storage_cache_->node_count()},
              {"cache_bytes", storage_cache_->total_bytes()}};
      const auto cg = storage_cache_->generation();
      st["cache_generation"] = cg ? json(*cg) : json(nullptr);
      j["config_storage"] = std::move(st);
    }
    return j;
  }

 private:
  bool stopping() const { return stop_->load(); }

  // Contact bookkeeping is shared by the heartbeat and desired-state threads; every change of
  // the effective state is logged once.
  void contact_failure(const std::string& why) {
    if (stopping()) return;  // a request cancelled by shutdown says nothing about the network
    std::lock_guard g(contact_mu_);
    tracker_.on_failure(clock_.now(), why);
    report_contact_locked();
  }
  void contact_success(bool full_sync) {
    std::lock_guard g(contact_mu_);
    tracker_.on_success(clock_.now(), full_sync);
    report_contact_locked();
  }
  PartitionState contact_state() const {
    std::lock_guard g(contact_mu_);
    return tracker_.state(clock_.now());
  }
  std::string contact_error() const {
    std::lock_guard g(contact_mu_);
    return tracker_.last_error();
  }
  // Returns true when the effective state changed since the last report.
  bool report_contact_locked() {
    const auto now_state = tracker_.state(clock_.now());
    if (now_state == reported_) return false;
    spdlog::warn(
        "cluster {}: control plane contact {} -> {}{}", mc_.cluster, to_string(reported_),
        to_string(now_state),
        tracker_.last_error().empty() ? "" : " (last error: " + tracker_.last_error() + ")");
    reported_ = now_state;
    return true;
  }
  bool report_contact() {
    std::lock_guard g(contact_mu_);
    return report_contact_locked();
  }

  // Sleeps up to `d`, returning early on stop.
  void sleep_for(Duration d) {
    std::unique_lock l(sleep_mu_);
    cv_.wait_for(l, d, [this] { return stopping(); });
  }

  void save() {
    std::lock_guard g(mu_);
    state_.partition_state = to_string(contact_state());
    if (auto r = store_.save(state_, *key_); !r) {
      spdlog::error("cluster {}: cannot save state: {}", mc_.cluster, r.error().message);
    }
  }

  ClientIdentity identity() const {
    std::lock_guard g(mu_);
    return ClientIdentity{state_.cert_pem, key_->private_pem()};
  }

  std::map<std::string, std::string> proof_headers(const std::string& request_id) const {
    const std::string t = std::to_string(unix_now());
    const std::string msg = "rap-enroll-poll:" + request_id + ":" + t;
    const auto sig =
        key_->sign(std::span(reinterpret_cast<const std::uint8_t*>(msg.data()), msg.size()));
    return {{"X-RAP-Time", t}, {"X-RAP-Proof", hex(sig)}};
  }

  // Returns true once approved (or false on stop / rejection).
  bool enroll() {
    bool announced = false;
    while (!stopping()) {
      std::string status;
      std::string request_id;
      {
        std::lock_guard g(mu_);
        status = state_.enroll_status;
        request_id = state_.request_id;
      }
      if (status == "approved") return true;
      if (status == "rejected" || status == "revoked") return false;
      if (request_id.empty()) {
        auto token = mc_.join_token_file.empty() ? Result<std::string>(fail("no_token", ""))
                                                 : env_.read_file(mc_.join_token_file);
        if (!token) {
          spdlog::error("cluster {}: not enrolled and no join token (join_token_file {}): {}",
                        mc_.cluster, mc_.join_token_file, token.error().message);
          sleep_for(std::chrono::seconds(30));
          continue;
        }
        const json body{{"cluster", mc_.cluster},
                        {"join_token", trim(*token)},
                        {"public_key", hex(key_->public_key())},
                        {"facts", host_facts()},
                        {"capabilities", detect_capabilities(cfg_.profile)}};
        auto r = client_->request("POST", "/api/v1/enroll", body, {}, nullptr,
                                  std::chrono::seconds(15), stop_);
        if (!r) {
          contact_failure(r.error().message);
          spdlog::warn("cluster {}: enrollment request failed: {}", mc_.cluster, r.error().message);
          sleep_for(std::chrono::seconds(5));
          continue;
        }
        if (r->status != 202 && r->status != 200) {
          {
            std::lock_guard g(mu_);
            state_.last_error = r->error_code() + ": " + r->error_message();
          }
          spdlog::error("cluster {}: join request refused: {} ({})", mc_.cluster,
                        r->error_message(), r->error_code());
          save();
          sleep_for(std::chrono::seconds(30));
          continue;
        }
        {
          std::lock_guard g(mu_);
          state_.request_id = r->body.value("request_id", std::string());
          state_.enroll_status = "pending";
          state_.last_error.clear();
        }
        contact_success(false);
        save();
        continue;
      }
      auto r =
          client_->request("GET", "/api/v1/enroll/" + request_id, std::nullopt,
                           proof_headers(request_id), nullptr, std::chrono::seconds(15), stop_);
      if (!r) {
        contact_failure(r.error().message);
        sleep_for(std::chrono::seconds(2));
        continue;
      }
      const std::string st = r->body.is_object() ? r->body.value("status", std::string()) : "";
      if (r->status == 200 && st == "pending") {
        if (!announced) {
          spdlog::info(
              "cluster {}: waiting for approval of join request {} (rapctl join-requests approve)",
              mc_.cluster, request_id);
          announced = true;
        }
        sleep_for(cfg_.enroll_poll_interval);
        continue;
      }
      if (r->status == 200 && st == "approved") {
        const std::string cert = r->body.value("certificate_pem", std::string());
        auto id = crypto::identity_from_pem(cert);
        auto val = crypto::validity_from_pem(cert);
        if (!id || !val || id->public_key != key_->public_key()) {
          spdlog::error("cluster {}: the issued certificate does not carry this node's key",
                        mc_.cluster);
          sleep_for(std::chrono::seconds(30));
          continue;
        }
        {
          std::lock_guard g(mu_);
          state_.enroll_status = "approved";
          state_.node_id = r->body.value("node_id", id->node_id);
          state_.cert_pem = cert;
          state_.ca_pem = r->body.value("ca_pem", std::string());
          state_.cert_not_after =
              std::chrono::duration_cast<std::chrono::seconds>(val->not_after.time_since_epoch())
                  .count();
        }
        save();
        spdlog::info("cluster {}: enrolled as node {} (certificate valid until unix {})",
                     mc_.cluster, state_.node_id, state_.cert_not_after);
        return true;
      }
      if (st == "rejected" || r->status == 403 || r->status == 404) {
        {
          std::lock_guard g(mu_);
          state_.enroll_status = "rejected";
          state_.last_error = r->error_code() + ": " + r->error_message();
        }
        save();
        spdlog::error("cluster {}: join request {} was rejected or is gone ({})", mc_.cluster,
                      request_id, r->error_message());
        return false;
      }
      sleep_for(std::chrono::seconds(2));
    }
    return false;
  }

  void mark_revoked(const std::string& why) {
    {
      std::lock_guard g(mu_);
      if (state_.enroll_status == "revoked") return;
      state_.enroll_status = "revoked";
      state_.last_error = why;
    }
    save();
    spdlog::error("cluster {}: node revoked by the control plane ({}); stopping its workloads",
                  mc_.cluster, why);
  }

  void heartbeat_once() {
    json workloads;
    {
      std::lock_guard g(mu_);
      workloads = workload_report_.is_array() ? workload_report_ : json::array();
    }
    json body{{"version", kAgentVersion},
              {"capabilities", detect_capabilities(cfg_.profile)},
              {"load", sampler_.sample(0)},
              {"workloads", workloads},
              {"partition_state", to_string(contact_state())}};
    const auto cs = config_sync();
    if (cs) {
      body["applied_config_versions"] = cs->applied_versions();
      auto lapsed = cs->lapsed_json(std::chrono::system_clock::now());
      if (!lapsed.empty()) body["config_lapsed"] = std::move(lapsed);
    }
    {
      std::lock_guard sg(storage_mu_);
      if (storage_server_) body["endpoints"] = {{"config_storage", storage_server_->endpoint()}};
    }
    if (auto m = mesh()) {
      const json eps = m->endpoints();
      for (const auto& [k, v] : eps.items()) body["endpoints"][k] = v;
      body["fabric"] = {{"sessions", m->sessions()}};
      body["load"]["peer_rtt_ms"] = m->peer_rtts();
      body["load"]["peer_jitter_ms"] = m->peer_jitters();
      body["load"]["peer_retransmits_per_s"] = m->peer_retransmits();
      // Routes this node relays right now (the console's "relays in use").
      body["load"]["relayed_routes"] = m->status().value("active_relays", 0);
      // Only the entry reports open access sessions (one report per session, no double count).
      if (auto active = m->access_active(); !active.is_null())
        body["access"] = {{"active", active}};
    }
    const auto id = identity();
    auto r = client_->request("POST", "/api/v1/node/heartbeat", body, {}, &id,
                              std::chrono::seconds(10), stop_);
    if (!r) {
      contact_failure(r.error().message);
      spdlog::warn("cluster {}: heartbeat failed ({}), state {}", mc_.cluster, r.error().message,
                   to_string(contact_state()));
      return;
    }
    if (r->status == 403) {
      mark_revoked(r->error_code() + ": " + r->error_message());
      return;
    }
    if (r->status != 200) {
      contact_failure(r->error_code() + ": " + r->error_message());
      return;
    }
    const auto v = r->body.value("desired_state_version", std::int64_t{0});
    bool synced = false;
    {
      std::lock_guard g(mu_);
      synced = v <= state_.desired_version;
      state_.last_contact = unix_now();
    }
    contact_success(synced);
    if (!synced) cv_.notify_all();  // the poller fetches the newer desired state
    if (cs && r->body.is_object()) {
      const auto g = r->body.find("config_generation");
      if (g != r->body.end() && g->is_number_integer()) {
        note_config_generation(cs, g->get<std::int64_t>());
        announced_generation_ = g->get<std::int64_t>();
      }
    }
  }

  // ---- config-storage role ----

  bool has_role(const std::string& role) const {
    std::lock_guard g(mu_);
    if (state_.enroll_status != "approved") return false;
    return std::any_of(state_.roles.begin(), state_.roles.end(), [&](const json& r) {
      return r.is_object() && r.value("role", std::string()) == role;
    });
  }

  void stop_storage() {
    std::unique_ptr<ConfigStorageServer> s;
    {
      std::lock_guard sg(storage_mu_);
      s = std::move(storage_server_);
      if (s) {
        storage_requests_ += s->requests();
        storage_refused_ += s->refused();
      }
    }
    if (s) {
      s->stop();
      spdlog::info("cluster {}: config storage server stopped", mc_.cluster);
    }
  }

  // Runs on the heartbeat thread after each heartbeat: starts or stops the storage server with
  // the role, and refreshes the cache when the announced generation differs from the cached one.
  void update_storage_role() {
    const bool want = !cfg_.config_storage_listen.empty() && has_role("config-storage");
    bool serving = false;
    {
      std::lock_guard sg(storage_mu_);
      serving = storage_server_ != nullptr;
    }
    if (!want) {
      if (serving) stop_storage();
      return;
    }
    crypto::NodeCredentials creds;
    {
      std::lock_guard g(mu_);
      creds = crypto::NodeCredentials{state_.ca_pem, state_.cert_pem, key_->private_pem()};
    }
    // Clients on the applied revocation list are refused (revocations only ever grow).
    if (const auto cs = config_sync()) {
      if (auto t = cs->trust_snapshot()) {
        for (const auto& n : t->revocations.node_ids) storage_revocations_->revoke_node(n);
        for (const auto s : t->revocations.serials) storage_revocations_->revoke_serial(s);
      }
    }
    if (serving && creds.cert_pem != storage_cert_pem_) {
      // A renewed certificate: the next handshakes use it, no restart.
      std::lock_guard sg(storage_mu_);
      if (auto r = storage_server_->reload(creds); r) {
        storage_cert_pem_ = creds.cert_pem;
        spdlog::info("cluster {}: config storage server uses the renewed certificate", mc_.cluster);
      } else {
        spdlog::error("cluster {}: config storage server keeps its certificate: {}", mc_.cluster,
                      r.error().message);
      }
    }
    if (!serving) {
      auto nid = crypto::identity_from_pem(creds.cert_pem);
      if (!nid) return;
      auto s = ConfigStorageServer::start(cfg_.config_storage_listen, creds, nid->cluster_id,
                                          storage_cache_, storage_revocations_);
      if (!s) {
        if (!storage_error_logged_) {
          spdlog::error("cluster {}: config storage server: {}", mc_.cluster, s.error().message);
          storage_error_logged_ = true;
        }
        return;
      }
      storage_error_logged_ = false;
      spdlog::info("cluster {}: config storage server listening on {}", mc_.cluster,
                   (*s)->endpoint());
      std::lock_guard sg(storage_mu_);
      storage_server_ = std::move(*s);
      storage_cert_pem_ = creds.cert_pem;
    }
    const auto cached = storage_cache_->generation();
    if (cached && announced_generation_ >= 0 && *cached == announced_generation_) return;
    const auto id = identity();
    auto r = client_->request("GET", "/api/v1/node/storage/bundle", std::nullopt, {}, &id,
                              std::chrono::seconds(30), stop_);
    if (!r) return;  // contact failures are the heartbeat's business
    if (r->status != 200) {
      spdlog::warn("cluster {}: storage bundle: {} {}", mc_.cluster, r->error_code(),
                   r->error_message());
      return;
    }
    if (auto l = storage_cache_->load_bundle(r->body); !l) {
      spdlog::error("cluster {}: storage bundle refused: {}", mc_.cluster, l.error().message);
      return;
    }
    spdlog::info("cluster {}: config storage cache at generation {} ({} nodes, {} bytes)",
                 mc_.cluster, storage_cache_->generation().value_or(0),
                 storage_cache_->node_count(), storage_cache_->total_bytes());
  }

  // ---- the mesh (docs/PROTOCOL.md §14) ----

  std::shared_ptr<MeshRuntime> mesh() const {
    std::lock_guard g(mesh_mu_);
    return mesh_;
  }

  void stop_mesh() {
    std::shared_ptr<MeshRuntime> m;
    {
      std::lock_guard g(mesh_mu_);
      m = std::move(mesh_);
    }
    m.reset();  // joins the mesh thread (last owner)
  }

  std::vector<std::string> role_names() const {
    std::lock_guard g(mu_);
    std::vector<std::string> out;
    for (const auto& r : state_.roles) {
      if (r.is_object() && r.contains("role") && r["role"].is_string())
        out.push_back(r["role"].get<std::string>());
    }
    return out;
  }

  // Runs on the heartbeat thread: starts the mesh when a fabric role is assigned (and the signed
  // configuration is there to trust), stops it when none is, and hands it the applied config.
  void update_mesh_role() {
    const bool want = has_role("entry-node") || has_role("relay-node") || has_role("exit-node");
    const auto cs = config_sync();
    if (!want || !cs || !cs->has_state()) {
      if (mesh()) {
        stop_mesh();
        spdlog::info("cluster {}: no fabric role assigned; mesh stopped", mc_.cluster);
      }
      return;
    }
    std::string node_id;
    crypto::NodeCredentials creds;
    {
      std::lock_guard g(mu_);
      node_id = state_.node_id;
      creds = crypto::NodeCredentials{state_.ca_pem, state_.cert_pem, key_->private_pem()};
    }
    auto m = mesh();
    if (!m) {
      MeshRuntimeOptions o;
      o.fabric_listen = cfg_.fabric_listen;
      o.fabric_advertise = cfg_.fabric_advertise;
      if (has_role("entry-node")) {
        o.client_ingress_listen = cfg_.client_ingress_listen;
        o.client_ingress_advertise = cfg_.client_ingress_advertise;
        if (!cfg_.user_socket_dir.empty() && !cfg_.client_ingress_listen.empty()) {
          // Entry-node listeners for users on this host (user_api.h): the directory must be
          // enterable by them (0755), the socket inside is 0666.
          if (auto d = env_.make_dirs(cfg_.user_socket_dir, 0755); d)
            o.user_socket = cfg_.user_socket_dir + "/" + mc_.cluster + ".sock";
          else
            spdlog::warn("cluster {}: entry-node listeners off: {}", mc_.cluster,
                         d.error().message);
        }
      }
      o.metrics_listen = cfg_.metrics_listen;
      o.interactive_lane = cfg_.interactive_lane;
      if (cfg_.profile == "thin") o.max_active = 2;  // spec: thin / mobile nodes 1-3 active peers
      // Service workloads of this membership obtain routes through the node's one fabric.
      o.local_socket = store_.dir() + "/fabric.sock";
      o.authorize_local = [pids = workload_pids_](const mesh::LocalPeer& p) -> Result<std::string> {
        std::lock_guard g(pids->mu);
        auto it = pids->by_pid.find(p.pid);
        if (it == pids->by_pid.end())
          return fail("not_authorized",
                      "pid " + std::to_string(p.pid) + " is not a workload this agent supervises");
        return it->second;
      };
      auto r = MeshRuntime::start(creds, o, mc_.cluster);
      if (!r) {
        if (!mesh_error_logged_)
          spdlog::error("cluster {}: mesh: {}", mc_.cluster, r.error().message);
        mesh_error_logged_ = true;
        return;
      }
      mesh_error_logged_ = false;
      m = std::shared_ptr<MeshRuntime>(std::move(*r));
      {
        std::lock_guard g(mesh_mu_);
        mesh_ = m;
      }
      apply_revoked_grants();  // the last desired state's revocations hold for a fresh mesh too
    }
    const PartitionState contact = contact_state();
    m->apply(*cs, node_id, role_names(),
             contact == PartitionState::kDegraded || contact == PartitionState::kIsolated);
  }

  // Hands the desired state's revoked access grants to the mesh (poller and heartbeat threads).
  void apply_revoked_grants() {
    auto m = mesh();
    if (!m) return;
    json revoked;
    {
      std::lock_guard g(mu_);
      revoked = state_.revoked_grants;
    }
    m->revoke_grants(revoked);
  }

  // Posts queued access records (audit: who, what, when, bytes; never payload).
  void report_access() {
    auto m = mesh();
    if (!m) return;
    for (int round = 0; round < 10; ++round) {
      auto recs = m->take_records(100);
      if (recs.empty()) return;
      json arr = json::array();
      for (const auto& r : recs) arr.push_back(r.to_json());
      const auto id = identity();
      auto r = client_->request("POST", "/api/v1/node/access", json{{"records", arr}}, {}, &id,
                                std::chrono::seconds(10), stop_);
      if (!r || r->status >= 500) {
        m->return_records(std::move(recs));  // retried after the next heartbeat
        return;
      }
      if (r->status != 200) {
        spdlog::warn("cluster {}: access records refused: {} {}", mc_.cluster, r->error_code(),
                     r->error_message());
      }
    }
  }

  // ---- signed configuration (ConfigSync) ----

  // ConfigSync's two calls over this membership's mTLS client.
  class ConfigCalls : public ConfigTransport {
   public:
    explicit ConfigCalls(const Runner& r) : r_(r) {}
    Result<HttpReply> fetch(const std::string& have) override {
      const auto id = r_.identity();
      std::string target = "/api/v1/node/config";
      if (!have.empty()) target += "?have=" + have;  // [a-z_0-9:,] only
      return r_.client_->request("GET", target, std::nullopt, {}, &id, std::chrono::seconds(30),
                                 r_.stop_);
    }
    Result<HttpReply> report_rejection(const json& body) override {
      const auto id = r_.identity();
      return r_.client_->request("POST", "/api/v1/node/config/rejections", body, {}, &id,
                                 std::chrono::seconds(15), r_.stop_);
    }

   private:
    const Runner& r_;
  };

  std::shared_ptr<ConfigSync> config_sync() const {
    std::lock_guard g(mu_);
    return config_;
  }

  // Creates the membership's ConfigSync once enrolled (cluster and node id from the certificate).
  bool start_config() {
    std::string cert;
    std::string node_id;
    {
      std::lock_guard g(mu_);
      cert = state_.cert_pem;
      node_id = state_.node_id;
    }
    auto id = crypto::identity_from_pem(cert);
    if (!id || id->cluster_id.empty() || node_id.empty()) {
      spdlog::error("cluster {}: no cluster id in the node certificate; signed configuration off",
                    mc_.cluster);
      return false;
    }
    auto cs = std::make_shared<ConfigSync>(env_, store_.dir(), mc_.cluster, id->cluster_id, node_id,
                                           *key_);
    cs->load();
    {
      std::lock_guard g(mu_);
      config_ = std::move(cs);
    }
    config_thread_ = std::thread([this] { config_loop(); });
    return true;
  }

  // A heartbeat announced `generation`: fetch when it differs from the last successful fetch
  // (once per announced generation; failures are retried by config_loop's own timer).
  void note_config_generation(const std::shared_ptr<ConfigSync>& cs, std::int64_t generation) {
    if (cs->generation() == generation) return;
    std::lock_guard g(config_mu_);
    if (config_hint_ == generation) return;
    config_hint_ = generation;
    config_wanted_ = true;
    config_cv_.notify_all();
  }

  // A storage transport that measures how long its fetches take (the RTT of a storage the node
  // has no fabric session with). Config thread only.
  class TimedTransport : public ConfigTransport {
   public:
    TimedTransport(std::unique_ptr<ConfigTransport> inner, const Clock& clock, double& out_ms)
        : inner_(std::move(inner)), clock_(clock), out_ms_(out_ms) {}
    Result<HttpReply> fetch(const std::string& have) override {
      const auto t0 = clock_.now();
      auto r = inner_->fetch(have);
      // Only a storage that serves this node counts as near.
      if (r && r->status == 200) {
        out_ms_ = std::chrono::duration<double, std::milli>(clock_.now() - t0).count();
      }
      return r;
    }
    Result<HttpReply> report_rejection(const json& body) override {
      return inner_->report_rejection(body);
    }

   private:
    std::unique_ptr<ConfigTransport> inner_;
    const Clock& clock_;
    double& out_ms_;
  };

  // The storage sources of one round in recovery order (plan_recovery): the storages of the
  // applied storage_directory (never this node), ranked by the mesh's session RTTs and measured
  // fetch latencies. None before anything was applied: trust anchors only come from the control
  // plane.
  std::vector<std::unique_ptr<ConfigTransport>> storage_sources(const ConfigSync& cs,
                                                                std::vector<ConfigSource>& out) {
    std::vector<std::unique_ptr<ConfigTransport>> owned;
    if (!cs.has_state()) return owned;
    const json dir = cs.payload(config::ArtifactType::storage_directory, config::Scope::cluster());
    crypto::NodeCredentials creds;
    std::string node_id;
    {
      std::lock_guard g(mu_);
      creds = crypto::NodeCredentials{state_.ca_pem, state_.cert_pem, key_->private_pem()};
      node_id = state_.node_id;
    }
    auto nid = crypto::identity_from_pem(creds.cert_pem);
    if (!nid) return owned;
    std::erase_if(storage_fetch_ms_, [](const auto& kv) { return kv.second <= 0; });
    std::map<std::string, double> rtt = storage_fetch_ms_;
    std::set<std::string> live;
    if (auto m = mesh()) {
      const json rtts = m->peer_rtts();
      for (const auto& [peer, ms] : rtts.items()) {
        if (ms.is_number()) rtt[peer] = ms.get<double>();
        live.insert(peer);
      }
    }
    // A storage node on the applied revocation list is no source (its artifacts would be
    // verified anyway; the node is not asked at all).
    auto storages = parse_storage_directory(dir, node_id);
    if (const auto t = cs.trust_snapshot()) {
      std::erase_if(storages, [&](const StorageEndpoint& e) {
        return t->revocations.node_ids.contains(e.id);
      });
    }
    for (auto& p : plan_recovery(storages, rtt, live)) {
      owned.push_back(std::make_unique<TimedTransport>(
          std::make_unique<StorageConfigTransport>(p.storage.endpoint, creds, nid->cluster_id,
                                                   p.storage.id),
          clock_, storage_fetch_ms_[p.storage.id]));
      out.push_back({p.kind, p.storage.id, owned.back().get()});
    }
    return owned;
  }

  // Fetches at start, when a heartbeat announces another generation, and every kConfigRefresh.
  // Runs apart from the heartbeat so a slow fetch never delays it. Sources in recovery order
  // (ConfigSync::sync); when none answers the last applied configuration stays in force.
  void config_loop() {
    const auto cs = config_sync();
    bool unsupported_logged = false;
    while (!stopping()) {
      {
        std::lock_guard g(mu_);
        if (state_.enroll_status == "revoked") return;
      }
      Duration wait = kConfigRefresh;
      ConfigCalls calls(*this);
      std::vector<ConfigSource> sources;
      const auto owned = storage_sources(*cs, sources);
      sources.push_back({SourceKind::control, "", &calls});
      std::int64_t announced = -1;
      {
        std::lock_guard g(config_mu_);
        announced = config_hint_;
      }
      auto r = cs->sync(sources, calls, std::chrono::system_clock::now(), announced);
      if (!r && !stopping()) {
        if (r.error().code == "not_supported") {
          if (!unsupported_logged) {
            spdlog::info("cluster {}: {}; will ask again", mc_.cluster, r.error().message);
            unsupported_logged = true;
          }
          wait = std::chrono::seconds(60);
        } else if (r.error().code == "fetch_failed") {
          spdlog::warn("cluster {}: {} (the last applied configuration stays in force)",
                       mc_.cluster, r.error().message);
          wait = std::chrono::seconds(10);
        }
        // A rejection (already logged and reported) waits for a new generation or the refresh.
      }
      std::unique_lock l(config_mu_);
      if (r && config_hint_ == cs->generation()) config_wanted_ = false;  // fetched already
      config_cv_.wait_for(l, wait, [this] { return stopping() || config_wanted_; });
      config_wanted_ = false;
    }
  }

  void maybe_renew() {
    std::int64_t not_after = 0;
    std::string cert;
    {
      std::lock_guard g(mu_);
      not_after = state_.cert_not_after;
      cert = state_.cert_pem;
    }
    auto val = crypto::validity_from_pem(cert);
    if (!val) return;
    const auto lifetime =
        std::chrono::duration_cast<std::chrono::seconds>(val->not_after - val->not_before).count();
    // Renew once a third of the lifetime is left.
    if (not_after - unix_now() > lifetime / 3) return;
    const auto id = identity();
    auto r = client_->request("POST", "/api/v1/node/renew", std::nullopt, {}, &id,
                              std::chrono::seconds(15), stop_);
    if (!r || r->status != 200) {
      spdlog::warn("cluster {}: certificate renewal failed: {}", mc_.cluster,
                   r ? r->error_message() : r.error().message);
      return;
    }
    const std::string fresh = r->body.value("certificate_pem", std::string());
    auto fid = crypto::identity_from_pem(fresh);
    auto fval = crypto::validity_from_pem(fresh);
    if (!fid || !fval || fid->public_key != key_->public_key()) return;
    {
      std::lock_guard g(mu_);
      state_.cert_pem = fresh;
      state_.cert_not_after =
          std::chrono::duration_cast<std::chrono::seconds>(fval->not_after.time_since_epoch())
              .count();
    }
    save();
    spdlog::info("cluster {}: certificate renewed, valid until unix {}", mc_.cluster,
                 state_.cert_not_after);
  }

  // Long-polls desired state and stores each newer version (the agent's main loop applies it).
  void poll_desired() {
    while (!stopping()) {
      std::int64_t after = 0;
      {
        std::lock_guard g(mu_);
        if (state_.enroll_status != "approved") return;
        after = state_.desired_version;
      }
      const auto id = identity();
      auto r = client_->request(
          "GET", "/api/v1/node/desired-state?after=" + std::to_string(after) + "&wait=25",
          std::nullopt, {}, &id, std::chrono::seconds(40), stop_);
      if (!r) {
        contact_failure(r.error().message);
        sleep_for(std::chrono::seconds(2));
        continue;
      }
      if (r->status == 403) {
        mark_revoked(r->error_code() + ": " + r->error_message());
        return;
      }
      if (r->status != 200 || !r->body.is_object()) {
        sleep_for(std::chrono::seconds(2));
        continue;
      }
      const auto v = r->body.value("version", std::int64_t{0});
      if (v > after) {
        {
          std::lock_guard g(mu_);
          state_.desired_version = v;
          state_.roles = r->body.value("roles", json::array());
          state_.workloads = r->body.value("workloads", json::array());
          const auto rg = r->body.find("revoked_grants");
          state_.revoked_grants = rg != r->body.end() && rg->is_array() ? *rg : json::array();
          state_.last_contact = unix_now();
        }
        save();
        apply_revoked_grants();  // cut terminated sessions at once, not at the next heartbeat
        spdlog::info("cluster {}: desired state version {} ({} roles, {} workloads)", mc_.cluster,
                     v, state_.roles.size(), state_.workloads.size());
      }
      contact_success(true);
    }
  }

  void main_loop() {
    if (!enroll()) return;
    poller_ = std::thread([this] { poll_desired(); });
    start_config();
    while (!stopping()) {
      {
        std::lock_guard g(mu_);
        if (state_.enroll_status == "revoked") break;
      }
      heartbeat_once();
      update_storage_role();
      update_mesh_role();
      update_caches();
      report_access();
      maybe_renew();
      if (report_contact()) save();  // e.g. degraded -> isolated happens with time alone
      sleep_for(cfg_.heartbeat_interval);
    }
  }

  const AgentConfig& cfg_;
  MembershipConfig mc_;
  Env& env_;
  const Clock& clock_;
  StateStore store_;
  mutable std::mutex contact_mu_;
  PartitionTracker tracker_;
  PartitionState reported_ = PartitionState::kHealthy;
  std::unique_ptr<crypto::Ed25519Key> key_;
  std::unique_ptr<ControlClient> client_;
  mutable std::mutex mu_;
  MembershipState state_;
  json workload_report_ = json::array();
  LoadSampler sampler_;
  const std::atomic<bool>* stop_ = nullptr;
  std::mutex sleep_mu_;
  std::condition_variable cv_;
  std::thread main_;
  std::thread poller_;
  std::shared_ptr<ConfigSync> config_;  // guarded by mu_; set once enrolled
  std::thread config_thread_;
  std::mutex config_mu_;
  std::condition_variable config_cv_;
  bool config_wanted_ = false;     // guarded by config_mu_
  std::int64_t config_hint_ = -1;  // guarded by config_mu_: last generation a heartbeat announced
  std::map<std::string, double> storage_fetch_ms_;  // config thread: last fetch latency per storage
  // Config-storage role (heartbeat thread; storage_server_ and counters under storage_mu_).
  std::shared_ptr<StorageCache> storage_cache_ = std::make_shared<StorageCache>();
  mutable std::mutex storage_mu_;
  std::unique_ptr<ConfigStorageServer> storage_server_;
  std::string storage_cert_pem_;  // the certificate storage_server_ serves (heartbeat thread)
  std::shared_ptr<crypto::RevocationList> storage_revocations_ =
      std::make_shared<crypto::RevocationList>();
  std::uint64_t storage_requests_ = 0;
  std::uint64_t storage_refused_ = 0;
  bool storage_error_logged_ = false;
  std::int64_t announced_generation_ = -1;  // heartbeat thread only
  // The mesh (heartbeat thread starts/stops it; mesh_ itself under mesh_mu_).
  mutable std::mutex mesh_mu_;
  std::shared_ptr<MeshRuntime> mesh_;
  std::shared_ptr<WorkloadPids> workload_pids_ = std::make_shared<WorkloadPids>();
  bool mesh_error_logged_ = false;
  // Fabric caches and the pending update slot (state_store.h); written by the heartbeat thread.
  static constexpr std::chrono::seconds kCacheInterval{5};
  mutable std::mutex cache_mu_;
  PeerCache peer_cache_;
  RouteCache route_cache_;
  std::optional<PendingUpdate> pending_update_;
  TimePoint next_cache_write_{};
};

// ---------------- Agent ----------------

Agent::Agent(AgentConfig cfg, Env& env, const Clock& clock, ProcessBackend& backend)
    : cfg_(std::move(cfg)), env_(env), clock_(clock) {
  SupervisorOptions so;
  so.kinds = cfg_.programs;
  so.backoff_initial = cfg_.restart_backoff_initial;
  so.backoff_max = cfg_.restart_backoff_max;
  so.crash_loop_threshold = cfg_.crash_loop_threshold;
  so.log_dir = cfg_.state_dir + "/logs";
  supervisor_ = std::make_unique<Supervisor>(backend, clock_, so);
}

Agent::~Agent() = default;

Result<void> Agent::run(const std::atomic<bool>& stop) {
  if (auto d = env_.make_dirs(cfg_.state_dir + "/logs", 0700); !d) return d;
  // Workloads of a previous agent process (killed, crashed) are stopped before anything else:
  // the desired state decides afresh what runs.
  if (const int n = stop_orphans(cfg_.state_dir + "/logs"); n > 0) {
    spdlog::warn("stopped {} workload(s) left by a previous agent process", n);
  }
  for (const auto& m : cfg_.memberships) {
    auto r = std::make_unique<Runner>(cfg_, m, env_, clock_);
    if (auto o = r->open(); !o) {
      return fail(o.error().code, "cluster " + m.cluster + ": " + o.error().message);
    }
    runners_.push_back(std::move(r));
  }
  for (auto& r : runners_) r->start(stop);
  spdlog::info("rap-node-agent {} running ({} cluster membership(s), profile {})", kAgentVersion,
               runners_.size(), cfg_.profile);
  auto next_status = clock_.now();
  std::set<std::string> last_refused;
  while (!stop.load()) {
    std::vector<WorkloadSpec> desired;
    std::vector<std::string> refused;
    for (auto& r : runners_) {
      auto a = r->authorized(&refused);
      desired.insert(desired.end(), a.begin(), a.end());
    }
    for (const auto& why : refused) {
      if (last_refused.count(why) == 0) spdlog::warn("workload not started: {}", why);
    }
    last_refused = std::set<std::string>(refused.begin(), refused.end());
    supervisor_->set_desired(desired);
    supervisor_->tick();
    const auto st = supervisor_->status();
    for (auto& r : runners_) {
      // Each cluster hears only about its own workloads (named "<cluster>-<name>" locally).
      json report = json::array();
      std::map<int, std::string> pids;
      const std::string prefix = r->cluster() + "-";
      for (const auto& w : st) {
        if (w.name.rfind(prefix, 0) != 0) continue;
        report.push_back({{"name", w.name.substr(prefix.size())}, {"state", to_string(w.state)}});
        if (w.pid > 0) pids[w.pid] = w.name.substr(prefix.size());
      }
      r->set_workload_report(std::move(report));
      r->set_workload_pids(std::move(pids));
    }
    if (clock_.now() >= next_status) {
      write_status();
      next_status = clock_.now() + std::chrono::seconds(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  spdlog::info("rap-node-agent stopping");
  for (auto& r : runners_) r->join();
  supervisor_->stop();
  write_status();
  return {};
}

void Agent::write_status() {
  json members = json::array();
  for (auto& r : runners_) members.push_back(r->status_json());
  json workloads = json::array();
  for (const auto& w : supervisor_->status()) {
    workloads.push_back({{"name", w.name},
                         {"state", to_string(w.state)},
                         {"pid", w.pid},
                         {"restarts", w.restarts},
                         {"last_exit", w.last_exit},
                         {"last_error", w.last_error},
                         {"version", w.version}});
  }
  const json doc{{"version", kAgentVersion}, {"pid", static_cast<std::int64_t>(::getpid())},
                 {"updated", unix_now()},    {"profile", cfg_.profile},
                 {"memberships", members},   {"workloads", workloads}};
  (void)env_.write_file_atomic(cfg_.state_dir + "/status.json", doc.dump(2), 0600);
}

Result<json> Agent::read_status(const AgentConfig& cfg, Env& env) {
  json out{{"state_dir", cfg.state_dir}, {"memberships", json::array()}};
  for (const auto& m : cfg.memberships) {
    StateStore store(env, cfg.membership_dir(m));
    json entry{{"cluster", m.cluster}};
    if (!env.exists(store.key_path())) {
      entry["enroll_status"] = "new";
    } else {
      auto mode = env.file_mode(store.key_path());
      auto pem = env.read_file(store.key_path());
      auto key = pem ? crypto::Ed25519Key::from_pem(*pem)
                     : Result<crypto::Ed25519Key>(tl::unexpected(pem.error()));
      if (!key) {
        entry["error"] = key.error().message;
      } else {
        auto st = store.load(*key);
        if (!st) {
          entry["error"] = st.error().message;
        } else if (*st) {
          json j = (*st)->to_json();
          j.erase("cert_pem");
          j.erase("ca_pem");
          entry.update(j);
          entry["config"] = ConfigSync::read_status(env, store.dir(), *key);
          entry["caches"] = store.caches_status(*key);
        } else {
          entry["enroll_status"] = "new";
        }
      }
      if (mode && (*mode & 077) != 0) entry["error"] = "key file permissions are too open";
    }
    out["memberships"].push_back(entry);
  }
  auto live = env.read_file(cfg.state_dir + "/status.json");
  if (live) {
    json j = json::parse(*live, nullptr, false);
    if (!j.is_discarded()) out["live"] = j;
  }
  return out;
}

}  // namespace rap::agent
