// Shared fixture of the cluster/node end-to-end tests (cluster_api_test.cpp, access_api_test.cpp):
// a rap-control with a fresh database and a stepped-up owner session, simulated nodes holding
// their own Ed25519 keys (mTLS with the certificates the control plane issued), heartbeat bodies
// and a node-side view of the signed configuration (rap_config::ConfigState, as the agent).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "control_process.h"
#include "rap/config/state.h"
#include "rap/config/trust.h"
#include "rap/crypto/keys.h"
#include "rap/testing/temp_dir.h"

namespace rap::testing::control {

inline std::string hex(std::span<const std::uint8_t> b) {
  static constexpr char kD[] = "0123456789abcdef";
  std::string out;
  for (auto c : b) {
    out.push_back(kD[c >> 4]);
    out.push_back(kD[c & 15]);
  }
  return out;
}

inline std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline void write_file(const std::filesystem::path& p, const std::string& data) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << data;
}

inline void step_up(const ControlProcess& c, const std::string& token, const std::string& pw) {
  auto r = c.call("POST", "/api/v1/auth/step-up", json{{"password", pw}}.dump(), token);
  EXPECT_EQ(r.status, 200) << r;
}

// A simulated node: its own Ed25519 key, and (once approved) its certificate on disk for curl.
struct TestNode {
  rap::crypto::Ed25519Key key;
  std::string pub;
  std::filesystem::path cert_path;
  std::filesystem::path key_path;

  static TestNode make(const std::filesystem::path& dir, const std::string& name) {
    auto k = rap::crypto::Ed25519Key::generate();
    EXPECT_TRUE(k.has_value());
    TestNode n{*k, hex(k->public_key()), dir / (name + ".crt"), dir / (name + ".key")};
    write_file(n.key_path, n.key.private_pem());
    return n;
  }

  json enroll_body(const std::string& cluster, const std::string& token,
                   json caps = json::array({"can_route_mesh", "can_run_tcp_exit"})) const {
    return json{{"cluster", cluster},
                {"join_token", token},
                {"public_key", pub},
                {"facts",
                 {{"hostname", "node-" + pub.substr(0, 6)},
                  {"os", "linux"},
                  {"arch", "x86_64"},
                  {"cpus", 4},
                  {"memory_mb", 8192},
                  {"addresses", {"10.0.0.1"}}}},
                {"capabilities", caps}};
  }

  // Poll headers: a signature over "rap-enroll-poll:<id>:<time>".
  std::vector<std::string> proof(const std::string& request_id, std::int64_t t) const {
    const std::string msg = "rap-enroll-poll:" + request_id + ":" + std::to_string(t);
    auto sig = key.sign(std::span(reinterpret_cast<const std::uint8_t*>(msg.data()), msg.size()));
    return {"-H", "X-RAP-Time: " + std::to_string(t), "-H", "X-RAP-Proof: " + hex(sig)};
  }

  Reply poll(const ControlProcess& c, const std::string& request_id) const {
    return c.call("GET", "/api/v1/enroll/" + request_id, "", "", proof(request_id, unix_now()));
  }

  // An mTLS request with this node's certificate.
  Reply call(const ControlProcess& c, const std::string& method, const std::string& path,
             const std::string& body = "") const {
    return c.call(method, path, body, "",
                  {"--cert", cert_path.string(), "--key", key_path.string()});
  }
};

inline json heartbeat_body(const std::string& version = "0.1.0") {
  return json{{"version", version},
              {"capabilities", {"can_route_mesh"}},
              {"load",
               {{"cpu_permille", 120},
                {"memory_kib", 204800},
                {"net_rx_bps", 1000},
                {"net_tx_bps", 2000},
                {"open_sessions", 3},
                {"fds", 40}}},
              {"workloads", {{{"name", "relay"}, {"state", "running"}}}},
              {"applied_config_versions", {{"policy", 7}}},
              {"partition_state", "none"}};
}

class ClusterApiTest : public ControlApiTest {
 protected:
  // Starts rap-control on a fresh database, completes setup, steps the owner session up.
  // By default every heartbeat is written (the history checks count them); the throttled
  // production default is covered by NodeApiHeartbeatThrottle and the agent e2e test.
  void start(const std::string& name,
             const std::vector<std::string>& extra_args = {"--heartbeat-write-interval", "0"}) {
    auto db = pg_->create_database(name);
    ASSERT_TRUE(db.has_value()) << db.error().message;
    dbname_ = name;
    conninfo_ = *db;
    auto c = ControlProcess::start(*db, name, extra_args);
    ASSERT_TRUE(c.has_value()) << c.error().message;
    c_ = std::move(*c);
    owner_ = setup_owner(*c_, "owner@example.com", kOwnerPw);
    ASSERT_FALSE(owner_.empty());
    step_up(*c_, owner_, kOwnerPw);
    auto d = TempDir::create("rap-cluster-test-");
    ASSERT_TRUE(d.has_value());
    dir_.emplace(std::move(*d));
  }

