// Route planner (src/control/src/route_planner.h): entries, relays and exits per
// docs/PROTOCOL.md §14.1, Dijkstra costs with RTT and load, hop limits, alternates.
#include "route_planner.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace rap::control::routing {
namespace {

const std::string kOrg = "org-a";

PlanNode node(const std::string& id, std::vector<Role> roles, std::string owner = "") {
  PlanNode n;
  n.id = id;
  n.public_key = std::string(64, 'a');
  n.roles = std::move(roles);
  n.owner_org = std::move(owner);
  n.fresh = true;
  return n;
}
PlanNode entry(const std::string& id, std::string owner = "") {
  PlanNode n = node(id, {{"entry-node", ""}}, std::move(owner));
  n.client_ingress = "10.0.0.1:8443";
  return n;
}
PlanNode relay(const std::string& id, std::string owner = "", std::string role_org = "") {
  return node(id, {{"relay-node", std::move(role_org)}}, std::move(owner));
}
PlanNode exit_node(const std::string& id) {
  return node(id, {{"exit-node", kOrg}});
}

using Hops = std::vector<std::string>;

// E - R1 - X, E - R2 - X, E - R3 - X2: a small mesh.
PlanInput mesh() {
  PlanInput in;
  in.org = kOrg;
  in.nodes = {entry("E"), relay("R1"), relay("R2"), relay("R3"), exit_node("X"), exit_node("X2")};
  in.edges = {{"E", "R1", 5.0},  {"R1", "X", 5.0},  {"E", "R2", 20.0},
              {"R2", "X", 20.0}, {"E", "R3", 30.0}, {"R3", "X2", 30.0}};
  in.entries = {"E"};
  in.exits = {"X", "X2"};
  return in;
}

TEST(RoutePlanner, PrimaryViaCheapestRelayAndAlternatesAvoidIt) {
  auto p = plan_route(mesh());
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->primary.hops, (Hops{"E", "R1", "X"}));
  ASSERT_EQ(p->alternates.size(), 2u);
  EXPECT_EQ(p->alternates[0].hops, (Hops{"E", "R2", "X"}));
  EXPECT_EQ(p->alternates[1].hops, (Hops{"E", "R3", "X2"}));
  for (const auto& a : p->alternates) EXPECT_EQ(a.hops.front(), "E");
  EXPECT_LT(p->primary.cost, p->alternates[0].cost);
}

TEST(RoutePlanner, DirectSessionWinsAndAlternateGoesThroughARelay) {
  PlanInput in = mesh();
  in.edges.push_back({"E", "X", 1.0});
  auto p = plan_route(in);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->primary.hops, (Hops{"E", "X"}));
  ASSERT_FALSE(p->alternates.empty());
  EXPECT_EQ(p->alternates[0].hops, (Hops{"E", "R1", "X"}));
}

TEST(RoutePlanner, LoadAndRttSteerTheChoice) {
  PlanInput in = mesh();
  in.nodes[1].cpu_permille = 980;  // R1 saturated: R2 is cheaper despite its RTT
  auto p = plan_route(in);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->primary.hops, (Hops{"E", "R2", "X"}));
  in = mesh();
  in.nodes[1].active_sessions = 100000;
  in.nodes[1].memory_permille = 990;
  p = plan_route(in);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->primary.hops, (Hops{"E", "R2", "X"}));
  EXPECT_GT(load_penalty(in.nodes[1]), 10.0);
  EXPECT_EQ(load_penalty(in.nodes[0]), 0.0);
}

TEST(RoutePlanner, CustomerManagedNodesOfAnotherOrgAreNeverUsed) {
  PlanInput in = mesh();
  in.nodes[1].owner_org = "org-b";  // R1 belongs to another organization
  auto p = plan_route(in);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->primary.hops, (Hops{"E", "R2", "X"}));
  for (const auto& a : p->alternates)
    EXPECT_EQ(std::find(a.hops.begin(), a.hops.end(), "R1"), a.hops.end());
  // Own organization's customer-managed relay: fine. A relay role for another org: not.
  in = mesh();
  in.nodes[1].owner_org = kOrg;
  EXPECT_EQ(plan_route(in)->primary.hops, (Hops{"E", "R1", "X"}));
  in.nodes[1] = relay("R1", "", "org-b");
  EXPECT_EQ(plan_route(in)->primary.hops, (Hops{"E", "R2", "X"}));
  // An entry of another organization is refused.
  in = mesh();
  in.nodes[0].owner_org = "org-b";
  auto none = plan_route(in);
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, "no_route");
}

