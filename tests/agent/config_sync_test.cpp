// ConfigSync with real artifacts signed by rap::config::Signer, the real filesystem and a fake
// control plane transport: first fetch (trust on first use) applies and persists; a restart loads
// the persisted state and ignores the response's plain trust bundle; a tampered or corrupt
// persisted file is refused and refetched; a tampered artifact (bad signature, wrong cluster)
// applies nothing and is reported with its code; an increment gap triggers one full refetch.
#include "rap/agent/config_sync.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <functional>
#include <optional>

#include "rap/config/errors.h"
#include "rap/config/payload.h"
#include "rap/config/signer.h"
#include "rap/testing/gtest_support.h"
#include "rap/testing/temp_dir.h"

namespace rap::agent {
namespace {

using namespace std::chrono_literals;
using config::ArtifactType;
using config::Json;
using config::Scope;

crypto::Ed25519Key new_key() {
  auto k = crypto::Ed25519Key::generate();
  RAP_ASSERT(k.has_value());
  return std::move(*k);
}

class FakeTransport : public ConfigTransport {
 public:
  std::function<HttpReply(const std::string& have)> on_fetch;
  std::vector<std::string> haves;
  std::vector<nlohmann::json> rejections;

  Result<HttpReply> fetch(const std::string& have) override {
    haves.push_back(have);
    if (!on_fetch) return fail("connect_failed", "control plane down");
    return on_fetch(have);
  }
  Result<HttpReply> report_rejection(const nlohmann::json& body) override {
    rejections.push_back(body);
    return HttpReply{204, nlohmann::json()};
  }
};

// Versions of the components one response carries.
struct Versions {
  std::uint64_t trust = 1;
  std::uint64_t revocations = 1;
  std::uint64_t services = 1;
  std::uint64_t peers = 1;
  std::uint64_t snapshot = 1;
};

class ConfigSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RAP_ASSIGN_OR_FAIL(auto d, rap::testing::TempDir::create("agent-config"));
    dir_.emplace(std::move(d));
  }

  std::string dir() const { return (dir_->path() / "c1").string(); }
  std::unique_ptr<ConfigSync> make_sync() const {
    return std::make_unique<ConfigSync>(default_env(), dir(), "main", "cl-1", "n1", node_key_);
  }

  static Json peers(std::uint64_t v) {
    Json p = Json::array();
    p.push_back({{"id", "n2"}, {"addr", "10.0.0.2:7443"}});
    p.push_back({{"id", "n3"}, {"addr", "10.0.0." + std::to_string(v + 2) + ":7443"}});
    return Json{{"peers", p}};
  }
  Json services(std::uint64_t v) const {
    Json p{{"services", Json::array({{{"id", "svc-" + std::to_string(v)}}})}};
    if (!sab_policy_.empty()) p["lapse_policy"] = sab_policy_;
    return p;
  }
  Json trust_payload(const config::Signer& s) const {
    auto t = config::TrustStore::from_keys({s.trusted_key(now_ - 24h, now_ + 365 * 24h)});
    RAP_ASSERT(t.has_value());
    return t->to_payload();
  }

  config::Artifact sign(ArtifactType type, Scope scope, std::uint64_t version, Json payload,
                        const config::Signer* s = nullptr) const {
    config::ArtifactDraft d;
    d.type = type;
    d.scope = std::move(scope);
    d.version = version;
    d.epoch = epoch_;
    d.issued_at = now_ - 1h;
    d.expires_at = now_ + lifetime_;
    d.payload = std::move(payload);
    auto a = (s != nullptr ? *s : signer_).sign(std::move(d));
    RAP_ASSERT(a.has_value());
    return std::move(*a);
  }
  static std::string wire(const config::Artifact& a) {
    auto w = config::encode_artifact(a);
    RAP_ASSERT(w.has_value());
    return *w;
  }

  // The full batch for `v` (every component and the node's cluster snapshot listing them).
  std::vector<config::Artifact> batch(const Versions& v, const config::Signer* s = nullptr) const {
    std::vector<config::Artifact> out;
    out.push_back(sign(ArtifactType::trust_bundle, Scope::cluster(), v.trust,
                       trust_payload(s != nullptr ? *s : signer_), s));
    out.push_back(sign(ArtifactType::revocation_list, Scope::cluster(), v.revocations,
                       config::Revocations{}.to_payload(), s));
    out.push_back(sign(ArtifactType::service_assignment_bundle, Scope::node("n1"), v.services,
                       services(v.services), s));
    out.push_back(
        sign(ArtifactType::peer_directory, Scope::node("n1"), v.peers, peers(v.peers), s));
    std::vector<config::ComponentRef> refs;
    for (const auto& a : out) {
      refs.push_back({a.header.type, a.header.scope, a.header.version, a.header.content_hash});
    }
    out.push_back(sign(ArtifactType::cluster_snapshot, Scope::node("n1"), v.snapshot,
                       config::make_snapshot_payload(refs), s));
    return out;
  }

