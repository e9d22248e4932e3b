// The config-storage role's pieces: the storage cache (bundle load, limits, per-node lookup with
// "have"), the storage_directory parser, the recovery order over storages (plan_recovery) and
// the mTLS storage server with its client (a cluster node gets its
// artifacts; a foreign-cluster client certificate is refused; a server naming another node id is
// rejected by the client).
#include "rap/agent/config_storage.h"

#include <gtest/gtest.h>

#include <thread>

#include "rap/config/signer.h"
#include "rap/crypto/certs.h"
#include "rap/testing/gtest_support.h"

namespace rap::agent {
namespace {

using namespace std::chrono_literals;
using config::ArtifactType;
using config::Scope;
using nlohmann::json;

crypto::Ed25519Key new_key() {
  auto k = crypto::Ed25519Key::generate();
  RAP_ASSERT(k.has_value());
  return std::move(*k);
}

std::string wire(const config::Signer& signer, const std::string& node, std::uint64_t version) {
  config::ArtifactDraft d;
  d.type = ArtifactType::service_assignment_bundle;
  d.scope = Scope::node(node);
  d.version = version;
  d.epoch = 1;
  const auto now = std::chrono::system_clock::now();
  d.issued_at = now - 1h;
  d.expires_at = now + 24h;
  d.payload = json{{"services", json::array({{{"id", "svc-" + std::to_string(version)}}})}};
  auto a = signer.sign(std::move(d));
  RAP_ASSERT(a.has_value());
  auto w = config::encode_artifact(*a);
  RAP_ASSERT(w.has_value());
  return *w;
}

json bundle(const config::Signer& signer, std::int64_t generation) {
  return json{{"config_generation", generation},
              {"nodes",
               {{"n1", json::array({wire(signer, "n1", 3)})},
                {"n2", json::array({wire(signer, "n2", 1)})}}}};
}

TEST(StorageCache, LoadsAndAnswersPerNode) {
  const config::Signer signer("cl-1", new_key());
  StorageCache cache;
  EXPECT_FALSE(cache.generation().has_value());
  EXPECT_EQ(cache.lookup("n1", "").status, 404);
  RAP_ASSERT_OK(cache.load_bundle(bundle(signer, 7)));
  EXPECT_EQ(cache.generation(), 7);
  EXPECT_EQ(cache.node_count(), 2u);
  auto r = cache.lookup("n1", "");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body["config_generation"], 7);
  ASSERT_EQ(r.body["artifacts"].size(), 1u);
  EXPECT_FALSE(r.body.contains("trust_bundle"));
  r = cache.lookup("n1", "service_assignment_bundle:3,peer_directory:1");
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(r.body["artifacts"].empty());
  r = cache.lookup("n1", "service_assignment_bundle:2");
  EXPECT_EQ(r.body["artifacts"].size(), 1u);
  EXPECT_EQ(cache.lookup("n9", "").status, 404);
  EXPECT_EQ(cache.lookup("n9", "").error_code(), "unknown_node");
  EXPECT_EQ(cache.lookup("n1", "bogus").status, 400);
  EXPECT_EQ(cache.lookup("n1", "x:1:2").status, 400);
  EXPECT_EQ(cache.lookup("n1", "Type:1").status, 400);
}

TEST(StorageCache, RefusesMalformedBundlesAndKeepsTheOldOne) {
  const config::Signer signer("cl-1", new_key());
  StorageCache cache;
  RAP_ASSERT_OK(cache.load_bundle(bundle(signer, 1)));
  EXPECT_FALSE(cache.load_bundle(json::array()).has_value());
  EXPECT_FALSE(cache.load_bundle(json{{"config_generation", -1}, {"nodes", json::object()}}));
  EXPECT_FALSE(cache.load_bundle(json{{"config_generation", 2}, {"nodes", json::array()}}));
  EXPECT_FALSE(cache.load_bundle(
      json{{"config_generation", 2}, {"nodes", {{"n1", json::array({"not an artifact"})}}}}));
  EXPECT_FALSE(
      cache.load_bundle(json{{"config_generation", 2}, {"nodes", {{"bad/id", json::array()}}}}));
  // Over the byte bound.
  const std::string big(kMaxStorageCacheBytes + 1, 'x');
  auto e =
      cache.load_bundle(json{{"config_generation", 2}, {"nodes", {{"n1", json::array({big})}}}});
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code, "too_large");
  EXPECT_EQ(cache.generation(), 1);
  EXPECT_EQ(cache.lookup("n1", "").status, 200);
}

