#include "rap/fabric/node.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace rap::fabric {

namespace {
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
}  // namespace

bool parse_carrier_kind(std::string_view s, CarrierKind& out) {
  if (s == "tls") {
    out = CarrierKind::kTls;
    return true;
  }
  if (s == "wss") {
    out = CarrierKind::kWss;
    return true;
  }
  return false;
}

Result<std::unique_ptr<FabricNode>> FabricNode::create(asio::any_io_executor ex,
                                                       const crypto::NodeCredentials& creds,
                                                       SessionConfig base, const Clock& clock) {
  auto rl = std::make_shared<crypto::RevocationList>();
  auto ctx = TlsContext::create(creds, rl);
  if (!ctx) return tl::unexpected(ctx.error());
  auto key = crypto::Ed25519Key::from_pem(creds.key_pem);
  if (!key) return tl::unexpected(key.error());
  return std::unique_ptr<FabricNode>(
      new FabricNode(std::move(ex), *ctx, rl, std::move(*key), std::move(base), clock));
}

FabricNode::FabricNode(asio::any_io_executor ex, std::shared_ptr<TlsContext> ctx,
                       std::shared_ptr<crypto::RevocationList> rl, crypto::Ed25519Key key,
                       SessionConfig base, const Clock& clock)
    : ex_(std::move(ex)),
      ctx_(std::move(ctx)),
      revocations_(std::move(rl)),
      signer_(std::move(key)),
      base_(std::move(base)),
      clock_(clock) {
  base_.node_id = ctx_->local_identity().node_id;
  base_.cluster_id = ctx_->local_identity().cluster_id;
}

void FabricNode::register_service(const std::string& service, StreamHandler handler) {
  services_[service] = std::move(handler);
}

Result<std::uint16_t> FabricNode::listen(CarrierKind kind, const asio::ip::tcp::endpoint& ep) {
  auto acc = std::make_shared<asio::ip::tcp::acceptor>(ex_);
  boost::system::error_code ec;
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return fail("listen_failed",
                ep.address().to_string() + ":" + std::to_string(ep.port()) + ": " + ec.message());
  }
  const auto port = acc->local_endpoint().port();
  acceptors_.push_back(acc);
  asio::co_spawn(ex_, accept_loop(acc, kind), asio::detached);
  spdlog::info("fabric listening carrier={} addr={}:{}", kind == CarrierKind::kTls ? "tls" : "wss",
               ep.address().to_string(), port);
  return port;
}

asio::awaitable<void> FabricNode::accept_loop(std::shared_ptr<asio::ip::tcp::acceptor> acc,
                                              CarrierKind kind) {
  for (;;) {
    auto [ec, sock] = co_await acc->async_accept(kTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acc->is_open()) break;
      spdlog::warn("fabric accept failed: {}", ec.message());
      continue;
    }
    asio::co_spawn(ex_, serve_incoming(std::move(sock), kind), asio::detached);
  }
}

asio::awaitable<void> FabricNode::serve_incoming(asio::ip::tcp::socket sock, CarrierKind kind) {
  std::string remote = "unknown";
  boost::system::error_code ec;
  auto rep = sock.remote_endpoint(ec);
  if (!ec) remote = rep.address().to_string() + ":" + std::to_string(rep.port());
  Result<std::unique_ptr<Carrier>> carrier = fail("unset", "");
  if (kind == CarrierKind::kTls) {
    carrier = co_await tls_accept(ctx_, std::move(sock), kHandshakeTimeout);
  } else {
    carrier = co_await wss_accept(ctx_, std::move(sock), kHandshakeTimeout);
  }
  if (!carrier) {
    spdlog::warn("fabric session refused remote={} code={} reason=\"{}\"", remote,
                 carrier.error().code, carrier.error().message);
    sessions_refused_[carrier.error().code]++;
    co_return;
  }
  if (const auto lane = (*carrier)->lane(); !lane.empty()) {
    // ALPN only agrees on lanes in lanes_ (TlsContext::set_lanes).
    if (auto it = lanes_.find(lane); it != lanes_.end()) {
      lane_handoffs_++;
      it->second(std::move(*carrier));
      co_return;
    }
    sessions_refused_["lane_unsupported"]++;
    (*carrier)->close();
    co_return;
  }
  co_await serve_carrier(std::move(*carrier), std::move(remote));
}

void FabricNode::serve_lane(const std::string& lane, LaneHandler handler) {
  lanes_[lane] = std::move(handler);
  std::vector<std::string> names;
  for (const auto& [name, h] : lanes_) names.push_back(name);
  ctx_->set_lanes(std::move(names));
}

void FabricNode::adopt(std::unique_ptr<Carrier> carrier) {
  std::string remote = carrier->remote_endpoint();
  asio::co_spawn(ex_, serve_carrier(std::move(carrier), std::move(remote)), asio::detached);
}

