// End to end: real PostgreSQL, the real rap-control binary, the real rap-node-agent binary and a
// real workload process. Enrollment with a join token + approval, kill -9 during enrollment and
// while running, heartbeats, role-authorized workloads, crash loop, control plane outage
// (degraded -> isolated -> recovery -> healthy), revocation, tampered state, key permissions,
// signed configuration fetched, applied, persisted, reloaded after a restart and reported;
// the config-storage role (a node restarted while the control plane is down gets its new config
// from a storage node; a client certificate outside the cluster is refused).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include "control_process.h"
#include "rap/agent/supervisor.h"

using namespace rap::testing::control;
using rap::testing::Subprocess;
using rap::testing::TempDir;

namespace {

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// What a TCP client reads from 127.0.0.1:port ("" if nothing listens).
std::string tcp_read(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    char buf[256];
    ssize_t n = 0;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

bool eventually(const std::function<bool()>& pred, std::chrono::seconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return pred();
}

void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::trunc);
  f << text;
}

class AgentE2e : public ControlApiTest {
 protected:
  void start_control() {
    auto c = ControlProcess::spawn_args(
        {"--listen", "127.0.0.1:" + std::to_string(control_port_), "--database-url", db_,
         "--data-dir", (dir_->path() / "control").string()},
        "agent");
    ASSERT_TRUE(c.has_value()) << c.error().message;
    control_ = std::move(*c);
    auto r = control_->wait_ready();
    ASSERT_TRUE(r.has_value()) << r.error().message << control_->output();
  }

  Subprocess start_agent() {
    auto p = Subprocess::spawn({RAP_NODE_AGENT_BIN, "run", "--config", config_.string()}, [&] {
      rap::testing::SubprocessOptions o;
      o.output_file = dir_->path() / ("agent-" + std::to_string(++runs_) + ".log");
      return o;
    }());
    EXPECT_TRUE(p.has_value());
    return std::move(*p);
  }

  json agent_status() {
    auto r = rap::testing::run_command(
        {RAP_NODE_AGENT_BIN, "status", "--json", "--config", config_.string()}, run_options(10));
    json j = json::parse(r.output, nullptr, false);
    return j.is_discarded() ? json::object() : j;
  }
  std::string membership_field(const char* key) {
    auto s = agent_status();
    if (!s.contains("live")) return "";
    for (const auto& m : s["live"]["memberships"]) return m.value(key, std::string());
    return "";
  }

  json api(const std::string& method, const std::string& path, const json& body = nullptr) {
    auto r = control_->call(method, path, body.is_null() ? "" : body.dump(), token_);
    EXPECT_LT(r.status, 300) << method << " " << path << " -> " << r;
    return r.j;
  }

  std::unique_ptr<TempDir> dir_;
  std::string db_;
  int control_port_ = 0;
  std::unique_ptr<ControlProcess> control_;
  std::string token_;
  std::filesystem::path config_;
  int runs_ = 0;
};

