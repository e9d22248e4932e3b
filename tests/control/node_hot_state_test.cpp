// NodeHotState (src/control/src/node_hot_state.h): the node hot path's caches. Freshness by TTL,
// invalidation per node and globally, a read racing with a change is not stored, the heartbeat
// write throttle, the presence batch and the entries' access sessions.
#include "node_hot_state.h"

#include <gtest/gtest.h>

using rap::control::detail::NodeAuthRow;
using rap::control::detail::NodeHotState;
using namespace std::chrono_literals;

namespace {

NodeAuthRow row(const std::string& node, std::int64_t version = 1) {
  NodeAuthRow r;
  r.ca_pem = "CA";
  r.node_id = node;
  r.cluster_id = "c1";
  r.node_status = "active";
  r.public_key = "pk";
  r.cert_not_after = 4000000000;
  r.desired_state_version = version;
  return r;
}

TEST(NodeHotState, AuthRowsExpireAndAreInvalidated) {
  NodeHotState hot(2s);
  const auto t0 = NodeHotState::Steady::now();
  hot.store_auth(7, row("n1"), t0);
  hot.store_auth(8, row("n2"), t0);
  ASSERT_TRUE(hot.find_auth(7, t0 + 1s).has_value());
  EXPECT_FALSE(hot.find_auth(7, t0 + 2s).has_value());  // TTL
  EXPECT_FALSE(hot.find_auth(9, t0).has_value());       // unknown serial

  hot.invalidate_node("n1", t0 + 100ms);
  EXPECT_FALSE(hot.find_auth(7, t0 + 200ms).has_value());
  EXPECT_TRUE(hot.find_auth(8, t0 + 200ms).has_value());  // other nodes stay
  // A read that started before the change must not be stored over it.
  hot.store_auth(7, row("n1"), t0 + 50ms);
  EXPECT_FALSE(hot.find_auth(7, t0 + 200ms).has_value());
  // A read after the change is.
  hot.store_auth(7, row("n1", 2), t0 + 150ms);
  ASSERT_TRUE(hot.find_auth(7, t0 + 200ms).has_value());
  EXPECT_EQ(hot.find_auth(7, t0 + 200ms)->desired_state_version, 2);

  hot.invalidate_all(t0 + 300ms);
  EXPECT_FALSE(hot.find_auth(7, t0 + 400ms).has_value());
  EXPECT_FALSE(hot.find_auth(8, t0 + 400ms).has_value());
  hot.store_auth(8, row("n2"), t0 + 250ms);  // older than invalidate_all
  EXPECT_FALSE(hot.find_auth(8, t0 + 400ms).has_value());
  const auto c = hot.counters();
  EXPECT_EQ(c.invalidations, 2u);
  EXPECT_GT(c.auth_hits, 0u);
  EXPECT_GT(c.auth_misses, 0u);
}

TEST(NodeHotState, ZeroTtlCachesNothing) {
  NodeHotState hot(0ms);
  const auto t0 = NodeHotState::Steady::now();
  hot.store_auth(7, row("n1"), t0);
  EXPECT_FALSE(hot.find_auth(7, t0).has_value());
}

TEST(NodeHotState, WriteThrottle) {
  NodeHotState hot;
  const auto t0 = NodeHotState::Steady::now();
  EXPECT_FALSE(hot.write_is_fresh("n1", "{}", 10s, t0));  // never written
  hot.record_write("n1", "{}", t0);
  EXPECT_TRUE(hot.write_is_fresh("n1", "{}", 10s, t0 + 4s));           // at least half the interval
  EXPECT_FALSE(hot.write_is_fresh("n1", "{}", 10s, t0 + 10s));         // interval over
  EXPECT_FALSE(hot.write_is_fresh("n1", R"({"x":1})", 10s, t0 + 1s));  // changed state
  EXPECT_FALSE(hot.write_is_fresh("n1", "{}", 0s, t0 + 1s));           // throttle off
}

TEST(NodeHotState, PresenceBatch) {
  NodeHotState hot;
  hot.note_seen("c1", "n1", 1000);
  hot.note_seen("c1", "n1", 2000);  // the latest wins
  hot.note_seen("c2", "n2", 1500);
  auto seen = hot.take_seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ((seen[{"c1", "n1"}]), 2000);
  EXPECT_TRUE(hot.take_seen().empty());
}

TEST(NodeHotState, AccessSessionsByOrganizationAndClearedWhenTheyEnd) {
  NodeHotState hot;
  using nlohmann::json;
  const json a{{"grant", "g1"}, {"org", "o1"}}, b{{"grant", "g2"}, {"org", "o2"}};
  hot.note_access("entry", json::array({a, b}));
  auto first = hot.take_access();
  ASSERT_EQ(first["entry"].size(), 2u);
  EXPECT_EQ(json::parse(first["entry"]["o1"]), json::array({a}));  // one org's sessions only
  EXPECT_EQ(json::parse(first["entry"]["o2"]), json::array({b}));
  EXPECT_TRUE(hot.take_access().empty());  // nothing new reported
  hot.note_access("entry", json::array({a}));
  auto second = hot.take_access();
  EXPECT_EQ(json::parse(second["entry"]["o1"]), json::array({a}));
  EXPECT_EQ(second["entry"]["o2"], "[]");  // o2's session ended: cleared
  hot.note_access("entry", json::array());
  auto third = hot.take_access();
  ASSERT_EQ(third["entry"].size(), 1u);
  EXPECT_EQ(third["entry"]["o1"], "[]");
  hot.note_access("entry", json::array());
  EXPECT_TRUE(hot.take_access()["entry"].empty());  // nothing left to clear
}

}  // namespace
