#include "rap/mesh/mesh_node.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cmath>
#include <cstring>

#include "flow_session.h"
#include "rap/common/framing.h"
#include "rap/common/path_cost.h"
#include "rap/common/priority.h"
#include "rap/config/canonical.h"

namespace rap::mesh {

namespace {

using Json = nlohmann::json;
using fabric::Stream;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr std::size_t kWriteBatch = 256 * 1024;
const std::set<std::string> kMeshRoles = {"entry-node", "relay-node"};

bool split_host_port(const std::string& s, std::string& host, std::uint16_t& port) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const auto p = s.substr(colon + 1);
  if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), ::isdigit)) return false;
  const auto v = std::stoul(p);
  if (v > 65535) return false;
  port = static_cast<std::uint16_t>(v);
  return true;
}

bool is_mesh(const std::vector<std::string>& roles) {
  return std::any_of(roles.begin(), roles.end(),
                     [](const std::string& r) { return kMeshRoles.contains(r); });
}

Json error_json(const Error& e) {
  return Json{{"error", {{"code", e.code}, {"message", e.message}}}};
}

// Writes one length-prefixed JSON control message.
asio::awaitable<Result<void>> write_message(Stream& st, const Json& j) {
  std::string msg;
  append_frame(j.dump(), msg);
  co_return co_await st.write(asio::buffer(msg));
}

// Reads one length-prefixed JSON object; bytes after it stay in `frames` (rest()).
asio::awaitable<Result<Json>> read_message(Stream& st, FrameReader& frames) {
  std::array<char, 4096> chunk{};
  for (;;) {
    auto f = frames.next();
    if (!f) co_return fail("bad_message", "control message too large");
    if (*f) {
      auto j = Json::parse((*f)->begin(), (*f)->end(), nullptr, false);
      if (j.is_discarded() || !j.is_object())
        co_return fail("bad_message", "control message is not a JSON object");
      co_return j;
    }
    auto r = co_await st.read_some(asio::buffer(chunk));
    if (!r) co_return tl::unexpected(r.error());
    if (*r == 0) co_return fail("route_closed", "route stream ended during setup");
    frames.feed(chunk.data(), *r);
  }
}

Result<E2eOffer> offer_of(const Json& j) {
  auto it = j.find("e2e");
  if (it == j.end() || !it->is_object()) return fail("bad_message", "missing e2e member");
  auto pub = it->find("pub");
  auto sig = it->find("sig");
  if (pub == it->end() || sig == it->end() || !pub->is_string() || !sig->is_string())
    return fail("bad_message", "e2e needs pub and sig");
  return E2eOffer{pub->get<std::string>(), sig->get<std::string>()};
}

// What both channel kinds share: the stream, the lease, the peer's hello, byte counters, and
// resetting the stream when dropped before a clean close.
class StreamChannel : public RouteChannel {
 public:
  StreamChannel(std::shared_ptr<Stream> st, Lease lease, Json hello)
      : st_(std::move(st)), lease_(std::move(lease)), hello_(std::move(hello)) {}
  ~StreamChannel() override {
    if (!done_) st_->reset(fabric::ErrorCode::kCancel, "route channel dropped");
  }
  StreamChannel(const StreamChannel&) = delete;
  StreamChannel& operator=(const StreamChannel&) = delete;
  const Lease& lease() const override { return lease_; }
  const Json& hello() const override { return hello_; }
  void reset(const std::string& reason) override {
    done_ = true;
    st_->reset(fabric::ErrorCode::kCancel, reason);
  }
  std::uint64_t bytes_in() const override { return bytes_in_; }
  std::uint64_t bytes_out() const override { return bytes_out_; }
  fabric::TrafficClass traffic_class() const override { return st_->info().traffic_class; }

 protected:
  std::shared_ptr<Stream> st_;
  Lease lease_;
  Json hello_;
  bool done_ = false;
  std::uint64_t bytes_in_ = 0;
  std::uint64_t bytes_out_ = 0;
};

// The end-to-end channel over one route stream.
class Channel final : public StreamChannel {
 public:
  Channel(std::shared_ptr<Stream> st, const E2eKeys& keys, Lease lease, std::string leftover)
      : StreamChannel(std::move(st), std::move(lease), Json()), tx_(keys.tx), rx_(keys.rx) {
    if (!leftover.empty())
      rx_.feed({reinterpret_cast<const std::uint8_t*>(leftover.data()), leftover.size()});
  }

