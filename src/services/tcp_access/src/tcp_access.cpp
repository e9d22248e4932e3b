#include "rap/services/tcp_access/tcp_access.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "rap/common/priority.h"
#include "rap/common/sock_owner.h"
#include "rap/common/socket_move.h"

namespace rap::services::tcp {

namespace {

using Json = nlohmann::json;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr auto kSetupTimeout = std::chrono::seconds(10);
constexpr std::size_t kPipeChunk = 64 * 1024;
// Plain TCP socket -> route (the exit's target, the entry-node listener's user): one route write
// per 256 KiB read rather than four, as the local stream API gets from its 256 KiB chunks. Cut
// the entry's CPU per GB in bench_route row (g) from 2.5-2.7 s to 1.5-1.8 s.
constexpr std::size_t kPlainReadChunk = 256 * 1024;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Json error_json(const Error& e) {
  return Json{{"error", {{"code", e.code}, {"message", e.message}}}};
}

bool split_host_port(const std::string& s, std::string& host, std::string& port) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) return false;
  host = s.substr(0, colon);
  port = s.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return true;
}

// Closes `sock` after `after` unless cancelled: bounds a setup phase.
template <typename Socket>
std::shared_ptr<asio::steady_timer> arm(const asio::any_io_executor& ex, std::weak_ptr<Socket> sock,
                                        std::chrono::seconds after) {
  auto t = std::make_shared<asio::steady_timer>(ex, after);
  t->async_wait([sock = std::move(sock)](const boost::system::error_code& ec) {
    auto s = sock.lock();
    if (!ec && s) {
      boost::system::error_code ignored;
      s->close(ignored);
    }
  });
  return t;
}

std::shared_ptr<asio::steady_timer> arm(const asio::any_io_executor& ex,
                                        const std::shared_ptr<crypto::TlsSocket>& tls,
                                        std::chrono::seconds after) {
  auto t = std::make_shared<asio::steady_timer>(ex, after);
  t->async_wait(
      [weak = std::weak_ptr<crypto::TlsSocket>(tls)](const boost::system::error_code& ec) {
        auto s = weak.lock();
        if (!ec && s) s->close();
      });
  return t;
}

// A listening TCP acceptor on `addr:port`.
Result<std::shared_ptr<asio::ip::tcp::acceptor>> listen_on(const asio::any_io_executor& ex,
                                                           const asio::ip::address& addr,
                                                           std::uint16_t port, bool reuse) {
  auto acc = std::make_shared<asio::ip::tcp::acceptor>(ex);
  const asio::ip::tcp::endpoint ep(addr, port);
  boost::system::error_code ec;
  acc->open(ep.protocol(), ec);
  if (!ec && reuse) acc->set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen_failed", ec.message());
  return acc;
}

void count_refusal(TcpCounters& c, const std::string& code) {
  c.refused++;
  c.refused_by_code[code]++;
}

// Carries a plain TCP socket over a route channel both ways until both directions ended, with
// half-closes forwarded: the exit's target connection, and the entry-node listener's user
// connection. A bulk pipe's next batch waits until nothing else on the thread is ready.
asio::awaitable<void> pipe_plain(asio::ip::tcp::socket& sock, mesh::RouteChannel& ch, bool bulk,
                                 const char* side) {
  auto from_route = [&]() -> asio::awaitable<void> {
    std::vector<std::uint8_t> buf(kPipeChunk);
    for (;;) {
      auto n = co_await ch.read_some(asio::buffer(buf));
      if (!n || *n == 0) {
        boost::system::error_code e;
        if (!n) {
          spdlog::info("{}: route={} ended by the other side: {} {}", side, ch.lease().id,
                       n.error().code, n.error().message);
          sock.close(e);
        } else {
          sock.shutdown(asio::ip::tcp::socket::shutdown_send, e);
        }
        co_return;
      }
      auto [ec, w] = co_await asio::async_write(sock, asio::buffer(buf.data(), *n), kTuple);
      if (ec) {
        ch.reset("socket write failed");
        co_return;
      }
      if (bulk) co_await rap::yield(true);
    }
  };
  auto to_route = [&]() -> asio::awaitable<void> {
    std::vector<std::uint8_t> buf(kPlainReadChunk);
    for (;;) {
      auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf), kTuple);
      if (ec == asio::error::eof) {
        (void)co_await ch.close_write();
        co_return;
      }
      if (ec) {
        ch.reset("socket read failed: " + ec.message());
        co_return;
      }
      if (!co_await ch.write(asio::buffer(buf.data(), n))) {
        boost::system::error_code e;
        sock.close(e);
        co_return;
      }
      if (bulk) co_await rap::yield(true);
    }
  };
  using namespace asio::experimental::awaitable_operators;
  co_await (from_route() && to_route());
}

}  // namespace

