// Lanes (docs/PROTOCOL.md §15) through real MeshNodes: interactive connections leave the main
// thread for the interactive lane (its own MeshNodes, sessions and thread) at the entry, relay
// and exit; bulk stays on the main lane; a route whose hops lack the lane comes back to the main
// lane and still carries every byte.
#include "lab.h"

using namespace mesh_lab;

namespace {

std::uint64_t relayed(const Json& view) {
  return view["status"]["counters"].value("routes_relayed", std::uint64_t{0});
}

}  // namespace

TEST(MeshLane, InteractiveRoutesRunOnTheLaneAndBulkStaysOnTheMainLane) {
  Lab lab;
  const auto target = lab.three_hops(true);
  const auto t = lab.ticket("entry", lab.grant("entry", {"exit"}, target),
                            {lab.lease("route-1", {"entry", "relay", "exit"})});
  const std::string data = payload(256 * 1024);
  {
    auto c = lab.connect("entry", t, "interactive");
    ASSERT_TRUE(c) << c.error().code << ": " << c.error().message;
    auto got = lab.echo(**c, data);
    ASSERT_TRUE(got) << got.error().message;
    EXPECT_TRUE(*got == data);
  }
  {
    auto c = lab.connect("entry", t, "bulk");
    ASSERT_TRUE(c) << c.error().code << ": " << c.error().message;
    auto got = lab.echo(**c, data);
    ASSERT_TRUE(got) << got.error().message;
    EXPECT_TRUE(*got == data);
  }
  // The interactive route ran on the lanes end to end, the bulk one on the main lane.
  const auto e_main = lab.lane_view("entry", false), e_lane = lab.lane_view("entry", true);
  EXPECT_EQ(e_main["entry_handoffs"], 1);
  EXPECT_EQ(e_lane["entry_accepted"], 1);
  EXPECT_EQ(e_lane["entry_returns"], 0);
  EXPECT_EQ(e_main["entry_accepted"], 1);
  EXPECT_EQ(relayed(lab.lane_view("relay", true)), 1u);
  EXPECT_EQ(relayed(lab.lane_view("relay", false)), 1u);
  EXPECT_EQ(lab.lane_view("exit", true)["exit_accepted"], 1);
  EXPECT_EQ(lab.lane_view("exit", false)["exit_accepted"], 1);
  // The relay's and exit's lane sessions came in through their main listeners.
  EXPECT_GE(lab.lane_view("relay", false)["status"]["lane_handoffs"].get<int>(), 1);
  EXPECT_EQ(lab.lane_view("relay", true)["status"]["lane"], "interactive");
  // Both accesses were audited once each, with their bytes.
  for (int i = 0; i < 50 && lab.records().size() < 2; ++i) std::this_thread::sleep_for(20ms);
  auto recs = lab.records();
  ASSERT_EQ(recs.size(), 2u);
  for (const auto& r : recs) {
    EXPECT_EQ(r.outcome, "ok");
    EXPECT_EQ(r.bytes_up, data.size());
    EXPECT_EQ(r.bytes_down, data.size());
  }
}

TEST(MeshLane, ARouteThroughAHopWithoutTheLaneComesBackToTheMainLane) {
  Lab lab;
  lab.add("entry", {"entry-node"}, true);
  lab.add("relay", {"relay-node"}, true);
  lab.add("exit", {"exit-node"}, false);  // an older agent, or interactive_lane off
  lab.configure();
  const auto target = lab.start_echo();
  lab.set_egress("exit", target);
  lab.wait_connected("relay", "exit");
  lab.wait_lane_connected("entry", "relay");
  // Exits dial the mesh: this one has no lane, so the relay's lane has no session with it.
  EXPECT_FALSE(lab.lane_connected("relay", "exit"));
  const auto t = lab.ticket("entry", lab.grant("entry", {"exit"}, target),
                            {lab.lease("route-1", {"entry", "relay", "exit"})});
  auto c = lab.connect("entry", t, "interactive");
  ASSERT_TRUE(c) << c.error().code << ": " << c.error().message;
  const std::string data = payload(64 * 1024);
  auto got = lab.echo(**c, data);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_TRUE(*got == data);
  const auto e_main = lab.lane_view("entry", false), e_lane = lab.lane_view("entry", true);
  EXPECT_EQ(e_main["entry_handoffs"], 1);
  EXPECT_EQ(e_lane["entry_returns"], 1);
  EXPECT_EQ(e_lane["entry_accepted"], 0);
  EXPECT_EQ(e_main["entry_accepted"], 1);
  EXPECT_EQ(lab.lane_view("exit", false)["exit_accepted"], 1);
  // One audit record, not one per lane tried.
  for (int i = 0; i < 50 && lab.records().empty(); ++i) std::this_thread::sleep_for(20ms);
  std::this_thread::sleep_for(100ms);
  auto recs = lab.records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].outcome, "ok");
}