  asio::awaitable<Result<void>> send_hello(const Json& j) {
    const std::string s = j.dump();
    if (s.size() > kMaxRecordPlaintext) co_return fail("bad_message", "hello too large");
    wbuf_.clear();
    tx_.seal(RecordType::kHello, {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()},
             wbuf_);
    co_return co_await st_->write(asio::buffer(wbuf_));
  }
  asio::awaitable<Result<Json>> read_hello() {
    auto rec = co_await next_record();
    if (!rec) co_return tl::unexpected(rec.error());
    if (rec->type != RecordType::kHello)
      co_return fail("bad_message", "expected the service hello record");
    auto j = Json::parse(rec->data, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      co_return fail("bad_message", "service hello is not a JSON object");
    hello_ = j;
    co_return j;
  }
  asio::awaitable<Result<void>> answer(const Json& reply) override {
    co_return co_await send_hello(reply);
  }

  asio::awaitable<Result<std::size_t>> read_some(asio::mutable_buffer buf) override {
    while (plain_pos_ >= plain_.size()) {
      if (eof_) co_return std::size_t{0};
      auto rec = co_await next_record();
      if (!rec) co_return tl::unexpected(rec.error());
      if (rec->type == RecordType::kEnd) {
        eof_ = true;
        co_return std::size_t{0};
      }
      if (rec->type != RecordType::kData) {
        fail_stream("unexpected hello record after setup");
        co_return fail("e2e_bad_record", "unexpected hello record after setup");
      }
      plain_ = rec->data;  // valid until the next feed (only after it is consumed)
      plain_pos_ = 0;
    }
    const std::size_t n = std::min(buf.size(), plain_.size() - plain_pos_);
    std::memcpy(buf.data(), plain_.data() + plain_pos_, n);
    plain_pos_ += n;
    bytes_in_ += n;
    co_return n;
  }

  asio::awaitable<Result<void>> write(asio::const_buffer buf) override {
    const auto* p = static_cast<const std::uint8_t*>(buf.data());
    std::size_t left = buf.size();
    while (left > 0) {
      wbuf_.clear();
      while (left > 0 && wbuf_.size() < kWriteBatch) {
        const std::size_t n = std::min(left, kMaxRecordPlaintext);
        tx_.seal(RecordType::kData, {p, n}, wbuf_);
        p += n;
        left -= n;
        bytes_out_ += n;
      }
      auto w = co_await st_->write(asio::buffer(wbuf_));
      if (!w) co_return w;
    }
    co_return Result<void>{};
  }

  asio::awaitable<Result<void>> close_write() override {
    wbuf_.clear();
    tx_.seal(RecordType::kEnd, {}, wbuf_);
    auto w = co_await st_->write(asio::buffer(wbuf_));
    if (!w) co_return w;
    done_ = true;
    co_return st_->close_write();
  }

 private:
  void fail_stream(const std::string& why) {
    done_ = true;
    st_->reset(fabric::ErrorCode::kProtocolError, why);
  }
  asio::awaitable<Result<RecordOpener::Record>> next_record() {
    for (;;) {
      auto r = rx_.next();
      if (!r) {
        fail_stream(r.error().message);
        co_return tl::unexpected(r.error());
      }
      if (*r) co_return **r;
      if (rbuf_.empty()) rbuf_.resize(kReadChunk);
      auto n = co_await st_->read_some(asio::buffer(rbuf_));
      if (!n) co_return tl::unexpected(n.error());
      if (*n == 0) {
        fail_stream("route ended without an end record");
        co_return fail("e2e_truncated", "route ended without an end record (truncated)");
      }
      rx_.feed({rbuf_.data(), *n});
    }
  }

  RecordSealer tx_;
  RecordOpener rx_;
  std::vector<std::uint8_t> rbuf_;
  std::string wbuf_;
  std::string_view plain_;
  std::size_t plain_pos_ = 0;
  bool eof_ = false;
};

// A direct route (entry -> exit, no relay): the fabric session between the two ends is already
// mutually authenticated TLS between exactly these nodes, so payload goes onto the stream as is
// (no second encryption layer) and the stream's own end (FIN) is the half-close.
class DirectChannel final : public StreamChannel {
 public:
  DirectChannel(std::shared_ptr<Stream> st, Lease lease, std::string leftover, Json hello)
      : StreamChannel(std::move(st), std::move(lease), std::move(hello)),
        leftover_(std::move(leftover)) {}
  asio::awaitable<Result<void>> answer(const Json& reply) override {
    co_return co_await write_message(*st_, reply);
  }
  asio::awaitable<Result<std::size_t>> read_some(asio::mutable_buffer buf) override {
    if (leftover_pos_ < leftover_.size()) {
      const std::size_t n = std::min(buf.size(), leftover_.size() - leftover_pos_);
      std::memcpy(buf.data(), leftover_.data() + leftover_pos_, n);
      leftover_pos_ += n;
      bytes_in_ += n;
      co_return n;
    }
    auto n = co_await st_->read_some(buf);
    if (n) bytes_in_ += *n;
    co_return n;
  }
  asio::awaitable<Result<void>> write(asio::const_buffer buf) override {
    auto w = co_await st_->write(buf);
    if (w) bytes_out_ += buf.size();
    co_return w;
  }
  asio::awaitable<Result<void>> close_write() override {
    done_ = true;
    co_return st_->close_write();
  }

 private:
  std::string leftover_;
  std::size_t leftover_pos_ = 0;
};

// The node thread's two-level loop (rap/common/priority.h): whether run_prioritised() drives it,
// how many bulk batches waited for interactive work, and the deepest that queue has been.
Json scheduler_status(const asio::any_io_executor& ex) {
  const auto s = low_priority_stats(ex);
  return Json{{"prioritised", s.driven},
              {"deferred", s.deferred},
              {"max_queue", s.max_depth},
              {"cpu_yields", s.cpu_yields}};
}

// Copies `from` to `to` until EOF (then half-closes `to`) or an error (then resets both).
asio::awaitable<std::uint64_t> splice(
    std::shared_ptr<Stream> from, std::shared_ptr<Stream> to,
    const std::function<void(std::span<const std::uint8_t>)>& tap) {
  std::vector<std::uint8_t> buf(kReadChunk);
  std::uint64_t total = 0;
  for (;;) {
    auto n = co_await from->read_some(asio::buffer(buf));
    if (!n) {
      to->reset(fabric::ErrorCode::kCancel, "previous hop: " + n.error().message);
      break;
    }
    if (*n == 0) {
      (void)to->close_write();
      break;
    }
    total += *n;
    if (tap) tap({buf.data(), *n});
    if (auto w = co_await to->write(asio::buffer(buf.data(), *n)); !w) {
      from->reset(fabric::ErrorCode::kCancel, "next hop: " + w.error().message);
      break;
    }
    // Stream reads and writes complete without suspending while data and credit last: give
    // the thread back after each chunk, bulk routes at low priority (rap/common/priority.h).
    co_await rap::yield(from->info().traffic_class == fabric::TrafficClass::kBulk);
  }
  co_return total;
}

}  // namespace

// Resets `st` unless disarmed before `after`: bounds every setup phase.
class RouteDeadline {
 public:
  RouteDeadline(const asio::any_io_executor& ex, std::shared_ptr<Stream> st,
                std::chrono::seconds after)
      : timer_(std::make_shared<asio::steady_timer>(ex, after)) {
    timer_->async_wait([st = std::move(st)](const boost::system::error_code& ec) {
      if (!ec) st->reset(fabric::ErrorCode::kCancel, "route setup timed out");
    });
  }
  ~RouteDeadline() { timer_->cancel(); }
  void disarm() { timer_->cancel(); }
  RouteDeadline(const RouteDeadline&) = delete;
  RouteDeadline& operator=(const RouteDeadline&) = delete;

 private:
  std::shared_ptr<asio::steady_timer> timer_;
};

