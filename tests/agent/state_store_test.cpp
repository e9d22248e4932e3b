// StateStore on the real filesystem: key creation with mode 0600, refusal of a key readable by
// others, signed state round trip, refusal of an edited or corrupt state file.
#include "rap/agent/state_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

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

}  // namespace
}  // namespace rap::agent
