// rap-node-agent: the native daemon on every host (see src/agent/include/rap/agent/agent.h).
//   rap-node-agent run --config /etc/rap/node-agent.json
//   rap-node-agent status --config /etc/rap/node-agent.json [--json]
// `status` shows per membership enrollment, contact, and the signed configuration: applied
// version per artifact type, active signer key id(s), authority epoch, generation and time of the
// last fetch, last rejection.
#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>

#include "rap/agent/agent.h"
#include "rap/common/log.h"

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int /*sig*/) {
  g_stop.store(true);
}

constexpr const char* kConfigHelp = R"(Configuration file (JSON):
  state_dir                  keys and state (default /var/lib/rap-node-agent; mode 0700)
  profile                    "thick" (default) or "thin" (little disk, no artifact storage)
  heartbeat_interval_seconds 1..300 (default 10)
  isolate_after_seconds      degraded -> isolated after this long without contact (default 30)
  enroll_poll_ms             how often a pending join request is polled (default 1000)
  programs                   {"name": "/absolute/path"}: the only executables workloads may run
  restart_backoff_initial_ms workload restart backoff start (default 1000, doubles)
  restart_backoff_max_seconds  backoff ceiling (default 60)
  crash_loop_threshold       exits within 2 minutes that mark a workload crash_loop (default 5)
  config_storage_listen      "ip:port" (port 0 picks one; default none): with the role
                             config-storage, serve the cluster's signed config to its nodes
                             (mTLS, cluster certificates only) as a fallback source
  fabric_listen              "ip:port" for fabric sessions from peers (default none: the node
                             only dials out, e.g. a connector behind NAT). The fabric runs when
                             the node holds entry-node, relay-node or exit-node
  fabric_advertise           "host:port" peers should dial (default: the listen address)
  client_ingress_listen      "ip:port" where an entry-node accepts users' connections
                             (rapctl connect; TLS 1.3 with the node certificate)
  client_ingress_advertise   "host:port" users connect to (default: the listen address)
  metrics_listen             "ip:port": Prometheus /metrics and JSON /status of the fabric,
                             routes and TCP access (default none)
  memberships                one entry per cluster this host belongs to:
    cluster                  cluster slug at the control plane
    control_url              https://host:port of rap-control
    control_ca_file          PEM pinning rap-control's certificate or CA ("" = system store)
    join_token_file          file with the one-time join token (read only while enrolling)
Example:
  {"state_dir": "/var/lib/rap-node-agent",
   "programs": {"tcp-exit": "/usr/lib/rap/rap-tcp-exit"},
   "memberships": [{"cluster": "main", "control_url": "https://control.example:8443",
                    "control_ca_file": "/etc/rap/control.pem",
                    "join_token_file": "/etc/rap/join-token"}]}
)";

