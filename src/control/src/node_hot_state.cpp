#include "node_hot_state.h"

#include <functional>

namespace rap::control::detail {

namespace {
constexpr auto kCertTtl = std::chrono::minutes(5);
}

std::optional<NodeHotState::VerifiedCert> NodeHotState::find_cert(const std::string& pem,
                                                                  Steady::time_point now) {
  std::lock_guard g(mu_);
  auto it = certs_.find(pem);
  if (it == certs_.end() || now - it->second.at >= kCertTtl) return std::nullopt;
  return it->second.v;
}

void NodeHotState::store_cert(const std::string& pem, VerifiedCert v, Steady::time_point now) {
  std::lock_guard g(mu_);
  if (certs_.size() >= kMaxEntries && !certs_.contains(pem)) certs_.clear();
  certs_[pem] = CertEntry{std::move(v), now};
}

std::optional<NodeAuthRow> NodeHotState::find_auth(std::int64_t serial, Steady::time_point now) {
  std::lock_guard g(mu_);
  auto it = auth_.find(serial);
  if (it == auth_.end() || now - it->second.at >= auth_ttl_) {
    ++counters_.auth_misses;
    return std::nullopt;
  }
  ++counters_.auth_hits;
  return it->second.row;
}

void NodeHotState::store_auth(std::int64_t serial, NodeAuthRow row, Steady::time_point read_at) {
  if (auth_ttl_.count() <= 0) return;
  std::lock_guard g(mu_);
  if (read_at <= all_changed_at_) return;
  if (auto c = changed_at_.find(row.node_id); c != changed_at_.end() && read_at <= c->second)
    return;
  if (auth_.size() >= kMaxEntries && !auth_.contains(serial)) auth_.clear();
  auth_[serial] = AuthEntry{std::move(row), read_at};
}

void NodeHotState::invalidate_node(const std::string& node_id, Steady::time_point now) {
  std::lock_guard g(mu_);
  ++counters_.invalidations;
  for (auto it = auth_.begin(); it != auth_.end();) {
    if (it->second.row.node_id == node_id)
      it = auth_.erase(it);
    else
      ++it;
  }
  // Remembered for one auth_ttl so that a read racing with the change is not stored; older
  // marks are dropped (a read started before them would be older than auth_ttl anyway).
  if (changed_at_.size() >= 4096) {
    for (auto it = changed_at_.begin(); it != changed_at_.end();) {
      if (now - it->second > auth_ttl_)
        it = changed_at_.erase(it);
      else
        ++it;
    }
    if (changed_at_.size() >= kMaxEntries) {
      changed_at_.clear();
      all_changed_at_ = now;
    }
  }
  changed_at_[node_id] = now;
}

void NodeHotState::invalidate_all(Steady::time_point now) {
  std::lock_guard g(mu_);
  ++counters_.invalidations;
  auth_.clear();
  changed_at_.clear();
  all_changed_at_ = now;
}

bool NodeHotState::write_is_fresh(const std::string& node_id, const std::string& durable,
                                  std::chrono::seconds interval, Steady::time_point now) {
  if (interval.count() <= 0) return false;
  std::lock_guard g(mu_);
  auto it = writes_.find(node_id);
  if (it == writes_.end() || it->second.durable != durable) return false;
  // Spread: each node's effective interval is between 1/2 and 1 times `interval` (a fixed
  // fraction per node), so nodes that started together do not write together forever after.
  const auto frac = static_cast<double>(std::hash<std::string>{}(node_id) % 1024) / 2048.0;
  const auto effective = std::chrono::duration_cast<Steady::duration>(
      std::chrono::duration<double>(static_cast<double>(interval.count()) * (0.5 + frac)));
  return now - it->second.at < effective;
}

void NodeHotState::record_write(const std::string& node_id, std::string durable,
                                Steady::time_point now) {
  std::lock_guard g(mu_);
  if (writes_.size() >= kMaxEntries && !writes_.contains(node_id)) writes_.clear();
  writes_[node_id] = LastWrite{now, std::move(durable)};
}

void NodeHotState::note_seen(const std::string& cluster_id, const std::string& node_id,
                             std::int64_t unix_ms) {
  std::lock_guard g(mu_);
  if (seen_.size() >= kMaxEntries) return;  // the flusher is behind; next heartbeat retries
  seen_[{cluster_id, node_id}] = unix_ms;
}

std::map<std::pair<std::string, std::string>, std::int64_t> NodeHotState::take_seen() {
  std::lock_guard g(mu_);
  return std::exchange(seen_, {});
}

void NodeHotState::note_access(const std::string& node_id, nlohmann::json active) {
  std::lock_guard g(mu_);
  if (access_.size() >= kMaxEntries && !access_.contains(node_id)) return;
  access_[node_id] = std::move(active);
}

std::map<std::string, std::map<std::string, std::string>> NodeHotState::take_access() {
  std::map<std::string, nlohmann::json> reports;
  {
    std::lock_guard g(mu_);
    reports = std::exchange(access_, {});
  }
  std::map<std::string, std::map<std::string, std::string>> out;
  for (auto& [node, active] : reports) {
    std::map<std::string, nlohmann::json> by_org;
    for (auto& s : active) {
      const auto org = s.value("org", std::string());
      if (org.empty()) continue;
      auto& list = by_org[org];
      if (list.is_null()) list = nlohmann::json::array();
      list.push_back(std::move(s));
    }
    auto& values = out[node];
    std::set<std::string> orgs;
    for (auto& [org, list] : by_org) {
      values[org] = list.dump();
      orgs.insert(org);
    }
    std::lock_guard g(mu_);
    auto& before = access_orgs_[node];
    for (const auto& org : before)
      if (!orgs.contains(org)) values[org] = "[]";
    if (orgs.empty())
      access_orgs_.erase(node);
    else if (access_orgs_.size() < kMaxEntries)
      before = std::move(orgs);
  }
  return out;
}

NodeHotCounters NodeHotState::counters() {
  std::lock_guard g(mu_);
  return counters_;
}

void NodeHotState::count_heartbeat(bool from_memory) {
  std::lock_guard g(mu_);
  ++(from_memory ? counters_.heartbeats_memory : counters_.heartbeats_db);
}

void NodeHotState::count_presence(std::uint64_t written, std::uint64_t errors) {
  std::lock_guard g(mu_);
  counters_.presence_written += written;
  counters_.presence_errors += errors;
}

}  // namespace rap::control::detail