TEST_F(AgentE2e, EnrollRunWorkloadsSurviveKillsOutagesAndRevocation) {
  RAP_ASSIGN_OR_FAIL(auto d, TempDir::create("agent-e2e"));
  dir_ = std::make_unique<TempDir>(std::move(d));
  RAP_ASSIGN_OR_FAIL(db_, pg_->create_database("agent_e2e"));
  control_port_ = free_port();
  start_control();
  token_ = setup_owner(*control_, "owner@x.io", kOwnerPw);
  api("POST", "/api/v1/auth/step-up", json{{"password", kOwnerPw}});
  api("POST", "/api/v1/clusters", json{{"slug", "main"}, {"name", "Main"}});
  const auto jt =
      api("POST", "/api/v1/clusters/main/join-tokens", json{{"ttl_seconds", 600}, {"max_uses", 1}});
  ASSERT_TRUE(jt.contains("token")) << jt;
  write_file(dir_->path() / "join-token", jt["token"].get<std::string>());

  const int web_port = free_port();
  const int other_port = free_port();
  const auto state_dir = dir_->path() / "agent";
  config_ = dir_->path() / "agent.json";
  write_file(
      config_,
      json{{"state_dir", state_dir.string()},
           {"heartbeat_interval_seconds", 1},
           {"isolate_after_seconds", 3},
           {"enroll_poll_ms", 200},
           {"restart_backoff_initial_ms", 100},
           {"restart_backoff_max_seconds", 2},
           {"crash_loop_threshold", 3},
           {"programs", {{"test-web", RAP_TEST_WORKLOAD_BIN}}},
           {"memberships",
            json::array(
                {{{"cluster", "main"},
                  {"control_url", "https://127.0.0.1:" + std::to_string(control_port_)},
                  {"control_ca_file", (dir_->path() / "control" / "tls" / "server.crt").string()},
                  {"join_token_file", (dir_->path() / "join-token").string()}}})}}
          .dump());

  // 1. Enrollment: a join request appears; kill -9 while pending; the restarted agent resumes
  //    the same request (the token allows one use only, so a second request would fail).
  auto agent = start_agent();
  json pending;
  ASSERT_TRUE(eventually(
      [&] {
        pending = api("GET", "/api/v1/clusters/main/join-requests?status=pending");
        return pending.contains("join_requests") && pending["join_requests"].size() == 1;
      },
      std::chrono::seconds(30)))
      << pending << agent.output();
  const std::string request_id = pending["join_requests"][0]["id"].get<std::string>();
  agent.kill(SIGKILL);
  agent.wait_exit(std::chrono::seconds(5));
  agent = start_agent();
  ASSERT_TRUE(agent.wait_for_output("waiting for approval", std::chrono::seconds(20)).has_value())
      << agent.output();
  EXPECT_EQ(
      api("GET", "/api/v1/clusters/main/join-requests?status=pending")["join_requests"].size(), 1u);
  const auto approved =
      api("POST", "/api/v1/clusters/main/join-requests/" + request_id + "/approve", json::object());
  ASSERT_TRUE(agent.wait_for_output("enrolled as node", std::chrono::seconds(20)).has_value())
      << agent.output();
  const auto nodes = api("GET", "/api/v1/clusters/main/nodes");
  ASSERT_EQ(nodes["nodes"].size(), 1u) << nodes;
  const std::string node_id = nodes["nodes"][0]["id"].get<std::string>();
  const std::string node_path = "/api/v1/clusters/main/nodes/" + node_id;
  ASSERT_TRUE(
      eventually([&] { return api("GET", node_path)["node"].value("health", "") == "online"; },
                 std::chrono::seconds(15)))
      << api("GET", node_path);

  // 1b. Signed configuration: fetched after enrollment, verified, applied, persisted (status
  //     reads it from the signed config_state.json) and reported in heartbeats.
  json config_status;
  ASSERT_TRUE(eventually(
      [&] {
        auto s = agent_status();
        if (!s.contains("memberships") || s["memberships"].empty()) return false;
        config_status = s["memberships"][0].value("config", json::object());
        return config_status.contains("applied_versions") &&
               config_status["applied_versions"].value("cluster_snapshot", 0) > 0 &&
               !config_status.value("signer_key_ids", json::array()).empty();
      },
      std::chrono::seconds(30)))
      << config_status << agent.output();
  EXPECT_GT(config_status["applied_versions"].value("trust_bundle", 0), 0) << config_status;
  EXPECT_TRUE(config_status.value("generation", json()).is_number_integer()) << config_status;
  EXPECT_TRUE(std::filesystem::exists(state_dir / "clusters" / "main" / "config_state.json"));
  ASSERT_TRUE(eventually(
      [&] {
        auto hb = api("GET", node_path + "/heartbeats?limit=1");
        if (!hb.contains("heartbeats") || hb["heartbeats"].empty()) return false;
        const auto& v = hb["heartbeats"][0]["state"]["applied_config_versions"];
        return v.is_object() && v.value("cluster_snapshot", 0) > 0;
      },
      std::chrono::seconds(30)))
      << api("GET", node_path + "/heartbeats?limit=1");
  EXPECT_NE(agent.output().find("applied configuration generation"), std::string::npos)
      << agent.output();
  EXPECT_EQ(agent.output().find("configuration refused"), std::string::npos) << agent.output();
  {
    auto text = rap::testing::run_command(
        {RAP_NODE_AGENT_BIN, "status", "--config", config_.string()}, run_options(10));
    EXPECT_NE(text.output.find("config: generation"), std::string::npos) << text.output;
    EXPECT_NE(text.output.find("cluster_snapshot v"), std::string::npos) << text.output;
  }

  // 2. A workload runs only under an assigned role; one whose role is not assigned never starts.
  auto web = [&](const std::string& name, int port, const std::string& role, int exit_after) {
    json args = json::array({"--port", std::to_string(port), "--name", name});
    if (exit_after >= 0) {
      args.push_back("--exit-after-ms");
      args.push_back(std::to_string(exit_after));
    }
    return json{
        {"name", name},
        {"kind", "native"},
        {"spec",
         {{"program", "test-web"}, {"args", args}, {"health_tcp_port", port}, {"role", role}}}};
  };
  api("PUT", node_path + "/workloads",
      json{{"workloads", json::array({web("web", web_port, "relay-node", -1),
                                      web("other", other_port, "entry-node", -1)})}});
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(tcp_read(web_port), "");  // no role yet: capabilities authorize nothing
  api("PUT", node_path + "/roles", json{{"roles", json::array({{{"role", "relay-node"}}})}});
  ASSERT_TRUE(eventually([&] { return tcp_read(web_port) == "hello from web\n"; },
                         std::chrono::seconds(15)))
      << agent.output();
  EXPECT_EQ(tcp_read(other_port), "");

  // 3. kill -9 the running agent: the restarted agent reconciles (stops the orphan, starts the
  //    workload again) and no second node appears.
  agent.kill(SIGKILL);
  agent.wait_exit(std::chrono::seconds(5));
  agent = start_agent();
  ASSERT_TRUE(
      agent.wait_for_output("left by a previous agent", std::chrono::seconds(15)).has_value())
      << agent.output();
  ASSERT_TRUE(
      agent.wait_for_output("loaded persisted configuration", std::chrono::seconds(15)).has_value())
      << agent.output();
  ASSERT_TRUE(eventually([&] { return tcp_read(web_port) == "hello from web\n"; },
                         std::chrono::seconds(15)))
      << agent.output();
  EXPECT_EQ(api("GET", "/api/v1/clusters/main/nodes")["nodes"].size(), 1u);

  // 4. Control plane down: degraded, then isolated; the workload keeps serving. Back: healthy.
  ASSERT_EQ(control_->proc().terminate(std::chrono::seconds(10)), 0) << control_->proc().output();
  ASSERT_TRUE(eventually([&] { return membership_field("partition_state") == "isolated"; },
                         std::chrono::seconds(20)))
      << agent_status();
  EXPECT_EQ(tcp_read(web_port), "hello from web\n");
  start_control();
  ASSERT_TRUE(eventually([&] { return membership_field("partition_state") == "healthy"; },
                         std::chrono::seconds(20)))
      << agent_status() << agent.output();
  EXPECT_NE(agent.output().find("-> recovery"), std::string::npos) << agent.output();

  // 5. Removing the role stops the workload.
  api("PUT", node_path + "/roles", json{{"roles", json::array()}});
  ASSERT_TRUE(eventually([&] { return tcp_read(web_port).empty(); }, std::chrono::seconds(15)))
      << agent.output();

  // 6. A workload that keeps crashing is backed off and reported crash_loop; the agent stays up.
  api("PUT", node_path + "/roles", json{{"roles", json::array({{{"role", "relay-node"}}})}});
  api("PUT", node_path + "/workloads",
      json{{"workloads", json::array({web("crashy", other_port, "relay-node", 50)})}});
  ASSERT_TRUE(eventually(
      [&] {
        auto hb = api("GET", node_path + "/heartbeats?limit=1");
        if (!hb.contains("heartbeats") || hb["heartbeats"].empty()) return false;
        for (const auto& w : hb["heartbeats"][0]["state"]["workloads"]) {
          if (w.value("name", "") == "crashy" && w.value("state", "") == "crash_loop") return true;
        }
        return false;
      },
      std::chrono::seconds(30)))
      << api("GET", node_path + "/heartbeats?limit=1") << agent.output();
  EXPECT_TRUE(agent.running());

  // 7. Revocation: the agent learns it on its next call, stops its workloads and says why.
  api("POST", node_path + "/revoke", json{{"reason", "decommissioned"}});
  ASSERT_TRUE(agent.wait_for_output("node revoked", std::chrono::seconds(20)).has_value())
      << agent.output();
  EXPECT_EQ(agent.terminate(std::chrono::seconds(15)), 0) << agent.output();

  // 8. Tampered state and a key readable by others are refused with a clear message.
  const auto state_file = state_dir / "clusters" / "main" / "state.json";
  std::string text;
  {
    std::ifstream f(state_file);
    text.assign(std::istreambuf_iterator<char>(f), {});
  }
  const auto pos = text.find("revoked");
  ASSERT_NE(pos, std::string::npos);
  text.replace(pos, 7, "approvd");
  write_file(state_file, text);
  auto r = rap::testing::run_command({RAP_NODE_AGENT_BIN, "run", "--config", config_.string()},
                                     run_options(20));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("modified outside the agent"), std::string::npos) << r.output;
  ::chmod((state_dir / "clusters" / "main" / "node.key").c_str(), 0644);
  r = rap::testing::run_command({RAP_NODE_AGENT_BIN, "run", "--config", config_.string()},
                                run_options(20));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("chmod 600"), std::string::npos) << r.output;
  rap::agent::stop_orphans((state_dir / "logs").string());  // safety net: nothing left running
}

