// Sessions over real sockets: TLS 1.3 mutual auth on loopback, and the WebSocket carrier.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <functional>

#include "rap/fabric/metrics.h"
#include "rap/fabric/session.h"
#include "test_pki.h"

using namespace rap;
using namespace rap::fabric;
using namespace std::chrono_literals;
using tcp = boost::asio::ip::tcp;
namespace asio = boost::asio;

namespace {

template <class T>
T run_until_done(asio::io_context& io, asio::awaitable<T> aw, std::chrono::seconds limit = 30s) {
  std::optional<T> out;
  asio::co_spawn(io, std::move(aw), [&](std::exception_ptr e, T v) {
    if (e) std::rethrow_exception(e);
    out = std::move(v);
  });
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!out && std::chrono::steady_clock::now() < deadline) io.run_one_for(100ms);
  if (!out) throw std::runtime_error("coroutine did not finish in time");
  return std::move(*out);
}

struct Endpoint {
  rap::testing::TestNode node;
  std::shared_ptr<crypto::RevocationList> revoked = std::make_shared<crypto::RevocationList>();
  std::shared_ptr<TlsContext> ctx;
  std::unique_ptr<KeySigner> signer;
  SessionConfig cfg;
};

Endpoint make_endpoint(rap::testing::TestNode n, const std::string& node_id,
                       const std::string& cluster) {
  Endpoint e{std::move(n), std::make_shared<crypto::RevocationList>(), nullptr, nullptr, {}};
  auto ctx = TlsContext::create(e.node.creds, e.revoked);
  EXPECT_TRUE(ctx.has_value()) << (ctx ? "" : ctx.error().message);
  if (ctx) e.ctx = *ctx;
  e.signer = std::make_unique<KeySigner>(*crypto::Ed25519Key::from_pem(e.node.creds.key_pem));
  e.cfg.node_id = node_id;
  e.cfg.cluster_id = cluster;
  return e;
}

// Server: accepts one connection, runs a session, echoes every stream except service "sink",
// which it never reads.
struct Server {
  Server(asio::io_context& i, Endpoint& e, bool ws = false) : io(i), ep(e), websocket(ws) {}
  asio::io_context& io;
  Endpoint& ep;
  bool websocket = false;
  tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  std::optional<Error> error;
  std::shared_ptr<Session> session;
  SystemClock clock;

  std::uint16_t port() const { return acceptor.local_endpoint().port(); }

  void start() { asio::co_spawn(io, run(), asio::detached); }
  asio::awaitable<void> run() {
    auto sock = co_await acceptor.async_accept(asio::use_awaitable);
    // (no co_await inside ?: — GCC 12 miscompiles temporaries there)
    Result<std::unique_ptr<Carrier>> carrier = fail("unset", "");
    if (websocket) {
      carrier = co_await wss_accept(ep.ctx, std::move(sock), 5s);
    } else {
      carrier = co_await tls_accept(ep.ctx, std::move(sock), 5s);
    }
    if (!carrier) {
      error = carrier.error();
      co_return;
    }
    auto cfg = ep.cfg;
    cfg.role = Role::kAcceptor;
    session = Session::create(io.get_executor(), std::move(*carrier), cfg, *ep.signer, clock);
    auto ok = co_await session->start();
    if (!ok) {
      error = ok.error();
      co_return;
    }
    for (;;) {
      auto st = co_await session->accept();
      if (!st) break;
      if (st->info().service == "sink") {
        asio::co_spawn(io, hold(st), asio::detached);
        continue;
      }
      asio::co_spawn(io, echo(st), asio::detached);
    }
  }
  asio::awaitable<void> hold(std::shared_ptr<Stream> st) {
    asio::steady_timer t(io, 60s);
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)st;
  }
  static asio::awaitable<void> echo(std::shared_ptr<Stream> st) {
    std::vector<std::uint8_t> buf(65536);
    for (;;) {
      auto n = co_await st->read_some(asio::buffer(buf));
      if (!n || *n == 0) break;
      if (!co_await st->write(asio::buffer(buf.data(), *n))) break;
    }
    (void)st->close_write();
  }
};

asio::awaitable<Result<std::shared_ptr<Session>>> connect(asio::io_context& io, Endpoint& ep,
                                                          std::uint16_t port, bool websocket,
                                                          const Clock& clock) {
  Result<std::unique_ptr<Carrier>> carrier = fail("unset", "");
  if (websocket) {
    carrier = co_await wss_connect(ep.ctx, "127.0.0.1", port, 5s);
  } else {
    carrier = co_await tls_connect(ep.ctx, "127.0.0.1", port, 5s);
  }
  if (!carrier) co_return tl::unexpected(carrier.error());
  auto cfg = ep.cfg;
  cfg.role = Role::kInitiator;
  auto s = Session::create(io.get_executor(), std::move(*carrier), cfg, *ep.signer, clock);
  auto ok = co_await s->start();
  if (!ok) co_return tl::unexpected(ok.error());
  co_return s;
}