asio::awaitable<void> FabricNode::serve_carrier(std::unique_ptr<Carrier> carrier,
                                                std::string remote) {
  if (stopped_) {
    carrier->close();
    co_return;
  }
  auto cfg = base_;
  cfg.role = Role::kAcceptor;
  auto s = Session::create(ex_, std::move(carrier), cfg, signer_, clock_);
  auto ok = co_await s->start();
  if (!ok) {
    spdlog::warn("fabric session refused remote={} code={} reason=\"{}\"", remote, ok.error().code,
                 ok.error().message);
    sessions_refused_[ok.error().code]++;
    co_return;
  }
  spdlog::info("fabric session up peer={} remote={} carrier={}", s->peer().node_id, remote,
               s->carrier_kind());
  track(s);
  co_await run_session(s);
}

asio::awaitable<Result<std::shared_ptr<Session>>> FabricNode::connect(CarrierKind kind,
                                                                      std::string host,
                                                                      std::uint16_t port,
                                                                      std::string lane) {
  Result<std::unique_ptr<Carrier>> carrier = fail("unset", "");
  if (kind == CarrierKind::kTls) {
    carrier = co_await tls_connect(ctx_, host, port, kHandshakeTimeout, lane);
  } else if (lane.empty()) {
    carrier = co_await wss_connect(ctx_, host, port, kHandshakeTimeout);
  } else {
    co_return fail("lane_unsupported", "lanes run over TLS carriers only");
  }
  if (!carrier) co_return tl::unexpected(carrier.error());
  if ((*carrier)->lane() != lane) {
    // The listener did not agree on the lane (an older node, or one running a single lane):
    // close before HELLO, so its default lane never sees this connection as a session.
    (*carrier)->close();
    co_return fail("lane_unsupported",
                   host + ":" + std::to_string(port) + " serves no '" + lane + "' lane");
  }
  auto cfg = base_;
  cfg.role = Role::kInitiator;
  auto s = Session::create(ex_, std::move(*carrier), cfg, signer_, clock_);
  auto ok = co_await s->start();
  if (!ok) co_return tl::unexpected(ok.error());
  track(s);
  asio::co_spawn(ex_, run_session(s), asio::detached);
  co_return s;
}

void FabricNode::track(const std::shared_ptr<Session>& s) {
  sessions_established_++;
  std::erase_if(sessions_, [](const std::weak_ptr<Session>& w) { return w.expired(); });
  sessions_.push_back(s);
}

asio::awaitable<void> FabricNode::run_session(std::shared_ptr<Session> s) {
  for (;;) {
    auto st = co_await s->accept();
    if (!st) break;
    auto it = services_.find(st->info().service);
    if (it == services_.end()) {
      st->reset(ErrorCode::kUnknownService, "no service '" + st->info().service + "' on this node");
      continue;
    }
    asio::co_spawn(ex_, it->second(st), asio::detached);
  }
  co_await s->wait_closed();
  const auto st = s->stats();
  for (std::size_t c = 0; c < kClassCount; ++c) {
    closed_tx_.bytes_by_class[c] += st.tx.bytes_by_class[c];
    closed_rx_.bytes_by_class[c] += st.rx.bytes_by_class[c];
  }
  for (std::size_t t = 0; t < kFrameTypeCount; ++t) {
    closed_tx_.frames_by_type[t] += st.tx.frames_by_type[t];
    closed_rx_.frames_by_type[t] += st.rx.frames_by_type[t];
  }
  sessions_closed_++;
  std::erase_if(sessions_, [&](const std::weak_ptr<Session>& w) {
    auto l = w.lock();
    return !l || l == s;
  });
}

void FabricNode::stop(const std::string& reason, bool drain) {
  stopped_ = true;
  for (auto& a : acceptors_) {
    boost::system::error_code ec;
    a->close(ec);
  }
  for (auto& w : sessions_) {
    auto s = w.lock();
    if (!s) continue;
    if (drain) {
      s->goaway(ErrorCode::kShutdown, reason, true);
    } else {
      s->close(reason);
    }
  }
}

std::shared_ptr<Session> FabricNode::session_to(const std::string& node_id) const {
  for (auto it = sessions_.rbegin(); it != sessions_.rend(); ++it) {
    auto s = it->lock();
    if (s && s->is_open() && s->peer().node_id == node_id) return s;
  }
  return nullptr;
}

std::size_t FabricNode::close_sessions_with(const std::string& node_id, const std::string& reason) {
  std::size_t n = 0;
  for (auto& w : sessions_) {
    auto s = w.lock();
    if (s && !s->is_closed() && s->peer().node_id == node_id) {
      s->goaway(ErrorCode::kAuthFailed, reason, false);
      ++n;
    }
  }
  return n;
}

std::vector<SessionSnapshot> FabricNode::snapshot() const {
  std::vector<SessionSnapshot> out;
  for (const auto& w : sessions_) {
    auto s = w.lock();
    if (!s) continue;
    out.push_back(SessionSnapshot{base_.node_id, s->peer().node_id, std::string(s->carrier_kind()),
                                  std::string(to_string(s->core().state())), s->stats(),
                                  s->stream_stats(), s->transport_info()});
  }
  return out;
}

