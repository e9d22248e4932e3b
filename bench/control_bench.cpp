// control_bench: load tool for the control plane's node API. Simulates N nodes against a running
// rap-control: enrolls N fresh Ed25519 keys in a cluster (creating the cluster and a join token,
// approving each request as the platform owner), then every node heartbeats over its own mTLS
// keep-alive connection for --duration seconds. Reports heartbeats/s and latency percentiles.
// Enrollment reports its total time and the latency percentiles of the approve call (which
// issues the node certificate). Unless --no-baseline, a baseline phase first runs the same
// number of plain HTTPS keep-alive connections against GET /healthz (TLS + HTTP + one `SELECT 1`
// through the same pool) for --duration seconds, so the heartbeat figures can be read as a
// ratio to it.
//
//   bench_control --server 127.0.0.1:8443 --email owner@example.com --password PW
//                 [--cluster bench] [--nodes 50] [--duration 10] [--no-baseline]
//
// The owner's session is stepped up with the same password (TOTP-protected owners are not
// supported). Node certificates stay in memory only. Not part of ctest.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "rap/config/artifact.h"
#include "rap/crypto/keys.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

std::string hex(std::span<const std::uint8_t> b) {
  static constexpr char kD[] = "0123456789abcdef";
  std::string out;
  for (auto c : b) {
    out.push_back(kD[c >> 4]);
    out.push_back(kD[c & 15]);
  }
  return out;
}

struct Reply {
  int status = -1;
  json j;
};

// One HTTPS keep-alive connection (optionally with a client certificate). Not thread-safe.
class Client {
 public:
  Client(std::string host, std::string port, const std::string& cert_pem = "",
         const std::string& key_pem = "")
      : host_(std::move(host)), port_(std::move(port)), ssl_(asio::ssl::context::tls_client) {
    ssl_.set_verify_mode(asio::ssl::verify_none);  // self-signed server certificate
    if (!cert_pem.empty()) {
      ssl_.use_certificate(asio::buffer(cert_pem), asio::ssl::context::pem);
      ssl_.use_private_key(asio::buffer(key_pem), asio::ssl::context::pem);
    }
  }

  Reply call(const std::string& method, const std::string& target, const std::string& body = "",
             const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        if (!stream_) connect();
        http::request<http::string_body> req{http::string_to_verb(method), target, 11};
        req.set(http::field::host, host_);
        req.keep_alive(true);
        for (const auto& [k, v] : headers) req.set(k, v);
        if (!body.empty()) {
          req.set(http::field::content_type, "application/json");
          req.body() = body;
        }
        req.prepare_payload();
        http::write(*stream_, req);
        http::response<http::string_body> res;
        http::read(*stream_, buf_, res);
        Reply r{static_cast<int>(res.result_int()), json::parse(res.body(), nullptr, false)};
        if (!res.keep_alive()) stream_.reset();
        return r;
      } catch (const std::exception& e) {
        stream_.reset();
        if (attempt == 1) std::cerr << "request failed: " << e.what() << "\n";
      }
    }
    return {};
  }

 private:
  void connect() {
    stream_ = std::make_unique<asio::ssl::stream<tcp::socket>>(io_, ssl_);
    tcp::resolver resolver(io_);
    asio::connect(stream_->next_layer(), resolver.resolve(host_, port_));
    stream_->next_layer().set_option(tcp::no_delay(true));
    stream_->handshake(asio::ssl::stream_base::client);
    buf_.clear();
  }

  std::string host_, port_;
  asio::io_context io_;
  asio::ssl::context ssl_;
  std::unique_ptr<asio::ssl::stream<tcp::socket>> stream_;
  beast::flat_buffer buf_;
};

struct SimNode {
  rap::crypto::Ed25519Key key;
  std::string cert_pem;
};

json heartbeat_body(int i) {
  return json{{"version", "bench"},
              {"load",
               {{"cpu_permille", i % 1000},
                {"memory_kib", 65536},
                {"net_rx_bps", 1000},
                {"net_tx_bps", 1000},
                {"open_sessions", i % 50},
                {"fds", 32}}},
              {"workloads", {{{"name", "relay"}, {"state", "running"}}}},
              {"partition_state", "none"}};
}

struct Stats {
  long ok = 0;
  long failed = 0;
  double secs = 0;
  std::vector<double> lat_ms;  // sorted

  double pct(double q) const {
    if (lat_ms.empty()) return 0.0;
    return lat_ms[std::min(lat_ms.size() - 1, static_cast<std::size_t>(q * lat_ms.size()))];
  }
  double rate() const { return secs > 0 ? static_cast<double>(ok) / secs : 0.0; }
};