Json AccessRecord::to_json() const {
  Json j{{"started_at", started_at},
         {"ended_at", ended_at},
         {"bytes_up", bytes_up},
         {"bytes_down", bytes_down},
         {"outcome", outcome}};
  auto put = [&](const char* k, const std::string& v) {
    if (!v.empty()) j[k] = v;
  };
  put("grant", grant);
  put("user", user);
  put("org", org);
  put("resource", resource);
  put("route", route);
  put("reason", reason);
  put("message", message.substr(0, 300));
  if (offline_renewal) j["offline_renewal"] = true;
  return j;
}

// ---------------- exit ----------------

TcpAccessExit::TcpAccessExit(asio::any_io_executor ex, mesh::MeshNode& mesh, AccessSink sink)
    : ex_(std::move(ex)), mesh_(mesh), sink_(std::move(sink)) {
  mesh_.set_exit_handler(
      [this](std::unique_ptr<mesh::RouteChannel> ch) { return serve(std::move(ch)); });
}

asio::awaitable<void> TcpAccessExit::serve(std::unique_ptr<mesh::RouteChannel> ch) {
  AccessRecord rec;
  rec.started_at = unix_now();
  rec.route = ch->lease().id;
  rec.org = ch->lease().org;
  rec.grant = ch->lease().grant;
  auto refuse = [&](const Error& e) -> asio::awaitable<void> {
    count_refusal(counters_, e.code);
    spdlog::warn("tcp exit: refused route={} code={} reason=\"{}\"", rec.route, e.code, e.message);
    (void)co_await ch->answer(error_json(e));
    (void)co_await ch->close_write();
    rec.outcome = "refused";
    rec.reason = e.code;
    rec.message = e.message;
    rec.ended_at = unix_now();
    if (sink_) sink_(rec);
  };
  const auto gw = ch->hello().find("grant");
  if (gw == ch->hello().end() || !gw->is_string()) {
    const Error e_{"bad_hello", "the entry sent no access grant"};
    co_await refuse(e_);
    co_return;
  }
  auto grant = mesh::verify_grant(gw->get<std::string>(), mesh_.trust(), mesh_.wall_now());
  if (!grant) {
    co_await refuse(grant.error());
    co_return;
  }
  rec.user = grant->user;
  rec.resource = grant->resource;
  rec.org = grant->org;
  if (grant->renewed_offline) {
    rec.offline_renewal = true;
    counters_.offline_renewals++;
  }
  if (grant->id != ch->lease().grant || grant->org != ch->lease().org) {
    const Error e_{"grant_mismatch", "the route lease was issued for another grant"};
    co_await refuse(e_);
    co_return;
  }
  if (std::find(grant->exits.begin(), grant->exits.end(), mesh_.node_id()) == grant->exits.end()) {
    const Error e_{"not_an_exit", "the grant does not name this node as an exit"};
    co_await refuse(e_);
    co_return;
  }
  const bool listed = std::any_of(egress_.begin(), egress_.end(), [&](const EgressTarget& t) {
    return t.resource == grant->resource && t.org == grant->org && t.address == grant->target;
  });
  if (!listed) {
    const Error e_{"target_not_permitted",
                   "this exit's signed configuration does not name the target"};
    co_await refuse(e_);
    co_return;
  }
  std::string host;
  std::string port;
  if (!split_host_port(grant->target, host, port)) {
    const Error e_{"bad_target", "target is not host:port"};
    co_await refuse(e_);
    co_return;
  }
  auto sock = std::make_shared<asio::ip::tcp::socket>(ex_);
  {
    auto timer = arm(ex_, std::weak_ptr<asio::ip::tcp::socket>(sock), kSetupTimeout);
    asio::ip::tcp::resolver resolver(ex_);
    auto [rec_ec, results] = co_await resolver.async_resolve(host, port, kTuple);
    boost::system::error_code cec = rec_ec;
    if (!cec) std::tie(cec, std::ignore) = co_await asio::async_connect(*sock, results, kTuple);
    timer->cancel();
    if (cec) {
      const Error e_{"target_unreachable", grant->target + ": " + cec.message()};
      co_await refuse(e_);
      co_return;
    }
  }
  boost::system::error_code ignored;
  sock->set_option(asio::ip::tcp::no_delay(true), ignored);
  const Json ok_{{"ok", true}};
  if (!co_await ch->answer(ok_)) co_return;
  counters_.accepted++;
  counters_.active++;
  spdlog::info("tcp exit: route={} user={} resource={} connected to {}", rec.route, rec.user,
               rec.resource, grant->target);
  co_await pipe_plain(*sock, *ch, ch->traffic_class() == fabric::TrafficClass::kBulk, "tcp exit");
  counters_.active--;
  rec.bytes_up = ch->bytes_in();
  rec.bytes_down = ch->bytes_out();
  counters_.bytes_up += rec.bytes_up;
  counters_.bytes_down += rec.bytes_down;
  rec.outcome = "ok";
  rec.ended_at = unix_now();
  spdlog::info("tcp exit: route={} closed up={} down={}", rec.route, rec.bytes_up, rec.bytes_down);
  if (sink_) sink_(rec);
}

