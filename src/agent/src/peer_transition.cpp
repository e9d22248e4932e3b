#include "rap/agent/peer_transition.h"

namespace rap::agent {

std::set<std::string> PeerTransition::update(const std::set<std::string>& directory,
                                             const std::set<std::string>& live,
                                             const std::set<std::string>& revoked, TimePoint now) {
  if (!first_) {
    for (const auto& id : directory) {
      if (!current_.contains(id)) pending_.insert(id);
      retiring_.erase(id);  // back in the directory
    }
    for (const auto& id : current_) {
      if (!directory.contains(id)) retiring_.emplace(id, now + grace_);
    }
  }
  first_ = false;
  current_ = directory;
  std::erase_if(pending_, [&](const std::string& id) {
    return !directory.contains(id) || live.contains(id) || revoked.contains(id);
  });
  const bool made = pending_.empty();
  std::erase_if(retiring_, [&](const auto& kv) {
    return made || now >= kv.second || revoked.contains(kv.first);
  });
  if (retiring_.empty()) pending_.clear();  // nothing waits for them any more
  std::set<std::string> out;
  for (const auto& [id, deadline] : retiring_) out.insert(id);
  return out;
}

}  // namespace rap::agent
