// The in-process mesh lab shared by the route, failover and local-API tests: real MeshNodes with
// real TLS fabric sessions on loopback, real signed leases, grants and tickets, the real TCP access
// entry and exit, TCP echo targets and the real ingress client.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <mutex>
#include <thread>

#include "rap/common/priority.h"
#include "rap/config/signer.h"
#include "rap/mesh/local_api.h"
#include "rap/mesh/mesh_node.h"
#include "rap/services/tcp_access/tcp_access.h"
#include "rap/services/tcp_access/user_api.h"
#include "test_pki.h"

namespace mesh_lab {

using namespace rap;
using namespace rap::mesh;
using namespace rap::services::tcp;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using Json = nlohmann::json;

constexpr char kOrg[] = "org-1";
constexpr char kResource[] = "res-1";

struct Node {
  std::string id;
  std::vector<std::string> roles;
  std::unique_ptr<rap::testing::TestNode> tn;
  std::unique_ptr<MeshNode> mesh;
  std::unique_ptr<TcpAccessExit> exit;
  std::unique_ptr<TcpAccessEntry> entry;
  // The interactive lane (PROTOCOL.md §15), on the lab's lane thread, when the node has one.
  std::unique_ptr<MeshNode> lane_mesh;
  std::unique_ptr<TcpAccessExit> lane_exit;
  std::unique_ptr<TcpAccessEntry> lane_entry;
  std::uint16_t port = 0;
  bool killed = false;
};

class Lab {
 public:
  Lab() : guard_(asio::make_work_guard(io_)) {
    thread_ = std::thread([this] { rap::run_prioritised(io_); });
    const auto now = std::chrono::system_clock::now();
    trust_ = *config::TrustStore::from_keys({signer_.trusted_key(now - 1h, now + 24h)});
  }
  // Runs `f` on the lane thread.
  template <class F>
  auto lane_sync(F f) {
    return asio::co_spawn(
               lane_io_, [&]() -> asio::awaitable<decltype(f())> { co_return f(); },
               asio::use_future)
        .get();
  }
  ~Lab() {
    asio::co_spawn(
        io_,
        [this]() -> asio::awaitable<void> {
          if (local_) local_->stop();
          local_.reset();
          if (users_) users_->stop();
          users_.reset();
          for (auto& [id, n] : nodes_) {
            if (n.killed) continue;
            if (n.entry) n.entry->stop();
            n.mesh->stop("test over");
          }
          co_return;
        },
        asio::use_future)
        .get();
    lane_sync([&] {
      for (auto& [id, n] : nodes_)
        if (n.lane_mesh && !n.killed) n.lane_mesh->stop("test over");
      return 0;
    });
    std::this_thread::sleep_for(100ms);
    guard_.reset();
    io_.stop();
    thread_.join();
    lane_guard_.reset();
    lane_io_.stop();
    lane_thread_.join();
    // The lanes' objects go first (their connections may hold main-thread objects).
    for (auto& [id, n] : nodes_) {
      n.lane_entry.reset();
      n.lane_exit.reset();
      n.lane_mesh.reset();
    }
  }

  template <class F>
  auto sync(F f) {
    return asio::co_spawn(
               io_, [&]() -> asio::awaitable<decltype(f())> { co_return f(); }, asio::use_future)
        .get();
  }
  template <class T>
  T await(asio::awaitable<T> aw) {
    return asio::co_spawn(io_, std::move(aw), asio::use_future).get();
  }