std::string FabricNode::prometheus() const {
  std::string out = render_prometheus(snapshot());
  // Node totals: live sessions plus every closed one.
  DirectionCounters tx = closed_tx_;
  DirectionCounters rx = closed_rx_;
  for (const auto& w : sessions_) {
    if (auto s = w.lock()) {
      const auto st = s->stats();
      for (std::size_t c = 0; c < kClassCount; ++c) {
        tx.bytes_by_class[c] += st.tx.bytes_by_class[c];
        rx.bytes_by_class[c] += st.rx.bytes_by_class[c];
      }
    }
  }
  const auto& node = base_.node_id;
  out +=
      "# HELP rap_fabric_node_bytes_total DATA payload bytes of all sessions, live and closed.\n";
  out += "# TYPE rap_fabric_node_bytes_total counter\n";
  for (std::size_t c = 0; c < kClassCount; ++c) {
    const auto cls = to_string(static_cast<TrafficClass>(c));
    out += fmt::format("rap_fabric_node_bytes_total{{node=\"{}\",dir=\"tx\",class=\"{}\"}} {}\n",
                       node, cls, tx.bytes_by_class[c]);
    out += fmt::format("rap_fabric_node_bytes_total{{node=\"{}\",dir=\"rx\",class=\"{}\"}} {}\n",
                       node, cls, rx.bytes_by_class[c]);
  }
  out += "# HELP rap_fabric_node_sessions_total Sessions established and closed.\n";
  out += "# TYPE rap_fabric_node_sessions_total counter\n";
  out += fmt::format("rap_fabric_node_sessions_total{{node=\"{}\",event=\"established\"}} {}\n",
                     node, sessions_established_);
  out += fmt::format("rap_fabric_node_sessions_total{{node=\"{}\",event=\"closed\"}} {}\n", node,
                     sessions_closed_);
  out += "# HELP rap_fabric_node_sessions_refused_total Incoming sessions refused, by reason.\n";
  out += "# TYPE rap_fabric_node_sessions_refused_total counter\n";
  for (const auto& [code, n] : sessions_refused_) {
    out += fmt::format("rap_fabric_node_sessions_refused_total{{node=\"{}\",reason=\"{}\"}} {}\n",
                       node, code, n);
  }
  return out;
}

// ---------------- metrics HTTP ----------------

namespace {
namespace http = boost::beast::http;

asio::awaitable<void> serve_http(asio::ip::tcp::socket sock, std::function<std::string()> render,
                                 std::function<std::string()> status) {
  boost::beast::flat_buffer buf;
  http::request<http::string_body> req;
  auto [ec, n] = co_await http::async_read(sock, buf, req, kTuple);
  (void)n;
  if (ec) co_return;
  http::response<http::string_body> res;
  res.version(req.version());
  res.keep_alive(false);
  if (req.method() != http::verb::get) {
    res.result(http::status::method_not_allowed);
    res.set(http::field::content_type, "application/json");
    res.body() = R"({"error":{"code":"method_not_allowed","message":"only GET is served"}})";
  } else if (req.target() == "/metrics") {
    res.result(http::status::ok);
    res.set(http::field::content_type, "text/plain; version=0.0.4");
    res.body() = render();
  } else if (req.target() == "/status") {
    res.result(http::status::ok);
    res.set(http::field::content_type, "application/json");
    res.body() = status();
  } else {
    res.result(http::status::not_found);
    res.set(http::field::content_type, "application/json");
    res.body() = R"({"error":{"code":"not_found","message":"try /metrics or /status"}})";
  }
  res.prepare_payload();
  auto [wec, wn] = co_await http::async_write(sock, res, kTuple);
  (void)wec;
  (void)wn;
  boost::system::error_code ignored;
  sock.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
}

asio::awaitable<void> metrics_loop(std::shared_ptr<asio::ip::tcp::acceptor> acc,
                                   std::function<std::string()> render,
                                   std::function<std::string()> status) {
  for (;;) {
    auto [ec, sock] = co_await acc->async_accept(kTuple);
    if (ec) {
      if (!acc->is_open()) break;
      continue;
    }
    asio::co_spawn(acc->get_executor(), serve_http(std::move(sock), render, status),
                   asio::detached);
  }
}
}  // namespace

Result<std::uint16_t> serve_metrics(const asio::any_io_executor& ex,
                                    const asio::ip::tcp::endpoint& ep,
                                    std::function<std::string()> render,
                                    std::function<std::string()> status) {
  auto acc = std::make_shared<asio::ip::tcp::acceptor>(ex);
  boost::system::error_code ec;
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(64, ec);
  if (ec) return fail("listen_failed", "metrics " + ep.address().to_string() + ": " + ec.message());
  const auto port = acc->local_endpoint().port();
  asio::co_spawn(ex, metrics_loop(acc, std::move(render), std::move(status)), asio::detached);
  return port;
}

}  // namespace rap::fabric