// ---------------- entry ----------------

TcpAccessEntry::TcpAccessEntry(asio::any_io_executor ex, mesh::MeshNode& mesh, AccessSink sink)
    : ex_(std::move(ex)), mesh_(mesh), sink_(std::move(sink)) {}

Result<std::unique_ptr<TcpAccessEntry>> TcpAccessEntry::start(const asio::any_io_executor& ex,
                                                              mesh::MeshNode& mesh,
                                                              const crypto::NodeCredentials& creds,
                                                              const std::string& listen,
                                                              AccessSink sink) {
  std::string host;
  std::string port;
  if (!split_host_port(listen, host, port))
    return fail("bad_config", "client_ingress_listen must be ip:port");
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return fail("bad_config", "client_ingress_listen: " + host + " is not an IP address");
  std::unique_ptr<TcpAccessEntry> e(new TcpAccessEntry(ex, mesh, std::move(sink)));
  e->tls_ = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX_set_min_proto_version(e->tls_->native_handle(), TLS1_3_VERSION);
  SSL_CTX_set_ciphersuites(e->tls_->native_handle(), crypto::kTls13Ciphersuites);
  SSL_CTX_set_num_tickets(e->tls_->native_handle(), 0);  // clients never resume sessions
  e->tls_->use_certificate_chain(asio::buffer(creds.cert_pem), ec);
  if (!ec) e->tls_->use_private_key(asio::buffer(creds.key_pem), asio::ssl::context::pem, ec);
  if (ec) return fail("tls_setup_failed", "client ingress certificate: " + ec.message());
  auto acc = listen_on(ex, addr, static_cast<std::uint16_t>(std::stoul(port)), true);
  if (!acc) return fail("listen_failed", "client ingress " + listen + ": " + acc.error().message);
  e->acceptor_ = std::move(*acc);
  e->port_ = e->acceptor_->local_endpoint().port();
  asio::co_spawn(ex, e->accept_loop(), asio::detached);
  spdlog::info("tcp entry: client ingress listening on {}:{}", host, e->port_);
  return e;
}

