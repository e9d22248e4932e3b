// Route leases, access grants and tickets (docs/PROTOCOL.md §14): the signed credentials that let
// user traffic cross the mesh. Both are rap_config artifacts signed by the cluster's
// config-signing key, so a node checks them with the trust store and revocation list of its
// applied signed configuration (TrustView). Pure: callers pass the bytes and the current time.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rap/common/result.h"
#include "rap/config/artifact.h"
#include "rap/config/trust.h"
#include "rap/crypto/keys.h"

namespace rap::mesh {

// What a node trusts right now, taken from its applied signed configuration.
struct TrustView {
  std::string cluster_id;
  std::string node_id;
  config::TrustStore trust;
  config::Revocations revocations;
  std::uint64_t min_epoch = 0;  // the applied authority epoch: older leases are fenced off
  // True while this node cannot reach the control plane (its partition state is degraded or
  // isolated). Then a lease or grant past its expiry is renewed from the cached signed policy up
  // to the offline horizon its issuer signed into it ("offline_until", at most
  // kMaxOfflineHorizon after expiry): still checked against this view's trust store, revocation
  // list and epoch. Never while the control plane is reachable: a fresh ticket is one call away.
  bool authority_offline = false;
};

// The longest offline horizon a node honours, whatever the issuer signed.
inline constexpr std::chrono::hours kMaxOfflineHorizon{24};

struct Hop {
  std::string node;
  crypto::PublicKey public_key{};
};

struct Lease {
  std::string artifact_id;  // content address of the signed artifact (binds the e2e keys)
  std::string id;           // route id
  std::string grant;        // the access grant this route serves
  std::string org;
  std::string role;  // "primary" | "alternate"
  std::vector<Hop> hops;
  std::vector<std::string> classes;  // traffic classes allowed ("interactive", "bulk", ...)
  std::uint64_t fence = 0;
  config::WallTime expires_at{};
  config::WallTime offline_until{};  // signed offline horizon (epoch = none)
  bool renewed_offline = false;      // verified past expires_at (under its offline horizon)
  // Past expiry while the authority is reachable: good only to resume a flow admitted before.
  bool resume_only = false;
  std::string wire;

  // Position of `node` on the route.
  std::optional<std::size_t> index_of(std::string_view node) const;
  bool allows(std::string_view traffic_class) const;
};

struct Grant {
  std::string artifact_id;
  std::string id;
  std::string user;
  std::string org;
  std::string resource;
  std::string protocol;
  std::string target;  // "host:port"
  std::string entry;
  std::vector<std::string> exits;
  config::WallTime expires_at{};
  config::WallTime offline_until{};  // signed offline horizon (epoch = none)
  bool renewed_offline = false;      // verified past expires_at under authority_offline
  std::string wire;
};

// Signature, trust, scope (this node must be named), epoch and expiry via config::verify(), then
// the payload shape. Error codes: "lease_<config errc>" / "grant_<config errc>" (for example
// lease_expired, lease_bad_signature, grant_wrong_scope), "lease_malformed", "grant_malformed".
// Past expiry with view.authority_offline: accepted (renewed_offline set) until its signed
// offline_until; "lease_offline_horizon_passed" / "grant_offline_horizon_passed" after that.
// `resume`: the route is opened to move a flow admitted earlier (PROTOCOL.md §14.7); a lease
// past expiry is then accepted under its horizon even with the authority reachable, marked
// resume_only (the exit refuses it for anything but the resume of a flow it holds), so open
// flows outliving their ticket still fail over.
Result<Lease> verify_lease(std::string_view wire, const TrustView& view, config::WallTime now,
                           bool resume = false);
Result<Grant> verify_grant(std::string_view wire, const TrustView& view, config::WallTime now);
// Whether a lease verified earlier may still carry traffic at `now` under `view` (flows moving to
// an alternate route check this, with resume = true, rather than verifying again).
bool usable_at(const Lease& lease, const TrustView& view, config::WallTime now,
               bool resume = false);

// The sealed ticket a user hands to the entry: {"grant": wire, "leases": [wire...]}, sealed to
// the entry's key (crypto::seal_to) and base64-encoded. Error "bad_ticket".
struct Ticket {
  std::string grant;
  std::vector<std::string> leases;
};
Result<Ticket> open_ticket(std::string_view base64, const crypto::Ed25519Key& key);
// The inverse, for tests and tools.
Result<std::string> seal_ticket(const Ticket& ticket, const crypto::PublicKey& entry);

}  // namespace rap::mesh