  Reply owner(const std::string& method, const std::string& path, const std::string& body = "") {
    return c_->call(method, path, body, owner_);
  }

  // Creates a user; returns its id.
  std::string make_user(const std::string& email, const std::string& pw) {
    auto u = owner("POST", "/api/v1/users", json{{"email", email}, {"password", pw}}.dump());
    EXPECT_EQ(u.status, 201) << u;
    return u.j["user"]["id"].is_string() ? u.j["user"]["id"].get<std::string>() : "";
  }

  std::string make_cluster(const std::string& slug) {
    auto r = owner("POST", "/api/v1/clusters", json{{"slug", slug}, {"name", slug}}.dump());
    EXPECT_EQ(r.status, 201) << r;
    return r.j["cluster"]["id"].is_string() ? r.j["cluster"]["id"].get<std::string>() : "";
  }

  // Returns (token id, raw token).
  std::pair<std::string, std::string> make_token(const std::string& cluster, int max_uses,
                                                 int ttl = 3600) {
    auto r =
        owner("POST", "/api/v1/clusters/" + cluster + "/join-tokens",
              json{{"ttl_seconds", ttl}, {"max_uses", max_uses}, {"description", "test"}}.dump());
    EXPECT_EQ(r.status, 201) << r;
    if (r.status != 201) return {};
    return {r.j["join_token"]["id"].get<std::string>(), r.j["token"].get<std::string>()};
  }

  // Enrolls, approves and stores the node's certificate; returns the node id.
  // `approve_body`: e.g. {"org": slug} for a customer-managed node.
  std::string enroll_and_approve(TestNode& n, const std::string& cluster, const std::string& token,
                                 const std::string& approve_body = "") {
    auto e = c_->call("POST", "/api/v1/enroll", n.enroll_body(cluster, token).dump());
    EXPECT_EQ(e.status, 202) << e;
    const std::string rid = e.j.value("request_id", "");
    auto a = owner("POST", "/api/v1/clusters/" + cluster + "/join-requests/" + rid + "/approve",
                   approve_body);
    EXPECT_EQ(a.status, 200) << a;
    auto p = n.poll(*c_, rid);
    EXPECT_EQ(p.status, 200) << p;
    EXPECT_EQ(p.j.value("status", ""), "approved") << p;
    write_file(n.cert_path, p.j.value("certificate_pem", ""));
    return p.j.value("node_id", "");
  }

  std::unique_ptr<ControlProcess> c_;
  std::string dbname_;
  std::string conninfo_;
  std::string owner_;
  std::optional<TempDir> dir_;
};

// Applies a GET /api/v1/node/config answer the way the agent does (rap_config::ConfigState).
struct NodeConfigView {
  std::optional<rap::config::ConfigState> state;
  std::string raw;  // every artifact byte the node received, for isolation checks

  rap::Result<rap::config::ApplyReport> apply(const Reply& r, const std::string& cluster_id,
                                              const std::string& node_id) {
    if (r.status != 200) return rap::fail("http", r.body);
    if (!state) {
      auto anchors = rap::config::TrustStore::from_trust_bundle(r.j["trust_bundle"]);
      if (!anchors) return tl::unexpected(anchors.error());
      state.emplace(cluster_id, rap::config::NodeScope{node_id, {}, {}}, std::move(*anchors));
    }
    std::vector<std::string> batch;
    for (const auto& a : r.j["artifacts"]) {
      batch.push_back(a.get<std::string>());
      raw += batch.back();
    }
    return state->apply(batch, std::chrono::system_clock::now(), 0);
  }

  std::uint64_t version(rap::config::ArtifactType t, const rap::config::Scope& s) const {
    const auto* e = state ? state->find(t, s) : nullptr;
    return e == nullptr ? 0 : e->version;
  }

  std::string have() const {
    std::string out;
    for (const auto& [key, v] : state->applied_versions()) {
      const std::string type = key.substr(0, key.find('@'));
      if (!out.empty()) out += ",";
      out += type + ":" + std::to_string(v.version);
    }
    return out;
  }
};

}  // namespace rap::testing::control
