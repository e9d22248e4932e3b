#include "rap/mesh/lease.h"

#include <algorithm>

#include "rap/common/base64.h"
#include "rap/config/canonical.h"
#include "rap/config/errors.h"
#include "rap/config/verifier.h"

namespace rap::mesh {

namespace {

using config::Json;
constexpr std::size_t kMaxHops = 6;
constexpr std::size_t kMaxTicketBytes = 64 * 1024;

config::VerifyContext context(const TrustView& view, config::WallTime now) {
  config::VerifyContext ctx;
  ctx.cluster_id = view.cluster_id;
  ctx.node.node_id = view.node_id;
  ctx.trust = &view.trust;
  ctx.revocations = &view.revocations;
  ctx.min_epoch = view.min_epoch;
  ctx.now = now;
  return ctx;
}

Error prefixed(const char* prefix, const Error& e) {
  return Error{std::string(prefix) + e.code, e.message};
}

bool get_string(const Json& j, const char* key, std::string& out, std::size_t max = 256) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return false;
  out = it->get<std::string>();
  return !out.empty() && out.size() <= max;
}

bool get_string_list(const Json& j, const char* key, std::vector<std::string>& out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array() || it->empty() || it->size() > 16) return false;
  for (const auto& e : *it) {
    if (!e.is_string() || e.get<std::string>().empty()) return false;
    out.push_back(e.get<std::string>());
  }
  return true;
}

// The signed offline horizon of a credential object ("offline_until", unix seconds), or the epoch
// when it has none. Malformed values count as none (no offline use), never as an error.
config::WallTime offline_horizon(const Json& obj) {
  auto it = obj.find("offline_until");
  if (it == obj.end() || !it->is_number_unsigned()) return config::WallTime{};
  return config::from_unix_seconds(static_cast<std::int64_t>(it->get<std::uint64_t>()));
}

// config::verify() at `now`; when that fails only because the credential expired and this node
// cannot reach its authority, everything else is verified again at the last valid instant and
// the caller checks the signed horizon (take_horizon()).
Result<config::VerifiedArtifact> verify_credential(std::string_view wire, const TrustView& view,
                                                   config::WallTime now, bool renewable,
                                                   bool& past_expiry) {
  past_expiry = false;
  auto v = config::verify(wire, context(view, now));
  if (v || !renewable || v.error().code != config::errc::expired) return v;
  auto decoded = config::decode_artifact(wire);
  if (!decoded) return v;
  auto at_expiry = context(view, decoded->header.expires_at - std::chrono::seconds(1));
  auto again = config::verify(std::move(*decoded), at_expiry);
  if (!again) return again;
  past_expiry = true;
  return again;
}

bool within_horizon(config::WallTime expires_at, config::WallTime offline_until,
                    config::WallTime now) {
  return offline_until > expires_at && offline_until <= expires_at + kMaxOfflineHorizon &&
         now < offline_until;
}

// Reads the signed horizon into `out` and, for a credential verified past its expiry, requires
// `now` inside it (then out.renewed_offline). Error "<prefix>offline_horizon_passed".
template <class Credential>
Result<void> take_horizon(const Json& obj, bool past_expiry, config::WallTime now,
                          const std::string& prefix, Credential& out) {
  out.offline_until = offline_horizon(obj);
  if (!past_expiry) return {};
  if (!within_horizon(out.expires_at, out.offline_until, now))
    return fail(prefix + "offline_horizon_passed",
                "the credential expired and its offline horizon has passed (or it has none)");
  out.renewed_offline = true;
  return {};
}

}  // namespace

bool usable_at(const Lease& lease, const TrustView& view, config::WallTime now, bool resume) {
  if (now < lease.expires_at) return true;
  return (view.authority_offline || resume) &&
         within_horizon(lease.expires_at, lease.offline_until, now);
}

std::optional<std::size_t> Lease::index_of(std::string_view node) const {
  for (std::size_t i = 0; i < hops.size(); ++i) {
    if (hops[i].node == node) return i;
  }
  return std::nullopt;
}

bool Lease::allows(std::string_view traffic_class) const {
  return std::find(classes.begin(), classes.end(), traffic_class) != classes.end();
}

