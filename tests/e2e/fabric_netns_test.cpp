// End-to-end: the real `rap-fabric` binary, client in host "a" and `serve` in host "b", each
// its own network namespace (tests/harness Topology). Needs root; skips otherwise.
//
//   VethPingPushMetrics  tls + wss ping, 50 MB push verified by the peer, /metrics scraped in b
//   WireDelayAndLoss     25 ms each way + 1% loss (userspace wire): RTT ~50 ms, push recovers
//   ForeignCaRefused     certificates from another CA are refused both ways; b stays up
//   LinkCutAndRestore    the link goes down for ~2 s under a running ping; b survives
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "rap/testing/gtest_support.h"
#include "rap/testing/subprocess.h"
#include "rap/testing/temp_dir.h"
#include "rap/testing/topology.h"

using namespace std::chrono_literals;
using rap::testing::CommandResult;
using rap::testing::LinkInfo;
using rap::testing::Subprocess;
using rap::testing::SubprocessOptions;
using rap::testing::TempDir;
using rap::testing::Topology;
using rap::testing::WireParams;
using Json = nlohmann::json;

namespace {

constexpr std::uint16_t kTlsPort = 7443;
constexpr std::uint16_t kWssPort = 7444;
constexpr std::uint16_t kMetricsPort = 9109;

// $RAP_FABRIC_BIN, else $RAP_BUILD_DIR/tools/rap-fabric/rap-fabric, else the build-time path.
std::string fabric_binary() {
  if (const char* e = std::getenv("RAP_FABRIC_BIN"); e != nullptr && *e != '\0') return e;
  if (const char* b = std::getenv("RAP_BUILD_DIR"); b != nullptr && *b != '\0') {
    const auto p = std::filesystem::path(b) / "tools" / "rap-fabric" / "rap-fabric";
    if (std::filesystem::exists(p)) return p.string();
  }
  return RAP_FABRIC_BIN;
}

// Copies the rap-fabric binary to `dst` so that a concurrent rebuild (the linker unlinks the
// output and writes a new, not yet executable file) cannot break a running test. Waits up to
// 120 s for a complete (executable) binary.
rap::Result<void> stage_binary(const std::string& src, const std::filesystem::path& dst) {
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  for (;;) {
    const int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (in >= 0 && ::fstat(in, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & S_IXUSR) != 0) {
      const int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
      bool ok = out >= 0;
      std::vector<char> buf(1 << 20);
      off_t copied = 0;
      while (ok) {
        const ssize_t n = ::read(in, buf.data(), buf.size());
        if (n <= 0) {
          ok = n == 0;
          break;
        }
        for (ssize_t off = 0; ok && off < n;) {
          const ssize_t w = ::write(out, buf.data() + off, static_cast<std::size_t>(n - off));
          ok = w > 0;
          off += w > 0 ? w : 0;
        }
        copied += n;
      }
      if (out >= 0) ok = ::close(out) == 0 && ok;
      ::close(in);
      if (ok && copied == st.st_size) return {};
      return rap::fail("stage_failed", "copying " + src + " to " + dst.string() + " failed");
    }
    if (in >= 0) ::close(in);
    if (std::chrono::steady_clock::now() > deadline) {
      return rap::fail("not_built", src + " is missing or not executable (still being linked?)");
    }
    std::this_thread::sleep_for(500ms);
  }
}

// The last line of `out` that parses as a JSON object (stdout and stderr are interleaved).
std::optional<Json> last_json(const std::string& out) {
  std::istringstream in(out);
  std::string line;
  std::optional<Json> found;
  while (std::getline(in, line)) {
    if (line.empty() || line.front() != '{') continue;
    auto j = Json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object()) found = std::move(j);
  }
  return found;
}

// Sum of the samples of `metric` whose label set contains every one of `labels`
// (e.g. {"dir=\"rx\"", "class=\"bulk\""}); -1 if no sample matched.
double sum_samples(const std::string& text, const std::string& metric,
                   const std::vector<std::string>& labels) {
  std::istringstream in(text);
  std::string line;
  double sum = -1;
  while (std::getline(in, line)) {
    if (line.rfind(metric + "{", 0) != 0) continue;
    const auto close = line.rfind('}');
    if (close == std::string::npos) continue;
    const std::string set = line.substr(metric.size(), close - metric.size() + 1);
    bool all = true;
    for (const auto& l : labels) all = all && set.find(l) != std::string::npos;
    if (!all) continue;
    const double v = std::strtod(line.c_str() + close + 1, nullptr);
    sum = (sum < 0 ? 0 : sum) + v;
  }
  return sum;
}