  HttpReply reply(std::int64_t generation, const std::vector<config::Artifact>& artifacts,
                  Json trust) const {
    nlohmann::json arts = nlohmann::json::array();
    for (const auto& a : artifacts) arts.push_back(wire(a));
    return HttpReply{200, nlohmann::json{{"config_generation", generation},
                                         {"trust_bundle", std::move(trust)},
                                         {"artifacts", arts}}};
  }
  HttpReply reply(std::int64_t generation, const std::vector<config::Artifact>& artifacts) const {
    return reply(generation, artifacts, trust_payload(signer_));
  }

  std::string read(const std::string& path) const {
    std::ifstream f(path);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  void write(const std::string& path, const std::string& text) const {
    std::ofstream f(path, std::ios::trunc);
    f << text;
  }

  config::WallTime now_ = config::from_unix_seconds(
      config::to_unix_seconds(std::chrono::system_clock::now()));  // whole seconds
  crypto::Ed25519Key node_key_ = new_key();
  config::Signer signer_{"cl-1", new_key()};
  std::optional<rap::testing::TempDir> dir_;
  std::uint64_t epoch_ = 1;              // of the artifacts sign() makes
  std::chrono::seconds lifetime_ = 24h;  // expires_at - now_ of the artifacts sign() makes
  std::string sab_policy_;  // lapse_policy of the service_assignment_bundle ("" = none)
};

// ---- recovery order -------------------------------------------------------------------------

// The sources of one round in recovery order, each a FakeTransport; `control` also takes the
// rejection reports.
struct Sources {
  FakeTransport nearby, peer, bootstrap, control;
  std::vector<ConfigSource> list() {
    return {{SourceKind::nearby_storage, "s1", &nearby},
            {SourceKind::peer_storage, "s2", &peer},
            {SourceKind::bootstrap_storage, "s3", &bootstrap},
            {SourceKind::control, "", &control}};
  }
  std::vector<std::string> outcomes(const ConfigSync& cs) const {
    std::vector<std::string> out;
    for (const auto& a : cs.last_attempts()) out.push_back(a.source + "=" + a.outcome);
    return out;
  }
};

class RecoveryOrderTest : public ConfigSyncTest {
 protected:
  // Applies generation 1 from the control plane, so storages may serve (trust is anchored).
  std::unique_ptr<ConfigSync> applied_sync() {
    auto cs = make_sync();
    FakeTransport t;
    t.on_fetch = [&](const std::string&) { return reply(1, batch({})); };
    RAP_ASSERT(cs->sync(t, now_).has_value());
    return cs;
  }
  // Generation 2 (a new service_assignment_bundle version) as a storage serves it.
  HttpReply v2(std::int64_t generation = 2) const {
    Versions v;
    v.services = 2;
    v.snapshot = 2;
    auto r = reply(generation, batch(v));
    r.body.erase("trust_bundle");  // storage replies carry no trust anchors
    return r;
  }
  static HttpReply unknown_node() {
    return HttpReply{404, nlohmann::json{{"error", {{"code", "unknown_node"}}}}};
  }
};

TEST_F(RecoveryOrderTest, NearbyStorageIsTriedFirstAndTheOthersNotAtAll) {
  auto cs = applied_sync();
  Sources s;
  s.nearby.on_fetch = [&](const std::string&) { return v2(); };
  s.control.on_fetch = [&](const std::string&) { return v2(); };
  const auto list = s.list();
  RAP_ASSIGN_OR_FAIL(bool changed, cs->sync(list, s.control, now_, 2));
  EXPECT_TRUE(changed);
  EXPECT_EQ(cs->source(), "nearby-storage:s1");
  EXPECT_EQ(cs->applied_versions()["service_assignment_bundle"], 2);
  EXPECT_TRUE(s.peer.haves.empty() && s.bootstrap.haves.empty() && s.control.haves.empty());
  EXPECT_EQ(s.outcomes(*cs), std::vector<std::string>{"nearby-storage:s1=applied"});
}

TEST_F(RecoveryOrderTest, UnreachableNearbyStorageFallsToAPeerAdvertisingStorage) {
  auto cs = applied_sync();
  Sources s;  // nearby: no on_fetch = unreachable
  s.peer.on_fetch = [&](const std::string&) { return v2(); };
  const auto list = s.list();
  RAP_ASSERT_OK(cs->sync(list, s.control, now_, 2));
  EXPECT_EQ(cs->source(), "peer-storage:s2");
  EXPECT_EQ(s.outcomes(*cs),
            (std::vector<std::string>{"nearby-storage:s1=unreachable", "peer-storage:s2=applied"}));
  EXPECT_TRUE(s.bootstrap.haves.empty() && s.control.haves.empty());
}

TEST_F(RecoveryOrderTest, RefusingPeerFallsToABootstrapStorageOfTheLastSnapshot) {
  auto cs = applied_sync();
  Sources s;
  s.peer.on_fetch = [&](const std::string&) { return unknown_node(); };
  s.bootstrap.on_fetch = [&](const std::string&) { return v2(); };
  const auto list = s.list();
  RAP_ASSERT_OK(cs->sync(list, s.control, now_, 2));
  EXPECT_EQ(cs->source(), "bootstrap-storage:s3");
  EXPECT_EQ(s.outcomes(*cs),
            (std::vector<std::string>{"nearby-storage:s1=unreachable", "peer-storage:s2=refused",
                                      "bootstrap-storage:s3=applied"}));
  EXPECT_TRUE(s.control.haves.empty());
  EXPECT_NE(cs->last_attempts()[1].reason.find("unknown_node"), std::string::npos);
}

TEST_F(RecoveryOrderTest, StoragesBehindTheAnnouncedGenerationAreStaleAndTheControlPlaneAnswers) {
  auto cs = applied_sync();
  Sources s;
  s.nearby.on_fetch = [&](const std::string&) { return v2(1); };  // still at generation 1
  s.peer.on_fetch = [&](const std::string&) { return v2(1); };
  s.bootstrap.on_fetch = [&](const std::string&) { return unknown_node(); };
  s.control.on_fetch = [&](const std::string&) { return v2(2); };
  const auto list = s.list();
  RAP_ASSERT_OK(cs->sync(list, s.control, now_, 2));
  EXPECT_EQ(cs->source(), "control");
  EXPECT_EQ(cs->generation(), 2);
  EXPECT_EQ(s.outcomes(*cs),
            (std::vector<std::string>{"nearby-storage:s1=stale", "peer-storage:s2=stale",
                                      "bootstrap-storage:s3=refused", "control=applied"}));
  EXPECT_TRUE(s.control.rejections.empty());  // stale is not a rejection
}

TEST_F(RecoveryOrderTest, NoSourceKeepsTheLastValidLocalSnapshot) {
  auto cs = applied_sync();
  Sources s;  // every source unreachable
  const auto list = s.list();
  auto r = cs->sync(list, s.control, now_, 2);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "fetch_failed");
  EXPECT_EQ(cs->source(), "control");  // the source of what is applied
  EXPECT_EQ(cs->generation(), 1);
  EXPECT_EQ(cs->applied_versions()["service_assignment_bundle"], 1);
  const auto st = cs->status_json(now_);
  EXPECT_TRUE(st["on_local_snapshot"].get<bool>()) << st;
  ASSERT_EQ(st["attempts"].size(), 4u) << st;
  for (const auto& a : st["attempts"]) EXPECT_EQ(a["outcome"], "unreachable") << st;
}

