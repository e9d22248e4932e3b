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
  static Json services(std::uint64_t v) {
    return Json{{"services", Json::array({{{"id", "svc-" + std::to_string(v)}}})}};
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
    d.epoch = 1;
    d.issued_at = now_ - 1h;
    d.expires_at = now_ + 24h;
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
};

TEST_F(ConfigSyncTest, FirstFetchAppliesAndPersists) {
  auto cs = make_sync();
  cs->load();
  EXPECT_FALSE(cs->has_state());
  FakeTransport t;
  t.on_fetch = [&](const std::string&) { return reply(7, batch({})); };
  RAP_ASSIGN_OR_FAIL(bool changed, cs->sync(t, now_));
  EXPECT_TRUE(changed);
  ASSERT_EQ(t.haves.size(), 1u);
  EXPECT_EQ(t.haves[0], "");  // nothing applied yet: full artifacts
  EXPECT_TRUE(t.rejections.empty());
  EXPECT_EQ(cs->applied_versions(), (nlohmann::json{{"cluster_snapshot", 1},
                                                    {"peer_directory", 1},
                                                    {"revocation_list", 1},
                                                    {"service_assignment_bundle", 1},
                                                    {"trust_bundle", 1}}));
  EXPECT_EQ(cs->generation(), 7);
  const auto st = cs->status_json();
  EXPECT_EQ(st["signer_key_ids"], nlohmann::json::array({signer_.key_id()})) << st;
  EXPECT_EQ(st["authority_epoch"], 1) << st;
  EXPECT_EQ(st["generation"], 7) << st;
  EXPECT_EQ(st["last_fetch"], config::to_unix_seconds(now_)) << st;
  EXPECT_TRUE(st["last_rejection"].is_null()) << st;

  struct stat sb {};
  ASSERT_EQ(::stat(cs->path().c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  const auto offline = ConfigSync::read_status(default_env(), dir(), node_key_);
  EXPECT_EQ(offline["applied_versions"]["cluster_snapshot"], 1) << offline;
  EXPECT_EQ(offline["signer_key_ids"], nlohmann::json::array({signer_.key_id()})) << offline;

  // The same batch again is an idempotent re-delivery; the agent now says what it has.
  RAP_ASSIGN_OR_FAIL(bool again, cs->sync(t, now_));
  EXPECT_FALSE(again);
  EXPECT_EQ(t.haves.back(),
            "cluster_snapshot:1,peer_directory:1,revocation_list:1,service_assignment_bundle:1,"
            "trust_bundle:1");
}

TEST_F(ConfigSyncTest, RestartLoadsPersistedStateAndIgnoresThePlainTrustBundle) {
  {
    auto cs = make_sync();
    FakeTransport t;
    t.on_fetch = [&](const std::string&) { return reply(3, batch({})); };
    RAP_ASSERT_OK(cs->sync(t, now_));
  }
  auto cs = make_sync();
  cs->load();
  ASSERT_TRUE(cs->has_state());
  EXPECT_EQ(cs->generation(), 3);
  EXPECT_EQ(cs->applied_versions()["peer_directory"], 1);
  EXPECT_EQ(cs->status_json()["signer_key_ids"], nlohmann::json::array({signer_.key_id()}));

  // A response whose plain trust bundle names another key changes nothing: trust now comes only
  // from signed trust_bundle artifacts, and artifacts of that other key are refused.
  const config::Signer rogue("cl-1", new_key());
  Versions v;
  v.peers = 2;
  v.snapshot = 2;
  FakeTransport t;
  t.on_fetch = [&](const std::string&) { return reply(4, batch(v, &rogue), trust_payload(rogue)); };
  auto r = cs->sync(t, now_);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, config::errc::unknown_signer);
  EXPECT_EQ(cs->applied_versions()["peer_directory"], 1);
  EXPECT_EQ(cs->generation(), 3);

  // The legitimate signer's next version applies on top of the loaded state.
  t.on_fetch = [&](const std::string&) { return reply(4, batch(v), trust_payload(rogue)); };
  RAP_ASSIGN_OR_FAIL(bool changed, cs->sync(t, now_));
  EXPECT_TRUE(changed);
  EXPECT_EQ(cs->applied_versions()["peer_directory"], 2);
  EXPECT_EQ(cs->generation(), 4);
}

TEST_F(ConfigSyncTest, TamperedOrCorruptPersistedStateIsRefusedAndRefetched) {
  {
    auto cs = make_sync();
    FakeTransport t;
    t.on_fetch = [&](const std::string&) { return reply(1, batch({})); };
    RAP_ASSERT_OK(cs->sync(t, now_));
  }
  const std::string file = make_sync()->path();
  const std::string original = read(file);
  // An edited version number inside the signed state.
  std::string edited = original;
  const auto pos = edited.find(R"(\"version\":1)");
  ASSERT_NE(pos, std::string::npos) << original.substr(0, 300);
  edited.replace(pos, 13, R"(\"version\":9)");
  write(file, edited);
  {
    auto cs = make_sync();
    cs->load();  // refused (logged), never crashes
    EXPECT_FALSE(cs->has_state());
    const auto offline = ConfigSync::read_status(default_env(), dir(), node_key_);
    EXPECT_NE(offline.value("error", std::string()).find("state_tampered"), std::string::npos)
        << offline;
    FakeTransport t;
    t.on_fetch = [&](const std::string&) { return reply(2, batch({})); };
    RAP_ASSIGN_OR_FAIL(bool changed, cs->sync(t, now_));
    EXPECT_TRUE(changed);
    EXPECT_EQ(t.haves, std::vector<std::string>{""});  // a fresh full fetch
    EXPECT_EQ(cs->generation(), 2);
  }
  // Signed by another node key (e.g. copied from another host): refused as well.
  {
    const auto other_key = new_key();
    ConfigSync other(default_env(), dir(), "main", "cl-1", "n1", other_key);
    other.load();
    EXPECT_FALSE(other.has_state());
  }
  // Garbage, and a file larger than the bound.
  for (const std::string& junk :
       {std::string("{not json"), std::string(kMaxConfigStateBytes + 1, ' ')}) {
    write(file, junk);
    auto cs = make_sync();
    cs->load();
    EXPECT_FALSE(cs->has_state());
  }
  // A valid file of another node (re-enrolled identity) is not used either.
  write(file, original);
  ConfigSync foreign(default_env(), dir(), "main", "cl-1", "n9", node_key_);
  foreign.load();
  EXPECT_FALSE(foreign.has_state());
  auto cs = make_sync();
  cs->load();
  EXPECT_TRUE(cs->has_state());
}

TEST_F(ConfigSyncTest, TamperedArtifactAppliesNothingAndIsReported) {
  auto cs = make_sync();
  FakeTransport t;
  t.on_fetch = [&](const std::string&) { return reply(1, batch({})); };
  RAP_ASSERT_OK(cs->sync(t, now_));
  const std::string persisted = read(cs->path());

  // Version 2 with the peer directory's signature flipped: the whole batch is refused.
  Versions v;
  v.peers = 2;
  v.services = 2;
  v.snapshot = 2;
  auto arts = batch(v);
  arts[3].signature[0] ^= 1;
  const std::string bad_id = arts[3].id;
  t.on_fetch = [&](const std::string&) { return reply(2, arts); };
  auto r = cs->sync(t, now_ + 1s);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, config::errc::bad_signature);
  EXPECT_EQ(cs->applied_versions()["peer_directory"], 1);
  EXPECT_EQ(cs->applied_versions()["service_assignment_bundle"], 1);  // nothing of the batch
  EXPECT_EQ(cs->generation(), 1);
  EXPECT_EQ(read(cs->path()), persisted);
  ASSERT_EQ(t.rejections.size(), 1u);
  EXPECT_EQ(t.rejections[0]["code"], "bad_signature");
  EXPECT_EQ(t.rejections[0]["artifact_id"], bad_id);
  EXPECT_LE(t.rejections[0]["message"].get<std::string>().size(), kMaxRejectionMessageBytes);
  auto last = cs->last_rejection();
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->code, "bad_signature");
  EXPECT_EQ(last->artifact_id, bad_id);
  EXPECT_EQ(last->at, config::to_unix_seconds(now_ + 1s));
  EXPECT_EQ(cs->status_json()["last_rejection"]["code"], "bad_signature");

  // An artifact for another cluster (the cluster is checked before the signature).
  auto foreign = batch(v);
  foreign[3].header.cluster = "cl-2";
  t.on_fetch = [&](const std::string&) { return reply(2, foreign); };
  r = cs->sync(t, now_);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, config::errc::wrong_cluster);
  EXPECT_EQ(cs->applied_versions()["peer_directory"], 1);
  ASSERT_EQ(t.rejections.size(), 2u);
  EXPECT_EQ(t.rejections[1]["code"], "wrong_cluster");

  // A response without a usable artifacts list is reported as malformed.
  t.on_fetch = [&](const std::string&) {
    return HttpReply{200, nlohmann::json{{"config_generation", 2}, {"artifacts", "x"}}};
  };
  r = cs->sync(t, now_);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, config::errc::malformed);
  EXPECT_EQ(t.rejections.back()["code"], "malformed");

  // Transport failures and HTTP errors are not rejections; the applied state stays.
  t.on_fetch = nullptr;
  r = cs->sync(t, now_);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "fetch_failed");
  t.on_fetch = [&](const std::string&) { return HttpReply{404, nlohmann::json()}; };
  r = cs->sync(t, now_);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "not_supported");
  EXPECT_EQ(t.rejections.size(), 3u);
  EXPECT_EQ(cs->applied_versions()["peer_directory"], 1);
}