// One host in two clusters: two memberships, two keys, two join requests, two nodes.
TEST_F(AgentE2e, OneHostTwoClustersWithIsolatedIdentities) {
  RAP_ASSIGN_OR_FAIL(auto d, TempDir::create("agent-e2e-multi"));
  dir_ = std::make_unique<TempDir>(std::move(d));
  RAP_ASSIGN_OR_FAIL(db_, pg_->create_database("agent_e2e_multi"));
  control_port_ = free_port();
  start_control();
  token_ = setup_owner(*control_, "owner@x.io", kOwnerPw);
  api("POST", "/api/v1/auth/step-up", json{{"password", kOwnerPw}});
  json members = json::array();
  for (const std::string c : {"east", "west"}) {
    api("POST", "/api/v1/clusters", json{{"slug", c}, {"name", c}});
    const auto jt = api("POST", "/api/v1/clusters/" + c + "/join-tokens",
                        json{{"ttl_seconds", 600}, {"max_uses", 1}});
    write_file(dir_->path() / ("token-" + c), jt["token"].get<std::string>());
    members.push_back(
        {{"cluster", c},
         {"control_url", "https://127.0.0.1:" + std::to_string(control_port_)},
         {"control_ca_file", (dir_->path() / "control" / "tls" / "server.crt").string()},
         {"join_token_file", (dir_->path() / ("token-" + c)).string()}});
  }
  config_ = dir_->path() / "agent.json";
  write_file(config_, json{{"state_dir", (dir_->path() / "agent").string()},
                           {"heartbeat_interval_seconds", 1},
                           {"enroll_poll_ms", 200},
                           {"memberships", members}}
                          .dump());
  auto agent = start_agent();
  std::set<std::string> keys;
  for (const std::string c : {"east", "west"}) {
    json pending;
    ASSERT_TRUE(eventually(
        [&] {
          pending = api("GET", "/api/v1/clusters/" + c + "/join-requests?status=pending");
          return pending["join_requests"].size() == 1;
        },
        std::chrono::seconds(30)))
        << pending << agent.output();
    keys.insert(pending["join_requests"][0]["public_key"].get<std::string>());
    api("POST",
        "/api/v1/clusters/" + c + "/join-requests/" +
            pending["join_requests"][0]["id"].get<std::string>() + "/approve",
        json::object());
  }
  EXPECT_EQ(keys.size(), 2u);  // an isolated identity per cluster
  for (const std::string c : {"east", "west"}) {
    ASSERT_TRUE(eventually(
        [&] {
          auto n = api("GET", "/api/v1/clusters/" + c + "/nodes");
          return n["nodes"].size() == 1 && n["nodes"][0].value("health", "") == "online";
        },
        std::chrono::seconds(20)))
        << agent.output();
  }
  const auto east_config = dir_->path() / "agent" / "clusters" / "east" / "config_state.json";
  ASSERT_TRUE(
      eventually([&] { return std::filesystem::exists(east_config); }, std::chrono::seconds(20)))
      << agent.output();
  EXPECT_EQ(agent.terminate(std::chrono::seconds(15)), 0) << agent.output();

  // A tampered config_state.json is refused (not fatal): the agent fetches afresh and rewrites it.
  std::string text;
  {
    std::ifstream f(east_config);
    text.assign(std::istreambuf_iterator<char>(f), {});
  }
  const auto pos = text.find("\\\"version\\\":");
  ASSERT_NE(pos, std::string::npos) << text.substr(0, 200);
  text.insert(pos + 12, "9");  // \"version\":91
  write_file(east_config, text);
  agent = start_agent();
  ASSERT_TRUE(agent.wait_for_output("refusing persisted configuration", std::chrono::seconds(20))
                  .has_value())
      << agent.output();
  ASSERT_TRUE(eventually(
      [&] {
        auto s = agent_status();
        if (!s.contains("memberships")) return false;
        for (const auto& m : s["memberships"]) {
          if (m.value("cluster", "") != "east") continue;
          const auto c = m.value("config", json::object());
          return c.value("applied_versions", json::object()).value("cluster_snapshot", 0) > 0;
        }
        return false;
      },
      std::chrono::seconds(20)))
      << agent_status() << agent.output();
  EXPECT_TRUE(agent.running());
  EXPECT_EQ(agent.terminate(std::chrono::seconds(15)), 0) << agent.output();
}

}  // namespace

