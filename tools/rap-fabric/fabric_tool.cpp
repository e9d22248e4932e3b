#include "fabric_tool.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "rap/common/env.h"
#include "rap/crypto/certs.h"
#include "rap/fabric/diag_services.h"
#include "rap/fabric/node.h"

namespace rap::fabric::tool {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Json = nlohmann::json;

int error(const std::string& msg, int code = 1) {
  std::cerr << "rap-fabric: " << msg << "\n";
  return code;
}

Result<std::pair<std::string, std::uint16_t>> split_host_port(const std::string& s) {
  const auto pos = s.rfind(':');
  if (pos == std::string::npos || pos == 0)
    return fail("bad_address", "expected host:port, got '" + s + "'");
  try {
    const int port = std::stoi(s.substr(pos + 1));
    if (port < 0 || port > 65535) throw std::out_of_range("port");
    std::string host = s.substr(0, pos);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    return std::make_pair(host, static_cast<std::uint16_t>(port));
  } catch (const std::exception&) {
    return fail("bad_address", "bad port in '" + s + "'");
  }
}

Result<crypto::NodeCredentials> load_creds(const std::string& dir) {
  Env& env = default_env();
  auto ca = env.read_file(dir + "/ca.pem");
  if (!ca) return tl::unexpected(ca.error());
  auto cert = env.read_file(dir + "/node.pem");
  if (!cert) return tl::unexpected(cert.error());
  auto key = env.read_file(dir + "/node.key");
  if (!key) return tl::unexpected(key.error());
  return crypto::NodeCredentials{*ca, *cert, *key};
}

double pct(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto idx = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  return v[idx];
}

struct Client {
  asio::io_context io;
  SystemClock clock;
  std::unique_ptr<FabricNode> node;
  std::shared_ptr<Session> session;

  // Ends the session cleanly (GOAWAY) so the peer logs a normal close, not a transport error.
  ~Client() {
    if (!session || session->is_closed()) return;
    session->close("client done");
    io.restart();
    io.run_for(std::chrono::milliseconds(500));
  }
};

// Connects per the options; returns an exit code (0 ok).
int dial(Client& c, const Options& o) {
  auto creds = load_creds(o.creds);
  if (!creds) return error(creds.error().message, 2);
  auto hp = split_host_port(o.peer);
  if (!hp) return error(hp.error().message, 2);
  CarrierKind kind{};
  if (!parse_carrier_kind(o.carrier, kind)) return error("--carrier must be tls or wss", 2);
  auto node = FabricNode::create(c.io.get_executor(), *creds, SessionConfig{}, c.clock);
  if (!node) return error(node.error().message, 2);
  c.node = std::move(*node);
  Result<std::shared_ptr<Session>> result = fail("unset", "");
  asio::co_spawn(
      c.io,
      [&]() -> asio::awaitable<void> {
        result = co_await c.node->connect(kind, hp->first, hp->second);
      },
      asio::detached);
  while (result.has_value() == false && result.error().code == "unset") c.io.run_one();
  if (!result) return error("session to " + o.peer + " failed: " + result.error().message);
  c.session = *result;
  return 0;
}

}  // namespace

int pki_init(const Options& o) {
  Env& env = default_env();
  if (env.exists(o.dir + "/ca.key")) return error("CA already exists in " + o.dir, 2);
  if (auto r = env.make_dirs(o.dir, 0700); !r) return error(r.error().message);
  auto key = crypto::Ed25519Key::generate();
  if (!key) return error(key.error().message);
  const auto now = std::chrono::system_clock::now();
  auto ca = crypto::make_ca_certificate(*key, o.cluster, {now - 1h, now + 24h * 3650});
  if (!ca) return error(ca.error().message, 2);
  if (auto r = env.write_file_atomic(o.dir + "/ca.key", key->private_pem(), 0600); !r)
    return error(r.error().message);
  if (auto r = env.write_file_atomic(o.dir + "/ca.pem", *ca, 0644); !r)
    return error(r.error().message);
  if (auto r = env.write_file_atomic(o.dir + "/serial", "1\n", 0600); !r)
    return error(r.error().message);
  if (auto r = env.write_file_atomic(o.dir + "/cluster", o.cluster, 0644); !r)
    return error(r.error().message);
  std::cout << "cluster CA for '" << o.cluster << "' in " << o.dir << "\n";
  return 0;
}

