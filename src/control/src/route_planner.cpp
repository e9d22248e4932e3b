#include "route_planner.h"

#include <algorithm>
#include <functional>
#include <map>
#include <queue>
#include <set>
#include <tuple>

namespace rap::control::routing {

namespace {

bool holds(const PlanNode& n, const std::string& role, const std::string& org) {
  return std::any_of(n.roles.begin(), n.roles.end(), [&](const Role& r) {
    return r.role == role && (r.org.empty() || r.org == org);
  });
}

// Customer-managed nodes serve only their own organization's routes.
bool owned_ok(const PlanNode& n, const std::string& org) {
  return n.owner_org.empty() || n.owner_org == org;
}

double clamp01(std::int64_t permille) {
  return static_cast<double>(std::clamp<std::int64_t>(permille, 0, 1000)) / 1000.0;
}

using EdgeKey = std::pair<std::size_t, std::size_t>;
EdgeKey edge_key(std::size_t a, std::size_t b) {
  return a < b ? EdgeKey{a, b} : EdgeKey{b, a};
}

struct Graph {
  const PlanInput& in;
  std::map<std::string, std::size_t> index;
  std::vector<std::vector<std::pair<std::size_t, double>>> adj;  // neighbour, rtt ms
  std::vector<double> penalty;
  std::vector<bool> relay, exit;

  explicit Graph(const PlanInput& input) : in(input) {
    for (std::size_t i = 0; i < in.nodes.size(); ++i) index.emplace(in.nodes[i].id, i);
    adj.resize(in.nodes.size());
    penalty.resize(in.nodes.size());
    relay.resize(in.nodes.size());
    exit.resize(in.nodes.size());
    for (std::size_t i = 0; i < in.nodes.size(); ++i) {
      const PlanNode& n = in.nodes[i];
      penalty[i] = load_penalty(n);
      relay[i] = n.fresh && owned_ok(n, in.org) && holds(n, "relay-node", in.org);
    }
    for (const auto& id : in.exits) {
      auto it = index.find(id);
      if (it != index.end() && in.nodes[it->second].fresh && owned_ok(in.nodes[it->second], in.org))
        exit[it->second] = true;
    }
    // Undirected, one edge per pair: the smallest RTT either end reported.
    std::map<EdgeKey, std::optional<double>> edges;
    for (const Edge& e : in.edges) {
      auto a = index.find(e.a);
      auto b = index.find(e.b);
      if (a == index.end() || b == index.end() || a->second == b->second) continue;
      if (!in.nodes[a->second].fresh || !in.nodes[b->second].fresh) continue;
      auto [it, inserted] = edges.emplace(edge_key(a->second, b->second), e.rtt_ms);
      if (!inserted && e.rtt_ms && (!it->second || *e.rtt_ms < *it->second)) it->second = e.rtt_ms;
    }
    for (const auto& [k, rtt] : edges) {
      const double ms = std::max(0.0, rtt.value_or(kUnknownRttMs));
      adj[k.first].emplace_back(k.second, ms);
      adj[k.second].emplace_back(k.first, ms);
    }
  }

  bool usable_entry(std::size_t i) const {
    const PlanNode& n = in.nodes[i];
    return n.fresh && !n.client_ingress.empty() && owned_ok(n, in.org) &&
           holds(n, "entry-node", in.org);
  }