TEST(RoutePlanner, NoRouteMessagesNameWhatIsMissing) {
  PlanInput in = mesh();
  in.nodes[0].client_ingress.clear();
  auto r = plan_route(in);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "no_route");
  EXPECT_NE(r.error().message.find("client ingress"), std::string::npos);

  in = mesh();
  in.entries.clear();
  EXPECT_NE(plan_route(in).error().message.find("no entry"), std::string::npos);

  in = mesh();
  in.exits.clear();
  r = plan_route(in);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("no exit"), std::string::npos);

  in = mesh();
  in.nodes[4].fresh = false;  // X offline
  in.nodes[5].fresh = false;  // X2 offline
  EXPECT_NE(plan_route(in).error().message.find("online"), std::string::npos);

  in = mesh();
  in.edges = {{"E", "R1", 1.0}};  // nothing reaches an exit
  r = plan_route(in);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("no path"), std::string::npos);
}

TEST(RoutePlanner, StaleRelaysAndNonRelaysDoNotForward) {
  PlanInput in = mesh();
  in.nodes[1].fresh = false;
  EXPECT_EQ(plan_route(in)->primary.hops, (Hops{"E", "R2", "X"}));
  // A node without relay-node cannot be an intermediate hop, even when it is an exit.
  in = mesh();
  in.nodes.push_back(exit_node("Y"));
  in.edges = {{"E", "Y", 1.0}, {"Y", "X", 1.0}};
  in.exits = {"X"};
  EXPECT_FALSE(plan_route(in).has_value());
  // The entry is never its own exit (a lease has at least two hops).
  in = mesh();
  in.exits = {"E"};
  in.nodes[0].roles.push_back({"exit-node", ""});
  EXPECT_FALSE(plan_route(in).has_value());
}

TEST(RoutePlanner, HopLimitAndUnknownRtt) {
  // A chain E - R1 - R2 - R3 - R4 - X has 6 hops (allowed); one more relay is too many.
  PlanInput in;
  in.org = kOrg;
  in.nodes = {entry("E"),  relay("R1"), relay("R2"),   relay("R3"),
              relay("R4"), relay("R5"), exit_node("X")};
  in.entries = {"E"};
  in.exits = {"X"};
  in.edges = {{"E", "R1", std::nullopt},
              {"R1", "R2", std::nullopt},
              {"R2", "R3", std::nullopt},
              {"R3", "R4", std::nullopt},
              {"R4", "X", std::nullopt}};
  auto p = plan_route(in);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->primary.hops.size(), 6u);
  EXPECT_DOUBLE_EQ(p->primary.cost, 5 * (1.0 + kUnknownRttMs / 10.0));
  in.edges = {{"E", "R1", 1.0},  {"R1", "R2", 1.0}, {"R2", "R3", 1.0},
              {"R3", "R4", 1.0}, {"R4", "R5", 1.0}, {"R5", "X", 1.0}};
  EXPECT_FALSE(plan_route(in).has_value());
}

TEST(RoutePlanner, PicksTheBestOfSeveralEntriesAndEdgesAreUndirected) {
  PlanInput in = mesh();
  PlanNode e2 = entry("E2");
  in.nodes.push_back(e2);
  in.entries.push_back("E2");
  in.edges.push_back({"X", "E2", 2.0});  // reported by the exit only
  auto p = plan_route(in);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->primary.hops, (Hops{"E2", "X"}));
  // A loaded entry is avoided when another is about as close.
  in.nodes.back().cpu_permille = 950;
  p = plan_route(in);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->primary.hops, (Hops{"E", "R1", "X"}));
}

}  // namespace
}  // namespace rap::control::routing

// ---- hysteresis (issue 8) ----