  // `lane`: the node also runs an interactive lane (a second MeshNode, exit and entry on the
  // lab's lane thread, PROTOCOL.md §15), as rap-node-agent does by default.
  void add(const std::string& id, std::vector<std::string> roles, bool lane = false) {
    Node n;
    n.id = id;
    n.roles = std::move(roles);
    n.tn = std::make_unique<rap::testing::TestNode>(ca_.node(id));
    MeshOptions o;
    o.fabric_listen = "127.0.0.1:0";
    o.dial_interval = 100ms;
    o.handshake_timeout = handshake_timeout_;
    o.max_active = max_active_;
    o.flow_resume_timeout = flow_resume_timeout_;
    o.flow_resume_grace = flow_resume_grace_;
    o.wall_clock = [this] { return std::chrono::system_clock::now() + wall_offset(); };
    o.relay_tap = [this](std::span<const std::uint8_t> b) {
      std::lock_guard g(mu_);
      tapped_.append(reinterpret_cast<const char*>(b.data()), b.size());
    };
    auto m = MeshNode::create(io_.get_executor(), n.tn->creds, o, clock_, random_);
    ASSERT_TRUE(m) << m.error().message;
    n.mesh = std::move(*m);
    n.port = sync([&] { return *n.mesh->start(); });
    auto sink = [this](AccessRecord r) {
      std::lock_guard g(mu_);
      records_.push_back(std::move(r));
    };
    n.exit = std::make_unique<TcpAccessExit>(io_.get_executor(), *n.mesh, sink);
    auto e = sync([&] {
      return TcpAccessEntry::start(io_.get_executor(), *n.mesh, n.tn->creds, "127.0.0.1:0", sink);
    });
    ASSERT_TRUE(e) << e.error().message;
    n.entry = std::move(*e);
    if (lane) {
      MeshOptions lo = o;
      lo.lane = "interactive";
      lo.fabric_listen.clear();
      lo.fabric_advertise = "127.0.0.1:" + std::to_string(n.port);
      auto lm = MeshNode::create(lane_io_.get_executor(), n.tn->creds, lo, clock_, random_);
      ASSERT_TRUE(lm) << lm.error().message;
      n.lane_mesh = std::move(*lm);
      lane_sync([&] { return *n.lane_mesh->start(); });
      n.lane_exit = std::make_unique<TcpAccessExit>(lane_io_.get_executor(), *n.lane_mesh, sink);
      n.lane_entry = TcpAccessEntry::lane(lane_io_.get_executor(), *n.lane_mesh, sink);
      sync([&] {
        n.mesh->serve_lane(*n.lane_mesh);
        TcpAccessEntry::pair_lanes(*n.entry, *n.lane_entry);
        return 0;
      });
    }
    nodes_[id] = std::move(n);
  }

  // entry -> relay -> exit with an echo target the exit may reach; returns the target address.
  // `lanes`: every node runs the interactive lane too, and its lane sessions are up.
  std::string three_hops(bool lanes = false) {
    add("entry", {"entry-node"}, lanes);
    add("relay", {"relay-node"}, lanes);
    add("exit", {"exit-node"}, lanes);
    configure();
    const auto target = start_echo();
    set_egress("exit", target);
    wait_connected("entry", "relay");
    wait_connected("relay", "exit");
    if (lanes) {
      wait_lane_connected("entry", "relay");
      wait_lane_connected("relay", "exit");
    }
    return target;
  }