// Value of an unlabelled sample ("rap_fabric_sessions 1"); -1 if absent.
double plain_sample(const std::string& text, const std::string& metric) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(metric + " ", 0) == 0) return std::strtod(line.c_str() + metric.size(), nullptr);
  }
  return -1;
}

bool contains_icase(std::string hay, const std::string& re) {
  return std::regex_search(hay, std::regex(re, std::regex::icase));
}

std::string tail(const std::string& s, std::size_t n = 3000) {
  return s.size() <= n ? s : "..." + s.substr(s.size() - n);
}

class FabricNetnsE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string reason;
    if (!Topology::available(&reason)) GTEST_SKIP() << reason;
    TempDir::remove_stale("rap-e2e-");
    RAP_ASSIGN_OR_FAIL(auto d, TempDir::create_owned("rap-e2e-"));
    dir_.emplace(std::move(d));
    bin_ = (*dir_ / "rap-fabric").string();
    RAP_ASSERT_OK(stage_binary(fabric_binary(), bin_));
    pki_init("ca");
    ASSERT_FALSE(HasFatalFailure());
    a_creds_ = issue("ca", "node-a");
    b_creds_ = issue("ca", "node-b");
    ASSERT_FALSE(HasFatalFailure());
    topo_ = std::make_unique<Topology>();
    RAP_ASSERT_OK(topo_->add_host("a"));
    RAP_ASSERT_OK(topo_->add_host("b"));
  }

  void TearDown() override {
    // B must not have crashed (ASan/UBSan abort) at any point of the test.
    if (serve_) {
      EXPECT_TRUE(serve_->running()) << serve_died();
      const auto log = serve_->output();
      EXPECT_EQ(log.find("Sanitizer"), std::string::npos) << tail(log);
      EXPECT_EQ(log.find("runtime error"), std::string::npos) << tail(log);
      if (HasFailure()) std::printf("---- serve log ----\n%s\n", tail(log, 6000).c_str());
    }
    serve_.reset();
    topo_.reset();
  }

  // Failure message for a serve process that is no longer running.
  std::string serve_died() {
    const int st = serve_->exit_status().value_or(-1);
    return "serve died, exit status " + std::to_string(st) +
           (st == 128 + SIGPIPE ? " (killed by SIGPIPE)" : "") + ": " + tail(serve_->output());
  }

  // `rap-fabric pki ...` on the test host (no namespace needed).
  void pki_init(const std::string& name) {
    auto r = rap::testing::run_command(
        {bin_, "pki", "init", "--dir", (*dir_ / name).string(), "--cluster", "e2e"});
    ASSERT_TRUE(r.ok()) << r.output;
  }
  std::string issue(const std::string& ca, const std::string& node) {
    const auto out = (*dir_ / ("creds-" + node)).string();
    auto r = rap::testing::run_command(
        {bin_, "pki", "issue", "--dir", (*dir_ / ca).string(), "--node", node, "--out", out});
    EXPECT_TRUE(r.ok()) << r.output;
    return out;
  }

  // `rap-fabric serve` in b on `addr` (tls 7443, wss 7444, metrics on b's loopback).
  void start_serve(const std::string& addr) {
    SubprocessOptions so;
    so.output_file = *dir_ / "serve.log";
    RAP_ASSIGN_OR_FAIL(auto p, topo_->spawn("b",
                                            {bin_, "serve", "--creds", b_creds_, "--listen",
                                             addr + ":" + std::to_string(kTlsPort), "--wss",
                                             addr + ":" + std::to_string(kWssPort), "--metrics",
                                             "127.0.0.1:" + std::to_string(kMetricsPort)},
                                            so));
    serve_.emplace(std::move(p));
    for (auto port : {kTlsPort, kWssPort, kMetricsPort}) {
      auto r = topo_->wait_listening("b", port);
      ASSERT_TRUE(r.has_value()) << "port " << port << ": " << r.error().message << "\n"
                                 << tail(serve_->output());
    }
  }

  // rap-fabric <args...> run to completion inside `host`.
  CommandResult fabric(const std::string& host, std::vector<std::string> args,
                       std::chrono::milliseconds timeout = 30s) {
    args.insert(args.begin(), bin_);
    return topo_->exec(host, args, timeout);
  }
  std::vector<std::string> client_args(const std::string& cmd, const std::string& creds,
                                       const std::string& peer) {
    return {cmd, "--creds", creds, "--peer", peer, "--json"};
  }

  // GET http://127.0.0.1:9109/<path> from inside b.
  std::string scrape(const std::string& path = "metrics") {
    auto r = topo_->exec("b", {"curl", "-s", "--max-time", "5",
                               "http://127.0.0.1:" + std::to_string(kMetricsPort) + "/" + path});
    EXPECT_TRUE(r.ok()) << "curl: " << r.output;
    return r.output;
  }

  // Runs `ping --count N` a->peer and checks the JSON; returns it (null on failure).
  Json ping_ok(const std::string& peer, int count, const std::string& carrier = "tls",
               std::chrono::milliseconds timeout = 30s) {
    auto args = client_args("ping", a_creds_, peer);
    args.insert(args.end(), {"--count", std::to_string(count), "--carrier", carrier});
    auto r = fabric("a", args, timeout);
    EXPECT_TRUE(r.ok()) << "exit " << r.exit_code << (r.timed_out ? " (timed out)" : "") << ": "
                        << tail(r.output);
    auto j = last_json(r.output);
    EXPECT_TRUE(j.has_value()) << "no JSON in: " << tail(r.output);
    if (!r.ok() || !j) return Json();
    EXPECT_EQ((*j)["count"].get<int>(), count) << j->dump();
    const double p50 = (*j)["p50_us"].get<double>(), p99 = (*j)["p99_us"].get<double>();
    EXPECT_TRUE(std::isfinite(p99) && p99 > 0) << j->dump();
    EXPECT_TRUE(std::isfinite(p50) && p50 > 0 && p50 <= p99) << j->dump();
    std::printf("ping %s over %s x%d: p50 %.0f us, p99 %.0f us, max %.0f us\n", peer.c_str(),
                carrier.c_str(), count, p50, p99, (*j)["max_us"].get<double>());
    return *j;
  }

  // Runs `push --bytes N` a->peer and checks the peer-verified JSON.
  Json push_ok(const std::string& peer, std::uint64_t bytes, const std::string& carrier = "tls",
               std::chrono::milliseconds timeout = 30s) {
    auto args = client_args("push", a_creds_, peer);
    args.insert(args.end(), {"--bytes", std::to_string(bytes), "--carrier", carrier});
    auto r = fabric("a", args, timeout);
    EXPECT_TRUE(r.ok()) << "exit " << r.exit_code << (r.timed_out ? " (timed out)" : "") << ": "
                        << tail(r.output);
    auto j = last_json(r.output);
    EXPECT_TRUE(j.has_value()) << "no JSON in: " << tail(r.output);
    if (!r.ok() || !j) return Json();
    EXPECT_EQ((*j)["bytes"].get<double>(), static_cast<double>(bytes)) << j->dump();
    EXPECT_EQ((*j)["streams"].get<int>(), 1) << j->dump();
    EXPECT_GT((*j)["seconds"].get<double>(), 0) << j->dump();
    std::printf("push %llu bytes over %s: %.3f s, %.3f Gbit/s\n",
                static_cast<unsigned long long>(bytes), carrier.c_str(),
                (*j)["seconds"].get<double>(), (*j)["gbit_per_s"].get<double>());
    return *j;
  }

  std::string bin_;
  std::optional<TempDir> dir_;
  std::string a_creds_, b_creds_;
  std::unique_ptr<Topology> topo_;
  std::optional<Subprocess> serve_;
};