namespace rap::control::routing {
namespace {

// E - R1 - X and E - R2 - X with the given RTTs per hop.
PlanInput two_paths(double r1_ms, double r2_ms) {
  PlanInput in;
  in.org = kOrg;
  in.nodes = {entry("E"), relay("R1"), relay("R2"), exit_node("X")};
  in.edges = {{"E", "R1", r1_ms}, {"R1", "X", r1_ms}, {"E", "R2", r2_ms}, {"R2", "X", r2_ms}};
  in.entries = {"E"};
  in.exits = {"X"};
  return in;
}

Hops primary_of(const PlanInput& in, Stickiness& st, std::int64_t now_ms) {
  auto p = plan_route(in);
  EXPECT_TRUE(p.has_value());
  return apply_hysteresis(in, *p, st, now_ms).primary.hops;
}

}  // namespace

TEST(RouteHysteresis, RouteCostMatchesThePlannerAndRefusesUnusableRoutes) {
  const auto in = two_paths(5, 20);
  auto p = plan_route(in);
  ASSERT_TRUE(p);
  auto c = route_cost(in, p->primary.hops);
  ASSERT_TRUE(c);
  EXPECT_DOUBLE_EQ(*c, p->primary.cost);
  EXPECT_FALSE(route_cost(in, {"E", "R1", "R2", "X"}));  // no R1-R2 session
  EXPECT_FALSE(route_cost(in, {"E", "X"}));              // no direct session
  auto stale = in;
  stale.nodes[1].fresh = false;
  EXPECT_FALSE(route_cost(stale, {"E", "R1", "X"}));
}

TEST(RouteHysteresis, SmallDifferencesNeverFlapThePrimary) {
  Stickiness st;
  std::int64_t now = 0;
  EXPECT_EQ(primary_of(two_paths(5, 6), st, now), (Hops{"E", "R1", "X"}));
  // R2 becomes marginally better, then R1 again, and so on: the primary stays R1.
  for (int i = 0; i < 20; ++i) {
    now += 5000;
    const auto in = i % 2 == 0 ? two_paths(6, 5) : two_paths(5, 6);
    EXPECT_EQ(primary_of(in, st, now), (Hops{"E", "R1", "X"})) << "round " << i;
  }
  EXPECT_EQ(st.kept_reason, "");  // the last round had R1 best anyway
  primary_of(two_paths(6, 5), st, now + 1);
  EXPECT_EQ(st.kept_reason, "within the hysteresis margin");
}

TEST(RouteHysteresis, AClearlyBetterRouteWinsOnceItStaysBetter) {
  Stickiness st;
  EXPECT_EQ(primary_of(two_paths(5, 40), st, 0), (Hops{"E", "R1", "X"}));
  // Delay and loss on R1's links: R2 is clearly better, but only after the hold time.
  const auto bad = two_paths(60, 5);
  EXPECT_EQ(primary_of(bad, st, 1000), (Hops{"E", "R1", "X"}));
  EXPECT_EQ(st.challenger, (Hops{"E", "R2", "X"}));
  // The kept primary still lists the better route first among alternates.
  auto p = plan_route(bad);
  const auto kept = apply_hysteresis(bad, *p, st, 5000);
  ASSERT_FALSE(kept.alternates.empty());
  EXPECT_EQ(kept.alternates[0].hops, (Hops{"E", "R2", "X"}));
  // A blip back resets the clock.
  EXPECT_EQ(primary_of(two_paths(5, 40), st, 6000), (Hops{"E", "R1", "X"}));
  EXPECT_TRUE(st.challenger.empty());
  EXPECT_EQ(primary_of(bad, st, 7000), (Hops{"E", "R1", "X"}));
  EXPECT_EQ(primary_of(bad, st, 16000), (Hops{"E", "R1", "X"}));
  EXPECT_EQ(primary_of(bad, st, 17000), (Hops{"E", "R2", "X"}));
  EXPECT_EQ(st.previous, (Hops{"E", "R2", "X"}));
}

TEST(RouteHysteresis, AnUnusablePreviousRouteIsLeftAtOnce) {
  Stickiness st;
  EXPECT_EQ(primary_of(two_paths(5, 6), st, 0), (Hops{"E", "R1", "X"}));
  auto gone = two_paths(5, 6);
  gone.nodes[1].fresh = false;  // R1 missed its heartbeats
  EXPECT_EQ(primary_of(gone, st, 1), (Hops{"E", "R2", "X"}));
}

}  // namespace rap::control::routing