  // Every node learns every other node (with endpoint) and the trust store. `offline`: the nodes
  // cannot reach their control plane (TrustView::authority_offline).
  void configure(const config::Revocations& rev = {}, bool offline = false) {
    for (auto& [id, n] : nodes_) {
      MeshConfig c;
      c.roles = n.roles;
      c.trust.trust = trust_;
      c.trust.revocations = rev;
      c.trust.authority_offline = offline;
      if (auto o = owners_.find(id); o != owners_.end()) c.owner_org = o->second;
      for (auto& [pid, p] : nodes_) {
        if (pid == id) continue;
        c.peers.push_back(
            MeshPeer{pid, p.tn->key.public_key(), p.roles, "127.0.0.1:" + std::to_string(p.port)});
      }
      sync([&] {
        n.mesh->update(c);
        return 0;
      });
      if (n.lane_mesh) {
        lane_sync([&] {
          n.lane_mesh->update(c);
          return 0;
        });
      }
    }
  }
  // Makes `id` customer-managed by `org` (takes effect at the next configure()).
  void set_owner(const std::string& id, const std::string& org) { owners_[id] = org; }
  void set_egress(const std::string& id, const std::string& target) {
    sync([&] {
      nodes_[id].exit->set_egress({EgressTarget{kResource, kOrg, target}});
      return 0;
    });
    if (nodes_[id].lane_exit) {
      lane_sync([&] {
        nodes_[id].lane_exit->set_egress({EgressTarget{kResource, kOrg, target}});
        return 0;
      });
    }
  }
  bool connected(const std::string& a, const std::string& b) {
    return sync([&] { return nodes_[a].mesh->session_peers().contains(b); });
  }
  void wait_connected(const std::string& a, const std::string& b) {
    for (int i = 0; i < 100 && !connected(a, b); ++i) std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(connected(a, b)) << a << " <-> " << b;
  }
  bool lane_connected(const std::string& a, const std::string& b) {
    return lane_sync([&] { return nodes_[a].lane_mesh->session_peers().contains(b); });
  }
  void wait_lane_connected(const std::string& a, const std::string& b) {
    for (int i = 0; i < 100 && !lane_connected(a, b); ++i) std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(lane_connected(a, b)) << a << " <-> " << b << " (interactive lane)";
  }
  // What the lane (or the main node, lane = false) of `id` counted: entry, exit and mesh.
  Json lane_view(const std::string& id, bool lane) {
    auto collect = [&](TcpAccessEntry* e, TcpAccessExit& x, MeshNode& m) {
      return Json{{"entry_accepted", e != nullptr ? e->counters().accepted : 0},
                  {"entry_handoffs", e != nullptr ? e->lane_handoffs() : 0},
                  {"entry_returns", e != nullptr ? e->lane_returns() : 0},
                  {"exit_accepted", x.counters().accepted},
                  {"status", m.status()}};
    };
    auto& n = nodes_[id];
    if (lane)
      return lane_sync([&] { return collect(n.lane_entry.get(), *n.lane_exit, *n.lane_mesh); });
    return sync([&] { return collect(n.entry.get(), *n.exit, *n.mesh); });
  }

  // `offline`: the offline horizon past expiry signed into the credential (0s: none).
  std::string sign(config::ArtifactType type, std::vector<std::string> scope, Json payload,
                   std::chrono::seconds ttl = 600s, const config::Signer* with = nullptr,
                   std::chrono::seconds offline = 0s) {
    std::sort(scope.begin(), scope.end());
    scope.erase(std::unique(scope.begin(), scope.end()), scope.end());
    config::ArtifactDraft d;
    d.type = type;
    d.scope = config::Scope{config::ScopeKind::node, scope};
    d.version = 1;
    d.epoch = 1;
    const auto now = std::chrono::system_clock::now();
    d.issued_at = ttl.count() > 0 ? now : now - 2h;
    d.expires_at = ttl.count() > 0 ? now + ttl : now - 1h;
    if (offline.count() > 0)
      payload.begin().value()["offline_until"] =
          config::to_unix_seconds(d.expires_at) + offline.count();
    d.payload = std::move(payload);
    auto a = (with ? *with : signer_).sign(std::move(d));
    EXPECT_TRUE(a) << a.error().message;
    return *config::encode_artifact(*a);
  }
  std::string lease(const std::string& id, std::vector<std::string> hops,
                    std::chrono::seconds ttl = 600s, const config::Signer* with = nullptr,
                    std::chrono::seconds offline = 0s) {
    Json h = Json::array();
    for (const auto& n : hops)
      h.push_back({{"node", n}, {"public_key", config::to_hex(nodes_[n].tn->key.public_key())}});
    return sign(config::ArtifactType::route_lease, hops,
                Json{{"lease",
                      {{"id", id},
                       {"grant", "grant-1"},
                       {"org", kOrg},
                       {"role", "primary"},
                       {"hops", h},
                       {"classes", {"bulk", "interactive"}},
                       {"fence", 1}}}},
                ttl, with, offline);
  }
  std::string grant(const std::string& entry, std::vector<std::string> exits,
                    const std::string& target, std::chrono::seconds ttl = 600s,
                    std::chrono::seconds offline = 0s) {
    std::vector<std::string> scope = exits;
    scope.push_back(entry);
    return sign(config::ArtifactType::access_grant, scope,
                Json{{"grant",
                      {{"id", "grant-1"},
                       {"user", "user-1"},
                       {"org", kOrg},
                       {"resource", kResource},
                       {"protocol", "tcp"},
                       {"target", target},
                       {"entry", entry},
                       {"exits", exits}}}},
                ttl, nullptr, offline);
  }
  std::string ticket(const std::string& entry, const std::string& grant_wire,
                     std::vector<std::string> leases) {
    return *seal_ticket(Ticket{grant_wire, std::move(leases)}, nodes_[entry].tn->key.public_key());
  }