TEST(StorageDirectory, ParsesAndSkipsSelf) {
  const json p{{"storages", json::array({{{"id", "s1"}, {"endpoint", "10.0.0.1:7000"}},
                                         {{"id", "n1"}, {"endpoint", "10.0.0.2:7000"}},
                                         {{"id", "s2"}},
                                         {{"id", "s3"}, {"endpoint", "10.0.0.3:7000"}}})}};
  const auto s = parse_storage_directory(p, "n1");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].id, "s1");
  EXPECT_EQ(s[1].endpoint, "10.0.0.3:7000");
  EXPECT_TRUE(parse_storage_directory(json::array(), "n1").empty());
  EXPECT_TRUE(parse_storage_directory(json{{"storages", json::array()}}, "n1").empty());
}

TEST(PlanRecovery, NearestMeasuredFirstThenLivePeersThenTheRestOfTheDirectory) {
  const std::vector<StorageEndpoint> dir = {
      {"a", "10.0.0.1:1"}, {"b", "10.0.0.2:1"}, {"c", "10.0.0.3:1"}, {"d", "10.0.0.4:1"}};
  // c is nearest (measured), b is a live fabric peer, a and d are only listed.
  const auto plan = plan_recovery(dir, {{"c", 3.0}, {"b", 9.0}}, {"b"});
  std::vector<std::string> got;
  for (const auto& p : plan) got.push_back(std::string(to_string(p.kind)) + ":" + p.storage.id);
  EXPECT_EQ(got, (std::vector<std::string>{"nearby-storage:c", "peer-storage:b",
                                           "bootstrap-storage:a", "bootstrap-storage:d"}));
  EXPECT_EQ(plan[0].storage.endpoint, "10.0.0.3:1");
}

TEST(PlanRecovery, NothingMeasuredMeansNoNearbyStorage) {
  const std::vector<StorageEndpoint> dir = {{"a", "10.0.0.1:1"}, {"b", "10.0.0.2:1"}};
  const auto plan = plan_recovery(dir, {}, {});
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].kind, SourceKind::bootstrap_storage);
  EXPECT_EQ(plan[0].storage.id, "a");
  EXPECT_TRUE(plan_recovery({}, {{"x", 1.0}}, {"x"}).empty());
}

struct Pki {
  crypto::Ed25519Key ca_key = new_key();
  std::string ca_pem;
  std::string cluster;
  explicit Pki(std::string cluster_id) : cluster(std::move(cluster_id)) {
    const auto now = std::chrono::system_clock::now();
    auto ca = crypto::make_ca_certificate(ca_key, cluster, {now - 1h, now + 24h});
    RAP_ASSERT(ca.has_value());
    ca_pem = *ca;
  }
  crypto::NodeCredentials node(const std::string& id, std::uint64_t serial) const {
    const auto now = std::chrono::system_clock::now();
    auto k = new_key();
    auto cert = crypto::issue_node_certificate(ca_key, ca_pem, k.public_key(), cluster, id, serial,
                                               {now - 1h, now + 24h});
    RAP_ASSERT(cert.has_value());
    return crypto::NodeCredentials{ca_pem, *cert, k.private_pem()};
  }
};