std::unique_ptr<TcpAccessEntry> TcpAccessEntry::lane(const asio::any_io_executor& ex,
                                                     mesh::MeshNode& mesh, AccessSink sink) {
  return std::unique_ptr<TcpAccessEntry>(new TcpAccessEntry(ex, mesh, std::move(sink)));
}

void TcpAccessEntry::stop() {
  boost::system::error_code ec;
  if (acceptor_) acceptor_->close(ec);
}

asio::awaitable<void> TcpAccessEntry::accept_loop() {
  auto acc = acceptor_;
  for (;;) {
    auto [ec, sock] = co_await acc->async_accept(kTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acc->is_open()) co_return;
      continue;
    }
    asio::co_spawn(ex_, serve(std::move(sock)), asio::detached);
  }
}

asio::awaitable<void> TcpAccessEntry::serve(asio::ip::tcp::socket sock) {
  boost::system::error_code ignored;
  sock.set_option(asio::ip::tcp::no_delay(true), ignored);
  auto wrapped = crypto::TlsSocket::wrap(std::move(sock), tls_->native_handle(), true, "client");
  if (!wrapped) {
    spdlog::warn("tcp entry: {}: {}", wrapped.error().code, wrapped.error().message);
    co_return;
  }
  Conn c;
  c.tls = std::move(*wrapped);
  auto timer = arm(ex_, c.tls, kSetupTimeout);
  c.rec.started_at = unix_now();
  if (!co_await c.tls->handshake()) co_return;  // not a client of ours; nothing to audit
  FrameReader reader(kMaxHello);
  std::vector<char> buf(kPipeChunk);
  std::optional<std::string> hello_text;
  while (!hello_text) {
    auto f = reader.next();
    if (!f) {
      co_await refuse_conn(c, f.error());
      co_return;
    }
    if (*f) {
      hello_text = std::string(**f);
      break;
    }
    auto n = co_await c.tls->read_some(asio::buffer(buf));
    if (!n) co_return;
    reader.feed(buf.data(), *n);
  }
  auto hello = parse_client_hello(*hello_text);
  if (!hello) {
    co_await refuse_conn(c, hello.error());
    co_return;
  }
  auto admitted = admit(hello->ticket, c.rec);
  if (!admitted) {
    co_await refuse_conn(c, admitted.error());
    co_return;
  }
  timer->cancel();
  c.admitted = std::move(*admitted);
  c.cls = fabric::TrafficClass::kInteractive;
  (void)fabric::parse_traffic_class(hello->traffic_class, c.cls);
  c.rest = std::string(reader.rest());  // bytes that came with the hello: the first data
  co_await carry(std::move(c));
}

asio::awaitable<void> TcpAccessEntry::refuse_conn(Conn& c, const Error& e) {
  if (c.listener) {
    c.listener->refused_++;
    spdlog::warn("tcp entry: listener {} refused a connection code={} reason=\"{}\"",
                 c.listener->port_, e.code, e.message);
    boost::system::error_code ig;
    if (c.plain) c.plain->close(ig);
  } else if (c.tls) {
    spdlog::warn("tcp entry: refused client code={} reason=\"{}\"", e.code, e.message);
    std::string out;
    append_frame(error_json(e).dump(), out);
    (void)co_await c.tls->write(asio::buffer(out));
    c.tls->close();
  }
  refused(e, c.rec);
}

void TcpAccessEntry::pair_lanes(TcpAccessEntry& main, TcpAccessEntry& lane) {
  main.lane_ = &lane;
  lane.main_ = &main;
}