TEST_F(RecoveryOrderTest, AStorageServingOlderVersionsCannotRollBackAndIsReported) {
  auto cs = applied_sync();
  Sources s;
  s.control.on_fetch = [&](const std::string&) { return v2(); };
  {
    const auto list = s.list();
    RAP_ASSERT_OK(cs->sync(list, s.control, now_, 2));  // v2 from the control plane
  }
  // A storage replays generation 1's artifacts under a fresh generation number.
  s.nearby.on_fetch = [&](const std::string&) {
    auto r = reply(3, batch({}));
    r.body.erase("trust_bundle");
    return r;
  };
  s.control.on_fetch = [&](const std::string&) { return v2(); };
  const auto list = s.list();
  RAP_ASSERT_OK(cs->sync(list, s.control, now_, 2));
  EXPECT_EQ(cs->applied_versions()["service_assignment_bundle"], 2);
  EXPECT_EQ(cs->source(), "control");
  ASSERT_GE(s.outcomes(*cs).size(), 2u);
  EXPECT_EQ(s.outcomes(*cs)[0], "nearby-storage:s1=rejected");
  ASSERT_EQ(s.control.rejections.size(), 1u);  // NACK goes to the control plane
  EXPECT_EQ(s.control.rejections[0]["code"], config::errc::replay);
}