  // Connects through `entry` with `ticket`; returns the client or the refusal.
  Result<std::unique_ptr<IngressClient>> connect(const std::string& entry,
                                                 const std::string& ticket,
                                                 const std::string& cls = "interactive") {
    auto& n = nodes_[entry];
    return await(IngressClient::connect(
        io_.get_executor(), "127.0.0.1:" + std::to_string(n.entry->port()),
        config::to_hex(n.tn->key.public_key()), ClientHello{ticket, cls}, 10s));
  }

  // Writes `data`, half-closes, reads everything back; `progress` counts bytes read so far.
  Result<std::string> echo(IngressClient& c, const std::string& data,
                           std::atomic<std::size_t>* progress = nullptr) {
    return await([&]() -> asio::awaitable<Result<std::string>> {
      using namespace asio::experimental::awaitable_operators;
      std::string got;
      auto w = [&]() -> asio::awaitable<Result<void>> {
        for (std::size_t off = 0; off < data.size(); off += 100000) {
          auto r = co_await c.write(
              asio::buffer(data.data() + off, std::min<std::size_t>(100000, data.size() - off)));
          if (!r) co_return r;
        }
        co_return co_await c.close_write();
      };
      auto rd = [&]() -> asio::awaitable<Result<void>> {
        std::vector<char> buf(65536);
        for (;;) {
          auto n = co_await c.read_some(asio::buffer(buf));
          if (!n) co_return tl::unexpected(n.error());
          if (*n == 0) co_return Result<void>{};
          got.append(buf.data(), *n);
          if (progress) progress->store(got.size());
        }
      };
      auto [a, b] = co_await (w() && rd());
      if (!a) co_return tl::unexpected(a.error());
      if (!b) co_return tl::unexpected(b.error());
      co_return got;
    }());
  }