  // Cheapest path from any of `sources` to an exit (not the source itself), with only relays
  // between, never through `banned` nodes or over `banned_edges`, 2..kMaxHops nodes.
  std::optional<Route> shortest(const std::vector<std::size_t>& sources,
                                const std::set<std::size_t>& banned,
                                const std::set<EdgeKey>& banned_edges) const {
    // State: (node, nodes on the path so far).
    struct State {
      double cost;
      std::size_t node;
      int depth;
      bool operator>(const State& o) const {
        return std::tie(cost, depth, node) > std::tie(o.cost, o.depth, o.node);
      }
    };
    using Key = std::pair<std::size_t, int>;
    std::map<Key, double> dist;
    std::map<Key, Key> prev;
    std::priority_queue<State, std::vector<State>, std::greater<>> q;
    for (auto s : sources) {
      const Key k{s, 1};
      if (auto it = dist.find(k); it == dist.end() || penalty[s] < it->second) {
        dist[k] = penalty[s];
        q.push({penalty[s], s, 1});
      }
    }
    const auto path_of = [&](Key k) {
      std::vector<std::size_t> p;
      for (;;) {
        p.push_back(k.first);
        auto it = prev.find(k);
        if (it == prev.end()) break;
        k = it->second;
      }
      std::reverse(p.begin(), p.end());
      return p;
    };
    while (!q.empty()) {
      const State st = q.top();
      q.pop();
      const Key k{st.node, st.depth};
      if (st.cost > dist[k]) continue;
      if (st.depth >= kMinHops && exit[st.node]) {
        Route r;
        for (auto i : path_of(k)) r.hops.push_back(in.nodes[i].id);
        r.cost = st.cost;
        return r;
      }
      // Only the source and relays forward.
      if (st.depth > 1 && !relay[st.node]) continue;
      if (st.depth >= kMaxHops) continue;
      const auto path = path_of(k);
      for (const auto& [v, rtt] : adj[st.node]) {
        // A banned relay may still end a route as its exit (an exit state never forwards).
        if (banned.contains(v) && !exit[v]) continue;
        if (banned_edges.contains(edge_key(st.node, v))) continue;
        if (std::find(path.begin(), path.end(), v) != path.end()) continue;
        if (!exit[v] && !relay[v]) continue;
        const double c = st.cost + 1.0 + rtt / 10.0 + penalty[v];
        const Key nk{v, st.depth + 1};
        auto it = dist.find(nk);
        if (it != dist.end() && it->second <= c) continue;
        dist[nk] = c;
        prev[nk] = k;
        q.push({c, v, st.depth + 1});
      }
    }
    return std::nullopt;
  }
};

}  // namespace

double load_penalty(const PlanNode& n) {
  double p = 0;
  if (n.cpu_permille) {
    const double cpu = clamp01(*n.cpu_permille);
    p += 3.0 * cpu + (cpu >= 0.9 ? 10.0 : 0.0);
  }
  if (n.memory_permille) {
    const double mem = clamp01(*n.memory_permille);
    p += 2.0 * mem + (mem >= 0.95 ? 10.0 : 0.0);
  }
  if (n.active_sessions)
    p += std::min(4.0, static_cast<double>(std::max<std::int64_t>(0, *n.active_sessions)) / 250.0);
  return p;
}

std::optional<double> route_cost(const PlanInput& in, const std::vector<std::string>& hops) {
  if (hops.size() < static_cast<std::size_t>(kMinHops) ||
      hops.size() > static_cast<std::size_t>(kMaxHops))
    return std::nullopt;
  const Graph g(in);
  std::vector<std::size_t> idx;
  for (const auto& h : hops) {
    auto it = g.index.find(h);
    if (it == g.index.end()) return std::nullopt;
    if (std::find(idx.begin(), idx.end(), it->second) != idx.end()) return std::nullopt;
    idx.push_back(it->second);
  }
  if (!g.usable_entry(idx.front()) ||
      std::find(in.entries.begin(), in.entries.end(), hops.front()) == in.entries.end())
    return std::nullopt;
  if (!g.exit[idx.back()]) return std::nullopt;
  double cost = g.penalty[idx.front()];
  for (std::size_t i = 1; i < idx.size(); ++i) {
    if (i + 1 < idx.size() && !g.relay[idx[i]]) return std::nullopt;
    const auto& nb = g.adj[idx[i - 1]];
    auto e = std::find_if(nb.begin(), nb.end(), [&](const auto& p) { return p.first == idx[i]; });
    if (e == nb.end()) return std::nullopt;
    cost += 1.0 + e->second / 10.0 + g.penalty[idx[i]];
  }
  return cost;
}

Plan apply_hysteresis(const PlanInput& in, Plan best, Stickiness& st, std::int64_t now_ms,
                      const HysteresisPolicy& policy) {
  st.kept_reason.clear();
  const auto adopt = [&](Plan p) {
    st.previous = p.primary.hops;
    st.challenger.clear();
    st.challenger_since_ms = 0;
    return p;
  };
  if (st.previous.empty() || st.previous == best.primary.hops) return adopt(std::move(best));
  const auto prev_cost = route_cost(in, st.previous);
  if (!prev_cost) return adopt(std::move(best));  // the old route is gone: leave it at once
  const bool clearly_better = best.primary.cost <= *prev_cost * (1.0 - policy.margin_ratio) &&
                              *prev_cost - best.primary.cost >= policy.margin_abs;
  if (clearly_better) {
    if (st.challenger == best.primary.hops) {
      if (now_ms - st.challenger_since_ms >= policy.hold_ms) return adopt(std::move(best));
    } else {
      st.challenger = best.primary.hops;
      st.challenger_since_ms = now_ms;
    }
    st.kept_reason = "better route held back until it stays better";
  } else {
    st.challenger.clear();
    st.challenger_since_ms = 0;
    st.kept_reason = "within the hysteresis margin";
  }
  // Keep the previous primary; the best route becomes the first alternate.
  Plan kept;
  kept.primary = Route{st.previous, *prev_cost};
  kept.alternates.push_back(std::move(best.primary));
  for (auto& a : best.alternates) {
    if (kept.alternates.size() >= static_cast<std::size_t>(kMaxAlternates)) break;
    if (a.hops != st.previous) kept.alternates.push_back(std::move(a));
  }
  return kept;
}

Result<Plan> plan_route(const PlanInput& in) {
  const Graph g(in);
  std::vector<std::size_t> entries;
  for (const auto& id : in.entries) {
    auto it = g.index.find(id);
    if (it != g.index.end() && g.usable_entry(it->second) &&
        std::find(entries.begin(), entries.end(), it->second) == entries.end())
      entries.push_back(it->second);
  }
  if (entries.empty())
    return fail("no_route", in.entries.empty()
                                ? "no entry node serves this organization"
                                : "no entry node with a client ingress endpoint is online for this "
                                  "organization");
  if (std::none_of(g.exit.begin(), g.exit.end(), [](bool b) { return b; }))
    return fail("no_route",
                in.exits.empty()
                    ? "no exit node serves this resource (egress pool or exit-node role)"
                    : "no exit node of this resource is online");
  auto primary = g.shortest(entries, {}, {});
  if (!primary)
    return fail("no_route",
                "no path from an entry node to an exit node over live fabric sessions (at most " +
                    std::to_string(kMaxHops) + " hops)");
  Plan plan;
  plan.primary = std::move(*primary);
  const std::size_t entry = g.index.at(plan.primary.hops.front());

  // Alternates: same entry, none of the relays of earlier routes, distinct from earlier routes.
  std::set<std::size_t> banned;
  std::set<EdgeKey> banned_edges;
  const auto add_relays = [&](const Route& r) {
    for (std::size_t i = 1; i + 1 < r.hops.size(); ++i) banned.insert(g.index.at(r.hops[i]));
  };
  add_relays(plan.primary);
  const auto known = [&](const Route& r) {
    if (r.hops == plan.primary.hops) return true;
    return std::any_of(plan.alternates.begin(), plan.alternates.end(),
                       [&](const Route& a) { return a.hops == r.hops; });
  };
  for (std::size_t attempts = 0;
       plan.alternates.size() < static_cast<std::size_t>(kMaxAlternates) &&
       attempts < in.nodes.size() + 2;
       ++attempts) {
    auto alt = g.shortest({entry}, banned, banned_edges);
    if (!alt) break;
    if (known(*alt)) {
      // Only a direct route can repeat (relays of earlier routes are banned): take its edge away.
      if (alt->hops.size() != 2) break;
      banned_edges.insert(edge_key(entry, g.index.at(alt->hops.back())));
      continue;
    }
    add_relays(*alt);
    if (alt->hops.size() == 2) banned_edges.insert(edge_key(entry, g.index.at(alt->hops.back())));
    plan.alternates.push_back(std::move(*alt));
  }
  return plan;
}

}  // namespace rap::control::routing