asio::awaitable<Result<std::string>> echo_once(std::shared_ptr<Session> s, std::string msg,
                                               TrafficClass cls = TrafficClass::kReliable) {
  auto st = s->open_stream("echo", cls);
  if (!st) co_return tl::unexpected(st.error());
  auto w = co_await (*st)->write(asio::buffer(msg));
  if (!w) co_return tl::unexpected(w.error());
  std::string got;
  std::vector<char> buf(65536);
  while (got.size() < msg.size()) {
    auto n = co_await (*st)->read_some(asio::buffer(buf));
    if (!n) co_return tl::unexpected(n.error());
    if (*n == 0) break;
    got.append(buf.data(), *n);
  }
  co_return got;
}

// A self-signed leaf certificate naming rap://cluster/node/node (signed by its own key).
std::string self_signed_node_cert(const crypto::Ed25519Key& key, const std::string& cluster,
                                  const std::string& node) {
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key.native());
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(node.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
  const std::string san = "URI:rap://" + cluster + "/node/" + node;
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str());
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(x, key.native(), nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  X509_free(x);
  return out;
}

class FabricTls : public ::testing::Test {
 protected:
  asio::io_context io;
  rap::testing::TestCa ca{"cluster-1"};
  SystemClock clock;
};

}  // namespace