// 1. Plain veth: ping over tls and wss, a 50 MB push verified by the peer, and b's /metrics.
TEST_F(FabricNetnsE2E, VethPingPushMetrics) {
  RAP_ASSIGN_OR_FAIL(LinkInfo link, topo_->link("a", "b"));
  start_serve(link.addr_b);
  ASSERT_FALSE(HasFatalFailure());
  const std::string tls_peer = link.addr_b + ":" + std::to_string(kTlsPort);
  const std::string wss_peer = link.addr_b + ":" + std::to_string(kWssPort);

  ping_ok(tls_peer, 200, "tls");
  ping_ok(wss_peer, 200, "wss");
  constexpr std::uint64_t kPush = 50'000'000;
  push_ok(tls_peer, kPush, "tls", 60s);
  push_ok(wss_peer, 5'000'000, "wss");
  ASSERT_FALSE(HasFailure());

  // Sessions are exported only while they are open (FabricNode keeps weak_ptrs), so the
  // counters of the finished push are gone by now. Keep a session open with a saturating bulk
  // stream (`ping --bulk`) and watch its rx/bulk counter on b pass 50 MB.
  const std::string before = scrape();
  std::printf("sessions on b after the clients exited: %.0f\n",
              plain_sample(before, "rap_fabric_sessions"));
  SubprocessOptions so;
  so.output_file = *dir_ / "bg-ping.log";
  auto bg_args = client_args("ping", a_creds_, tls_peer);
  bg_args.insert(bg_args.begin(), bin_);
  bg_args.insert(bg_args.end(), {"--count", "100000", "--bulk"});
  RAP_ASSIGN_OR_FAIL(Subprocess bg, topo_->spawn("a", bg_args, so));

  double rx_bulk = -1;
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    text = scrape();
    rx_bulk = sum_samples(
        text, "rap_fabric_session_bytes_total",
        {"local=\"node-b\"", "peer=\"node-a\"", "carrier=\"tls\"", "dir=\"rx\"", "class=\"bulk\""});
    if (rx_bulk >= static_cast<double>(kPush)) break;
    ASSERT_TRUE(bg.running()) << "background ping exited: " << tail(bg.output());
    std::this_thread::sleep_for(200ms);
  }
  std::printf("b: rx bulk bytes of the live session %.0f\n", rx_bulk);
  EXPECT_GE(rx_bulk, static_cast<double>(kPush)) << tail(text);
  EXPECT_GE(plain_sample(text, "rap_fabric_sessions"), 1) << tail(text);
  // The per-stream view agrees: b's discard service received the bulk bytes.
  EXPECT_GE(sum_samples(text, "rap_fabric_stream_bytes_total",
                        {"service=\"discard\"", "class=\"bulk\"", "dir=\"rx\""}),
            static_cast<double>(kPush))
      << tail(text);
  // b only sends PONG/echo traffic: no bulk bytes leave b.
  EXPECT_EQ(sum_samples(text, "rap_fabric_session_bytes_total", {"dir=\"tx\"", "class=\"bulk\""}),
            0)
      << tail(text);

  // /status lists the live session.
  auto status = Json::parse(scrape("status"), nullptr, false);
  ASSERT_FALSE(status.is_discarded());
  EXPECT_EQ(status.value("node", ""), "node-b");
  EXPECT_EQ(status.value("cluster", ""), "e2e");
  bool listed = false;
  for (const auto& s : status["sessions"]) listed = listed || s.value("peer", "") == "node-a";
  EXPECT_TRUE(listed) << status.dump();

  // Killing a client in the middle of a bulk transfer must not take b down.
  bg.kill(SIGKILL);
  bg.wait_exit(5s);
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(serve_->running()) << serve_died();
}