bool TcpAccessEntry::hand_over(Conn& c, TcpAccessEntry& to) {
  // Only this thread touches the connection until the post runs on `to`'s thread.
  if (c.tls) {
    if (auto r = c.tls->rebind(to.ex_); !r) {
      spdlog::warn("tcp entry: lane hand-over failed: {}", r.error().message);
      return false;  // the connection is closed
    }
  } else if (c.plain) {
    auto moved = move_socket(std::move(*c.plain), to.ex_);
    if (!moved) {
      spdlog::warn("tcp entry: lane hand-over failed: {}", moved.error().message);
      c.plain.reset();
      return false;
    }
    c.plain.emplace(std::move(*moved));
  }
  asio::post(to.ex_, [&to, c = std::move(c)]() mutable {
    asio::co_spawn(to.ex_, to.carry(std::move(c)), asio::detached);
  });
  return true;
}

asio::awaitable<void> TcpAccessEntry::carry(Conn c) {
  // Lanes (PROTOCOL.md §15): an interactive connection continues on the interactive lane's
  // thread and sessions, away from the bulk this thread pipes.
  if (lane_ != nullptr && c.cls == fabric::TrafficClass::kInteractive && !c.returned) {
    lane_handoffs_++;
    if (!hand_over(c, *lane_)) refused(Error{"lane_handover_failed", "socket move failed"}, c.rec);
    co_return;
  }
  std::shared_ptr<asio::steady_timer> timer;
  if (c.tls) timer = arm(ex_, c.tls, kSetupTimeout);
  auto opened = co_await open_route(c.admitted, c.cls, c.rec);
  if (!opened && main_ != nullptr && opened.error().code == "next_hop_unreachable") {
    // This lane has no session with a hop of the route (a peer without lanes, or one still
    // being dialed): the default lane carries it.
    lane_returns_++;
    if (timer) timer->cancel();
    c.returned = true;
    if (!hand_over(c, *main_)) refused(Error{"lane_handover_failed", "socket move failed"}, c.rec);
    co_return;
  }
  if (!opened) {
    co_await refuse_conn(c, opened.error());
    co_return;
  }
  std::unique_ptr<mesh::RouteChannel> ch = std::move(*opened);
  if (c.listener) c.listener->accepted_++;
  if (c.tls) {
    std::string out;
    append_frame(Json{{"ok", true}, {"route", ch->lease().id}}.dump(), out);
    if (!co_await c.tls->write(asio::buffer(out))) {
      ch->reset("client went away");
      co_return;
    }
    timer->cancel();
  }
  const std::uint64_t open_id = open_session(c.admitted, c.rec, ch.get());
  const bool bulk = c.cls == fabric::TrafficClass::kBulk;
  if (c.plain) {
    co_await pipe_plain(*c.plain, *ch, bulk, "tcp entry");
  } else {
    co_await pipe_ingress(*c.tls, *ch, c.rest, bulk);
  }
  close_session(open_id, *ch);
}

asio::awaitable<void> TcpAccessEntry::pipe_ingress(crypto::TlsSocket& tls, mesh::RouteChannel& ch,
                                                   const std::string& first, bool bulk) {
  auto up = [&]() -> asio::awaitable<void> {  // client -> route
    // Client reads land in buf and go on to the route as views (no copy).
    std::vector<char> buf(kPipeChunk);
    ChunkDecoder chunks(kMaxChunk);
    std::vector<std::string_view> pieces;
    std::string_view in = first;  // bytes that came with the hello
    for (;;) {
      pieces.clear();
      if (auto d = chunks.decode(in, pieces); !d) {
        ch.reset("client sent a bad frame");
        co_return;
      }
      for (const auto& p : pieces) {
        if (!co_await ch.write(asio::buffer(p.data(), p.size()))) {
          tls.close();
          co_return;
        }
      }
      if (chunks.ended()) {
        (void)co_await ch.close_write();
        co_return;
      }
      auto n = co_await tls.read_some(asio::buffer(buf));
      if (!n) {
        ch.reset("client connection ended: " + n.error().message);
        co_return;
      }
      in = std::string_view(buf.data(), *n);
      // TLS reads and route writes may complete without suspending: give the other
      // connections on this thread a turn after every batch; a bulk connection's next batch
      // waits until nothing else is ready (rap/common/priority.h), so an interactive request
      // waits for at most the one batch running.
      co_await rap::yield(bulk);
    }
  };
  auto down = [&]() -> asio::awaitable<void> {  // route -> client
    // The route's bytes are read behind room for the chunk header: header + body = four whole
    // TLS records, one TLS write.
    std::vector<char> data(kPipeChunk);
    for (;;) {
      auto n = co_await ch.read_some(
          asio::buffer(data.data() + kFrameHeader, data.size() - kFrameHeader));
      if (!n) {
        tls.close();
        co_return;
      }
      put_frame_header(data.data(), static_cast<std::uint32_t>(*n));
      auto w = co_await tls.write(asio::buffer(data.data(), kFrameHeader + *n));
      if (!w || *n == 0) {
        if (!w) ch.reset("client write failed");
        co_return;
      }
      co_await rap::yield(bulk);  // fairness, as in up()
    }
  };
  using namespace asio::experimental::awaitable_operators;
  co_await (up() && down());
}