// Runs `n` threads, each with its own keep-alive connection: one untimed warm-up call per thread
// (TLS handshake, first request), then, once every thread is warm, `fn(client, thread_index,
// iteration)` until `duration` is over. `fn` returns true on success; successful calls are timed.
template <class MakeClient, class Call>
Stats run_load(int n, int duration, MakeClient make_client, Call call) {
  std::mutex mu;
  Stats st;
  std::atomic<long> ok{0}, failed{0};
  std::atomic<int> warm{0};
  std::atomic<bool> go{false};
  std::chrono::steady_clock::time_point deadline;
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      std::unique_ptr<Client> cl = make_client(i);
      (void)call(*cl, i, -1);
      ++warm;
      while (!go.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      std::vector<double> mine;
      for (int it = 0; std::chrono::steady_clock::now() < deadline; ++it) {
        const auto t0 = std::chrono::steady_clock::now();
        const bool good = call(*cl, i, it);
        const auto dt = std::chrono::steady_clock::now() - t0;
        if (good) {
          ++ok;
          mine.push_back(std::chrono::duration<double, std::milli>(dt).count());
        } else {
          ++failed;
        }
      }
      std::lock_guard g(mu);
      st.lat_ms.insert(st.lat_ms.end(), mine.begin(), mine.end());
    });
  }
  while (warm.load() < n) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto start = std::chrono::steady_clock::now();
  deadline = start + std::chrono::seconds(duration);
  go.store(true);
  for (auto& th : threads) th.join();
  st.secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  st.ok = ok.load();
  st.failed = failed.load();
  std::sort(st.lat_ms.begin(), st.lat_ms.end());
  return st;
}

}  // namespace

// The config compiler phase (--config).
bool bench_config(Client& admin, const std::vector<std::pair<std::string, std::string>>& auth,
                  const std::string& cluster, const std::string& host, const std::string& port,
                  const std::vector<SimNode>& sims) {
  auto list = admin.call("GET", "/api/v1/clusters/" + cluster + "/nodes", "", auth);
  if (list.status != 200) return false;
  std::vector<std::string> ids;
  for (const auto& n : list.j["nodes"])
    if (n["status"] == "active") ids.push_back(n["id"].get<std::string>());
  const std::size_t relays = std::max<std::size_t>(1, ids.size() / 100);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const char* role = i < relays ? "relay-node" : "rdp-worker";
    auto r = admin.call("PUT", "/api/v1/clusters/" + cluster + "/nodes/" + ids[i] + "/roles",
                        json{{"roles", {{{"role", role}}}}}.dump(), auth);
    if (r.status != 200) {
      std::cerr << "roles failed: HTTP " << r.status << " " << r.j.dump() << "\n";
      return false;
    }
  }
  auto compile = [&](const char* what) -> json {
    auto r = admin.call("POST", "/api/v1/clusters/" + cluster + "/config/compile", "", auth);
    if (r.status != 200) {
      std::cerr << "compile failed: HTTP " << r.status << " " << r.j.dump() << "\n";
      return json();
    }
    std::printf("config compile (%s): nodes=%d published=%d bytes=%llu server_ms=%lld\n", what,
                r.j["nodes"].get<int>(), r.j["published"].get<int>(),
                static_cast<unsigned long long>(r.j["bytes"].get<std::uint64_t>()),
                static_cast<long long>(r.j["duration_ms"].get<std::int64_t>()));
    std::fflush(stdout);
    return r.j;
  };
  const json full = compile("all nodes, first");
  if (full.is_null()) return false;
  if (compile("unchanged").is_null()) return false;

  // Baseline in this process: Ed25519-sign as many messages of the same average size.
  const int published = std::max(1, full["published"].get<int>());
  const std::size_t avg = std::max<std::size_t>(
      1, full["bytes"].get<std::uint64_t>() / static_cast<std::uint64_t>(published));
  auto key = rap::crypto::Ed25519Key::generate();
  if (!key) return false;
  std::vector<std::uint8_t> msg(avg, 0x5a);
  const auto b0 = std::chrono::steady_clock::now();
  for (int i = 0; i < published; ++i) {
    msg[0] = static_cast<std::uint8_t>(i);
    (void)key->sign(msg);
  }
  const double base_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - b0).count();
  std::printf(
      "baseline: %d raw Ed25519 signatures of %zu bytes in %.1f ms; compile/baseline=%.1fx\n",
      published, avg, base_ms,
      static_cast<double>(full["duration_ms"].get<std::int64_t>()) / std::max(base_ms, 1e-3));

  // A relay's view of a one-node change: full peer directory vs the increment it receives.
  Client relay(host, port, sims[0].cert_pem, sims[0].key.private_pem());
  auto first = relay.call("GET", "/api/v1/node/config");
  if (first.status != 200) return false;
  std::string have;
  std::size_t full_bytes = 0;
  for (const auto& a : first.j["artifacts"]) {
    auto art = rap::config::decode_artifact(a.get<std::string>());
    if (!art) return false;
    full_bytes += a.get<std::string>().size();
    have += std::string(have.empty() ? "" : ",") +
            std::string(rap::config::to_string(art->header.type)) + ":" +
            std::to_string(art->header.version);
  }
  const std::string changed = ids.back();
  if (admin
          .call("PUT", "/api/v1/clusters/" + cluster + "/nodes/" + changed + "/roles",
                json{{"roles", {{{"role", "rdp-worker"}}, {{"role", "vpn-exit"}}}}}.dump(), auth)
          .status != 200)
    return false;
  compile("one node changed");
  auto next = relay.call("GET", "/api/v1/node/config?have=" + have);
  if (next.status != 200) return false;
  std::size_t inc_bytes = 0;
  for (const auto& a : next.j["artifacts"]) inc_bytes += a.get<std::string>().size();
  std::printf(
      "relay node (peers=%zu): full config %zu bytes, after a one-node change %zu bytes in %d "
      "increment(s) + snapshot = %.2f%% of full\n",
      ids.size() - 1, full_bytes, inc_bytes, next.j["increments"].get<int>(),
      100.0 * static_cast<double>(inc_bytes) /
          static_cast<double>(std::max<std::size_t>(1, full_bytes)));
  return true;
}