// 2. Userspace wire, 25 ms each way and 1% loss in both directions.
TEST_F(FabricNetnsE2E, WireDelayAndLoss) {
  RAP_ASSIGN_OR_FAIL(LinkInfo link, topo_->wire_link("a", "b", WireParams().delay(25).loss(1)));
  start_serve(link.addr_b);
  ASSERT_FALSE(HasFatalFailure());
  const std::string peer = link.addr_b + ":" + std::to_string(kTlsPort);

  Json p = ping_ok(peer, 20, "tls", 60s);
  ASSERT_FALSE(p.is_null());
  const double p50 = p["p50_us"].get<double>();
  EXPECT_GE(p50, 45'000) << p.dump();  // RTT = 2 x 25 ms
  EXPECT_LT(p50, 200'000) << p.dump();

  push_ok(peer, 5'000'000, "tls", 90s);
  auto stats = topo_->wire_stats("a", "b");
  if (stats) {
    std::printf("wire: forwarded %llu, dropped (loss) %llu, dropped (queue) %llu\n",
                static_cast<unsigned long long>(stats->forwarded),
                static_cast<unsigned long long>(stats->dropped_loss),
                static_cast<unsigned long long>(stats->dropped_queue));
    EXPECT_GT(stats->dropped_loss, 0u) << "the wire dropped nothing: loss not exercised";
  }
}

// 3. Nodes with certificates from another CA (same cluster name) are refused, and b stays up.
TEST_F(FabricNetnsE2E, ForeignCaRefused) {
  RAP_ASSIGN_OR_FAIL(LinkInfo link, topo_->link("a", "b"));
  start_serve(link.addr_b);
  ASSERT_FALSE(HasFatalFailure());
  const std::string peer = link.addr_b + ":" + std::to_string(kTlsPort);

  pki_init("ca2");
  ASSERT_FALSE(HasFatalFailure());
  const std::string evil = issue("ca2", "node-evil");
  // A node of CA2 that trusts CA1: only b's verification of the client can stop it.
  const std::string hybrid = (*dir_ / "creds-hybrid").string();
  std::filesystem::create_directories(hybrid);
  std::filesystem::copy_file(std::filesystem::path(a_creds_) / "ca.pem",
                             std::filesystem::path(hybrid) / "ca.pem");
  std::filesystem::copy_file(std::filesystem::path(evil) / "node.pem",
                             std::filesystem::path(hybrid) / "node.pem");
  std::filesystem::copy_file(std::filesystem::path(evil) / "node.key",
                             std::filesystem::path(hybrid) / "node.key");

  for (const auto& [what, creds] : std::vector<std::pair<std::string, std::string>>{
           {"CA2 node", evil}, {"CA2 cert trusting CA1", hybrid}}) {
    for (const std::string carrier : {"tls", "wss"}) {
      SCOPED_TRACE(what + " over " + carrier);
      const auto port = carrier == "tls" ? kTlsPort : kWssPort;
      auto args = client_args("ping", creds, link.addr_b + ":" + std::to_string(port));
      args.insert(args.end(), {"--count", "3", "--carrier", carrier});
      auto r = fabric("a", args, 30s);
      std::printf("%s over %s: exit %d: %s", what.c_str(), carrier.c_str(), r.exit_code,
                  r.output.c_str());
      EXPECT_FALSE(r.timed_out) << r.output;
      EXPECT_EQ(r.exit_code, 1) << r.output;
      EXPECT_FALSE(last_json(r.output).has_value()) << r.output;
      EXPECT_TRUE(contains_icase(r.output, "certificate|tls|ssl|unknown ca")) << r.output;
      ASSERT_TRUE(serve_->running()) << serve_died();
    }
  }
  const std::string log = serve_->output();
  EXPECT_EQ(log.find("peer=node-evil"), std::string::npos) << tail(log);
  EXPECT_NE(log.find("session refused"), std::string::npos) << tail(log);

  // b still serves legitimate nodes.
  ping_ok(peer, 20, "tls");
  ping_ok(link.addr_b + ":" + std::to_string(kWssPort), 20, "wss");
}

// 4. Link cut for ~2 s while a long ping runs: b survives and accepts new sessions.
TEST_F(FabricNetnsE2E, LinkCutAndRestore) {
  RAP_ASSIGN_OR_FAIL(LinkInfo link, topo_->link("a", "b"));
  start_serve(link.addr_b);
  ASSERT_FALSE(HasFatalFailure());
  const std::string peer = link.addr_b + ":" + std::to_string(kTlsPort);

  SubprocessOptions so;
  so.output_file = *dir_ / "long-ping.log";
  auto args = client_args("ping", a_creds_, peer);
  args.insert(args.begin(), bin_);
  args.insert(args.end(), {"--count", "100000"});
  RAP_ASSIGN_OR_FAIL(Subprocess longping, topo_->spawn("a", args, so));

  // Wait until b sees the session.
  bool up = false;
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       !up && std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(100ms)) {
    up = plain_sample(scrape(), "rap_fabric_sessions") >= 1;
  }
  ASSERT_TRUE(up) << tail(longping.output());
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(longping.running()) << tail(longping.output());

  RAP_ASSERT_OK(topo_->set_link_up("a", "b", false));
  std::this_thread::sleep_for(2s);
  EXPECT_TRUE(serve_->running()) << serve_died();
  RAP_ASSERT_OK(topo_->set_link_up("a", "b", true));
  std::this_thread::sleep_for(500ms);

  EXPECT_TRUE(serve_->running()) << serve_died();
  std::printf(
      "long ping after the cut: %s\n",
      longping.running() ? "still running" : ("exited: " + tail(longping.output(), 500)).c_str());
  longping.kill(SIGKILL);
  longping.wait_exit(5s);
  // b now gets the reset of the killed client's connection; it must survive that too.
  std::this_thread::sleep_for(1s);
  ASSERT_TRUE(serve_->running()) << serve_died();

  // A fresh session works (allow the restored link a moment: retry for up to 10 s).
  CommandResult r;
  auto pargs = client_args("ping", a_creds_, peer);
  pargs.insert(pargs.end(), {"--count", "20"});
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(500ms)) {
    r = fabric("a", pargs, 15s);
    if (r.ok()) break;
    std::printf("ping after restore failed (retrying): %s", r.output.c_str());
  }
  ASSERT_TRUE(r.ok()) << r.output;
  auto j = last_json(r.output);
  ASSERT_TRUE(j.has_value()) << r.output;
  EXPECT_EQ((*j)["count"].get<int>(), 20);
  std::printf("ping after restore: p50 %.0f us\n", (*j)["p50_us"].get<double>());
  EXPECT_TRUE(serve_->running()) << tail(serve_->output());
}

}  // namespace