Result<std::unique_ptr<MeshNode>> MeshNode::create(asio::any_io_executor ex,
                                                   const crypto::NodeCredentials& creds,
                                                   MeshOptions options, const Clock& clock,
                                                   Random& random) {
  auto key = crypto::Ed25519Key::from_pem(creds.key_pem);
  if (!key) return tl::unexpected(key.error());
  auto fabric = fabric::FabricNode::create(ex, creds, options.session, clock);
  if (!fabric) return tl::unexpected(fabric.error());
  return std::unique_ptr<MeshNode>(new MeshNode(std::move(ex), std::move(*fabric), std::move(*key),
                                                std::move(options), clock, random));
}

MeshNode::MeshNode(asio::any_io_executor ex, std::unique_ptr<fabric::FabricNode> fabric,
                   crypto::Ed25519Key key, MeshOptions options, const Clock& clock, Random& random)
    : ex_(std::move(ex)),
      fabric_(std::move(fabric)),
      key_(std::move(key)),
      options_(std::move(options)),
      clock_(clock),
      random_(random) {
  config_.trust.node_id = fabric_->identity().node_id;
  config_.trust.cluster_id = fabric_->identity().cluster_id;
  fabric_->register_service(
      kRouteService, [this](std::shared_ptr<Stream> st) { return on_route_stream(std::move(st)); });
}

MeshNode::~MeshNode() = default;

const std::string& MeshNode::node_id() const {
  return fabric_->identity().node_id;
}

Result<std::uint16_t> MeshNode::start() {
  if (!options_.fabric_listen.empty()) {
    std::string host;
    std::uint16_t port = 0;
    if (!split_host_port(options_.fabric_listen, host, port))
      return fail("bad_config", "fabric_listen must be ip:port");
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(host, ec);
    if (ec) return fail("bad_config", "fabric_listen: " + host + " is not an IP address");
    auto p = fabric_->listen(fabric::CarrierKind::kTls, {addr, port});
    if (!p) return tl::unexpected(p.error());
    port_ = *p;
  }
  tick_ = std::make_shared<asio::steady_timer>(ex_);
  asio::co_spawn(ex_, peer_loop(), asio::detached);
  return port_;
}

void MeshNode::stop(const std::string& reason, bool drain) {
  stopped_ = true;
  if (tick_) tick_->cancel();
  const Error stopping{"node_stopping", reason};
  for (auto& [id, w] : std::map(flows_))
    if (auto f = w.lock()) f->fail(stopping);
  flows_.clear();
  fabric_->stop(reason, drain);
}

void MeshNode::serve_lane(MeshNode& lane) {
  fabric_->serve_lane(lane.lane(), [to = &lane](std::unique_ptr<fabric::Carrier> c) {
    if (auto r = c->rebind(to->ex_); !r) {
      spdlog::warn("mesh: lane {} hand-over failed: {}", to->lane(), r.error().message);
      c->close();
      return;
    }
    asio::post(to->ex_, [to, c = std::move(c)]() mutable { to->fabric_->adopt(std::move(c)); });
  });
}

std::uint64_t MeshNode::lane_handoffs() const {
  return fabric_->lane_handoffs();
}

std::string MeshNode::advertised_endpoint() const {
  if (!options_.fabric_advertise.empty()) return options_.fabric_advertise;
  if (options_.fabric_listen.empty()) return {};
  std::string host;
  std::uint16_t port = 0;
  if (!split_host_port(options_.fabric_listen, host, port)) return {};
  if (host == "0.0.0.0" || host == "::") return {};  // nothing a peer could dial
  return fmt::format("{}:{}", host, port_ != 0 ? port_ : port);
}

void MeshNode::update(MeshConfig config) {
  config.trust.node_id = node_id();
  config.trust.cluster_id = fabric_->identity().cluster_id;
  // Revocations take effect at once: refuse new handshakes, close existing sessions.
  for (const auto& n : config.trust.revocations.node_ids) {
    fabric_->revocations()->revoke_node(n);
    if (revoked_.insert(n).second) {
      const auto closed = fabric_->close_sessions_with(n, "peer node revoked");
      if (closed > 0) {
        spdlog::warn("mesh: closed {} session(s) with revoked node {}", closed, n);
        counters_["sessions_closed_revoked"] += closed;
      }
    }
  }
  for (auto s : config.trust.revocations.serials) fabric_->revocations()->revoke_serial(s);
  std::set<std::string> keep;
  for (const auto& p : config.peers) keep.insert(p.id);
  std::erase_if(peers_, [&](const auto& kv) { return !keep.contains(kv.first); });
  config_ = std::move(config);
}

bool MeshNode::should_dial(const MeshPeer& peer) const {
  if (peer.fabric_endpoint.empty()) return false;
  if (advertised_endpoint().empty()) return true;  // we cannot be dialed: we dial
  const bool me_mesh = is_mesh(config_.roles);
  const bool peer_mesh = is_mesh(peer.roles);
  if (!me_mesh) return peer_mesh;  // exits and services dial the mesh
  if (!peer_mesh) return false;    // they dial us
  return node_id() < peer.id;      // one session per pair: the smaller id dials
}

double MeshNode::score(const MeshPeer& peer, PeerState& st, TimePoint now) const {
  std::erase_if(st.recent_failures,
                [&](TimePoint t) { return now - t > std::chrono::minutes(10); });
  double role = 50;
  if (std::find(peer.roles.begin(), peer.roles.end(), "relay-node") != peer.roles.end()) {
    role = 0;
  } else if (std::find(peer.roles.begin(), peer.roles.end(), "entry-node") != peer.roles.end()) {
    role = 20;
  }
  // Path quality as the route planner weighs it (rap/common/path_cost.h); 50 ms when unmeasured.
  return (st.rtt_ms >= 0 ? hop_cost_ms(st.rtt_ms, st.jitter_ms, st.retransmit_rate)
                         : 50.0 + hop_cost_ms(0, 0, st.retransmit_rate)) +
         200.0 * static_cast<double>(st.recent_failures.size()) + role;
}