  // A TCP echo server on loopback; returns "127.0.0.1:port".
  std::string start_echo() {
    auto acc = std::make_shared<asio::ip::tcp::acceptor>(
        io_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    const auto port = acc->local_endpoint().port();
    asio::co_spawn(
        io_,
        [acc]() -> asio::awaitable<void> {
          for (;;) {
            auto [ec, s] = co_await acc->async_accept(asio::as_tuple(asio::use_awaitable));
            if (ec) co_return;
            asio::co_spawn(
                acc->get_executor(),
                [sock = std::make_shared<asio::ip::tcp::socket>(
                     std::move(s))]() -> asio::awaitable<void> {
                  std::vector<char> buf(65536);
                  for (;;) {
                    auto [e, n] = co_await sock->async_read_some(
                        asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
                    if (e) break;
                    auto [we, wn] = co_await asio::async_write(*sock, asio::buffer(buf.data(), n),
                                                               asio::as_tuple(asio::use_awaitable));
                    if (we) break;
                  }
                  boost::system::error_code ig;
                  sock->shutdown(asio::ip::tcp::socket::shutdown_send, ig);
                },
                asio::detached);
          }
        },
        asio::detached);
    acceptors_.push_back(acc);
    return "127.0.0.1:" + std::to_string(port);
  }

  // The local stream API on `node`'s mesh.
  void start_local(const std::string& node, const std::string& path,
                   LocalStreamServer::Authorize authorize) {
    auto r = sync([&] {
      return LocalStreamServer::start(io_.get_executor(), *nodes_[node].mesh, path,
                                      std::move(authorize));
    });
    ASSERT_TRUE(r) << r.error().message;
    local_ = std::move(*r);
  }
  // A workload's use of the local API: open `lease` with `hello`, send `data`, half-close, read
  // everything back. Returns the reply to the open request and the bytes read.
  std::pair<Json, std::string> local_exchange(const std::string& path, const std::string& lease,
                                              const Json& hello, const std::string& data,
                                              std::size_t chunk = 100000) {
    return await([&]() -> asio::awaitable<std::pair<Json, std::string>> {
      namespace local = asio::local;
      local::stream_protocol::socket sock(co_await asio::this_coro::executor);
      auto [cec] = co_await sock.async_connect(local::stream_protocol::endpoint(path),
                                               asio::as_tuple(asio::use_awaitable));
      if (cec) co_return std::pair{Json{{"connect_error", cec.message()}}, std::string()};
      auto frame = [](std::string_view body) {
        std::string f(4, '\0');
        const auto n = static_cast<std::uint32_t>(body.size());
        f[0] = static_cast<char>(n >> 24);
        f[1] = static_cast<char>(n >> 16);
        f[2] = static_cast<char>(n >> 8);
        f[3] = static_cast<char>(n);
        return f + std::string(body);
      };
      const std::string req = frame(
          Json{{"v", 1}, {"op", "open"}, {"lease", lease}, {"class", "bulk"}, {"hello", hello}}
              .dump());
      co_await asio::async_write(sock, asio::buffer(req), asio::as_tuple(asio::use_awaitable));
      std::string in;
      std::vector<char> buf(65536);
      auto next_frame = [&]() -> asio::awaitable<std::optional<std::string>> {
        for (;;) {
          if (in.size() >= 4) {
            const auto* p = reinterpret_cast<const std::uint8_t*>(in.data());
            const std::size_t n = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) |
                                  (std::size_t{p[2]} << 8) | p[3];
            if (in.size() >= 4 + n) {
              std::string f = in.substr(4, n);
              in.erase(0, 4 + n);
              co_return f;
            }
          }
          auto [ec, n] =
              co_await sock.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
          if (ec) co_return std::nullopt;
          in.append(buf.data(), n);
        }
      };
      auto first = co_await next_frame();
      Json reply = first ? Json::parse(*first, nullptr, false) : Json();
      std::string got;
      if (!reply.is_object() || !reply.value("ok", false)) co_return std::pair{reply, got};
      std::string out;
      for (std::size_t off = 0; off < data.size(); off += chunk)
        out += frame(std::string_view(data).substr(off, chunk));
      out += frame("");
      co_await asio::async_write(sock, asio::buffer(out), asio::as_tuple(asio::use_awaitable));
      for (;;) {
        auto f = co_await next_frame();
        if (!f || f->empty()) break;
        got += *f;
      }
      co_return std::pair{reply, got};
    }());
  }

  // The user socket for entry-node listeners on `node`.
  void start_users(const std::string& node, const std::string& path) {
    auto r = sync(
        [&] { return UserSocketServer::start(io_.get_executor(), *nodes_[node].entry, path); });
    ASSERT_TRUE(r) << r.error().message;
    users_ = std::move(*r);
  }

  std::size_t user_listeners() {
    return sync([&] { return users_ ? users_->listeners() : std::size_t{0}; });
  }

  std::vector<AccessRecord> records() {
    std::lock_guard g(mu_);
    return records_;
  }
  std::string tapped() {
    std::lock_guard g(mu_);
    return tapped_;
  }
  // Open accesses at `id`'s TCP access exit (target connections).
  std::uint64_t exit_active(const std::string& id) {
    return sync([&] { return nodes_[id].exit->counters().active; });
  }
  Json status(const std::string& id) {
    return sync([&] { return nodes_[id].mesh->status(); });
  }
  const config::Signer& signer() const { return signer_; }
  // The entry's open access sessions (what its heartbeat reports as access.active).
  std::vector<ActiveAccess> active(const std::string& entry) {
    return sync([&] { return nodes_[entry].entry->active_sessions(); });
  }
  TrustView trust_of(const std::string& node) { return nodes_[node].mesh->trust(); }
  // MeshNode::open_flow on `node` (no service in between); the channel or the refusal.
  Result<std::unique_ptr<RouteChannel>> open_flow(const std::string& node,
                                                  std::vector<Lease> leases) {
    return await(nodes_[node].mesh->open_flow(std::move(leases), fabric::TrafficClass::kBulk,
                                              Json{{"grant", "test"}}));
  }
  // Hands `node`'s mesh the control plane's revoked grants; returns the flows cut.
  std::size_t revoke(const std::string& node, std::vector<MeshNode::RevokedGrant> grants) {
    return sync([&] { return nodes_[node].mesh->revoke_grants(grants); });
  }
  // Stops node `id` at once: its sessions close under its peers, nothing is drained.
  void kill(const std::string& id) {
    sync([&] {
      auto& n = nodes_[id];
      if (n.entry) n.entry->stop();
      n.mesh->stop("killed by the test", false);
      n.killed = true;
      return 0;
    });
    if (nodes_[id].lane_mesh) {
      lane_sync([&] {
        nodes_[id].lane_mesh->stop("killed by the test", false);
        return 0;
      });
    }
  }
  // Moves the nodes' wall clock (lease and grant expiry) by `d` from real time.
  void set_wall_offset(std::chrono::seconds d) { wall_offset_s_ = d.count(); }
  std::chrono::seconds wall_offset() const { return std::chrono::seconds(wall_offset_s_.load()); }
  std::chrono::seconds handshake_timeout_ = 10s;
  std::chrono::milliseconds flow_resume_timeout_ = 15s;
  std::chrono::milliseconds flow_resume_grace_ = 20s;
  std::size_t max_active_ = 0;

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
  // The nodes' interactive lanes share one thread (each agent runs its own).
  asio::io_context lane_io_;
  asio::executor_work_guard<asio::io_context::executor_type> lane_guard_{
      asio::make_work_guard(lane_io_)};
  std::thread lane_thread_{[this] { rap::run_prioritised(lane_io_); }};
  SystemClock clock_;
  SystemRandom random_;
  rap::testing::TestCa ca_{"cluster-1"};
  config::Signer signer_{"cluster-1", *crypto::Ed25519Key::generate()};
  config::TrustStore trust_;
  std::atomic<std::int64_t> wall_offset_s_{0};  // before nodes_: their wall clocks read it
  std::map<std::string, Node> nodes_;
  std::map<std::string, std::string> owners_;
  std::unique_ptr<LocalStreamServer> local_;
  std::unique_ptr<UserSocketServer> users_;
  std::vector<std::shared_ptr<asio::ip::tcp::acceptor>> acceptors_;
  std::mutex mu_;
  std::vector<AccessRecord> records_;
  std::string tapped_;
};

inline std::string payload(std::size_t n) {
  std::string s;
  s.reserve(n);
  std::uint32_t x = 12345;
  while (s.size() < n) {
    s += "PLAINTEXT-MARKER-4711:";
    for (int i = 0; i < 40; ++i) {
      x = x * 1103515245 + 12345;
      s.push_back(static_cast<char>('a' + (x >> 16) % 26));
    }
  }
  s.resize(n);
  return s;
}

}  // namespace mesh_lab