Result<Lease> verify_lease(std::string_view wire, const TrustView& view, config::WallTime now,
                           bool resume) {
  bool past_expiry = false;
  auto v = verify_credential(wire, view, now, view.authority_offline || resume, past_expiry);
  if (!v) return tl::unexpected(prefixed("lease_", v.error()));
  const auto& a = v->artifact;
  if (a.header.type != config::ArtifactType::route_lease)
    return fail("lease_malformed", "not a route lease");
  auto it = a.payload.find("lease");
  if (it == a.payload.end() || !it->is_object())
    return fail("lease_malformed", "route lease has no lease object");
  const Json& l = *it;
  Lease out;
  out.artifact_id = a.id;
  out.expires_at = a.header.expires_at;
  out.wire = std::string(wire);
  if (!get_string(l, "id", out.id) || !get_string(l, "grant", out.grant) ||
      !get_string(l, "org", out.org) || !get_string(l, "role", out.role) ||
      !get_string_list(l, "classes", out.classes))
    return fail("lease_malformed", "route lease lacks id, grant, org, role or classes");
  auto f = l.find("fence");
  if (f == l.end() || !f->is_number_unsigned())
    return fail("lease_malformed", "route lease lacks its fence");
  out.fence = f->get<std::uint64_t>();
  if (auto h = take_horizon(l, past_expiry, now, "lease_", out); !h)
    return tl::unexpected(h.error());
  out.resume_only = out.renewed_offline && !view.authority_offline;
  auto h = l.find("hops");
  if (h == l.end() || !h->is_array() || h->size() < 2 || h->size() > kMaxHops)
    return fail("lease_malformed", "a route has 2 to 6 hops");
  for (const auto& hop : *h) {
    Hop x;
    std::string pk;
    if (!hop.is_object() || !get_string(hop, "node", x.node) ||
        !get_string(hop, "public_key", pk) || !config::from_hex(pk, x.public_key))
      return fail("lease_malformed", "a hop needs node and public_key");
    if (out.index_of(x.node)) return fail("lease_malformed", "a route visits a node twice");
    out.hops.push_back(std::move(x));
  }
  return out;
}

Result<Grant> verify_grant(std::string_view wire, const TrustView& view, config::WallTime now) {
  bool past_expiry = false;
  auto v = verify_credential(wire, view, now, view.authority_offline, past_expiry);
  if (!v) return tl::unexpected(prefixed("grant_", v.error()));
  const auto& a = v->artifact;
  if (a.header.type != config::ArtifactType::access_grant)
    return fail("grant_malformed", "not an access grant");
  auto it = a.payload.find("grant");
  if (it == a.payload.end() || !it->is_object())
    return fail("grant_malformed", "access grant has no grant object");
  const Json& g = *it;
  Grant out;
  out.artifact_id = a.id;
  out.expires_at = a.header.expires_at;
  out.wire = std::string(wire);
  if (!get_string(g, "id", out.id) || !get_string(g, "user", out.user) ||
      !get_string(g, "org", out.org) || !get_string(g, "resource", out.resource) ||
      !get_string(g, "protocol", out.protocol) || !get_string(g, "target", out.target) ||
      !get_string(g, "entry", out.entry) || !get_string_list(g, "exits", out.exits))
    return fail("grant_malformed", "access grant lacks a required member");
  if (auto h = take_horizon(g, past_expiry, now, "grant_", out); !h)
    return tl::unexpected(h.error());
  return out;
}

Result<Ticket> open_ticket(std::string_view base64, const crypto::Ed25519Key& key) {
  if (base64.empty() || base64.size() > kMaxTicketBytes)
    return fail("bad_ticket", "ticket missing or too large");
  auto sealed = rap::base64_decode(base64);
  if (!sealed) return fail("bad_ticket", "ticket is not base64");
  auto plain = key.open_sealed(*sealed);
  if (!plain) return fail("bad_ticket", "ticket was not sealed for this entry node");
  auto j = Json::parse(*plain, nullptr, false);
  Ticket t;
  if (j.is_discarded() || !j.is_object() || !get_string(j, "grant", t.grant, kMaxTicketBytes) ||
      !get_string_list(j, "leases", t.leases))
    return fail("bad_ticket", "ticket contents are malformed");
  return t;
}

Result<std::string> seal_ticket(const Ticket& ticket, const crypto::PublicKey& entry) {
  Json j{{"grant", ticket.grant}, {"leases", ticket.leases}};
  auto sealed = crypto::seal_to(entry, j.dump());
  if (!sealed) return tl::unexpected(sealed.error());
  return rap::base64_encode(*sealed);
}

}  // namespace rap::mesh