TEST(ConfigStorageServer, ServesClusterNodesOverMutualTls) {
  const Pki pki("cl-1");
  const config::Signer signer("cl-1", new_key());
  auto cache = std::make_shared<StorageCache>();
  RAP_ASSERT_OK(cache->load_bundle(bundle(signer, 9)));
  auto server = ConfigStorageServer::start("127.0.0.1:0", pki.node("s1", 1), "cl-1", cache,
                                           std::make_shared<crypto::RevocationList>());
  RAP_ASSERT_OK(server);
  const std::string ep = (*server)->endpoint();
  EXPECT_EQ(ep.rfind("127.0.0.1:", 0), 0u);
  EXPECT_NE(ep, "127.0.0.1:0");

  StorageConfigTransport n1(ep, pki.node("n1", 2), "cl-1", "s1", 5s);
  auto r = n1.fetch("");
  RAP_ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body["config_generation"], 9);
  EXPECT_EQ(r->body["artifacts"].size(), 1u);
  r = n1.fetch("service_assignment_bundle:3");
  RAP_ASSERT_OK(r);
  EXPECT_TRUE(r->body["artifacts"].empty());
  r = n1.fetch("nonsense");
  RAP_ASSERT_OK(r);
  EXPECT_EQ(r->status, 400);

  StorageConfigTransport n7(ep, pki.node("n7", 3), "cl-1", "s1", 5s);
  r = n7.fetch("");
  RAP_ASSERT_OK(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->error_code(), "unknown_node");

  // The server is not the storage node the directory names.
  StorageConfigTransport wrong(ep, pki.node("n1", 4), "cl-1", "s2", 5s);
  r = wrong.fetch("");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "wrong_peer");

  // A client of another cluster (its own CA) is refused in the handshake.
  const Pki other("cl-2");
  auto foreign_creds = other.node("n1", 5);
  foreign_creds.ca_pem = pki.ca_pem;  // it even trusts our CA for the server
  StorageConfigTransport foreign(ep, foreign_creds, "cl-1", "s1", 5s);
  r = foreign.fetch("");
  ASSERT_FALSE(r.has_value()) << r->status;
  EXPECT_GE((*server)->requests(), 4u);
  (*server)->stop();
  (*server)->stop();

  // Stopped: connecting fails.
  r = n1.fetch("");
  EXPECT_FALSE(r.has_value());
}

// Storage server fixture: one server for s1 over a cache holding n1's artifacts.
struct StorageServerFixture {
  Pki pki{"cl-1"};
  config::Signer signer{"cl-1", new_key()};
  std::shared_ptr<StorageCache> cache = std::make_shared<StorageCache>();
  std::shared_ptr<crypto::RevocationList> revocations = std::make_shared<crypto::RevocationList>();
  std::unique_ptr<ConfigStorageServer> server;
  Result<void> start() {
    if (auto l = cache->load_bundle(bundle(signer, 9)); !l) return l;
    auto s =
        ConfigStorageServer::start("127.0.0.1:0", pki.node("s1", 1), "cl-1", cache, revocations);
    if (!s) return tl::unexpected(s.error());
    server = std::move(*s);
    return {};
  }
};

TEST(ConfigStorageServer, RefusesClientsOnTheAppliedRevocationList) {
  StorageServerFixture f;
  RAP_ASSERT_OK(f.start());
  const auto ep = f.server->endpoint();
  StorageConfigTransport n1(ep, f.pki.node("n1", 2), "cl-1", "s1", 5s);
  auto r = n1.fetch("");
  RAP_ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  // The revocation list applied after the server started refuses the node from now on...
  f.revocations->revoke_node("n1");
  r = n1.fetch("");
  EXPECT_TRUE(!r.has_value() || r->status == 403) << r->status;
  // ...and a revoked certificate serial of a node that is not revoked itself.
  StorageConfigTransport n1b(ep, f.pki.node("n1b", 7), "cl-1", "s1", 5s);
  f.revocations->revoke_serial(7);
  r = n1b.fetch("");
  EXPECT_TRUE(!r.has_value() || r->status == 403) << r->status;
  // The server counts a refusal when its side of the handshake completes, which may be just
  // after the client gave up.
  for (int i = 0; i < 200 && f.server->refused() < 2; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_GE(f.server->refused(), 2u);
}

TEST(ConfigStorageServer, ARenewedCertificateIsServedWithoutRestart) {
  StorageServerFixture f;
  RAP_ASSERT_OK(f.start());
  const auto ep = f.server->endpoint();
  // The renewed certificate here names another node id, so the client can tell which is served.
  RAP_ASSERT_OK(f.server->reload(f.pki.node("s9", 11)));
  StorageConfigTransport old_name(ep, f.pki.node("n1", 2), "cl-1", "s1", 5s);
  auto r = old_name.fetch("");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "wrong_peer");
  StorageConfigTransport new_name(ep, f.pki.node("n1", 3), "cl-1", "s9", 5s);
  r = new_name.fetch("");
  RAP_ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(f.server->endpoint(), ep);
  // Credentials that do not load leave the current ones in use.
  crypto::NodeCredentials bad{f.pki.ca_pem, "not a certificate", "not a key"};
  EXPECT_FALSE(f.server->reload(bad).has_value());
  r = new_name.fetch("");
  RAP_ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
}

}  // namespace
}  // namespace rap::agent