Result<TcpAccessEntry::Admitted> TcpAccessEntry::admit(const std::string& sealed_ticket,
                                                       AccessRecord& rec) {
  auto ticket = mesh::open_ticket(sealed_ticket, mesh_.key());
  if (!ticket) return tl::unexpected(ticket.error());
  auto grant = mesh::verify_grant(ticket->grant, mesh_.trust(), mesh_.wall_now());
  if (!grant) return tl::unexpected(grant.error());
  rec.grant = grant->id;
  rec.user = grant->user;
  rec.org = grant->org;
  rec.resource = grant->resource;
  rec.offline_renewal = grant->renewed_offline;
  if (grant->entry != mesh_.node_id())
    return fail("wrong_entry", "the grant names another entry node");
  if (mesh_.grant_revoked(grant->id))
    return fail("grant_revoked",
                "this access was terminated by an administrator; request a new ticket");
  // The mesh picks among the ticket's leases (primary first) and moves the open flow to an
  // alternate if its route fails later; this service never chooses routes.
  Error last{"no_route", "the ticket holds no usable route"};
  Admitted a;
  for (const auto& wire : ticket->leases) {
    auto lease = mesh::verify_lease(wire, mesh_.trust(), mesh_.wall_now());
    if (!lease) {
      last = lease.error();
      continue;
    }
    if (lease->grant != grant->id) {
      last = Error{"lease_grant_mismatch", "a route lease of another grant"};
      continue;
    }
    a.leases.push_back(std::move(*lease));
  }
  if (a.leases.empty()) return tl::unexpected(last);
  rec.route = a.leases.front().id;
  a.ticket = std::move(*ticket);
  a.grant = std::move(*grant);
  return a;
}

asio::awaitable<Result<std::unique_ptr<mesh::RouteChannel>>> TcpAccessEntry::open_route(
    const Admitted& a, fabric::TrafficClass cls, AccessRecord& rec) {
  const Json hello_{{"grant", a.ticket.grant}};
  auto opened = co_await mesh_.open_flow(a.leases, cls, hello_);
  if (!opened) {
    spdlog::info("tcp entry: no route opened: {} {}", opened.error().code, opened.error().message);
    co_return tl::unexpected(opened.error());
  }
  rec.route = (*opened)->lease().id;
  co_return std::move(*opened);
}

std::uint64_t TcpAccessEntry::open_session(const Admitted& adm, const AccessRecord& rec,
                                           const mesh::RouteChannel* ch) {
  counters_.accepted++;
  counters_.active++;
  if (rec.offline_renewal) counters_.offline_renewals++;
  const std::uint64_t open_id = next_open_++;
  ActiveAccess a;
  a.grant = adm.grant.id;
  a.user = adm.grant.user;
  a.org = adm.grant.org;
  a.resource = adm.grant.resource;
  a.started_at = rec.started_at;
  // The grant's last usable instant: its offline horizon when it has one (nodes cut off from
  // the control plane honour it that long), so a revocation is kept at least as long.
  a.expires_at = std::chrono::duration_cast<std::chrono::seconds>(
                     std::max(adm.grant.expires_at, adm.grant.offline_until).time_since_epoch())
                     .count();
  open_[open_id] = Open{std::move(a), ch};
  return open_id;
}

