// Make-before-break of the peer directory (PeerTransition): added peers come at once, removed
// ones stay until every added peer has a session or the grace period ends; a pure removal and a
// revoked peer take effect at once.
#include "rap/agent/peer_transition.h"

#include <gtest/gtest.h>

namespace rap::agent {
namespace {

using namespace std::chrono_literals;
using Ids = std::set<std::string>;

TEST(PeerTransition, RemovedPeersStayUntilTheAddedOnesAreLive) {
  PeerTransition t(30s);
  const TimePoint t0{};
  EXPECT_TRUE(t.update({"a", "b"}, {"a", "b"}, {}, t0).empty());
  // b is replaced by c: b is kept while c has no session.
  EXPECT_EQ(t.update({"a", "c"}, {"a", "b"}, {}, t0 + 1s), Ids{"b"});
  EXPECT_EQ(t.pending(), Ids{"c"});
  EXPECT_EQ(t.update({"a", "c"}, {"a", "b"}, {}, t0 + 2s), Ids{"b"});
  // c is up: b goes.
  EXPECT_TRUE(t.update({"a", "c"}, {"a", "b", "c"}, {}, t0 + 3s).empty());
  EXPECT_TRUE(t.pending().empty());
  EXPECT_TRUE(t.retiring().empty());
}

TEST(PeerTransition, RemovedPeersGoAfterTheGracePeriodWhenTheNewOnesNeverComeUp) {
  PeerTransition t(30s);
  const TimePoint t0{};
  t.update({"a", "b"}, {"a", "b"}, {}, t0);
  EXPECT_EQ(t.update({"c"}, {"a", "b"}, {}, t0), (Ids{"a", "b"}));
  EXPECT_EQ(t.update({"c"}, {"a", "b"}, {}, t0 + 29s), (Ids{"a", "b"}));
  EXPECT_TRUE(t.update({"c"}, {"a", "b"}, {}, t0 + 30s).empty());
}

TEST(PeerTransition, APureRemovalTakesEffectAtOnce) {
  PeerTransition t(30s);
  const TimePoint t0{};
  t.update({"a", "b"}, {"a", "b"}, {}, t0);
  EXPECT_TRUE(t.update({"a"}, {"a", "b"}, {}, t0 + 1s).empty());
}

TEST(PeerTransition, ARevokedPeerIsNeverKept) {
  PeerTransition t(30s);
  const TimePoint t0{};
  t.update({"a", "b"}, {"a", "b"}, {}, t0);
  EXPECT_TRUE(t.update({"a", "c"}, {"a", "b"}, {"b"}, t0 + 1s).empty());
}

TEST(PeerTransition, APeerComingBackIsNoLongerRetiring) {
  PeerTransition t(30s);
  const TimePoint t0{};
  t.update({"a", "b"}, {"a", "b"}, {}, t0);
  EXPECT_EQ(t.update({"a", "c"}, {"a", "b"}, {}, t0 + 1s), Ids{"b"});
  EXPECT_TRUE(t.update({"a", "b", "c"}, {"a", "b"}, {}, t0 + 2s).empty());
  EXPECT_TRUE(t.retiring().empty());
}

}  // namespace
}  // namespace rap::agent