asio::awaitable<void> MeshNode::peer_loop() {
  auto tick = tick_;
  while (!stopped_) {
    const auto now = clock_.now();
    const std::size_t budget_total =
        options_.max_active != 0 ? options_.max_active : (is_mesh(config_.roles) ? 12 : 4);
    for (const auto& [peer_id, h] : session_health()) {
      if (auto it = peers_.find(peer_id); it != peers_.end()) {
        it->second.rtt_ms = h.rtt_ms;
        it->second.jitter_ms = h.jitter_ms;
        const double secs = std::chrono::duration<double>(options_.dial_interval).count();
        const auto delta = h.tcp_retransmits >= it->second.retransmits
                               ? h.tcp_retransmits - it->second.retransmits
                               : 0;
        it->second.retransmit_rate = secs > 0 ? static_cast<double>(delta) / secs : 0;
        it->second.retransmits = h.tcp_retransmits;
      }
    }
    std::size_t connected = 0;
    std::vector<std::pair<double, const MeshPeer*>> ranked;
    for (const auto& peer : config_.peers) {
      auto& st = peers_[peer.id];
      st.score = score(peer, st, now);
      if (revoked_.contains(peer.id)) {
        st.state = "revoked";
        st.tier = "cold";
        st.reason = "listed in the revocation list";
        continue;
      }
      if (fabric_->session_to(peer.id)) {
        if (st.state != "connected") st.failures = 0;
        st.state = "connected";
        st.tier = "active";
        st.reason = fmt::format("session up (score {:.1f})", st.score);
        connected++;
        continue;
      }
      if (!should_dial(peer)) {
        // Neither side listens: no session is possible (both behind NAT); bootstrap only.
        const bool cold = peer.fabric_endpoint.empty() && advertised_endpoint().empty();
        st.state = cold ? "cold" : "waiting";
        st.tier = cold ? "cold" : "warm";
        st.reason = cold ? "neither side accepts sessions (both dial out only)"
                    : peer.fabric_endpoint.empty() ? "no endpoint: it dials us"
                                                   : "it dials us (pairing rule)";
        continue;
      }
      ranked.emplace_back(st.score, &peer);
    }
    std::sort(ranked.begin(), ranked.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    const std::size_t budget = budget_total > connected ? budget_total - connected : 0;
    for (std::size_t i = 0; i < ranked.size(); ++i) {
      const MeshPeer& peer = *ranked[i].second;
      auto& st = peers_[peer.id];
      if (i >= budget) {
        if (st.state != "dialing") st.state = "warm";
        st.tier = "warm";
        st.reason = fmt::format("candidate #{} (score {:.1f}); active budget {} is full", i + 1,
                                st.score, budget_total);
        continue;
      }
      st.tier = "active";
      if (st.state == "dialing" || now < st.next_attempt) continue;
      st.state = "dialing";
      st.reason =
          fmt::format("best candidate #{} of {} (score {:.1f})", i + 1, ranked.size(), st.score);
      asio::co_spawn(ex_, dial(peer), asio::detached);
    }
    tick->expires_after(options_.dial_interval);
    co_await tick->async_wait(kTuple);
  }
}

asio::awaitable<void> MeshNode::dial(MeshPeer peer) {
  std::string host;
  std::uint16_t port = 0;
  Result<std::shared_ptr<fabric::Session>> s = fail("bad_endpoint", "bad peer endpoint");
  if (split_host_port(peer.fabric_endpoint, host, port)) {
    s = co_await fabric_->connect(fabric::CarrierKind::kTls, host, port, options_.lane);
  }
  if (stopped_) co_return;
  auto& st = peers_[peer.id];
  if (s && (*s)->peer().node_id != peer.id) {
    (*s)->close("endpoint answered as another node");
    s = fail("wrong_peer",
             "endpoint " + peer.fabric_endpoint + " answered as node " + (*s)->peer().node_id);
  }
  if (s) {
    st.state = "connected";
    st.failures = 0;
    st.last_error.clear();
    counters_["dials_ok"]++;
    spdlog::info("mesh: session up with peer {} at {}", peer.id, peer.fabric_endpoint);
    co_return;
  }
  st.failures++;
  st.recent_failures.push_back(clock_.now());
  if (st.recent_failures.size() > 16) st.recent_failures.erase(st.recent_failures.begin());
  st.state = "backoff";
  st.last_error = s.error().code + ": " + s.error().message;
  counters_["dials_failed"]++;
  auto backoff = std::min<std::chrono::milliseconds>(
      std::chrono::milliseconds(500) * (1u << std::min<std::uint32_t>(st.failures, 6)),
      std::chrono::seconds(30));
  // A peer without this lane (an older agent, or lanes off) will not grow one soon; its routes
  // run on the default lane meanwhile (PROTOCOL.md §15).
  if (s.error().code == "lane_unsupported") backoff = std::chrono::minutes(5);
  st.next_attempt = clock_.now() + backoff;
  if (st.failures <= 3 || st.failures % 20 == 0)
    spdlog::warn("mesh: dial peer {} at {} failed ({}), retry in {} ms", peer.id,
                 peer.fabric_endpoint, st.last_error, backoff.count());
}

asio::awaitable<void> MeshNode::on_route_stream(std::shared_ptr<Stream> st) {
  RouteDeadline deadline(ex_, st, options_.handshake_timeout);
  FrameReader buf(kMaxControlMessage);
  auto refuse = [&](const Error& e) -> asio::awaitable<void> {
    counters_["refused_" + e.code]++;
    spdlog::warn("mesh: route refused from={} code={} reason=\"{}\"", st->peer_node_id(), e.code,
                 e.message);
    (void)co_await write_message(*st, error_json(e));
    (void)st->close_write();
  };
  auto open = co_await read_message(*st, buf);
  if (!open) {
    counters_["refused_bad_open"]++;
    st->reset(fabric::ErrorCode::kProtocolError, open.error().message);
    co_return;
  }
  auto lw = open->find("lease");
  auto hw = open->find("hop");
  if (lw == open->end() || !lw->is_string() || hw == open->end() || !hw->is_number_unsigned()) {
    const Error e_{"bad_message", "ROUTE_OPEN needs lease and hop"};
    co_await refuse(e_);
    co_return;
  }
  // "resume": the entry moves a flow admitted earlier (§14.7): a lease past expiry may serve that
  // under its offline horizon, and the exit checks the flow (serve_exit).
  const auto rsw = open->find("resume");
  const bool resume = rsw != open->end() && rsw->is_boolean() && rsw->get<bool>();
  auto lease = verify_lease(lw->get<std::string>(), config_.trust, options_.wall_clock(), resume);
  if (!lease) {
    co_await refuse(lease.error());
    co_return;
  }
  if (lease->renewed_offline)
    counters_[lease->resume_only ? "leases_renewed_for_resume" : "leases_renewed_offline"]++;
  if (auto own = check_owner(*lease); !own) {
    co_await refuse(own.error());
    co_return;
  }
  const auto hop = hw->get<std::uint64_t>();
  if (hop == 0 || hop >= lease->hops.size() || lease->hops[hop].node != node_id()) {
    const Error e_{"not_on_route", "this node is not hop " + std::to_string(hop)};
    co_await refuse(e_);
    co_return;
  }
  if (lease->hops[hop - 1].node != st->peer_node_id()) {
    const Error e_{"wrong_previous_hop",
                   "route stream came from a node the lease does "
                   "not name as the previous hop"};
    co_await refuse(e_);
    co_return;
  }
  if (!lease->allows(fabric::to_string(st->info().traffic_class))) {
    const Error e_{"class_not_allowed", "the lease does not allow this traffic class"};
    co_await refuse(e_);
    co_return;
  }
  if (hop + 1 < lease->hops.size()) {
    std::string leftover(buf.rest());  // named: GCC 12 mishandles temporaries in co_await
    co_await relay(st, *lease, hop, std::move(*open), std::move(leftover), deadline);
    co_return;
  }
  // Exit.
  if (!exit_handler_) {
    const Error e_{"no_exit_service", "this node runs no exit service"};
    co_await refuse(e_);
    co_return;
  }
  if (lease->hops.size() == 2) {
    // Direct route: the entry's hello rides in ROUTE_OPEN; the exit service's answer is the
    // only reply (or a refusal above).
    auto h = open->find("hello");
    if (h == open->end() || !h->is_object() || open->contains("e2e")) {
      const Error e_{"bad_message", "a direct ROUTE_OPEN carries hello and no e2e"};
      co_await refuse(e_);
      co_return;
    }
    deadline.disarm();
    auto direct = std::make_unique<DirectChannel>(st, *lease, std::string(buf.rest()), *h);
    co_await serve_exit(std::move(direct));
    co_return;
  }
  auto offer = offer_of(*open);
  if (!offer) {
    co_await refuse(offer.error());
    co_return;
  }
  auto resp = e2e_respond(*lease, *offer, key_, random_);
  if (!resp) {
    co_await refuse(resp.error());
    co_return;
  }
  const Json ok_{{"ok", true},
                 {"e2e", {{"pub", resp->second.pub_hex}, {"sig", resp->second.sig_hex}}}};
  if (!co_await write_message(*st, ok_)) co_return;
  auto ch = std::make_unique<Channel>(st, resp->first, *lease, std::string(buf.rest()));
  auto hello = co_await ch->read_hello();
  if (!hello) {
    counters_["refused_" + hello.error().code]++;
    co_return;
  }
  deadline.disarm();  // the exit service bounds its own set-up (target connect)
  co_await serve_exit(std::move(ch));
}

asio::awaitable<void> MeshNode::serve_exit(std::unique_ptr<RouteChannel> ch) {
  const auto fw = ch->hello().find("flow");
  const bool resume_only = ch->lease().resume_only;
  if (fw == ch->hello().end()) {
    if (resume_only) {
      const Error e_{"lease_expired", "the route lease expired (it may only resume a flow)"};
      counters_["refused_" + e_.code]++;
      (void)co_await ch->answer(error_json(e_));
      (void)co_await ch->close_write();
      co_return;
    }
    counters_["routes_exited"]++;
    active_routes_++;
    co_await exit_handler_(std::move(ch));
    active_routes_--;
    co_return;
  }
  auto refuse = [&](const Error& e) -> asio::awaitable<void> {
    counters_["refused_" + e.code]++;
    spdlog::warn("mesh: flow refused route={} code={} reason=\"{}\"", ch->lease().id, e.code,
                 e.message);
    const Json err = error_json(e);
    (void)co_await ch->answer(err);
    (void)co_await ch->close_write();
  };
  const Json& f = *fw;
  const auto idw = f.is_object() ? f.find("id") : f.end();
  if (!f.is_object() || idw == f.end() || !idw->is_string() ||
      idw->get_ref<const std::string&>().size() != 32) {
    const Error e_{"bad_message", "flow needs a 32-hex-digit id"};
    co_await refuse(e_);
    co_return;
  }
  const std::string id = idw->get<std::string>();
  if (!std::all_of(id.begin(), id.end(), ::isxdigit)) {
    const Error e_{"bad_message", "flow needs a 32-hex-digit id"};
    co_await refuse(e_);
    co_return;
  }
  const auto rw = f.find("resume");
  if (rw != f.end() && rw->is_boolean() && rw->get<bool>()) {
    const auto rx = f.find("rx");
    if (rx == f.end() || !rx->is_number_unsigned()) {
      const Error e_{"bad_message", "a flow resume needs rx"};
      co_await refuse(e_);
      co_return;
    }
    auto it = flows_.find(id);
    auto flow = it == flows_.end() ? nullptr : it->second.lock();
    if (!flow || flow->side() != detail::Flow::Side::kExit) {
      const Error e_{"flow_unknown", "no such flow here (it ended, or this exit restarted)"};
      co_await refuse(e_);
      co_return;
    }
    // Only the flow's own entry may move it, and only onto a route of the same grant.
    if (ch->lease().grant != flow->lease().grant || ch->lease().org != flow->lease().org ||
        ch->lease().hops.front().node != flow->lease().hops.front().node) {
      const Error e_{"flow_mismatch", "the resume's lease is not the flow's grant and entry"};
      co_await refuse(e_);
      co_return;
    }
    const std::uint64_t peer_rx = rx->get<std::uint64_t>();
    auto r = co_await flow->resume_on(std::move(ch), peer_rx);
    if (!r)
      spdlog::warn("mesh: flow {} resume failed: {} {}", id, r.error().code, r.error().message);
    co_return;
  }
  if (resume_only) {
    const Error e_{"lease_expired", "the route lease expired (it may only resume a flow)"};
    co_await refuse(e_);
    co_return;
  }
  if (flows_.contains(id)) {
    const Error e_{"flow_exists", "a flow with this id is open"};
    co_await refuse(e_);
    co_return;
  }
  Json hello = ch->hello();
  hello.erase("flow");
  const auto cls = fabric::TrafficClass::kBulk;  // unused on the exit side
  auto flow = std::make_shared<detail::Flow>(*this, detail::Flow::Side::kExit, id, std::move(ch),
                                             std::vector<Lease>{}, cls, std::move(hello));
  if (auto w = f.find("window"); w != f.end() && w->is_number_unsigned())
    flow->set_peer_window(w->get<std::uint64_t>());
  flows_[id] = flow;
  flow->start_pump();
  counters_["routes_exited"]++;
  counters_["flows_exited"]++;
  active_routes_++;
  co_await exit_handler_(std::make_unique<detail::FlowHandle>(flow));
  active_routes_--;
}

asio::awaitable<Result<std::unique_ptr<RouteChannel>>> MeshNode::open_flow(
    std::vector<Lease> leases, fabric::TrafficClass cls, Json hello) {
  std::array<std::uint8_t, 16> raw{};
  random_.fill(raw);
  std::string id;
  for (auto b : raw) id += fmt::format("{:02x}", b);
  hello["flow"] = Json{{"id", id}, {"resume", false}, {"window", options_.flow_resend_limit}};
  Error last{"no_route", "no usable route lease"};
  // Routes through a relay that failed recently go last (demoted, still a fallback).
  std::stable_partition(leases.begin(), leases.end(),
                        [&](const Lease& l) { return !recently_failed(l); });
  for (const auto& lease : leases) {
    auto r = co_await open_route(lease, cls, hello);
    if (!r) {
      last = r.error();
      spdlog::info("mesh: route {} ({}) failed: {} {}", lease.id, lease.role, last.code,
                   last.message);
      const bool next = last.code == "next_hop_unreachable" || last.code == "next_hop_revoked" ||
                        last.code == "route_closed" || last.code == "session_closed" ||
                        last.code == "stream_reset" || last.code == "e2e_truncated";
      if (!next) break;
      continue;
    }
    Json answer = (*r)->hello();
    const auto fa = answer.find("flow");
    if (fa == answer.end() || !fa->is_object()) {
      (*r)->reset("exit does not speak flows");
      co_return fail("flow_unsupported", "the exit does not support resumable flows");
    }
    std::optional<std::uint64_t> window;
    if (auto w = fa->find("window"); w != fa->end() && w->is_number_unsigned())
      window = w->get<std::uint64_t>();
    answer.erase("flow");
    auto flow = std::make_shared<detail::Flow>(*this, detail::Flow::Side::kEntry, id, std::move(*r),
                                               leases, cls, std::move(answer));
    if (window) flow->set_peer_window(*window);
    flows_[id] = flow;
    flow->start_pump();
    counters_["flows_opened"]++;
    co_return std::unique_ptr<RouteChannel>(std::make_unique<detail::FlowHandle>(flow));
  }
  co_return tl::unexpected(last);
}

void MeshNode::note_route_failure(const Lease& lease) {
  const auto now = clock_.now();
  for (std::size_t i = 1; i + 1 < lease.hops.size(); ++i) failed_relays_[lease.hops[i].node] = now;
}

bool MeshNode::recently_failed(const Lease& lease) const {
  constexpr auto kDemotion = std::chrono::seconds(30);
  const auto now = clock_.now();
  for (std::size_t i = 1; i + 1 < lease.hops.size(); ++i) {
    auto it = failed_relays_.find(lease.hops[i].node);
    if (it != failed_relays_.end() && now - it->second < kDemotion) return true;
  }
  return false;
}

void MeshNode::flow_switched(const std::string& flow, const std::string& from,
                             const std::string& to, const std::string& reason,
                             const std::string& detail, double ms) {
  counters_["flow_switches"]++;
  counters_["flow_switch_" + reason]++;
  switches_.push_back(Json{{"at", std::chrono::duration_cast<std::chrono::seconds>(
                                      options_.wall_clock().time_since_epoch())
                                      .count()},
                           {"flow", flow},
                           {"from", from},
                           {"to", to},
                           {"reason", reason},
                           {"detail", detail.substr(0, 200)},
                           {"ms", std::round(ms * 10) / 10}});
  if (switches_.size() > 32) switches_.erase(switches_.begin());
  recovery_ms_.push_back(ms);
  if (recovery_ms_.size() > 256) recovery_ms_.erase(recovery_ms_.begin());
}

asio::awaitable<void> MeshNode::relay(std::shared_ptr<Stream> in, const Lease& lease,
                                      std::size_t hop, Json open, std::string leftover,
                                      RouteDeadline& setup) {
  const std::string& next = lease.hops[hop + 1].node;
  auto refuse = [&](const Error& e) -> asio::awaitable<void> {
    counters_["refused_" + e.code]++;
    spdlog::warn("mesh: relay refused route={} code={} reason=\"{}\"", lease.id, e.code, e.message);
    (void)co_await write_message(*in, error_json(e));
    (void)in->close_write();
  };
  if (revoked_.contains(next)) {
    const Error e_{"next_hop_revoked", "the next hop is revoked"};
    co_await refuse(e_);
    co_return;
  }
  auto session = fabric_->session_to(next);
  if (!session) {
    const Error e_{"next_hop_unreachable", "no fabric session with the next hop"};
    co_await refuse(e_);
    co_return;
  }
  auto out = session->open_stream(kRouteService, in->info().traffic_class, 0);
  if (!out) {
    co_await refuse(out.error());
    co_return;
  }
  open["hop"] = hop + 1;
  if (!co_await write_message(**out, open)) co_return;
  if (!leftover.empty() && !co_await (*out)->write(asio::buffer(leftover))) co_return;
  // Set up: the route lives as long as its ends keep it (the next hop's answer travels back
  // through the splice).
  setup.disarm();
  counters_["routes_relayed"]++;
  active_relays_++;
  using namespace asio::experimental::awaitable_operators;
  auto [up, down] =
      co_await (splice(in, *out, options_.relay_tap) && splice(*out, in, options_.relay_tap));
  relay_bytes_ += up + down;
  active_relays_--;
}

asio::awaitable<Result<std::unique_ptr<RouteChannel>>> MeshNode::open_route(
    const Lease& lease, fabric::TrafficClass cls, Json hello) {
  if (lease.hops.size() < 2 || lease.hops.front().node != node_id())
    co_return fail("not_entry", "this node is not the lease's entry");
  if (grant_revoked(lease.grant)) {
    counters_["refused_grant_revoked"]++;
    co_return fail("grant_revoked", "this access grant was revoked (the session was terminated)");
  }
  if (auto own = check_owner(lease); !own) {
    counters_["refused_" + own.error().code]++;
    co_return tl::unexpected(own.error());
  }
  if (!lease.allows(fabric::to_string(cls)))
    co_return fail("class_not_allowed", "the lease does not allow this traffic class");
  auto session = fabric_->session_to(lease.hops[1].node);
  if (!session) {
    counters_["open_failed_next_hop_unreachable"]++;
    co_return fail("next_hop_unreachable", "no fabric session with the route's next hop");
  }
  auto st = session->open_stream(kRouteService, cls, 0);
  if (!st) co_return tl::unexpected(st.error());
  RouteDeadline deadline(ex_, *st, options_.handshake_timeout);
  // A flow resume says so in ROUTE_OPEN (the hello itself is end-to-end encrypted): hops then
  // accept the lease past expiry under its offline horizon (lease.h).
  const auto hf = hello.find("flow");
  const bool resume = hf != hello.end() && hf->is_object() && hf->contains("resume") &&
                      (*hf)["resume"].is_boolean() && (*hf)["resume"].get<bool>();
  if (lease.hops.size() == 2) {
    // Direct: the session's peer is the lease's exit (checked by its certificate), no relay can
    // see the payload, so no second encryption layer; one round trip.
    if ((*st)->peer_node_id() != lease.hops[1].node)
      co_return fail("wrong_peer", "session peer is not the lease's exit");
    Json direct_open{{"v", 1}, {"lease", lease.wire}, {"hop", 1}, {"hello", hello}};
    if (resume) direct_open["resume"] = true;
    if (auto w = co_await write_message(**st, direct_open); !w) co_return tl::unexpected(w.error());
    FrameReader dbuf(kMaxControlMessage);
    auto ans = co_await read_message(**st, dbuf);
    if (!ans) co_return tl::unexpected(ans.error());
    if (auto e = ans->find("error"); e != ans->end() && e->is_object()) {
      counters_["open_refused"]++;
      (*st)->reset(fabric::ErrorCode::kCancel, "refused");
      co_return fail(e->value("code", std::string("route_refused")),
                     e->value("message", std::string()));
    }
    deadline.disarm();
    counters_["routes_opened"]++;
    co_return std::unique_ptr<RouteChannel>(
        std::make_unique<DirectChannel>(*st, lease, std::string(dbuf.rest()), std::move(*ans)));
  }
  E2eInitiator init(lease, key_, random_);
  Json open{{"v", 1},
            {"lease", lease.wire},
            {"hop", 1},
            {"e2e", {{"pub", init.offer().pub_hex}, {"sig", init.offer().sig_hex}}}};
  if (resume) open["resume"] = true;
  if (auto w = co_await write_message(**st, open); !w) co_return tl::unexpected(w.error());
  FrameReader buf(kMaxControlMessage);
  auto reply = co_await read_message(**st, buf);
  if (!reply) co_return tl::unexpected(reply.error());
  if (auto e = reply->find("error"); e != reply->end() && e->is_object()) {
    counters_["open_refused"]++;
    co_return fail(e->value("code", std::string("route_refused")),
                   e->value("message", std::string()));
  }
  auto answer = offer_of(*reply);
  if (!answer) co_return tl::unexpected(answer.error());
  auto keys = init.finish(lease, *answer);
  if (!keys) {
    (*st)->reset(fabric::ErrorCode::kAuthFailed, keys.error().message);
    co_return tl::unexpected(keys.error());
  }
  auto ch = std::make_unique<Channel>(*st, *keys, lease, std::string(buf.rest()));
  if (auto w = co_await ch->send_hello(hello); !w) co_return tl::unexpected(w.error());
  auto ans = co_await ch->read_hello();
  if (!ans) co_return tl::unexpected(ans.error());
  if (auto e = ans->find("error"); e != ans->end() && e->is_object()) {
    counters_["open_refused"]++;
    ch->reset("refused by the exit");
    co_return fail(e->value("code", std::string("route_refused")),
                   e->value("message", std::string()));
  }
  counters_["routes_opened"]++;
  co_return std::unique_ptr<RouteChannel>(std::move(ch));
}

std::size_t MeshNode::revoke_grants(const std::vector<RevokedGrant>& grants) {
  const auto now = options_.wall_clock();
  std::map<std::string, config::WallTime> next;
  for (const auto& g : grants)
    if (!g.id.empty() && g.expires_at > now) next[g.id] = g.expires_at;
  revoked_grants_ = std::move(next);
  std::size_t cut = 0;
  const Error revoked{"grant_revoked", "the access grant was revoked (session terminated)"};
  for (auto& [id, w] : std::map(flows_)) {
    auto f = w.lock();
    if (!f || !revoked_grants_.contains(f->lease().grant)) continue;
    spdlog::info("mesh: flow {} of revoked grant {} cut", id, f->lease().grant);
    f->end(revoked);
    counters_["flows_revoked"]++;
    ++cut;
  }
  return cut;
}

Result<void> MeshNode::check_owner(const Lease& lease) const {
  // A customer-managed node carries its own organization's routes only, as entry, relay or exit,
  // whatever a lease says (the planner never routes others through it; this holds if it did).
  if (!config_.owner_org.empty() && lease.org != config_.owner_org)
    return fail("foreign_organization",
                "this node belongs to another organization and carries only its own routes");
  return {};
}

bool MeshNode::grant_revoked(const std::string& grant) const {
  auto it = revoked_grants_.find(grant);
  return it != revoked_grants_.end() && it->second > options_.wall_clock();
}

std::size_t MeshNode::drop_sessions_with(const std::string& peer, const std::string& reason) {
  counters_["sessions_dropped"]++;
  return fabric_->close_sessions_with(peer, reason);
}

std::map<std::string, MeshNode::PeerHealth> MeshNode::session_health() const {
  std::map<std::string, PeerHealth> out;
  for (const auto& s : fabric_->snapshot()) {
    if (s.state != "open") continue;
    PeerHealth h;
    h.rtt_ms = std::round(static_cast<double>(s.stats.rtt_smoothed.count()) / 1e4) / 100;
    h.jitter_ms = std::round(static_cast<double>(s.stats.rtt_var.count()) / 1e4) / 100;
    h.queued_bytes = s.stats.send_queue_bytes;
    for (const auto& [code, n] : s.stats.resets_received) h.resets += n;
    for (const auto& [code, n] : s.stats.resets_sent) h.resets += n;
    if (auto p = peers_.find(s.peer_node); p != peers_.end())
      h.retransmits_per_s = std::round(p->second.retransmit_rate * 10) / 10;
    if (s.transport) {
      h.tcp_retransmits = s.transport->retransmits;
      h.tcp_lost = s.transport->lost;
      h.tcp_rtt_ms = s.transport->rtt_ms;
    }
    out[s.peer_node] = h;
  }
  return out;
}

std::map<std::string, double> MeshNode::session_peers() const {
  std::map<std::string, double> out;
  for (const auto& [peer, h] : session_health()) out[peer] = h.rtt_ms;
  return out;
}

Json MeshNode::status() const {
  Json peers = Json::array();
  const auto health = session_health();
  for (const auto& p : config_.peers) {
    Json e{{"id", p.id}, {"roles", p.roles}, {"endpoint", p.fabric_endpoint}};
    if (auto it = peers_.find(p.id); it != peers_.end()) {
      e["state"] = it->second.state;
      e["tier"] = it->second.tier;
      e["score"] = std::round(it->second.score * 10) / 10;
      e["reason"] = it->second.reason;
      e["failures"] = it->second.failures;
      e["retransmits_per_s"] = std::round(it->second.retransmit_rate * 10) / 10;
      if (!it->second.last_error.empty()) e["last_error"] = it->second.last_error;
    }
    if (auto r = health.find(p.id); r != health.end()) {
      e["rtt_ms"] = r->second.rtt_ms;
      e["jitter_ms"] = r->second.jitter_ms;
      e["queued_bytes"] = r->second.queued_bytes;
      e["stream_resets"] = r->second.resets;
      e["tcp_retransmits"] = r->second.tcp_retransmits;
      e["tcp_lost"] = r->second.tcp_lost;
      e["tcp_rtt_ms"] = r->second.tcp_rtt_ms;
    }
    peers.push_back(std::move(e));
  }
  Json counters = Json::object();
  for (const auto& [k, v] : counters_) counters[k] = v;
  Json flows = Json::array();
  std::size_t resend = 0;
  for (const auto& [id, w] : flows_) {
    auto f = w.lock();
    if (!f) continue;
    resend += f->resend_bytes();
    if (flows.size() < 64) flows.push_back(f->status());
  }
  auto sorted = recovery_ms_;
  std::sort(sorted.begin(), sorted.end());
  auto pct = [&](double q) -> Json {
    if (sorted.empty()) return nullptr;
    return sorted[std::min(sorted.size() - 1,
                           static_cast<std::size_t>(q * static_cast<double>(sorted.size())))];
  };
  Json routing{{"flows", flows.size()},
               {"resend_bytes", resend},
               {"switches", switches_},
               {"recovery_ms", {{"count", sorted.size()}, {"p50", pct(0.5)}, {"p99", pct(0.99)}}}};
  return Json{{"node_id", node_id()},
              {"lane", options_.lane.empty() ? "main" : options_.lane},
              // Incoming sessions this listener handed to a lane's node (PROTOCOL.md §15).
              {"lane_handoffs", fabric_->lane_handoffs()},
              {"open_flows", flows},
              {"route_health", routing},
              {"fabric_endpoint", advertised_endpoint()},
              {"roles", config_.roles},
              // Expired tickets renew from cached policy (lease.h) while this is true.
              {"authority_offline", config_.trust.authority_offline},
              {"sessions", fabric_->session_count()},
              {"peers", peers},
              {"active_routes", active_routes_},
              {"active_relays", active_relays_},
              {"relay_bytes", relay_bytes_},
              {"revoked_grants", revoked_grants_.size()},
              {"scheduler", scheduler_status(ex_)},
              {"counters", counters}};
}

std::string MeshNode::prometheus() const {
  std::string out = fabric_->prometheus();
  out += "# TYPE rap_mesh_events_total counter\n";
  for (const auto& [k, v] : counters_)
    out += fmt::format("rap_mesh_events_total{{event=\"{}\"}} {}\n", k, v);
  out += "# TYPE rap_mesh_active_routes gauge\n";
  out += fmt::format("rap_mesh_active_routes {}\n", active_routes_);
  const auto sched = low_priority_stats(ex_);
  out += "# TYPE rap_mesh_low_priority_deferred_total counter\n";
  out += fmt::format("rap_mesh_low_priority_deferred_total {}\n", sched.deferred);
  out += "# TYPE rap_mesh_low_priority_queue_max gauge\n";
  out += fmt::format("rap_mesh_low_priority_queue_max {}\n", sched.max_depth);
  out += "# TYPE rap_mesh_cpu_yields_total counter\n";
  out += fmt::format("rap_mesh_cpu_yields_total {}\n", sched.cpu_yields);
  out += "# TYPE rap_mesh_active_relays gauge\n";
  out += fmt::format("rap_mesh_active_relays {}\n", active_relays_);
  out += "# TYPE rap_mesh_relay_bytes_total counter\n";
  out += fmt::format("rap_mesh_relay_bytes_total {}\n", relay_bytes_);
  out += "# TYPE rap_mesh_flows gauge\n";
  out += fmt::format("rap_mesh_flows {}\n", flows_.size());
  out += "# TYPE rap_mesh_route_recovery_seconds_last gauge\n";
  out += fmt::format("rap_mesh_route_recovery_seconds_last {}\n",
                     recovery_ms_.empty() ? 0.0 : recovery_ms_.back() / 1000);
  out += "# TYPE rap_mesh_peer_up gauge\n";
  for (const auto& [id, st] : peers_)
    out += fmt::format("rap_mesh_peer_up{{peer=\"{}\"}} {}\n", id, st.state == "connected" ? 1 : 0);
  return out;
}

}  // namespace rap::mesh