void TcpAccessEntry::close_session(std::uint64_t key, const mesh::RouteChannel& ch) {
  open_.erase(key);
  counters_.active--;
  counters_.bytes_up += ch.bytes_out();
  counters_.bytes_down += ch.bytes_in();
}

void TcpAccessEntry::refused(const Error& e, AccessRecord& rec) {
  count_refusal(counters_, e.code);
  rec.outcome = "refused";
  rec.reason = e.code;
  rec.message = e.message;
  rec.ended_at = unix_now();
  if (sink_) sink_(rec);
}

// ---------------- entry-node listener ----------------

Result<std::shared_ptr<EntryListener>> TcpAccessEntry::listen_local(
    const std::string& listen, std::uint32_t uid, const std::string& sealed_ticket,
    fabric::TrafficClass cls) {
  std::string host;
  std::string port;
  if (!split_host_port(listen, host, port)) return fail("bad_request", "listen must be ip:port");
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec || !addr.is_loopback())
    return fail("listen_not_loopback",
                "an entry-node listener binds a loopback address only (127.0.0.1 or ::1)");
  const auto port_no = std::strtoul(port.c_str(), nullptr, 10);
  if (port_no > 65535 || port.find_first_not_of("0123456789") != std::string::npos)
    return fail("bad_request", "listen port must be 0..65535");
  std::shared_ptr<EntryListener> l(new EntryListener(*this, uid, cls));
  if (auto t = l->set_ticket(sealed_ticket); !t) return tl::unexpected(t.error());
  auto bound = listen_on(ex_, addr, static_cast<std::uint16_t>(port_no), false);
  if (!bound)
    return fail("listen_failed", "entry-node listener " + listen + ": " + bound.error().message);
  l->acceptor_ = std::move(*bound);
  l->port_ = l->acceptor_->local_endpoint().port();
  asio::co_spawn(
      ex_,
      [this, l]() -> asio::awaitable<void> {
        auto acc = l->acceptor_;
        for (;;) {
          auto [aec, sock] = co_await acc->async_accept(kTuple);
          if (aec) {
            if (aec == asio::error::operation_aborted || !acc->is_open()) co_return;
            continue;
          }
          asio::co_spawn(ex_, serve_local(l, std::move(sock)), asio::detached);
        }
      },
      asio::detached);
  spdlog::info("tcp entry: entry-node listener {}:{} for uid {} (resource {})", host, l->port_, uid,
               l->holder_.resource);
  return l;
}

Result<void> EntryListener::set_ticket(const std::string& sealed_ticket) {
  AccessRecord probe;
  auto a = entry_.admit(sealed_ticket, probe);
  if (!a) return tl::unexpected(a.error());
  if (!ticket_.empty() && (a->grant.org != holder_.org || a->grant.resource != holder_.resource))
    return fail("ticket_mismatch", "the new ticket is for another resource");
  holder_ = probe;
  ticket_ = sealed_ticket;
  return {};
}

void EntryListener::stop() {
  boost::system::error_code ec;
  if (acceptor_) acceptor_->close(ec);
}

