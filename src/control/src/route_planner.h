// Route planner (docs/PROTOCOL.md §14): picks the hops of a user's route through the mesh,
// client → entry → [relay …] → exit → target. Pure (no database, no clock, no I/O): the caller
// (routes_access.cpp) builds the candidate graph from PostgreSQL and live presence.
//
// Rules:
//  * entry: listed in `entries`, fresh, holds `entry-node` (for the route's organization or for
//    the platform), advertises a client ingress endpoint, platform-owned or owned by the route's
//    organization;
//  * relay (every hop between entry and exit): fresh, holds `relay-node` (route org or
//    platform), platform-owned or owned by the route's organization. A customer-managed node of
//    another organization is never an entry or a relay (nor an exit);
//  * exit: listed in `exits` (the caller applies §14.1: the resource's egress pool, or
//    `exit-node` for the organization or the platform), fresh, not the entry;
//  * edges: live fabric sessions (undirected); a hop's cost is
//      1 + rtt_ms / 10 + load_penalty(next node)
//    where the load penalty grows with CPU, memory and active sessions (guardrail 12) and is
//    steep near saturation; the entry's own load penalty is the starting cost, so a loaded entry
//    is avoided when another one is as close;
//  * 2..6 hops (at most 4 relays), Dijkstra over (node, hop count).
// Alternates (at most 2) start at the primary's entry, never use a relay of an earlier route and
// differ from every earlier route (a direct primary's alternates go through a relay or to another
// exit).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rap/common/result.h"

namespace rap::control::routing {

inline constexpr int kMinHops = 2;
inline constexpr int kMaxHops = 6;
inline constexpr int kMaxAlternates = 2;
// RTT assumed for an edge neither end reported a measurement for.
inline constexpr double kUnknownRttMs = 50.0;

struct Role {
  std::string role;
  std::string org;  // organization id; "" = platform-wide assignment
};

struct PlanNode {
  std::string id;
  std::string public_key;  // hex of the raw Ed25519 key
  std::vector<Role> roles;
  std::string owner_org;  // "" = platform-owned; else the owning organization (ownership 'org')
  bool fresh = false;     // active and heartbeating (the caller's freshness window)
  std::string client_ingress;                   // endpoints.client_ingress; "" = none
  std::optional<std::int64_t> cpu_permille;     // 0..1000 (more is clamped)
  std::optional<std::int64_t> memory_permille;  // used / total memory, 0..1000
  std::optional<std::int64_t> active_sessions;  // open sessions, when reported
};

struct Edge {
  std::string a, b;
  std::optional<double> rtt_ms;  // nullopt: unknown (kUnknownRttMs)
};

struct PlanInput {
  std::vector<PlanNode> nodes;
  std::vector<Edge> edges;
  std::vector<std::string> entries;  // entry candidates (ids of `nodes`)
  std::vector<std::string> exits;    // exit candidates (§14.1, decided by the caller)
  std::string org;                   // the route's organization id
};

struct Route {
  std::vector<std::string> hops;  // node ids, entry first, exit last
  double cost = 0;
};

struct Plan {
  Route primary;
  std::vector<Route> alternates;
};

// Error code "no_route" with a message naming what is missing (no usable entry, no usable exit,
// no path between them).
Result<Plan> plan_route(const PlanInput& in);

// The load penalty of a node (0 when nothing is reported).
double load_penalty(const PlanNode& n);

// The cost of `hops` under the rules above, or nullopt when that route is not usable now (a node
// is stale or lost its role, an edge has no live session, the exit is no longer a candidate).
std::optional<double> route_cost(const PlanInput& in, const std::vector<std::string>& hops);

// Hysteresis (issue 8): the primary issued before for the same route key stays primary while it
// is usable and the best route is not clearly better, so two paths of about equal quality never
// flap. "Clearly better" = cheaper by `margin_ratio` of the previous cost and by `margin_abs`
// (one unit = one hop, or 10 ms of RTT), continuously for `hold_ms`. An unusable previous route is
// left at once.
struct HysteresisPolicy {
  double margin_ratio = 0.2;
  double margin_abs = 1.0;
  std::int64_t hold_ms = 10000;
};
struct Stickiness {
  std::vector<std::string> previous;     // the primary issued last time (empty = none)
  std::vector<std::string> challenger;   // a clearly better route seen...
  std::int64_t challenger_since_ms = 0;  // ...continuously since then
  std::string kept_reason;               // why the previous primary was kept (for audit)
};
// Returns the plan to issue (the previous primary kept, the best one otherwise) and updates `st`.
Plan apply_hysteresis(const PlanInput& in, Plan best, Stickiness& st, std::int64_t now_ms,
                      const HysteresisPolicy& policy = {});

}  // namespace rap::control::routing