// One line about a membership's signed configuration (ConfigSync::status_json()).
void print_config(const nlohmann::json& c, const char* indent) {
  if (!c.is_object()) return;
  std::cout << indent << "config:";
  if (c.contains("error")) {
    std::cout << " ERROR: " << c.value("error", std::string()) << "\n";
    return;
  }
  const auto& gen = c.contains("generation") ? c["generation"] : nlohmann::json();
  if (gen.is_number_integer()) {
    std::cout << " generation " << gen.get<std::int64_t>() << " (fetched unix "
              << c.value("last_fetch", std::int64_t{0}) << ")";
  } else {
    std::cout << " none applied yet";
  }
  if (c.contains("authority_epoch")) std::cout << "  epoch " << c["authority_epoch"].dump();
  if (c.contains("signer_key_ids") && !c["signer_key_ids"].empty()) {
    std::cout << "  signer";
    for (const auto& k : c["signer_key_ids"]) std::cout << " " << k.get<std::string>();
  }
  if (c.contains("source") && c["source"].is_string()) {
    std::cout << "  from " << c["source"].get<std::string>();
  }
  if (c.contains("applied_versions") && c["applied_versions"].is_object()) {
    for (auto it = c["applied_versions"].begin(); it != c["applied_versions"].end(); ++it) {
      std::cout << "\n" << indent << "  " << it.key() << " v" << it.value().dump();
    }
  }
  if (c.value("authority_fence", 0) > 0) {
    std::cout << "\n" << indent << "  authority fence: epoch " << c["authority_fence"].dump();
  }
  if (c.contains("attempts") && c["attempts"].is_array() && !c["attempts"].empty()) {
    std::cout << "\n" << indent << "  last round (recovery order):";
    for (const auto& a : c["attempts"]) {
      if (!a.is_object()) continue;
      std::cout << "\n"
                << indent << "    " << a.value("source", std::string()) << " "
                << a.value("outcome", std::string()) << " (" << a.value("reason", std::string())
                << ")";
    }
  }
  if (c.value("on_local_snapshot", false)) {
    std::cout << "\n" << indent << "  no source answered: running on the last valid local snapshot";
  }
  if (c.contains("lapsed") && c["lapsed"].is_array()) {
    for (const auto& l : c["lapsed"]) {
      if (!l.is_object()) continue;
      std::cout << "\n"
                << indent << "  LAPSED " << l.value("artifact", std::string()) << " (expired unix "
                << l.value("expires_at", std::int64_t{0}) << ", policy "
                << l.value("policy", std::string()) << ")";
    }
  }
  if (c.contains("storages") && c["storages"].is_array() && !c["storages"].empty()) {
    std::cout << "\n" << indent << "  storage nodes:";
    for (const auto& st : c["storages"]) {
      if (st.is_object()) {
        std::cout << " " << st.value("id", std::string()) << "@"
                  << st.value("endpoint", std::string());
      }
    }
  }
  if (c.contains("last_rejection") && c["last_rejection"].is_object()) {
    const auto& r = c["last_rejection"];
    std::cout << "\n"
              << indent << "  last rejection unix " << r.value("at", std::int64_t{0}) << ": "
              << r.value("code", std::string()) << " (" << r.value("message", std::string()) << ")";
  }
  std::cout << "\n";
}

void print_caches(const nlohmann::json& c, const std::string& indent) {
  if (!c.is_object()) return;
  std::cout << indent << "local caches:";
  const auto section = [&](const char* name, const char* what) {
    const auto it = c.find(name);
    if (it == c.end() || !it->is_object()) {
      std::cout << " " << what << " none;";
    } else if (it->contains("error")) {
      std::cout << " " << what << " REFUSED (" << it->value("error", std::string()) << ");";
    } else {
      std::cout << " " << what << " " << it->value(what, 0) << " (updated unix "
                << it->value("updated", std::int64_t{0}) << ");";
    }
  };
  section("peer_cache", "peers");
  section("route_cache", "routes");
  const auto pu = c.find("pending_update");
  if (pu == c.end() || !pu->is_object()) {
    std::cout << " pending update: none\n";
  } else if (pu->contains("error")) {
    std::cout << " pending update REFUSED (" << pu->value("error", std::string()) << ")\n";
  } else {
    std::cout << " pending update: " << pu->value("target_version", std::string()) << " "
              << pu->value("state", std::string()) << " ("
              << pu->value("staged_path", std::string()) << ", sha256 "
              << pu->value("artifact_hash", std::string()).substr(0, 16) << ")\n";
  }
}