TEST_F(FabricTls, EchoOverMutualTlsAndMetrics) {
  Endpoint se = make_endpoint(ca.node("node-b"), "node-b", "cluster-1");
  Endpoint ce = make_endpoint(ca.node("node-a"), "node-a", "cluster-1");
  Server server{io, se};
  server.start();
  auto s = run_until_done(io, connect(io, ce, server.port(), false, clock));
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_EQ((*s)->peer().node_id, "node-b");
  EXPECT_EQ((*s)->carrier_kind(), "tls");
  std::string msg(1 << 20, 'm');
  for (std::size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<char>(i * 7);
  auto got = run_until_done(io, echo_once(*s, msg));
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(*got, msg);
  ASSERT_TRUE(server.session);
  EXPECT_EQ(server.session->peer().node_id, "node-a");
  auto text = render_prometheus(
      {SessionSnapshot{"node-a", "node-b", "tls", "open", (*s)->stats(), (*s)->stream_stats()}});
  EXPECT_NE(text.find("rap_fabric_session_bytes_total{local=\"node-a\",peer=\"node-b\",carrier="
                      "\"tls\",dir=\"tx\",class=\"reliable\"} 1048576"),
            std::string::npos)
      << text;
  (*s)->close("test done");
  run_until_done(io, [](std::shared_ptr<Session> x) -> asio::awaitable<bool> {
    co_await x->wait_closed();
    co_return true;
  }(*s));
}

// The write loop keeps its batch buffer across the pauses of a busy session (it used to free it
// and zero-fill a new one at every pause) and gives it back once the session has been idle.
TEST_F(FabricTls, WriteBufferIsKeptWhileBusyAndFreedWhenIdle) {
  Endpoint se = make_endpoint(ca.node("node-b"), "node-b", "cluster-1");
  Endpoint ce = make_endpoint(ca.node("node-a"), "node-a", "cluster-1");
  Server server{io, se};
  server.start();
  auto s = run_until_done(io, connect(io, ce, server.port(), false, clock));
  ASSERT_TRUE(s.has_value()) << s.error().message;
  const std::string msg(256 * 1024, 'b');
  for (int round = 0; round < 2; ++round) {
    auto got = run_until_done(io, echo_once(*s, msg));
    ASSERT_TRUE(got.has_value()) << got.error().message;
    EXPECT_EQ(*got, msg);
    // The write loop is waiting for output now; the buffer stays for the next burst.
    EXPECT_TRUE((*s)->holds_write_buffer()) << "round " << round;
    const auto until = std::chrono::steady_clock::now() + 2500ms;
    while (std::chrono::steady_clock::now() < until && (*s)->holds_write_buffer())
      io.run_one_for(100ms);
    EXPECT_FALSE((*s)->holds_write_buffer()) << "round " << round;
  }
  (*s)->close("test done");
}

TEST_F(FabricTls, WebSocketCarrierEcho) {
  Endpoint se = make_endpoint(ca.node("node-b"), "node-b", "cluster-1");
  Endpoint ce = make_endpoint(ca.node("node-a"), "node-a", "cluster-1");
  Server server{io, se, true};
  server.start();
  auto s = run_until_done(io, connect(io, ce, server.port(), true, clock));
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_EQ((*s)->carrier_kind(), "wss");
  std::string msg(300000, 'w');
  auto got = run_until_done(io, echo_once(*s, msg));
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(*got, msg);
}

namespace {
// Connects `client` to a server using `server_ep`; returns the client's error and the server's.
std::pair<std::optional<Error>, std::optional<Error>> attempt(asio::io_context& io,
                                                              Endpoint& server_ep, Endpoint& client,
                                                              const Clock& clock) {
  Server server{io, server_ep};
  server.start();
  auto s = run_until_done(io, connect(io, client, server.port(), false, clock));
  // Let the server side finish its part.
  for (int i = 0; i < 50 && !server.error && !(server.session && server.session->is_closed());
       ++i) {
    io.run_one_for(20ms);
  }
  std::optional<Error> ce;
  if (!s) ce = s.error();
  std::optional<Error> se = server.error;
  if (!se && server.session && server.session->is_closed()) se = server.session->close_reason();
  if (s) (*s)->close("done");
  return {ce, se};
}
}  // namespace

TEST_F(FabricTls, SelfSignedClientRefused) {
  Endpoint se = make_endpoint(ca.node("node-b"), "node-b", "cluster-1");
  auto n = ca.node("node-a");
  n.creds.cert_pem = self_signed_node_cert(n.key, "cluster-1", "node-a");
  Endpoint ce = make_endpoint(n, "node-a", "cluster-1");
  auto [cerr, serr] = attempt(io, se, ce, clock);
  ASSERT_TRUE(cerr.has_value());
  ASSERT_TRUE(serr.has_value());
  EXPECT_NE(serr->message.find("self-signed"), std::string::npos) << serr->message;
}

TEST_F(FabricTls, OtherClustersCaRefused) {
  rap::testing::TestCa other{"cluster-2"};
  Endpoint se = make_endpoint(ca.node("node-b"), "node-b", "cluster-1");
  auto n = other.node("node-a");
  n.creds.ca_pem = ca.ca_pem();  // client trusts our CA but holds a cluster-2 certificate
  Endpoint ce = make_endpoint(n, "node-a", "cluster-1");
  auto [cerr, serr] = attempt(io, se, ce, clock);
  ASSERT_TRUE(cerr.has_value());
  ASSERT_TRUE(serr.has_value());
  EXPECT_NE(serr->message.find("unable to get local issuer certificate"), std::string::npos)
      << serr->message;
}

TEST_F(FabricTls, RevokedClientRefused) {
  Endpoint se = make_endpoint(ca.node("node-b"), "node-b", "cluster-1");
  Endpoint ce = make_endpoint(ca.node("node-a"), "node-a", "cluster-1");
  se.revoked->revoke_serial(ce.node.serial);
  auto [cerr, serr] = attempt(io, se, ce, clock);
  ASSERT_TRUE(cerr.has_value());
  ASSERT_TRUE(serr.has_value());
  EXPECT_NE(serr->message.find("revoked"), std::string::npos) << serr->message;
}

TEST_F(FabricTls, RevokedServerRefusedByClient) {
  Endpoint se = make_endpoint(ca.node("node-b"), "node-b", "cluster-1");
  Endpoint ce = make_endpoint(ca.node("node-a"), "node-a", "cluster-1");
  ce.revoked->revoke_node("node-b");
  auto [cerr, serr] = attempt(io, se, ce, clock);
  ASSERT_TRUE(cerr.has_value());
  EXPECT_NE(cerr->message.find("revoked"), std::string::npos) << cerr->message;
}

TEST_F(FabricTls, ExpiredClientRefused) {
  Endpoint se = make_endpoint(ca.node("node-b"), "node-b", "cluster-1");
  Endpoint ce = make_endpoint(ca.node("node-a", -48h, -24h), "node-a", "cluster-1");
  auto [cerr, serr] = attempt(io, se, ce, clock);
  ASSERT_TRUE(cerr.has_value());
  ASSERT_TRUE(serr.has_value());
  EXPECT_NE(serr->message.find("expired"), std::string::npos) << serr->message;
}

TEST_F(FabricTls, HelloCertificateMismatchRefused) {
  Endpoint se = make_endpoint(ca.node("node-b"), "node-b", "cluster-1");
  // Valid certificate for node-a, but the session claims to be node-z.
  Endpoint ce = make_endpoint(ca.node("node-a"), "node-z", "cluster-1");
  auto [cerr, serr] = attempt(io, se, ce, clock);
  ASSERT_TRUE(cerr.has_value());
  EXPECT_NE(cerr->message.find("does not match certificate"), std::string::npos) << cerr->message;
  ASSERT_TRUE(serr.has_value());
  EXPECT_EQ(serr->code, "auth_failed");
}

TEST_F(FabricTls, StalledBulkDoesNotDelayInteractive) {
  Endpoint se = make_endpoint(ca.node("node-b"), "node-b", "cluster-1");
  Endpoint ce = make_endpoint(ca.node("node-a"), "node-a", "cluster-1");
  Server server{io, se};
  server.start();
  auto s = run_until_done(io, connect(io, ce, server.port(), false, clock));
  ASSERT_TRUE(s.has_value()) << s.error().message;
  auto session = *s;
  // Bulk stream to a reader that never reads: fills its window, then its writer blocks.
  auto bulk = session->open_stream("sink", TrafficClass::kBulk);
  ASSERT_TRUE(bulk.has_value());
  bool bulk_done = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        std::vector<std::uint8_t> chunk(1 << 20, 0xbb);
        for (int i = 0; i < 64; ++i) {
          if (!co_await (*bulk)->write(asio::buffer(chunk))) break;
        }
        bulk_done = true;
      },
      asio::detached);
  for (int i = 0; i < 50; ++i) io.run_one_for(10ms);
  EXPECT_FALSE(bulk_done);  // backpressure holds the bulk writer
  // Interactive round trips on the same session stay fast.
  auto worst = run_until_done(io, [](std::shared_ptr<Session> ss) -> asio::awaitable<double> {
    auto st = *ss->open_stream("echo", TrafficClass::kInteractive);
    std::array<char, 64> msg{};
    std::array<char, 64> rsp{};
    double worst_ms = 0;
    for (int i = 0; i < 200; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      (void)co_await st->write(asio::buffer(msg));
      std::size_t got = 0;
      while (got < rsp.size()) {
        auto n = co_await st->read_some(asio::buffer(rsp.data() + got, rsp.size() - got));
        if (!n || *n == 0) co_return 1e9;
        got += *n;
      }
      worst_ms = std::max(
          worst_ms,
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    co_return worst_ms;
  }(session));
  EXPECT_LT(worst, 100.0) << "interactive worst RTT " << worst
                          << " ms behind a stalled bulk stream";
  auto st = session->stats();
  EXPECT_GT(st.tx.bytes_by_class[static_cast<int>(TrafficClass::kBulk)], 100000u);
  EXPECT_EQ(st.tx.bytes_by_class[static_cast<int>(TrafficClass::kInteractive)], 200u * 64);
}

TEST_F(FabricTls, ResetOfOneStreamLeavesOthersDelivering) {
  Endpoint se = make_endpoint(ca.node("node-b"), "node-b", "cluster-1");
  Endpoint ce = make_endpoint(ca.node("node-a"), "node-a", "cluster-1");
  Server server{io, se};
  server.start();
  auto s = run_until_done(io, connect(io, ce, server.port(), false, clock));
  ASSERT_TRUE(s.has_value());
  auto ok = run_until_done(io, [](std::shared_ptr<Session> ss) -> asio::awaitable<std::string> {
    auto a = *ss->open_stream("echo", TrafficClass::kReliable);
    auto b = *ss->open_stream("echo", TrafficClass::kReliable);
    (void)co_await a->write(asio::buffer(std::string("first")));
    a->reset(ErrorCode::kCancel, "user hung up");
    auto r = co_await a->read_some(asio::buffer(std::string(10, ' ').data(), 10));
    if (r) co_return "read after reset succeeded";
    std::string payload(100000, 'k');
    (void)co_await b->write(asio::buffer(payload));
    std::string got;
    std::vector<char> buf(65536);
    while (got.size() < payload.size()) {
      auto n = co_await b->read_some(asio::buffer(buf));
      if (!n || *n == 0)
        co_return "stream b broke: " + (n ? std::string("eof") : n.error().message);
      got.append(buf.data(), *n);
    }
    co_return got == payload ? "ok" : "mismatch";
  }(*s));
  EXPECT_EQ(ok, "ok");
  EXPECT_TRUE((*s)->is_open());
  io.run_for(50ms);
  EXPECT_GE(server.session->stats().resets_received.at("cancel"), 1u);
  EXPECT_TRUE(server.session->is_open());
}
