// FabricNode: service dispatch, unknown services, node totals that survive sessions, refusals.
#include "rap/fabric/node.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <thread>

#include "test_pki.h"

using namespace rap;
using namespace rap::fabric;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

template <class T>
T run(asio::io_context& io, asio::awaitable<T> aw) {
  std::optional<T> out;
  std::exception_ptr err;
  auto guard = asio::make_work_guard(io);
  asio::co_spawn(io, std::move(aw), [&](std::exception_ptr e, T v) {
    err = e;
    if (!e) out = std::move(v);
    io.stop();
  });
  io.restart();
  io.run_for(20s);
  if (err) std::rethrow_exception(err);
  if (!out) throw std::runtime_error("timed out");
  return std::move(*out);
}

void settle(asio::io_context& io) {
  io.restart();
  io.run_for(100ms);
}

}  // namespace

TEST(FabricNode, DispatchesServicesAndKeepsTotalsAfterSessionsClose) {
  asio::io_context io;
  SystemClock clock;
  rap::testing::TestCa ca("cluster-1");
  auto b = *FabricNode::create(io.get_executor(), ca.node("node-b").creds, {}, clock);
  auto a = *FabricNode::create(io.get_executor(), ca.node("node-a").creds, {}, clock);
  b->register_service("upper", [](std::shared_ptr<Stream> st) -> asio::awaitable<void> {
    std::array<char, 4096> buf{};
    for (;;) {
      auto n = co_await st->read_some(asio::buffer(buf));
      if (!n || *n == 0) break;
      for (std::size_t i = 0; i < *n; ++i) buf[i] = static_cast<char>(std::toupper(buf[i]));
      (void)co_await st->write(asio::buffer(buf.data(), *n));
    }
    (void)st->close_write();
  });
  const auto port = *b->listen(CarrierKind::kTls, {asio::ip::make_address("127.0.0.1"), 0});
  auto reply = run(io, [&]() -> asio::awaitable<std::string> {
    auto s = co_await a->connect(CarrierKind::kTls, "127.0.0.1", port);
    if (!s) co_return "connect: " + s.error().message;
    // Unknown service: the stream is reset with a reason, the session stays.
    auto bad = *(*s)->open_stream("nope", TrafficClass::kReliable);
    std::array<char, 16> tmp{};
    auto r = co_await bad->read_some(asio::buffer(tmp));
    if (r) co_return "unknown service was not refused";
    if (r.error().code != "unknown_service") co_return "wrong reset code " + r.error().code;
    auto st = *(*s)->open_stream("upper", TrafficClass::kReliable);
    (void)co_await st->write(asio::buffer(std::string("fabric")));
    (void)st->close_write();
    std::string got;
    for (;;) {
      auto n = co_await st->read_some(asio::buffer(tmp));
      if (!n || *n == 0) break;
      got.append(tmp.data(), *n);
    }
    (*s)->close("done");
    co_await (*s)->wait_closed();
    co_return got;
  }());
  EXPECT_EQ(reply, "FABRIC");
  settle(io);
  const auto text = b->prometheus();
  EXPECT_NE(
      text.find("rap_fabric_node_bytes_total{node=\"node-b\",dir=\"rx\",class=\"reliable\"} 6"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("rap_fabric_node_sessions_total{node=\"node-b\",event=\"closed\"} 1"),
            std::string::npos);
  EXPECT_EQ(b->session_count(), 0u);
}

TEST(FabricNode, CountsRefusedSessions) {
  asio::io_context io;
  SystemClock clock;
  rap::testing::TestCa ca("cluster-1");
  rap::testing::TestCa other("cluster-2");
  auto b = *FabricNode::create(io.get_executor(), ca.node("node-b").creds, {}, clock);
  auto stranger = other.node("node-x");
  stranger.creds.ca_pem = ca.ca_pem();
  auto x = *FabricNode::create(io.get_executor(), stranger.creds, {}, clock);
  const auto port = *b->listen(CarrierKind::kTls, {asio::ip::make_address("127.0.0.1"), 0});
  auto err = run(io, [&]() -> asio::awaitable<std::string> {
    auto s = co_await x->connect(CarrierKind::kTls, "127.0.0.1", port);
    co_return s ? std::string("connected?!") : s.error().code + ": " + s.error().message;
  }());
  // TLS 1.3: the client finishes its handshake before the server checks its certificate, so it
  // learns of the refusal from the alert on its first read.
  EXPECT_NE(err.find("unknown ca"), std::string::npos) << err;
  settle(io);
  EXPECT_NE(b->prometheus().find("rap_fabric_node_sessions_refused_total{node=\"node-b\",reason="
                                 "\"tls_handshake_failed\"} 1"),
            std::string::npos);
}

// Lanes (PROTOCOL.md §15): a connection that asks for a lane by ALPN is handed, after the TLS
// handshake, to the lane's node on another thread, which runs the session; a lane the listener
// does not serve fails on the dialer with "lane_unsupported" and never becomes a session.
TEST(FabricNode, LaneConnectionsContinueOnTheLaneNodesThread) {
  SystemClock clock;
  rap::testing::TestCa ca("cluster-1");
  const auto b_creds = ca.node("node-b").creds;
  asio::io_context io_main, io_lane, io_client;
  auto guard_main = asio::make_work_guard(io_main);
  auto guard_lane = asio::make_work_guard(io_lane);
  auto b = *FabricNode::create(io_main.get_executor(), b_creds, {}, clock);
  auto lane = *FabricNode::create(io_lane.get_executor(), b_creds, {}, clock);
  auto a = *FabricNode::create(io_client.get_executor(), ca.node("node-a").creds, {}, clock);
  std::atomic<std::thread::id> served_on{};
  auto echo_where = [&](const char* tag) {
    return [&served_on, tag](std::shared_ptr<Stream> st) -> asio::awaitable<void> {
      served_on = std::this_thread::get_id();
      std::string t(tag);
      (void)co_await st->write(asio::buffer(t));
      (void)st->close_write();
    };
  };
  b->register_service("where", echo_where("main"));
  lane->register_service("where", echo_where("lane"));
  b->serve_lane("interactive", [&](std::unique_ptr<Carrier> c) {
    ASSERT_TRUE(c->rebind(io_lane.get_executor()));
    asio::post(io_lane, [&, c = std::move(c)]() mutable { lane->adopt(std::move(c)); });
  });
  const auto port = *b->listen(CarrierKind::kTls, {asio::ip::make_address("127.0.0.1"), 0});
  std::thread t_main([&] { io_main.run(); });
  std::thread t_lane([&] { io_lane.run(); });
  auto ask = [&](std::string lane_name) -> asio::awaitable<std::string> {
    auto s = co_await a->connect(CarrierKind::kTls, "127.0.0.1", port, lane_name);
    if (!s) co_return s.error().code;
    auto st = *(*s)->open_stream("where", TrafficClass::kInteractive);
    std::array<char, 16> tmp{};
    std::string got;
    for (;;) {
      auto n = co_await st->read_some(asio::buffer(tmp));
      if (!n || *n == 0) break;
      got.append(tmp.data(), *n);
    }
    (*s)->close("done");
    co_await (*s)->wait_closed();
    co_return got;
  };
  EXPECT_EQ(run(io_client, ask("interactive")), "lane");
  EXPECT_EQ(served_on.load(), t_lane.get_id());
  EXPECT_EQ(run(io_client, ask("")), "main");
  EXPECT_EQ(served_on.load(), t_main.get_id());
  EXPECT_EQ(run(io_client, ask("bulk")), "lane_unsupported");
  // A carrier that cannot change threads says so (WebSocket carriers stay on theirs).
  auto wss = run(io_client, [&]() -> asio::awaitable<std::string> {
    auto s = co_await a->connect(CarrierKind::kWss, "127.0.0.1", port, "interactive");
    co_return s ? std::string("connected?!") : s.error().code;
  }());
  EXPECT_EQ(wss, "lane_unsupported");
  asio::post(io_main, [&] {
    b->stop("test over", false);
    guard_main.reset();
  });
  asio::post(io_lane, [&] {
    lane->stop("test over", false);
    guard_lane.reset();
  });
  t_main.join();
  t_lane.join();
  EXPECT_EQ(b->lane_handoffs(), 1u);
}