// The config-storage role: storage node S serves the cluster's signed config from memory; node N,
// restarted while the control plane is down, falls back to S and applies a version it never got
// from the control plane. A client certificate outside the cluster is refused by S.
TEST_F(AgentE2e, ConfigStorageNodeServesConfigWhileControlPlaneIsDown) {
  RAP_ASSIGN_OR_FAIL(auto d, TempDir::create("agent-e2e-storage"));
  dir_ = std::make_unique<TempDir>(std::move(d));
  RAP_ASSIGN_OR_FAIL(db_, pg_->create_database("agent_e2e_storage"));
  control_port_ = free_port();
  start_control();
  token_ = setup_owner(*control_, "owner@x.io", kOwnerPw);
  api("POST", "/api/v1/auth/step-up", json{{"password", kOwnerPw}});
  api("POST", "/api/v1/clusters", json{{"slug", "main"}, {"name", "Main"}});
  const auto jt =
      api("POST", "/api/v1/clusters/main/join-tokens", json{{"ttl_seconds", 600}, {"max_uses", 2}});
  ASSERT_TRUE(jt.contains("token")) << jt;
  write_file(dir_->path() / "join-token", jt["token"].get<std::string>());
  auto make_config = [&](const std::string& name, bool storage) {
    const auto path = dir_->path() / (name + ".json");
    json c{{"state_dir", (dir_->path() / name).string()},
           {"heartbeat_interval_seconds", 1},
           {"enroll_poll_ms", 200},
           {"memberships",
            json::array(
                {{{"cluster", "main"},
                  {"control_url", "https://127.0.0.1:" + std::to_string(control_port_)},
                  {"control_ca_file", (dir_->path() / "control" / "tls" / "server.crt").string()},
                  {"join_token_file", (dir_->path() / "join-token").string()}}})}};
    if (storage) c["config_storage_listen"] = "127.0.0.1:0";
    write_file(path, c.dump());
    return path;
  };
  const auto s_config = make_config("storage", true);
  const auto n_config = make_config("node", false);
  auto status_of = [&](const std::filesystem::path& cfg) {
    config_ = cfg;
    return agent_status();
  };
  auto live_membership = [&](const std::filesystem::path& cfg) {
    auto s = status_of(cfg);
    if (!s.contains("live") || s["live"]["memberships"].empty()) return json::object();
    return s["live"]["memberships"][0];
  };

  config_ = s_config;
  auto s_agent = start_agent();
  config_ = n_config;
  auto n_agent = start_agent();
  json pending;
  ASSERT_TRUE(eventually(
      [&] {
        pending = api("GET", "/api/v1/clusters/main/join-requests?status=pending");
        return pending.contains("join_requests") && pending["join_requests"].size() == 2;
      },
      std::chrono::seconds(30)))
      << pending << s_agent.output() << n_agent.output();
  for (const auto& jr : pending["join_requests"]) {
    api("POST", "/api/v1/clusters/main/join-requests/" + jr["id"].get<std::string>() + "/approve",
        json::object());
  }
  ASSERT_TRUE(s_agent.wait_for_output("enrolled as node", std::chrono::seconds(20)).has_value())
      << s_agent.output();
  ASSERT_TRUE(n_agent.wait_for_output("enrolled as node", std::chrono::seconds(20)).has_value())
      << n_agent.output();
  std::string s_id;
  std::string n_id;
  ASSERT_TRUE(eventually(
      [&] {
        s_id = live_membership(s_config).value("node_id", std::string());
        n_id = live_membership(n_config).value("node_id", std::string());
        return !s_id.empty() && !n_id.empty();
      },
      std::chrono::seconds(10)));
  ASSERT_FALSE(s_id.empty());
  ASSERT_NE(s_id, n_id);
  const std::string s_path = "/api/v1/clusters/main/nodes/" + s_id;
  const std::string n_path = "/api/v1/clusters/main/nodes/" + n_id;

  api("POST", "/api/v1/auth/step-up", json{{"password", kOwnerPw}});
  api("PUT", s_path + "/roles", json{{"roles", json::array({{{"role", "config-storage"}}})}});
  api("PUT", n_path + "/roles", json{{"roles", json::array({{{"role", "relay-node"}}})}});

  // S serves; N's applied storage_directory lists S.
  std::string s_endpoint;
  ASSERT_TRUE(eventually(
      [&] {
        const auto m = live_membership(s_config);
        const auto cs = m.value("config_storage", json::object());
        s_endpoint =
            cs.value("endpoint", json()).is_string() ? cs["endpoint"].get<std::string>() : "";
        return cs.value("serving", false) && cs.value("cache_generation", json()).is_number();
      },
      std::chrono::seconds(30)))
      << live_membership(s_config) << s_agent.output();
  json n_cfg;
  ASSERT_TRUE(eventually(
      [&] {
        n_cfg = live_membership(n_config).value("config", json::object());
        for (const auto& st : n_cfg.value("storages", json::array())) {
          if (st.value("id", "") == s_id && st.value("endpoint", "") == s_endpoint) return true;
        }
        return false;
      },
      std::chrono::seconds(30)))
      << n_cfg << n_agent.output();
  // The fetch that taught N about S came from the control plane; later ones may come from S.
  const auto first_source = n_cfg.value("source", std::string());
  EXPECT_TRUE(first_source == "control" || first_source.ends_with("storage:" + s_id)) << n_cfg;
  const auto sab_before =
      n_cfg["applied_versions"].value("service_assignment_bundle", std::int64_t{0});
  ASSERT_GT(sab_before, 0) << n_cfg;

  // A client certificate that does not chain to the cluster CA is refused in the handshake.
  {
    const auto key = dir_->path() / "foreign.key";
    const auto crt = dir_->path() / "foreign.crt";
    auto gen = rap::testing::run_command(
        {"openssl", "req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", key.string(), "-out",
         crt.string(), "-days", "1", "-subj", "/CN=foreign"},
        run_options(20));
    ASSERT_EQ(gen.exit_code, 0) << gen.output;
    auto curl =
        rap::testing::run_command({"curl", "-sk", "--tlsv1.3", "--cert", crt.string(), "--key",
                                   key.string(), "https://" + s_endpoint + "/api/v1/node/config"},
                                  run_options(20));
    EXPECT_NE(curl.exit_code, 0) << curl.output;
    EXPECT_EQ(curl.output.find("artifacts"), std::string::npos) << curl.output;
  }

  // N is down; its roles change (a new service_assignment_bundle version); S refreshes.
  n_agent.kill(SIGKILL);
  n_agent.wait_exit(std::chrono::seconds(5));
  api("POST", "/api/v1/auth/step-up", json{{"password", kOwnerPw}});
  api("PUT", n_path + "/roles",
      json{{"roles", json::array({{{"role", "relay-node"}}, {{"role", "entry-node"}}})}});
  // Wait for a cache at least as new as the generation that holds the role change (another
  // change, e.g. S's endpoint announcement, may bump the generation just before it).
  const auto target = api("GET", "/api/v1/clusters/main/config")["config_generation"];
  ASSERT_TRUE(target.is_number_integer());
  ASSERT_TRUE(eventually(
      [&] {
        const auto g = live_membership(s_config)["config_storage"]["cache_generation"];
        return g.is_number_integer() && g.get<std::int64_t>() >= target.get<std::int64_t>();
      },
      std::chrono::seconds(30)))
      << live_membership(s_config) << s_agent.output();

  // Control plane down; N restarts and gets the new version from S.
  ASSERT_EQ(control_->proc().terminate(std::chrono::seconds(10)), 0) << control_->proc().output();
  config_ = n_config;
  n_agent = start_agent();
  ASSERT_TRUE(eventually(
      [&] {
        n_cfg = live_membership(n_config).value("config", json::object());
        return n_cfg.value("source", std::string()).ends_with("storage:" + s_id) &&
               n_cfg["applied_versions"].value("service_assignment_bundle", std::int64_t{0}) >
                   sab_before;
      },
      std::chrono::seconds(40)))
      << n_cfg << n_agent.output() << s_agent.output();
  EXPECT_GE(live_membership(s_config)["config_storage"].value("requests", 0), 1)
      << live_membership(s_config);
  {
    config_ = n_config;
    auto text = rap::testing::run_command(
        {RAP_NODE_AGENT_BIN, "status", "--config", n_config.string()}, run_options(10));
    EXPECT_NE(text.output.find("storage:" + s_id + " applied"), std::string::npos) << text.output;
    EXPECT_NE(text.output.find("last round (recovery order):"), std::string::npos) << text.output;
    // N runs the mesh (relay-node): its peer cache is persisted (signed, 0600) and shown.
    EXPECT_TRUE(
        std::filesystem::exists(dir_->path() / "node" / "clusters" / "main" / "peer_cache.json"));
    EXPECT_NE(text.output.find("local caches: peers"), std::string::npos) << text.output;
  }
  EXPECT_EQ(n_agent.terminate(std::chrono::seconds(15)), 0) << n_agent.output();
  EXPECT_EQ(s_agent.terminate(std::chrono::seconds(15)), 0) << s_agent.output();
}