void print_status(const nlohmann::json& s) {
  std::cout << "state dir: " << s.value("state_dir", std::string()) << "\n";
  for (const auto& m : s["memberships"]) {
    std::cout << "cluster " << m.value("cluster", std::string()) << ": "
              << m.value("enroll_status", std::string("?"));
    if (m.contains("node_id") && !m["node_id"].get<std::string>().empty())
      std::cout << "  node " << m["node_id"].get<std::string>();
    if (m.contains("request_id") && !m["request_id"].get<std::string>().empty())
      std::cout << "  request " << m["request_id"].get<std::string>();
    if (m.contains("partition_state"))
      std::cout << "  contact " << m["partition_state"].get<std::string>();
    if (m.contains("desired_version"))
      std::cout << "  desired v" << m["desired_version"].get<std::int64_t>();
    if (m.contains("error")) std::cout << "  ERROR: " << m["error"].get<std::string>();
    std::cout << "\n";
    if (!s.contains("live") && m.contains("config")) print_config(m["config"], "  ");
    if (!s.contains("live") && m.contains("caches")) print_caches(m["caches"], "  ");
  }
  if (s.contains("live")) {
    const auto& live = s["live"];
    std::cout << "agent pid " << live.value("pid", 0) << ", status updated unix "
              << live.value("updated", std::int64_t{0}) << "\n";
    for (const auto& m : live["memberships"]) {
      std::cout << "  " << m.value("cluster", std::string()) << ": contact "
                << m.value("partition_state", std::string());
      const auto err = m.value("last_error", std::string());
      if (!err.empty()) std::cout << " (last error: " << err << ")";
      std::cout << "\n";
      if (m.contains("config")) print_config(m["config"], "    ");
      if (m.contains("caches")) print_caches(m["caches"], "    ");
      if (m.contains("config_storage") && m["config_storage"].is_object() &&
          m["config_storage"].value("serving", false)) {
        const auto& cs = m["config_storage"];
        std::cout << "    config storage: serving on " << cs.value("endpoint", std::string())
                  << ", cache generation " << cs.value("cache_generation", nlohmann::json()).dump()
                  << " (" << cs.value("cache_nodes", 0) << " nodes), requests "
                  << cs.value("requests", 0) << ", refused " << cs.value("refused", 0) << "\n";
      }
    }
    for (const auto& w : live["workloads"]) {
      std::cout << "  workload " << w.value("name", std::string()) << ": "
                << w.value("state", std::string()) << " pid " << w.value("pid", 0) << " restarts "
                << w.value("restarts", 0);
      const auto le = w.value("last_error", std::string());
      if (!le.empty()) std::cout << " (" << le << ")";
      std::cout << "\n";
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "rap-node-agent: enrolls this host into RAP clusters, heartbeats, runs authorized "
      "workloads"};
  app.footer(kConfigHelp);
  app.require_subcommand(1);
  std::string config = "/etc/rap/node-agent.json";
  bool as_json = false;
  auto* run = app.add_subcommand("run", "run the agent (foreground; systemd runs it this way)");
  run->add_option("--config", config, "configuration file")->default_val(config);
  auto* status = app.add_subcommand("status", "print enrollment, contact and workload state");
  status->add_option("--config", config, "configuration file")->default_val(config);
  status->add_flag("--json", as_json, "print JSON");
  CLI11_PARSE(app, argc, argv);

  rap::Env& env = rap::default_env();
  auto cfg = rap::agent::AgentConfig::load(env, config);
  if (!cfg) {
    std::cerr << "rap-node-agent: " << cfg.error().message << "\n";
    return 2;
  }
  if (status->parsed()) {
    auto s = rap::agent::Agent::read_status(*cfg, env);
    if (!s) {
      std::cerr << "rap-node-agent: " << s.error().message << "\n";
      return 1;
    }
    if (as_json) {
      std::cout << s->dump(2) << "\n";
    } else {
      print_status(*s);
    }
    return 0;
  }

  rap::log::init("rap-node-agent");
  std::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  rap::SystemClock clock;
  auto backend = rap::agent::make_posix_backend();
  rap::agent::Agent agent(std::move(*cfg), env, clock, *backend);
  auto r = agent.run(g_stop);
  if (!r) {
    spdlog::critical("refusing to run: {}", r.error().message);
    std::cerr << "rap-node-agent: " << r.error().message << "\n";
    return 1;
  }
  return 0;
}
