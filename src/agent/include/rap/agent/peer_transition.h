// PeerTransition: make-before-break for the peer directory the agent hands its mesh
// (docs/ARCHITECTURE.md "Node agent model"). When a newly applied peer_directory replaces peers,
// the new ones are handed to the mesh at once and the removed ones stay in the mesh's peer set
// ("retiring") until every added peer has a live session, or for at most `grace`, so that a
// re-planned neighbourhood is up before the old one goes. A revoked peer is never kept. Pure:
// the caller passes the live sessions and the time.
#pragma once

#include <chrono>
#include <map>
#include <set>
#include <string>

#include "rap/common/clock.h"

namespace rap::agent {

class PeerTransition {
 public:
  explicit PeerTransition(std::chrono::seconds grace = std::chrono::seconds(30)) : grace_(grace) {}

  // `directory`: the peer ids of the applied peer directory; `live`: peers with a session now;
  // `revoked`: peers of the applied revocation list. Returns the removed peers still kept.
  std::set<std::string> update(const std::set<std::string>& directory,
                               const std::set<std::string>& live,
                               const std::set<std::string>& revoked, TimePoint now);

  // Peers added by a directory change that have no session yet (the "make" still under way).
  const std::set<std::string>& pending() const { return pending_; }
  const std::map<std::string, TimePoint>& retiring() const { return retiring_; }

 private:
  std::chrono::seconds grace_;
  bool first_ = true;
  std::set<std::string> current_;
  std::set<std::string> pending_;
  std::map<std::string, TimePoint> retiring_;  // removed peer -> when it goes at the latest
};

}  // namespace rap::agent
