// StateStore on the real filesystem: key creation with mode 0600, refusal of a key readable by
// others, signed state round trip, refusal of an edited or corrupt state file; the peer and
// route caches and the pending update slot: round trip, bounds, tampering, a record moved into
// another file, field validation, clearing the slot.
#include "rap/agent/state_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "rap/testing/gtest_support.h"
#include "rap/testing/temp_dir.h"

namespace rap::agent {
namespace {

TEST(StateStore, KeyIsCreatedOwnerOnlyAndReloaded) {
  RAP_ASSIGN_OR_FAIL(auto dir, rap::testing::TempDir::create("agent-state"));
  StateStore store(default_env(), (dir.path() / "c1").string());
  RAP_ASSIGN_OR_FAIL(auto k1, store.load_or_create_key());
  struct stat st {};
  ASSERT_EQ(::stat(store.key_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  RAP_ASSIGN_OR_FAIL(auto k2, store.load_or_create_key());
  EXPECT_EQ(k1.public_key(), k2.public_key());  // the same identity after a restart

  ::chmod(store.key_path().c_str(), 0644);
  auto bad = store.load_or_create_key();
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, "key_permissions");
  EXPECT_NE(bad.error().message.find("chmod 600"), std::string::npos) << bad.error().message;
}

TEST(StateStore, SignedStateRoundTripsAndEditsAreRefused) {
  RAP_ASSIGN_OR_FAIL(auto dir, rap::testing::TempDir::create("agent-state"));
  StateStore store(default_env(), (dir.path() / "c1").string());
  RAP_ASSIGN_OR_FAIL(auto key, store.load_or_create_key());
  RAP_ASSIGN_OR_FAIL(auto none, store.load(key));
  EXPECT_FALSE(none.has_value());

  MembershipState s;
  s.cluster = "c1";
  s.control_url = "https://127.0.0.1:8443";
  s.enroll_status = "approved";
  s.node_id = "n-1";
  s.desired_version = 7;
  s.roles = nlohmann::json::array({{{"role", "relay-node"}, {"org", nullptr}}});
  RAP_ASSERT_OK(store.save(s, key));
  struct stat st {};
  ASSERT_EQ(::stat(store.state_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  RAP_ASSIGN_OR_FAIL(auto back, store.load(key));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->node_id, "n-1");
  EXPECT_EQ(back->desired_version, 7);
  EXPECT_EQ(back->roles, s.roles);

  // Someone grants the node a role by editing the file: refused.
  std::string text;
  {
    std::ifstream f(store.state_path());
    text.assign(std::istreambuf_iterator<char>(f), {});
  }
  const auto pos = text.find("relay-node");
  ASSERT_NE(pos, std::string::npos);
  text.replace(pos, 10, "entry-node");
  {
    std::ofstream f(store.state_path(), std::ios::trunc);
    f << text;
  }
  auto tampered = store.load(key);
  ASSERT_FALSE(tampered.has_value());
  EXPECT_EQ(tampered.error().code, "state_tampered");

  {
    std::ofstream f(store.state_path(), std::ios::trunc);
    f << "{not json";
  }
  auto corrupt = store.load(key);
  ASSERT_FALSE(corrupt.has_value());
  EXPECT_EQ(corrupt.error().code, "state_corrupt");

  // Another node's key does not verify this node's state either.
  RAP_ASSERT_OK(store.save(s, key));
  StateStore other(default_env(), (dir.path() / "c2").string());
  RAP_ASSIGN_OR_FAIL(auto other_key, other.load_or_create_key());
  auto foreign = store.load(other_key);
  ASSERT_FALSE(foreign.has_value());
  EXPECT_EQ(foreign.error().code, "state_tampered");
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
void spit(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
}

PeerCache sample_peers(std::size_t n) {
  PeerCache c;
  c.updated = 1700000000;
  c.peer_directory_version = 4;
  for (std::size_t i = 0; i < n; ++i) {
    PeerCacheEntry e;
    e.id = "n-" + std::to_string(i);
    e.endpoint = "10.0.0.1:" + std::to_string(7000 + i);
    e.roles = {"relay-node"};
    e.tier = "active";
    e.state = "connected";
    e.rtt_ms = 1.5;
    e.last_connected = 1700000000;
    c.peers.push_back(std::move(e));
  }
  return c;
}

struct StoreFixture {
  rap::testing::TempDir dir;
  StateStore store;
  crypto::Ed25519Key key;
};
Result<StoreFixture> open_store() {
  auto d = rap::testing::TempDir::create("agent-caches");
  if (!d) return tl::unexpected(d.error());
  const auto path = (d->path() / "c1").string();
  StateStore st(default_env(), path);
  auto k = st.load_or_create_key();
  if (!k) return tl::unexpected(k.error());
  return StoreFixture{std::move(*d), StateStore(default_env(), path), std::move(*k)};
}

TEST(StateStoreCaches, PeerAndRouteCachesRoundTripOwnerOnly) {
  RAP_ASSIGN_OR_FAIL(auto f, open_store());
  RAP_ASSIGN_OR_FAIL(auto none, f.store.load_peer_cache(f.key));
  EXPECT_FALSE(none.has_value());
  const auto pc = sample_peers(3);
  RAP_ASSERT_OK(f.store.save_peer_cache(pc, f.key));
  RAP_ASSIGN_OR_FAIL(auto back, f.store.load_peer_cache(f.key));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->peers, pc.peers);
  EXPECT_EQ(back->peer_directory_version, 4u);
  EXPECT_EQ(back->rtts().at("n-1"), 1.5);
  struct stat st {};
  ASSERT_EQ(::stat(f.store.peer_cache_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  RouteCache rc;
  rc.updated = 1700000001;
  rc.routes.push_back({"lease-1", {"n-0", "n-1", "n-2"}, "primary", "entry", 1700000001});
  RAP_ASSERT_OK(f.store.save_route_cache(rc, f.key));
  RAP_ASSIGN_OR_FAIL(auto rback, f.store.load_route_cache(f.key));
  ASSERT_TRUE(rback.has_value());
  EXPECT_EQ(rback->routes, rc.routes);
  const auto status = f.store.caches_status(f.key);
  EXPECT_EQ(status["peer_cache"]["peers"], 3) << status;
  EXPECT_EQ(status["route_cache"]["routes"], 1) << status;
  EXPECT_FALSE(status.contains("pending_update")) << status;
}

TEST(StateStoreCaches, CachesAreBounded) {
  RAP_ASSIGN_OR_FAIL(auto f, open_store());
  auto w = f.store.save_peer_cache(sample_peers(kMaxCachedPeers + 1), f.key);
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code, "state_corrupt");
  RouteCache rc;
  for (std::size_t i = 0; i <= kMaxCachedRoutes; ++i) {
    rc.routes.push_back({"lease-" + std::to_string(i), {"a", "b"}, "primary", "entry", 1});
  }
  EXPECT_FALSE(f.store.save_route_cache(rc, f.key).has_value());
  EXPECT_FALSE(std::filesystem::exists(f.store.route_cache_path()));
  // A file larger than the bound is refused before it is parsed.
  spit(f.store.peer_cache_path(), std::string(kMaxStateBytes + 1, ' '));
  auto big = f.store.load_peer_cache(f.key);
  ASSERT_FALSE(big.has_value());
  EXPECT_EQ(big.error().code, "state_too_large");
}

TEST(StateStoreCaches, AnEditedCacheIsRefusedNamingTheFile) {
  RAP_ASSIGN_OR_FAIL(auto f, open_store());
  RAP_ASSERT_OK(f.store.save_peer_cache(sample_peers(2), f.key));
  std::string text = slurp(f.store.peer_cache_path());
  const auto pos = text.find("10.0.0.1:7001");
  ASSERT_NE(pos, std::string::npos);
  text.replace(pos, 13, "203.0.113.9:1");  // an attacker redirects a peer
  spit(f.store.peer_cache_path(), text);
  auto r = f.store.load_peer_cache(f.key);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "state_tampered");
  EXPECT_NE(r.error().message.find(f.store.peer_cache_path()), std::string::npos)
      << r.error().message;
  EXPECT_NE(f.store.caches_status(f.key)["peer_cache"].value("error", "").find("modified"),
            std::string::npos);
}

TEST(StateStoreCaches, ARecordMovedIntoAnotherFileIsRefused) {
  RAP_ASSIGN_OR_FAIL(auto f, open_store());
  MembershipState s;
  s.cluster = "c1";
  RAP_ASSERT_OK(f.store.save(s, f.key));
  // The signed state file copied over the route cache: signed by this node, but not a route
  // cache.
  spit(f.store.route_cache_path(), slurp(f.store.state_path()));
  auto r = f.store.load_route_cache(f.key);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "state_corrupt");
}

TEST(StateStoreCaches, PendingUpdateSlotIsTypedAndCanBeCleared) {
  RAP_ASSIGN_OR_FAIL(auto f, open_store());
  PendingUpdate u;
  u.target_version = "0.2.0";
  u.artifact_hash = std::string(64, 'a');
  u.staged_path = f.store.dir() + "/updates/rap-node-agent-0.2.0";
  u.state = "staged";
  u.updated_at = 1700000002;
  RAP_ASSERT_OK(f.store.save_pending_update(u, f.key));
  RAP_ASSIGN_OR_FAIL(auto back, f.store.load_pending_update(f.key));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->to_json(), u.to_json());
  EXPECT_EQ(f.store.caches_status(f.key)["pending_update"]["state"], "staged");

  RAP_ASSERT_OK(f.store.clear_pending_update(f.key));
  RAP_ASSIGN_OR_FAIL(auto cleared, f.store.load_pending_update(f.key));
  EXPECT_FALSE(cleared.has_value());
}

TEST(StateStoreCaches, PendingUpdateFieldsAreValidated) {
  RAP_ASSIGN_OR_FAIL(auto f, open_store());
  PendingUpdate u;
  u.target_version = "0.2.0";
  u.artifact_hash = std::string(64, 'b');
  u.staged_path = "/var/lib/rap-node-agent/updates/x";
  u.state = "staged";
  auto bad = u;
  bad.artifact_hash = "abc";
  EXPECT_FALSE(f.store.save_pending_update(bad, f.key).has_value());
  bad = u;
  bad.staged_path = "relative/path";
  EXPECT_FALSE(f.store.save_pending_update(bad, f.key).has_value());
  bad = u;
  bad.staged_path = "/var/lib/../../etc/passwd";
  EXPECT_FALSE(f.store.save_pending_update(bad, f.key).has_value());
  bad = u;
  bad.state = "installed-somehow";
  auto w = f.store.save_pending_update(bad, f.key);
  ASSERT_FALSE(w.has_value());
  EXPECT_NE(w.error().message.find("unknown state"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(f.store.pending_update_path()));
}

}  // namespace
}  // namespace rap::agent