TEST_F(RecoveryOrderTest, StoragesNeverServeTheFirstConfiguration) {
  auto cs = make_sync();
  Sources s;
  s.nearby.on_fetch = [&](const std::string&) { return reply(1, batch({})); };
  s.control.on_fetch = [&](const std::string&) { return reply(1, batch({})); };
  const auto list = s.list();
  RAP_ASSERT_OK(cs->sync(list, s.control, now_, 1));
  EXPECT_EQ(cs->source(), "control");
  EXPECT_TRUE(s.nearby.haves.empty());
  EXPECT_EQ(s.outcomes(*cs)[0], "nearby-storage:s1=skipped");
}

TEST_F(RecoveryOrderTest, TheControlPlanesAuthorityEpochFencesOlderEpochsFromStorage) {
  auto cs = applied_sync();
  // The authority moved to epoch 2: the control plane re-signed everything.
  epoch_ = 2;
  Versions v;
  v.trust = v.revocations = v.services = v.peers = v.snapshot = 2;
  FakeTransport control;
  control.on_fetch = [&](const std::string&) {
    auto r = reply(2, batch(v));
    r.body["authority_epoch"] = 2;
    return r;
  };
  RAP_ASSERT_OK(cs->sync(control, now_));
  EXPECT_EQ(cs->authority_fence(), 2u);
  // Restarted: the fence is persisted. A storage still holding epoch-1 artifacts (newer version
  // numbers) is refused as stale_epoch.
  cs = make_sync();
  cs->load();
  EXPECT_EQ(cs->authority_fence(), 2u);
  epoch_ = 1;
  Versions v3 = v;
  v3.services = 3;
  v3.snapshot = 3;
  Sources s;
  s.nearby.on_fetch = [&](const std::string&) {
    auto r = reply(3, batch(v3));
    r.body.erase("trust_bundle");
    return r;
  };
  const auto list = s.list();
  auto r = cs->sync(list, s.control, now_, -1);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(s.outcomes(*cs)[0], "nearby-storage:s1=rejected");
  EXPECT_NE(cs->last_attempts()[0].reason.find(config::errc::stale_epoch), std::string::npos);
  EXPECT_EQ(cs->applied_versions()["service_assignment_bundle"], 2);
}

// ---- lapse policy ---------------------------------------------------------------------------

class LapsePolicyTest : public ConfigSyncTest {
 protected:
  // Applies a batch whose artifacts expire in 2 h, the service assignment under `policy`.
  std::unique_ptr<ConfigSync> applied_with(const std::string& policy) {
    sab_policy_ = policy;
    lifetime_ = 2h;
    auto cs = make_sync();
    FakeTransport t;
    t.on_fetch = [&](const std::string&) { return reply(1, batch({})); };
    RAP_ASSERT(cs->sync(t, now_).has_value());
    return cs;
  }
  // The policy a lapsed-artifact list names for the node's service assignment ("" = absent).
  static std::string sab_policy_in(const nlohmann::json& lapsed) {
    for (const auto& l : lapsed) {
      if (l["artifact"] == "service_assignment_bundle@node:n1") return l["policy"];
    }
    return "";
  }
  static constexpr ArtifactType kSab = ArtifactType::service_assignment_bundle;
};

TEST_F(LapsePolicyTest, ALapsedArtifactUnderPolicyStopStopsItsService) {
  auto cs = applied_with("stop");
  EXPECT_FALSE(cs->stopped_by_lapse(kSab, Scope::node("n1"), now_ + 1h));
  EXPECT_TRUE(cs->lapsed_json(now_ + 1h).empty());
  EXPECT_TRUE(cs->stopped_by_lapse(kSab, Scope::node("n1"), now_ + 3h));
  // Artifacts without a policy keep serving; they are reported lapsed all the same.
  EXPECT_FALSE(cs->stopped_by_lapse(ArtifactType::peer_directory, Scope::node("n1"), now_ + 3h));
  const auto lapsed = cs->lapsed_json(now_ + 3h);
  EXPECT_EQ(lapsed.size(), 5u) << lapsed;
  EXPECT_EQ(sab_policy_in(lapsed), "stop") << lapsed;
}

TEST_F(LapsePolicyTest, ALapsedArtifactUnderPolicyKeepKeepsServingAndIsReportedLapsed) {
  auto cs = applied_with("keep");
  EXPECT_FALSE(cs->stopped_by_lapse(kSab, Scope::node("n1"), now_ + 3h));
  EXPECT_EQ(sab_policy_in(cs->status_json(now_ + 3h)["lapsed"]), "keep");
  EXPECT_TRUE(cs->status_json(now_)["lapsed"].empty());
}

}  // namespace
}  // namespace rap::agent