int main(int argc, char** argv) {
  CLI::App app{"control_bench: simulated nodes heartbeating over mTLS"};
  std::string server = "127.0.0.1:8443";
  std::string email, password, cluster = "bench";
  int nodes = 50;
  int duration = 10;
  bool no_baseline = false;
  bool config_phase = false;
  app.add_option("--server", server, "rap-control host:port")->default_val(server);
  app.add_option("--email", email, "platform owner email")->required();
  app.add_option("--password", password, "platform owner password")->required();
  app.add_option("--cluster", cluster, "cluster slug (created if absent)")->default_val(cluster);
  app.add_option("--nodes", nodes, "simulated nodes")->check(CLI::Range(1, 10000));
  app.add_option("--duration", duration, "seconds of heartbeating")->check(CLI::Range(1, 3600));
  app.add_flag("--no-baseline", no_baseline, "skip the GET /healthz baseline phase");
  app.add_flag("--config", config_phase,
               "also benchmark the config compiler: roles for every node (1% relays), compile "
               "and sign all node artifacts, recompile unchanged, a one-node change, and the "
               "increment a relay receives for it");
  CLI11_PARSE(app, argc, argv);
  const auto colon = server.rfind(':');
  if (colon == std::string::npos) {
    std::cerr << "--server must be host:port\n";
    return 2;
  }
  const std::string host = server.substr(0, colon);
  const std::string port = server.substr(colon + 1);

  // Owner session, stepped up.
  Client admin(host, port);
  auto login =
      admin.call("POST", "/api/v1/login", json{{"email", email}, {"password", password}}.dump());
  if (login.status != 200) {
    std::cerr << "login failed: HTTP " << login.status << " " << login.j.dump() << "\n";
    return 1;
  }
  const std::string bearer = "Bearer " + login.j["token"].get<std::string>();
  const std::vector<std::pair<std::string, std::string>> auth = {{"Authorization", bearer}};
  admin.call("POST", "/api/v1/auth/step-up", json{{"password", password}}.dump(), auth);
  auto c = admin.call("POST", "/api/v1/clusters", json{{"slug", cluster}, {"name", cluster}}.dump(),
                      auth);
  if (c.status != 201 && c.status != 409) {
    std::cerr << "create cluster failed: HTTP " << c.status << " " << c.j.dump() << "\n";
    return 1;
  }
  auto t = admin.call("POST", "/api/v1/clusters/" + cluster + "/join-tokens",
                      json{{"ttl_seconds", 3600}, {"max_uses", nodes}}.dump(), auth);
  if (t.status != 201) {
    std::cerr << "join token failed: HTTP " << t.status << " " << t.j.dump() << "\n";
    return 1;
  }
  const std::string token = t.j["token"].get<std::string>();

  // Enroll, approve, fetch certificates.
  std::vector<SimNode> sims;
  std::vector<double> approve_ms;
  const auto e0 = std::chrono::steady_clock::now();
  for (int i = 0; i < nodes; ++i) {
    auto key = rap::crypto::Ed25519Key::generate();
    if (!key) return 1;
    const std::string pub = hex(key->public_key());
    auto e = admin.call("POST", "/api/v1/enroll",
                        json{{"cluster", cluster},
                             {"join_token", token},
                             {"public_key", pub},
                             {"facts", {{"hostname", "bench-" + std::to_string(i)}}},
                             {"capabilities", {"can_route_mesh"}}}
                            .dump());
    if (e.status != 202) {
      std::cerr << "enroll failed: HTTP " << e.status << " " << e.j.dump() << "\n";
      return 1;
    }
    const std::string rid = e.j["request_id"].get<std::string>();
    const auto a0 = std::chrono::steady_clock::now();
    auto a = admin.call(
        "POST", "/api/v1/clusters/" + cluster + "/join-requests/" + rid + "/approve", "", auth);
    approve_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a0).count());
    if (a.status != 200) {
      std::cerr << "approve failed: HTTP " << a.status << " " << a.j.dump() << "\n";
      return 1;
    }
    const std::string ts = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
    const std::string msg = "rap-enroll-poll:" + rid + ":" + ts;
    auto sig = key->sign(std::span(reinterpret_cast<const std::uint8_t*>(msg.data()), msg.size()));
    auto p = admin.call("GET", "/api/v1/enroll/" + rid, "",
                        {{"X-RAP-Time", ts}, {"X-RAP-Proof", hex(sig)}});
    if (p.status != 200 || p.j.value("status", "") != "approved") {
      std::cerr << "poll failed: HTTP " << p.status << " " << p.j.dump() << "\n";
      return 1;
    }
    sims.push_back(SimNode{*key, p.j["certificate_pem"].get<std::string>()});
  }
  const double enroll_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count();

  std::sort(approve_ms.begin(), approve_ms.end());
  auto apct = [&](double q) {
    return approve_ms[std::min(approve_ms.size() - 1,
                               static_cast<std::size_t>(q * approve_ms.size()))];
  };
  std::printf(
      "nodes=%d enroll+approve+poll=%.2fs per_node_ms=%.2f approve_p50_ms=%.2f "
      "approve_p99_ms=%.2f approve_max_ms=%.2f\n",
      nodes, enroll_s, 1000.0 * enroll_s / nodes, apct(0.50), apct(0.99), approve_ms.back());
  std::fflush(stdout);

  // Baseline: the same number of plain HTTPS keep-alive connections, GET /healthz.
  Stats base;
  if (!no_baseline) {
    base = run_load(
        nodes, duration, [&](int) { return std::make_unique<Client>(host, port); },
        [](Client& cl, int, int) { return cl.call("GET", "/healthz").status == 200; });
    std::printf(
        "baseline GET /healthz: connections=%d requests=%ld failed=%ld duration=%.2fs "
        "requests_per_s=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
        nodes, base.ok, base.failed, base.secs, base.rate(), base.pct(0.50), base.pct(0.99),
        base.lat_ms.empty() ? 0.0 : base.lat_ms.back());
    std::fflush(stdout);
  }

  // Heartbeat phase: one thread and one keep-alive mTLS connection per node.
  const Stats hb = run_load(
      nodes, duration,
      [&](int i) {
        return std::make_unique<Client>(host, port, sims[static_cast<std::size_t>(i)].cert_pem,
                                        sims[static_cast<std::size_t>(i)].key.private_pem());
      },
      [](Client& cl, int, int it) {
        return cl.call("POST", "/api/v1/node/heartbeat", heartbeat_body(it < 0 ? 0 : it).dump())
                   .status == 200;
      });
  std::printf(
      "nodes=%d heartbeats=%ld failed=%ld duration=%.2fs heartbeats_per_s=%.1f p50_ms=%.2f "
      "p99_ms=%.2f max_ms=%.2f\n",
      nodes, hb.ok, hb.failed, hb.secs, hb.rate(), hb.pct(0.50), hb.pct(0.99),
      hb.lat_ms.empty() ? 0.0 : hb.lat_ms.back());
  if (!no_baseline && base.rate() > 0 && base.pct(0.99) > 0)
    std::printf("ratio to baseline: throughput=%.2f p50=%.2f p99=%.2f\n", hb.rate() / base.rate(),
                hb.pct(0.50) / std::max(base.pct(0.50), 1e-9), hb.pct(0.99) / base.pct(0.99));
  if (config_phase && !bench_config(admin, auth, cluster, host, port, sims)) return 1;
  return hb.failed == 0 ? 0 : 1;
}