TEST_F(ConfigSyncTest, WrongClusterOnFirstFetchAppliesNothing) {
  auto cs = make_sync();
  const config::Signer other("cl-2", new_key());
  FakeTransport t;
  t.on_fetch = [&](const std::string&) {
    return reply(1, batch({}, &other), trust_payload(other));
  };
  auto r = cs->sync(t, now_);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, config::errc::wrong_cluster);
  EXPECT_FALSE(cs->has_state());
  EXPECT_FALSE(std::filesystem::exists(cs->path()));
  ASSERT_EQ(t.rejections.size(), 1u);
  EXPECT_EQ(t.rejections[0]["code"], "wrong_cluster");
  EXPECT_FALSE(t.rejections[0]["artifact_id"].get<std::string>().empty());
}

TEST_F(ConfigSyncTest, IncrementsApplyAndAGapFetchesFullArtifacts) {
  auto cs = make_sync();
  FakeTransport t;
  t.on_fetch = [&](const std::string&) { return reply(1, batch({})); };
  RAP_ASSERT_OK(cs->sync(t, now_));

  // One version behind: the server sends an increment for the peer directory.
  auto inc = [&](std::uint64_t base) {
    auto a = signer_.sign_increment(ArtifactType::peer_directory, Scope::node("n1"), base,
                                    peers(base), peers(base + 1), 1, now_ - 1h, now_ + 24h);
    RAP_ASSERT(a.has_value());
    return std::move(*a);
  };
  auto snapshot_for = [&](const Versions& v) { return batch(v).back(); };
  Versions v2;
  v2.peers = 2;
  v2.snapshot = 2;
  t.on_fetch = [&](const std::string& have) {
    EXPECT_NE(have.find("peer_directory:1"), std::string::npos) << have;
    return reply(2, {inc(1), snapshot_for(v2)});
  };
  RAP_ASSIGN_OR_FAIL(bool changed, cs->sync(t, now_));
  EXPECT_TRUE(changed);
  EXPECT_EQ(cs->applied_versions()["peer_directory"], 2);

  // Two versions behind but the server answers with an increment 3 -> 4: a gap. The agent
  // fetches once more without `have` and applies the full artifacts.
  Versions v4;
  v4.peers = 4;
  v4.snapshot = 3;
  t.haves.clear();
  t.on_fetch = [&](const std::string& have) {
    if (!have.empty()) return reply(4, {inc(3)});
    return reply(4, batch(v4));
  };
  RAP_ASSIGN_OR_FAIL(changed, cs->sync(t, now_));
  EXPECT_TRUE(changed);
  ASSERT_EQ(t.haves.size(), 2u);
  EXPECT_FALSE(t.haves[0].empty());
  EXPECT_EQ(t.haves[1], "");
  EXPECT_TRUE(t.rejections.empty());  // a gap is protocol, not a rejection
  EXPECT_EQ(cs->applied_versions()["peer_directory"], 4);
  EXPECT_EQ(cs->generation(), 4);

  // If the full refetch is refused too, that is reported (and there is no third fetch).
  t.haves.clear();
  t.on_fetch = [&](const std::string&) { return reply(5, {inc(5)}); };
  auto r = cs->sync(t, now_);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, config::errc::gap_needs_full_refresh);
  EXPECT_EQ(t.haves.size(), 2u);
  ASSERT_EQ(t.rejections.size(), 1u);
  EXPECT_EQ(t.rejections[0]["code"], "gap_needs_full_refresh");
  EXPECT_EQ(cs->applied_versions()["peer_directory"], 4);
}

}  // namespace
}  // namespace rap::agent
