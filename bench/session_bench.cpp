// Session benchmarks on loopback, each beside its baseline in the same run:
//   bulk:   one bulk fabric stream  vs  plain TLS 1.3 socket pair (same cipher)  vs  raw TCP
//   rtt:    64-byte request/response over a fabric stream, idle and under a saturating bulk
//           stream on the same session  vs  the same exchange on a plain TLS socket pair
//   memory: RSS per idle session with N sessions open to one (forked) server process
// Usage: bench_session [--bytes N] [--rounds N] [--sessions N]
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "rap/crypto/certs.h"
#include "rap/fabric/diag_services.h"
#include "rap/fabric/node.h"

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace rap;
using namespace rap::fabric;
using namespace std::chrono_literals;
using Clk = std::chrono::steady_clock;

namespace {

constexpr auto kAw = asio::use_awaitable;
constexpr std::size_t kChunk = 256 * 1024;

struct Pki {
  crypto::NodeCredentials a, b;
};

Pki make_pki() {
  auto ca_key = *crypto::Ed25519Key::generate();
  auto now = std::chrono::system_clock::now();
  auto ca = *crypto::make_ca_certificate(ca_key, "bench", {now - 1h, now + 24h});
  auto issue = [&](const std::string& node, std::uint64_t serial) {
    auto k = *crypto::Ed25519Key::generate();
    auto cert = *crypto::issue_node_certificate(ca_key, ca, k.public_key(), "bench", node, serial,
                                                {now - 1h, now + 24h});
    return crypto::NodeCredentials{ca, cert, k.private_pem()};
  };
  return Pki{issue("a", 2), issue("b", 3)};
}

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

// ---- baseline servers: raw TCP and plain TLS (discard with a 1-byte ack at the end, or echo) --

template <class Sock>
asio::awaitable<void> baseline_conn(Sock s) {
  std::vector<std::uint8_t> buf(kChunk);
  std::uint64_t hdr[2];  // [mode, bytes]  mode 0 = discard N then ack, 1 = echo 64-byte msgs
  co_await asio::async_read(s, asio::buffer(hdr, sizeof hdr), kAw);
  if (hdr[0] == 0) {
    std::uint64_t left = hdr[1];
    while (left > 0) {
      auto n = co_await s.async_read_some(
          asio::buffer(buf.data(), std::min<std::uint64_t>(left, buf.size())), kAw);
      left -= n;
    }
    co_await asio::async_write(s, asio::buffer(buf.data(), 1), kAw);
  } else {
    for (;;) {
      auto [ec, n] =
          co_await asio::async_read(s, asio::buffer(buf.data(), 64), asio::as_tuple(kAw));
      if (ec) break;
      co_await asio::async_write(s, asio::buffer(buf.data(), 64), kAw);
    }
  }
}

asio::awaitable<void> tcp_server(tcp::acceptor& acc) {
  for (;;) {
    auto s = co_await acc.async_accept(kAw);
    s.set_option(tcp::no_delay(true));
    asio::co_spawn(acc.get_executor(), baseline_conn(std::move(s)), asio::detached);
  }
}

asio::awaitable<void> tls_server(tcp::acceptor& acc, std::shared_ptr<TlsContext> ctx) {
  for (;;) {
    auto s = co_await acc.async_accept(kAw);
    s.set_option(tcp::no_delay(true));
    asio::co_spawn(
        acc.get_executor(),
        [ctx, sock = std::move(s)]() mutable -> asio::awaitable<void> {
          asio::ssl::stream<tcp::socket> ss(std::move(sock), ctx->native());
          co_await ss.async_handshake(asio::ssl::stream_base::server, kAw);
          co_await baseline_conn(std::move(ss));
        },
        asio::detached);
  }
}

template <class Sock>
asio::awaitable<double> baseline_bulk(Sock& s, std::uint64_t bytes) {
  std::vector<std::uint8_t> buf(kChunk, 0x42);
  std::uint64_t hdr[2] = {0, bytes};
  const auto t0 = Clk::now();
  co_await asio::async_write(s, asio::buffer(hdr, sizeof hdr), kAw);
  std::uint64_t left = bytes;
  while (left > 0) {
    auto n = std::min<std::uint64_t>(left, buf.size());
    co_await asio::async_write(s, asio::buffer(buf.data(), n), kAw);
    left -= n;
  }
  co_await asio::async_read(s, asio::buffer(buf.data(), 1), kAw);
  co_return std::chrono::duration<double>(Clk::now() - t0).count();
}

template <class Sock>
asio::awaitable<std::vector<double>> baseline_rtt(Sock& s, int rounds) {
  std::uint64_t hdr[2] = {1, 0};
  co_await asio::async_write(s, asio::buffer(hdr, sizeof hdr), kAw);
  std::array<std::uint8_t, 64> m{};
  std::vector<double> out;
  for (int i = 0; i < rounds; ++i) {
    const auto t0 = Clk::now();
    co_await asio::async_write(s, asio::buffer(m), kAw);
    co_await asio::async_read(s, asio::buffer(m), kAw);
    out.push_back(std::chrono::duration<double, std::micro>(Clk::now() - t0).count());
  }
  co_return out;
}

// ---- fabric client operations ----

asio::awaitable<double> fabric_bulk(std::shared_ptr<Session> s, std::uint64_t bytes) {
  auto st = *s->open_stream("discard", TrafficClass::kBulk);
  std::vector<std::uint8_t> buf(kChunk, 0x42);
  const auto t0 = Clk::now();
  std::uint64_t left = bytes;
  while (left > 0) {
    auto n = std::min<std::uint64_t>(left, buf.size());
    if (!co_await st->write(asio::buffer(buf.data(), n))) co_return -1;
    left -= n;
  }
  (void)st->close_write();
  std::string reply;
  std::array<char, 64> b{};
  for (;;) {
    auto r = co_await st->read_some(asio::buffer(b));
    if (!r || *r == 0) break;
    reply.append(b.data(), *r);
  }
  const double secs = std::chrono::duration<double>(Clk::now() - t0).count();
  co_return reply == std::to_string(bytes) ? secs : -1;
}

asio::awaitable<std::vector<double>> fabric_rtt(std::shared_ptr<Session> s, int rounds) {
  auto st = *s->open_stream("echo", TrafficClass::kInteractive);
  std::array<std::uint8_t, 64> m{};
  std::vector<double> out;
  for (int i = 0; i < rounds; ++i) {
    const auto t0 = Clk::now();
    (void)co_await st->write(asio::buffer(m));
    std::size_t got = 0;
    while (got < m.size()) {
      auto r = co_await st->read_some(asio::buffer(m.data() + got, m.size() - got));
      if (!r || *r == 0) co_return out;
      got += *r;
    }
    out.push_back(std::chrono::duration<double, std::micro>(Clk::now() - t0).count());
  }
  (void)st->close_write();
  co_return out;
}

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
  io.run();
  if (err) std::rethrow_exception(err);
  return std::move(*out);
}

long rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

void raise_nofile() {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t bytes = 2ull << 30;
  int rounds = 5000;
  int sessions = 1000;
  SessionConfig cfg;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--bytes") bytes = std::stoull(argv[i + 1]);
    if (a == "--rounds") rounds = std::stoi(argv[i + 1]);
    if (a == "--sessions") sessions = std::stoi(argv[i + 1]);
    if (a == "--latency-target-us")
      cfg.latency_target = std::chrono::microseconds(std::stoi(argv[i + 1]));
    if (a == "--max-window")
      cfg.max_stream_window = static_cast<std::uint32_t>(std::stoul(argv[i + 1]));
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  raise_nofile();
  spdlog::set_level(spdlog::level::warn);
  const Pki pki = make_pki();
  SystemClock clock;

  // ---------------- memory per idle session (server in a forked process) ----------------
  {
    int pipefd[2];
    if (pipe(pipefd) != 0) return 1;
    const pid_t child = fork();
    if (child == 0) {
      asio::io_context sio;
      auto node = *FabricNode::create(sio.get_executor(), pki.b, SessionConfig{}, clock);
      const auto port =
          *node->listen(CarrierKind::kTls, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
      if (write(pipefd[1], &port, sizeof port) != sizeof port) _exit(1);
      sio.run();
      _exit(0);
    }
    std::uint16_t port = 0;
    if (read(pipefd[0], &port, sizeof port) != sizeof port) return 1;
    asio::io_context io;
    auto node = *FabricNode::create(io.get_executor(), pki.a, SessionConfig{}, clock);
    // Warm up allocator/TLS state with a few sessions first, then measure the delta.
    std::vector<std::shared_ptr<Session>> keep;
    for (int i = 0; i < 20; ++i)
      keep.push_back(*run(io, node->connect(CarrierKind::kTls, "127.0.0.1", port)));
    io.run_for(300ms);
    const long before = rss_kib(child);
    for (int i = 0; i < sessions; ++i) {
      auto s = run(io, node->connect(CarrierKind::kTls, "127.0.0.1", port));
      if (!s) {
        std::fprintf(stderr, "session %d failed: %s\n", i, s.error().message.c_str());
        break;
      }
      keep.push_back(*s);
    }
    io.run_for(1s);
    const long after = rss_kib(child);
    const double per = static_cast<double>(after - before) * 1024.0 / sessions;
    std::printf(
        "memory: %d idle sessions in one server process: RSS +%ld KiB = %.1f KiB/session (target "
        "<= 64 KiB: %s)\n",
        sessions, after - before, per / 1024.0, per <= 64 * 1024 ? "met" : "NOT met");
    for (auto& s : keep) s->close("bench done");
    io.run_for(200ms);
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
  }

  // ---------------- servers on their own thread ----------------
  asio::io_context sio;
  auto server = *FabricNode::create(sio.get_executor(), pki.b, cfg, clock);
  register_diagnostic_services(*server);
  const auto fport =
      *server->listen(CarrierKind::kTls, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::acceptor tacc(sio, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::acceptor sacc(sio, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  auto sctx = *TlsContext::create(pki.b, nullptr);
  asio::co_spawn(sio, tcp_server(tacc), asio::detached);
  asio::co_spawn(sio, tls_server(sacc, sctx), asio::detached);
  auto guard = asio::make_work_guard(sio);
  std::thread st([&] { sio.run(); });

  asio::io_context io;
  auto cctx = *TlsContext::create(pki.a, nullptr);
  auto client = *FabricNode::create(io.get_executor(), pki.a, cfg, clock);

  // ---------------- bulk ----------------
  auto tcp_secs = run(io, [&]() -> asio::awaitable<double> {
    tcp::socket s(io);
    co_await s.async_connect(tacc.local_endpoint(), kAw);
    s.set_option(tcp::no_delay(true));
    co_return co_await baseline_bulk(s, bytes);
  }());
  auto tls_secs = run(io, [&]() -> asio::awaitable<double> {
    asio::ssl::stream<tcp::socket> s(io, cctx->native());
    co_await s.lowest_layer().async_connect(sacc.local_endpoint(), kAw);
    s.lowest_layer().set_option(tcp::no_delay(true));
    co_await s.async_handshake(asio::ssl::stream_base::client, kAw);
    co_return co_await baseline_bulk(s, bytes);
  }());
  auto session = *run(io, client->connect(CarrierKind::kTls, "127.0.0.1", fport));
  auto fab_secs = run(io, fabric_bulk(session, bytes));
  if (fab_secs < 0) {
    std::fprintf(stderr, "fabric bulk transfer failed verification\n");
    return 1;
  }
  auto gbps = [&](double s) { return static_cast<double>(bytes) * 8 / s / 1e9; };
  std::printf(
      "bulk: raw TCP %.2f Gbit/s | plain TLS pair %.2f Gbit/s | fabric stream %.2f Gbit/s\n",
      gbps(tcp_secs), gbps(tls_secs), gbps(fab_secs));
  std::printf("bulk ratio: fabric/TLS = %.2fx (target >= 0.8x: %s), fabric/TCP = %.2fx\n",
              tls_secs / fab_secs, tls_secs / fab_secs >= 0.8 ? "met" : "NOT met",
              tcp_secs / fab_secs);

  // ---------------- RTT ----------------
  auto tls_rtt = run(io, [&]() -> asio::awaitable<std::vector<double>> {
    asio::ssl::stream<tcp::socket> s(io, cctx->native());
    co_await s.lowest_layer().async_connect(sacc.local_endpoint(), kAw);
    s.lowest_layer().set_option(tcp::no_delay(true));
    co_await s.async_handshake(asio::ssl::stream_base::client, kAw);
    co_return co_await baseline_rtt(s, rounds);
  }());
  auto idle = run(io, fabric_rtt(session, rounds));
  bool bulk_on = true;
  std::uint64_t bulk_bytes = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto bst = *session->open_stream("discard", TrafficClass::kBulk);
        std::vector<std::uint8_t> buf(kChunk, 1);
        while (bulk_on) {
          if (!co_await bst->write(asio::buffer(buf))) break;
          bulk_bytes += buf.size();
        }
        bst->reset(ErrorCode::kCancel, "bench done");
      },
      asio::detached);
  run(io, [&]() -> asio::awaitable<int> {
    asio::steady_timer t(io, 300ms);
    co_await t.async_wait(kAw);
    co_return 0;
  }());
  const auto loaded_t0 = Clk::now();
  const std::uint64_t bulk_before = bulk_bytes;
  auto loaded = run(io, fabric_rtt(session, rounds));
  const double loaded_secs = std::chrono::duration<double>(Clk::now() - loaded_t0).count();
  const double bulk_gbps = static_cast<double>(bulk_bytes - bulk_before) * 8 / loaded_secs / 1e9;
  bulk_on = false;
  std::printf(
      "rtt 64B: plain TLS idle p50 %.1f us p99 %.1f us | fabric idle p50 %.1f us p99 %.1f us\n",
      pct(tls_rtt, .5), pct(tls_rtt, .99), pct(idle, .5), pct(idle, .99));
  std::printf(
      "rtt 64B under saturating bulk (%.2f Gbit/s on the same session): p50 %.1f us p99 %.1f us "
      "max %.1f us\n",
      bulk_gbps, pct(loaded, .5), pct(loaded, .99), pct(loaded, 1));
  std::printf(
      "rtt ratio: fabric idle p99 / TLS idle p99 = %.2fx; loaded p99 / idle p99 = %.2fx (target <= "
      "3x: %s); loaded p99 <= 2 ms: %s\n",
      pct(idle, .99) / pct(tls_rtt, .99), pct(loaded, .99) / pct(idle, .99),
      pct(loaded, .99) <= 3 * pct(idle, .99) ? "met" : "NOT met",
      pct(loaded, .99) <= 2000 ? "met" : "NOT met");
  session->close("bench done");
  io.run_for(200ms);
  guard.reset();
  sio.stop();
  st.join();
  return 0;
}
