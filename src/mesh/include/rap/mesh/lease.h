// Route leases, access grants and tickets (docs/PROTOCOL.md §14): the signed credentials that let
// user traffic cross the mesh. Both are rap_config artifacts signed by the cluster's
// config-signing key, so a node checks them with the trust store and revocation list of its
// applied signed configuration (TrustView). Pure: callers pass the bytes and the current time.
#pragma once

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
};

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
  std::string wire;
};

// Signature, trust, scope (this node must be named), epoch and expiry via config::verify(), then
// the payload shape. Error codes: "lease_<config errc>" / "grant_<config errc>" (for example
// lease_expired, lease_bad_signature, grant_wrong_scope), "lease_malformed", "grant_malformed".
Result<Lease> verify_lease(std::string_view wire, const TrustView& view, config::WallTime now);
Result<Grant> verify_grant(std::string_view wire, const TrustView& view, config::WallTime now);

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