asio::awaitable<void> TcpAccessEntry::serve_local(std::shared_ptr<EntryListener> l,
                                                  asio::ip::tcp::socket sock) {
  Conn c;
  c.rec.started_at = unix_now();
  c.listener = l;
  c.cls = l->cls_;
  // Only the uid that asked for the listener: another user on this host, or a connection
  // forwarded from elsewhere, could otherwise ride on this user's grant.
  auto owner = rap::tcp_peer_uid(sock.native_handle());
  c.plain.emplace(std::move(sock));
  if (!owner || *owner != l->uid_) {
    // The audit names the grant (and user) whose port was tried.
    c.rec.grant = l->holder_.grant;
    c.rec.user = l->holder_.user;
    c.rec.org = l->holder_.org;
    c.rec.resource = l->holder_.resource;
    const Error e_{"not_listener_owner",
                   owner ? "uid " + std::to_string(*owner) + " does not own this listener"
                         : "the connecting socket's owner is unknown: " + owner.error().message};
    co_await refuse_conn(c, e_);
    co_return;
  }
  boost::system::error_code ignored;
  c.plain->set_option(asio::ip::tcp::no_delay(true), ignored);
  auto admitted = admit(l->ticket_, c.rec);
  if (!admitted) {
    co_await refuse_conn(c, admitted.error());
    co_return;
  }
  c.admitted = std::move(*admitted);
  co_await carry(std::move(c));
}

std::vector<ActiveAccess> TcpAccessEntry::active_sessions() const {
  std::vector<ActiveAccess> out;
  out.reserve(open_.size());
  for (const auto& [id, o] : open_) {
    ActiveAccess a = o.info;
    a.bytes_up = o.ch->bytes_out();
    a.bytes_down = o.ch->bytes_in();
    out.push_back(std::move(a));
  }
  return out;
}

// ---------------- metrics ----------------

TcpCounters operator+(TcpCounters a, const TcpCounters& b) {
  a.accepted += b.accepted;
  a.refused += b.refused;
  a.active += b.active;
  a.bytes_up += b.bytes_up;
  a.bytes_down += b.bytes_down;
  a.offline_renewals += b.offline_renewals;
  for (const auto& [code, n] : b.refused_by_code) a.refused_by_code[code] += n;
  return a;
}

std::string tcp_prometheus(const TcpCounters& entry, const TcpCounters& exit) {
  std::string out;
  out += "# TYPE rap_tcp_access_connections_total counter\n";
  out += fmt::format("rap_tcp_access_connections_total{{side=\"entry\"}} {}\n", entry.accepted);
  out += fmt::format("rap_tcp_access_connections_total{{side=\"exit\"}} {}\n", exit.accepted);
  out += "# TYPE rap_tcp_access_active gauge\n";
  out += fmt::format("rap_tcp_access_active{{side=\"entry\"}} {}\n", entry.active);
  out += fmt::format("rap_tcp_access_active{{side=\"exit\"}} {}\n", exit.active);
  out += "# TYPE rap_tcp_access_bytes_total counter\n";
  out += fmt::format("rap_tcp_access_bytes_total{{side=\"exit\",dir=\"up\"}} {}\n", exit.bytes_up);
  out +=
      fmt::format("rap_tcp_access_bytes_total{{side=\"exit\",dir=\"down\"}} {}\n", exit.bytes_down);
  out += "# TYPE rap_tcp_access_offline_renewals_total counter\n";
  for (const auto& [side, c] : {std::pair{"entry", &entry}, std::pair{"exit", &exit}})
    out += fmt::format("rap_tcp_access_offline_renewals_total{{side=\"{}\"}} {}\n", side,
                       c->offline_renewals);
  out += "# TYPE rap_tcp_access_refused_total counter\n";
  for (const auto& [side, c] : {std::pair{"entry", &entry}, std::pair{"exit", &exit}}) {
    for (const auto& [code, n] : c->refused_by_code)
      out += fmt::format("rap_tcp_access_refused_total{{side=\"{}\",code=\"{}\"}} {}\n", side, code,
                         n);
  }
  return out;
}

Json tcp_status(const TcpCounters& entry, const TcpCounters& exit) {
  auto one = [](const TcpCounters& c) {
    return Json{{"accepted", c.accepted},
                {"refused", c.refused},
                {"active", c.active},
                {"bytes_up", c.bytes_up},
                {"bytes_down", c.bytes_down},
                {"refused_by_code", c.refused_by_code},
                {"offline_renewals", c.offline_renewals}};
  };
  return Json{{"entry", one(entry)}, {"exit", one(exit)}};
}

}  // namespace rap::services::tcp
