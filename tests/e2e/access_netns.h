// The network-namespace lab shared by the TCP access and failover end-to-end tests: hosts ctl,
// client, entry, relaya, relayb, exit and target, each its own namespace; real PostgreSQL and
// rap-control on "ctl", real rap-node-agent processes, curl against the real API.
//
// Reachability is what makes routes go through a relay: "exit" is a connector behind NAT (no
// fabric listener; it dials the relays) and has no path to "entry"; "client" reaches only
// "entry" (and the control plane). Needs root and `ip netns`; tests skip otherwise.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "rap/testing/postgres_fixture.h"
#include "rap/testing/subprocess.h"
#include "rap/testing/temp_dir.h"
#include "rap/testing/topology.h"

namespace access_netns {

using namespace std::chrono_literals;
using json = nlohmann::json;
using rap::testing::CommandResult;
using rap::testing::PostgresFixture;
using rap::testing::RunOptions;
using rap::testing::Subprocess;
using rap::testing::SubprocessOptions;
using rap::testing::TempDir;
using rap::testing::Topology;

constexpr int kControlPort = 8443;
constexpr int kFabricPort = 7443;
constexpr int kIngressPort = 7500;
const std::string kOwnerPw = "owner-password-123";
const std::string kUserPw = "alice-password-123";

inline bool eventually(const std::function<bool()>& pred, std::chrono::seconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(200ms);
  }
  return pred();
}

inline void write_file(const std::filesystem::path& p, const std::string& text, int mode = 0644) {
  std::ofstream(p, std::ios::trunc) << text;
  ::chmod(p.c_str(), static_cast<mode_t>(mode));
}

class AccessNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!Topology::available(&why)) GTEST_SKIP() << why;
    auto d = TempDir::create(name_);
    ASSERT_TRUE(d) << d.error().message;
    dir_ = std::make_unique<TempDir>(std::move(*d));
    ::chmod(dir_->path().c_str(), 0755);
    topo_ = std::make_unique<Topology>();
    for (const char* h : {"ctl", "client", "entry", "relaya", "relayb", "exit", "target"})
      ASSERT_TRUE(topo_->add_host(h));
    for (const char* h : {"client", "entry", "relaya", "relayb", "exit"})
      ASSERT_TRUE(topo_->link("ctl", h));
    for (auto [a, b] :
         {std::pair{"client", "entry"}, std::pair{"entry", "relaya"}, std::pair{"entry", "relayb"},
          std::pair{"relaya", "exit"}, std::pair{"relayb", "exit"}, std::pair{"exit", "target"}}) {
      // With wired_, the entry's links to the relays go through the harness's userspace wire
      // (delay, jitter, loss settable with set_wire).
      const bool wire = wired_ && std::string(a) == "entry" && std::string(b) != "exit";
      ASSERT_TRUE(wire ? topo_->wire_link(a, b) : topo_->link(a, b)) << a << "-" << b;
    }
    // Fabric endpoints: entry advertises its address towards relay-a, each relay its address
    // towards the exit. Routes let entry and relay-b reach those (no forwarding needed: the
    // addresses are local to the host that owns them).
    route("entry", "relaya", "exit");
    route("entry", "relayb", "exit");
    route("relayb", "entry", "relaya");
  }

  void TearDown() override {
    if (!HasFailure() || !dir_) return;
    for (const auto& entry : std::filesystem::directory_iterator(dir_->path())) {
      if (entry.path().extension() != ".log") continue;
      std::ifstream f(entry.path());
      std::vector<std::string> lines;
      for (std::string l; std::getline(f, l);) lines.push_back(l);
      std::cerr << "---- " << entry.path().filename().string() << " (last 25 lines)\n";
      for (std::size_t i = lines.size() > 25 ? lines.size() - 25 : 0; i < lines.size(); ++i)
        std::cerr << lines[i].substr(0, 400) << "\n";
    }
  }

  // On `host`: the subnet of link (owner, far) via owner's address on its link with `host`.
  void route(const std::string& host, const std::string& owner, const std::string& far) {
    const auto dst = *topo_->address(owner, far);
    const auto via = *topo_->address(owner, host);
    auto r = topo_->exec(host, {"ip", "route", "add", dst + "/32", "via", via});
    ASSERT_TRUE(r.ok()) << r.output;
  }
  std::string addr(const std::string& host, const std::string& peer) {
    return *topo_->address(host, peer);
  }

  CommandResult in(const std::string& host, std::vector<std::string> argv,
                   std::chrono::seconds timeout = 60s,
                   std::vector<std::pair<std::string, std::string>> env = {}) {
    RunOptions o;
    o.netns = topo_->netns(host);
    o.timeout = timeout;
    o.env = std::move(env);
    return rap::testing::run_command(argv, o);
  }

  Subprocess spawn(const std::string& host, std::vector<std::string> argv, const std::string& log,
                   std::vector<std::pair<std::string, std::string>> env = {},
                   std::optional<std::string> user = std::nullopt) {
    SubprocessOptions o;
    o.netns = topo_->netns(host);
    o.output_file = dir_->path() / log;
    o.env = std::move(env);
    o.user = std::move(user);
    auto p = Subprocess::spawn(std::move(argv), o);
    EXPECT_TRUE(p) << p.error().message;
    return std::move(*p);
  }

  // The control plane API from inside "ctl".
  json api(const std::string& method, const std::string& path, const json& body = nullptr,
           const std::string& token = "", int* status = nullptr) {
    std::vector<std::string> argv = {"curl",           "-sS", "-k",  "--tlsv1.3", "-o", "-", "-w",
                                     "\n%{http_code}", "-X",  method};
    const std::string t = token.empty() ? token_ : token;
    if (!t.empty()) argv.insert(argv.end(), {"-H", "Authorization: Bearer " + t});
    if (!body.is_null())
      argv.insert(argv.end(),
                  {"-H", "Content-Type: application/json", "--data-binary", body.dump()});
    argv.push_back("https://127.0.0.1:" + std::to_string(kControlPort) + path);
    auto r = in("ctl", argv, 20s);
    const auto nl = r.output.rfind('\n');
    const int code = nl == std::string::npos ? 0 : std::atoi(r.output.c_str() + nl + 1);
    if (status != nullptr) {
      *status = code;
    } else {
      EXPECT_LT(code, 300) << method << " " << path << " -> " << r.output;
    }
    json j = json::parse(r.output.substr(0, nl == std::string::npos ? 0 : nl), nullptr, false);
    return j.is_discarded() ? json::object() : j;
  }

  void start_control() {
    auto pg = PostgresFixture::start();
    ASSERT_TRUE(pg) << pg.error().message;
    pg_ = std::move(*pg);
    auto db = pg_->create_database("access");
    ASSERT_TRUE(db) << db.error().message;
    control_.emplace(spawn(
        "ctl",
        {RAP_CONTROL_BIN, "--listen", "0.0.0.0:" + std::to_string(kControlPort), "--database-url",
         *db, "--data-dir", (dir_->path() / "control").string(), "--web-dir", "none"},
        "control.log"));
    ASSERT_TRUE(control_->wait_for_output("rap-control listening on", 60s)) << control_->output();
    std::smatch m;
    const std::string out = control_->output();
    ASSERT_TRUE(std::regex_search(out, m, std::regex("RAP SETUP TOKEN: ([0-9a-f]{64})")));
    api("POST", "/api/v1/setup",
        json{{"setup_token", m[1].str()}, {"email", "owner@x.io"}, {"password", kOwnerPw}});
    token_ = api("POST", "/api/v1/login", json{{"email", "owner@x.io"}, {"password", kOwnerPw}})
                 .value("token", "");
    ASSERT_FALSE(token_.empty());
  }

  // Starts the agent on `host` and approves its join request; returns its node id.
  std::string start_agent(const std::string& host, json extra) {
    const auto state = dir_->path() / ("agent-" + host);
    const auto cfg = dir_->path() / ("agent-" + host + ".json");
    json c{
        {"state_dir", state.string()},
        {"heartbeat_interval_seconds", 1},
        {"enroll_poll_ms", 200},
        {"memberships",
         json::array(
             {{{"cluster", "main"},
               {"control_url", "https://" + addr("ctl", host) + ":" + std::to_string(kControlPort)},
               {"control_ca_file", (dir_->path() / "control" / "tls" / "server.crt").string()},
               {"join_token_file", (dir_->path() / "join-token").string()}}})}};
    c.update(extra);
    write_file(cfg, c.dump());
    agents_.emplace(host, spawn(host, {RAP_NODE_AGENT_BIN, "run", "--config", cfg.string()},
                                "agent-" + host + ".log"));
    json pending;
    EXPECT_TRUE(eventually(
        [&] {
          pending = api("GET", "/api/v1/clusters/main/join-requests?status=pending");
          return pending.value("join_requests", json::array()).size() == 1;
        },
        30s))
        << pending << agents_.at(host).output();
    if (pending.value("join_requests", json::array()).size() != 1) return "";
    const auto id = pending["join_requests"][0]["id"].get<std::string>();
    const auto ok =
        api("POST", "/api/v1/clusters/main/join-requests/" + id + "/approve", json::object());
    EXPECT_TRUE(agents_.at(host).wait_for_output("enrolled as node", 30s))
        << agents_.at(host).output();
    return ok.value("node", json::object()).value("id", ok.value("node_id", std::string()));
  }

  // Starts `host`'s agent again with its state (it resumes as the node it was).
  void restart_agent(const std::string& host) {
    const auto cfg = dir_->path() / ("agent-" + host + ".json");
    agents_.erase(host);
    agents_.emplace(host, spawn(host, {RAP_NODE_AGENT_BIN, "run", "--config", cfg.string()},
                                "agent-" + host + "-restarted.log"));
  }
  // The agent's local status endpoint (metrics_listen 127.0.0.1:9109).
  json status(const std::string& host) {
    auto r = in(host, {"curl", "-s", "http://127.0.0.1:9109/status"}, 10s);
    json j = json::parse(r.output, nullptr, false);
    return j.is_discarded() ? json::object() : j;
  }
  bool connected(const std::string& host, const std::string& peer_id) {
    for (const auto& p : status(host).value("peers", json::array()))
      if (p.value("id", "") == peer_id && p.value("state", "") == "connected") return true;
    return false;
  }

  // sshd on "target" (key auth; keys in <dir>/ssh). Returns the ssh options for clients.
  std::vector<std::string> start_sshd() {
    const std::string target_ip = addr("target", "exit");
    const auto sshdir = dir_->path() / "ssh";
    std::filesystem::create_directories(sshdir);
    for (const char* k : {"host_key", "client_key"})
      EXPECT_TRUE(rap::testing::run_command(
                      {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", (sshdir / k).string()})
                      .ok());
    std::filesystem::copy_file(sshdir / "client_key.pub", sshdir / "authorized_keys",
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::create_directories("/run/sshd");
    write_file(sshdir / "sshd_config",
               "ListenAddress " + target_ip + ":22\nHostKey " + (sshdir / "host_key").string() +
                   "\nAuthorizedKeysFile " + (sshdir / "authorized_keys").string() +
                   "\nPermitRootLogin yes\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
                   "Subsystem sftp internal-sftp\n"
                   "PidFile " +
                   (sshdir / "sshd.pid").string() + "\n");
    sshd_.emplace(spawn("target",
                        {"/usr/sbin/sshd", "-D", "-e", "-f", (sshdir / "sshd_config").string()},
                        "sshd.log"));
    EXPECT_TRUE(topo_->wait_listening("target", 22, 20s));
    return {"-i", (sshdir / "client_key").string(), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null",   "-o", "LogLevel=ERROR"};
  }

  // Cluster "main" with agents entry (client ingress), relaya, relayb (fabric listeners) and exit
  // (behind NAT), their roles, org "acme" with members alice and bob, and egress pool "site" on
  // the exit. Fills ids_ (host -> node id).
  void setup_mesh() {
    api("POST", "/api/v1/auth/step-up", json{{"password", kOwnerPw}});
    api("POST", "/api/v1/clusters", json{{"slug", "main"}, {"name", "Main"}});
    const auto jt = api("POST", "/api/v1/clusters/main/join-tokens",
                        json{{"ttl_seconds", 600}, {"max_uses", 4}});
    write_file(dir_->path() / "join-token", jt.value("token", ""), 0600);
    const auto fab = [&](const std::string& host, const std::string& towards) {
      return json{{"fabric_listen", "0.0.0.0:" + std::to_string(kFabricPort)},
                  {"fabric_advertise", addr(host, towards) + ":" + std::to_string(kFabricPort)},
                  {"metrics_listen", "127.0.0.1:9109"}};
    };
    json entry_cfg = fab("entry", "relaya");
    entry_cfg["client_ingress_listen"] = "0.0.0.0:" + std::to_string(kIngressPort);
    entry_cfg["client_ingress_advertise"] =
        addr("entry", "client") + ":" + std::to_string(kIngressPort);
    entry_cfg["user_socket_dir"] = (dir_->path() / "users").string();
    ids_["entry"] = start_agent("entry", entry_cfg);
    ids_["relaya"] = start_agent("relaya", fab("relaya", "exit"));
    ids_["relayb"] = start_agent("relayb", fab("relayb", "exit"));
    ids_["exit"] = start_agent("exit", json{{"metrics_listen", "127.0.0.1:9109"}});  // NAT
    for (const auto& [h, i] : ids_) ASSERT_FALSE(i.empty()) << h;

    api("POST", "/api/v1/orgs", json{{"slug", "acme"}, {"name", "Acme"}});
    api("POST", "/api/v1/users", json{{"email", "alice@acme.io"}, {"password", kUserPw}});
    api("POST", "/api/v1/users", json{{"email", "bob@acme.io"}, {"password", kUserPw}});
    for (const char* u : {"alice@acme.io", "bob@acme.io"})
      api("POST", "/api/v1/orgs/acme/members", json{{"email", u}, {"role", "org_member"}});
    api("POST", "/api/v1/auth/step-up", json{{"password", kOwnerPw}});
    const auto node = [&](const std::string& h) {
      return "/api/v1/clusters/main/nodes/" + ids_[h];
    };
    api("PUT", node("entry") + "/roles", json{{"roles", {{{"role", "entry-node"}}}}});
    api("PUT", node("relaya") + "/roles", json{{"roles", {{{"role", "relay-node"}}}}});
    api("PUT", node("relayb") + "/roles", json{{"roles", {{{"role", "relay-node"}}}}});
    api("PUT", node("exit") + "/roles",
        json{{"roles", {{{"role", "exit-node"}, {"org", "acme"}}}}});
    const auto pool = api("POST", "/api/v1/orgs/acme/egress-pools", json{{"name", "site"}});
    api("PUT", "/api/v1/orgs/acme/egress-pools/" + pool["egress_pool"].value("id", "") + "/nodes",
        json{{"nodes", {{{"cluster", "main"}, {"node", ids_["exit"]}}}}});
  }
  // A resource in egress pool "site"; returns its id.
  std::string add_resource(const std::string& name, const std::string& proto, int port) {
    const auto r = api("POST", "/api/v1/orgs/acme/resources",
                       json{{"name", name},
                            {"protocol", proto},
                            {"address", addr("target", "exit") + ":" + std::to_string(port)},
                            {"egress_pool", "site"}});
    return r["resource"].value("id", "");
  }
  // Waits until entry and exit both hold sessions with both relays.
  void wait_mesh() {
    ASSERT_TRUE(eventually(
        [&] {
          return connected("entry", ids_["relaya"]) && connected("entry", ids_["relayb"]) &&
                 connected("exit", ids_["relaya"]) && connected("exit", ids_["relayb"]);
        },
        60s))
        << status("entry") << status("exit");
  }
  std::string user_token(const std::string& email) {
    return api("POST", "/api/v1/login", json{{"email", email}, {"password", kUserPw}})
        .value("token", "");
  }
  std::string ctl_url() {
    return "https://" + addr("ctl", "client") + ":" + std::to_string(kControlPort);
  }
  // `rapctl connect RESOURCE --listen 127.0.0.1:PORT` on "client" as the holder of `token`.
  Subprocess rapctl_connect(const std::string& token, const std::string& resource, int port,
                            const std::string& log, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {
        RAPCTL_BIN, "--server", ctl_url(), "--insecure", "connect",
        resource,   "--org",    "acme",    "--listen",   "127.0.0.1:" + std::to_string(port)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return spawn("client", argv, log,
                 {{"RAPCTL_TOKEN", token},
                  {"RAPCTL_CONFIG", (dir_->path() / ("rapctl-" + log + ".json")).string()}});
  }

  std::string name_ = "access-netns";
  bool wired_ = false;
  std::map<std::string, std::string> ids_;
  std::optional<Subprocess> sshd_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Topology> topo_;
  std::unique_ptr<PostgresFixture> pg_;
  std::optional<Subprocess> control_;
  std::map<std::string, Subprocess> agents_;
  std::string token_;
};

}  // namespace access_netns