int pki_issue(const Options& o) {
  Env& env = default_env();
  auto ca_key_pem = env.read_file(o.dir + "/ca.key");
  if (!ca_key_pem) return error(ca_key_pem.error().message, 2);
  auto ca_pem = env.read_file(o.dir + "/ca.pem");
  if (!ca_pem) return error(ca_pem.error().message, 2);
  auto ca_key = crypto::Ed25519Key::from_pem(*ca_key_pem);
  if (!ca_key) return error(ca_key.error().message, 2);
  auto serial_s = env.read_file(o.dir + "/serial");
  if (!serial_s) return error(serial_s.error().message, 2);
  std::uint64_t serial = std::strtoull(serial_s->c_str(), nullptr, 10);
  auto cluster = env.read_file(o.dir + "/cluster");
  if (!cluster || cluster->empty())
    return error("CA directory has no cluster file (run pki init)", 2);
  auto key = crypto::Ed25519Key::generate();
  if (!key) return error(key.error().message);
  const auto now = std::chrono::system_clock::now();
  auto cert = crypto::issue_node_certificate(*ca_key, *ca_pem, key->public_key(), *cluster, o.node,
                                             serial + 1, {now - 1h, now + 24h * o.days});
  if (!cert) return error(cert.error().message, 2);
  if (auto r = env.make_dirs(o.out, 0700); !r) return error(r.error().message);
  if (auto r = env.write_file_atomic(o.out + "/node.key", key->private_pem(), 0600); !r)
    return error(r.error().message);
  if (auto r = env.write_file_atomic(o.out + "/node.pem", *cert, 0644); !r)
    return error(r.error().message);
  if (auto r = env.write_file_atomic(o.out + "/ca.pem", *ca_pem, 0644); !r)
    return error(r.error().message);
  if (auto r = env.write_file_atomic(o.dir + "/serial", std::to_string(serial + 1) + "\n", 0600);
      !r)
    return error(r.error().message);
  std::cout << "node '" << o.node << "' of cluster '" << *cluster << "' serial " << serial + 1
            << " in " << o.out << "\n";
  return 0;
}

int serve(const Options& o) {
  auto creds = load_creds(o.creds);
  if (!creds) return error(creds.error().message, 2);
  asio::io_context io;
  SystemClock clock;
  auto node = FabricNode::create(io.get_executor(), *creds, SessionConfig{}, clock);
  if (!node) return error(node.error().message, 2);
  auto& n = **node;
  register_diagnostic_services(n);
  auto parse_ep = [](const std::string& s) -> Result<asio::ip::tcp::endpoint> {
    auto hp = split_host_port(s);
    if (!hp) return tl::unexpected(hp.error());
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(hp->first, ec);
    if (ec) return fail("bad_address", "not an IP address: " + hp->first);
    return asio::ip::tcp::endpoint(addr, hp->second);
  };
  auto ep = parse_ep(o.listen);
  if (!ep) return error(ep.error().message, 2);
  if (auto r = n.listen(CarrierKind::kTls, *ep); !r) return error(r.error().message);
  if (!o.wss.empty()) {
    auto wep = parse_ep(o.wss);
    if (!wep) return error(wep.error().message, 2);
    if (auto r = n.listen(CarrierKind::kWss, *wep); !r) return error(r.error().message);
  }
  if (!o.metrics.empty()) {
    auto mep = parse_ep(o.metrics);
    if (!mep) return error(mep.error().message, 2);
    auto r = serve_metrics(
        io.get_executor(), *mep, [&n] { return n.prometheus(); },
        [&n] {
          Json j;
          j["node"] = n.identity().node_id;
          j["cluster"] = n.identity().cluster_id;
          j["sessions"] = Json::array();
          for (const auto& s : n.snapshot()) {
            Json js;
            js["peer"] = s.peer_node;
            js["carrier"] = s.carrier;
            js["state"] = s.state;
            js["rtt_ms"] = static_cast<double>(s.stats.rtt_smoothed.count()) / 1e6;
            js["open_streams"] = s.stats.open_streams;
            js["tx_frames"] = s.stats.tx.wire_bytes;
            j["sessions"].push_back(js);
          }
          return j.dump(2);
        });
    if (!r) return error(r.error().message);
    spdlog::info("metrics on http://{}:{}/metrics", mep->address().to_string(), *r);
  }
  // Keep sessions to configured peers up (reconnect with backoff).
  for (const auto& p : o.peers) {
    auto hp = split_host_port(p);
    if (!hp) return error(hp.error().message, 2);
    asio::co_spawn(
        io,
        [&n, host = hp->first, port = hp->second, p]() -> asio::awaitable<void> {
          auto backoff = 200ms;
          for (;;) {
            auto s = co_await n.connect(CarrierKind::kTls, host, port);
            if (s) {
              spdlog::info("fabric session up peer={} addr={}", (*s)->peer().node_id, p);
              backoff = 200ms;
              co_await (*s)->wait_closed();
              spdlog::warn("fabric session to {} closed: {}", p, (*s)->close_reason().message);
            } else {
              spdlog::warn("fabric dial {} failed: {}", p, s.error().message);
            }
            asio::steady_timer t(co_await asio::this_coro::executor, backoff);
            co_await t.async_wait(asio::use_awaitable);
            backoff = std::min<std::chrono::milliseconds>(backoff * 2, 5s);
          }
        },
        asio::detached);
  }
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    spdlog::info("shutting down: draining sessions");
    n.stop("node shutting down");
    asio::steady_timer* t = new asio::steady_timer(io, 2s);
    t->async_wait([&io, t](const boost::system::error_code&) {
      delete t;
      io.stop();
    });
  });
  io.run();
  return 0;
}

int ping(const Options& o) {
  Client c;
  if (int rc = dial(c, o); rc != 0) return rc;
  std::vector<double> rtts;
  std::string failure;
  bool bulk_running = o.with_bulk;
  std::uint64_t bulk_bytes = 0;
  if (o.with_bulk) {
    asio::co_spawn(
        c.io,
        [&]() -> asio::awaitable<void> {
          auto st = c.session->open_stream("discard", TrafficClass::kBulk);
          if (!st) co_return;
          std::vector<std::uint8_t> chunk(256 * 1024, 0x42);
          while (bulk_running) {
            if (!co_await (*st)->write(asio::buffer(chunk))) break;
            bulk_bytes += chunk.size();
          }
          (*st)->reset(ErrorCode::kCancel, "ping done");
        },
        asio::detached);
  }
  bool done = false;
  asio::co_spawn(
      c.io,
      [&]() -> asio::awaitable<void> {
        auto st = c.session->open_stream("echo", TrafficClass::kInteractive);
        if (!st) {
          failure = st.error().message;
          done = true;
          co_return;
        }
        std::array<std::uint8_t, 64> msg{};
        std::array<std::uint8_t, 64> rsp{};
        if (o.with_bulk) {
          asio::steady_timer t(c.io, 300ms);  // let bulk saturate first
          co_await t.async_wait(asio::use_awaitable);
        }
        for (int i = 0; i < o.count; ++i) {
          msg[0] = static_cast<std::uint8_t>(i);
          const auto t0 = std::chrono::steady_clock::now();
          if (auto w = co_await (*st)->write(asio::buffer(msg)); !w) {
            failure = w.error().message;
            break;
          }
          std::size_t got = 0;
          while (got < rsp.size()) {
            auto r = co_await (*st)->read_some(asio::buffer(rsp.data() + got, rsp.size() - got));
            if (!r || *r == 0) {
              failure = r ? "peer closed the stream" : r.error().message;
              break;
            }
            got += *r;
          }
          if (!failure.empty()) break;
          if (rsp[0] != msg[0]) {
            failure = "echo mismatch";
            break;
          }
          rtts.push_back(
              std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                  .count());
        }
        bulk_running = false;
        (void)(*st)->close_write();
        done = true;
      },
      asio::detached);
  while (!done) c.io.run_one();
  if (!failure.empty()) return error(failure);
  const double p50 = pct(rtts, 0.5), p99 = pct(rtts, 0.99), mx = pct(rtts, 1.0);
  if (o.json) {
    Json j{{"count", rtts.size()},     {"p50_us", p50},           {"p99_us", p99}, {"max_us", mx},
           {"with_bulk", o.with_bulk}, {"bulk_bytes", bulk_bytes}};
    std::cout << j.dump() << "\n";
  } else {
    std::printf("%zu round trips to %s over %s: p50 %.1f us, p99 %.1f us, max %.1f us%s\n",
                rtts.size(), c.session->peer().node_id.c_str(), o.carrier.c_str(), p50, p99, mx,
                o.with_bulk ? " (with saturating bulk)" : "");
  }
  return 0;
}

int push(const Options& o) {
  Client c;
  if (int rc = dial(c, o); rc != 0) return rc;
  TrafficClass cls{};
  if (!parse_traffic_class(o.cls, cls)) return error("unknown traffic class " + o.cls, 2);
  int remaining = o.streams;
  std::string failure;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < o.streams; ++i) {
    asio::co_spawn(
        c.io,
        [&]() -> asio::awaitable<void> {
          auto st = c.session->open_stream("discard", cls);
          if (!st) {
            failure = st.error().message;
            --remaining;
            co_return;
          }
          std::vector<std::uint8_t> chunk(256 * 1024, 0x5a);
          std::uint64_t sent = 0;
          while (sent < o.bytes) {
            const auto n = std::min<std::uint64_t>(chunk.size(), o.bytes - sent);
            if (auto w = co_await (*st)->write(asio::buffer(chunk.data(), n)); !w) {
              failure = w.error().message;
              break;
            }
            sent += n;
          }
          (void)(*st)->close_write();
          std::string reply;
          std::array<char, 64> buf{};
          for (;;) {
            auto r = co_await (*st)->read_some(asio::buffer(buf));
            if (!r) {
              failure = "reading the peer's count: " + r.error().message;
              break;
            }
            if (*r == 0) break;
            reply.append(buf.data(), *r);
          }
          if (failure.empty() && reply != std::to_string(o.bytes)) {
            failure = "peer counted " + reply + " bytes, sent " + std::to_string(o.bytes);
          }
          --remaining;
        },
        asio::detached);
  }
  while (remaining > 0) c.io.run_one();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!failure.empty()) return error(failure);
  const double total = static_cast<double>(o.bytes) * o.streams;
  const double gbps = total * 8 / secs / 1e9;
  if (o.json) {
    std::cout << Json{{"bytes", total},
                      {"seconds", secs},
                      {"gbit_per_s", gbps},
                      {"streams", o.streams}}
                     .dump()
              << "\n";
  } else {
    std::printf("pushed %.0f MiB in %.2f s over %s: %.2f Gbit/s, verified by peer\n",
                total / 1048576.0, secs, o.carrier.c_str(), gbps);
  }
  return 0;
}

}  // namespace rap::fabric::tool
