// Stable error codes (rap::Error::code) of the signed configuration layer. Every rejection of an
// artifact, batch or persisted state carries exactly one of these codes; the message says why.
// The agent reports the code in its NACK (xDS style) and keeps its last valid state.
#pragma once

namespace rap::config::errc {

// Not a well-formed artifact: not strict JSON (floats, duplicate keys, invalid UTF-8, too deep or
// too large), unknown or missing fields, bad ids, a payload of the wrong shape.
inline constexpr char malformed[] = "malformed";
// The Ed25519 signature does not verify over the signed header bytes.
inline constexpr char bad_signature[] = "bad_signature";
// The signer key id is not in the trust store.
inline constexpr char unknown_signer[] = "unknown_signer";
// The signer key is revoked (trust bundle status "revoked" or listed by the revocation list).
inline constexpr char revoked_signer[] = "revoked_signer";
// The signer key is outside its validity window (not_before / not_after) at `now`.
inline constexpr char signer_expired[] = "signer_expired";
// The payload's canonical SHA-256 differs from the signed content hash, or the artifact id is
// not the hash of the signed header.
inline constexpr char hash_mismatch[] = "hash_mismatch";
// Signed for another cluster.
inline constexpr char wrong_cluster[] = "wrong_cluster";
// Scoped to a node, organization or service this node does not serve.
inline constexpr char wrong_scope[] = "wrong_scope";
// Authority epoch below the minimum (caller's and the highest already applied).
inline constexpr char stale_epoch[] = "stale_epoch";
// Version lower than the applied one, or equal with a different content hash.
inline constexpr char replay[] = "replay";
// now >= expires_at.
inline constexpr char expired[] = "expired";
// now + clock skew < issued_at.
inline constexpr char not_yet_valid[] = "not_yet_valid";
// A keyed collection of the payload lists the same id twice.
inline constexpr char duplicate_entry[] = "duplicate_entry";
// An increment whose base is not the applied version (or nothing applied): fetch a full snapshot.
inline constexpr char gap_needs_full_refresh[] = "gap_needs_full_refresh";
// An increment whose version is not base_version + 1.
inline constexpr char non_sequential[] = "non_sequential";
// Applying an increment does not reproduce its signed result hash (or removes a missing entry).
inline constexpr char increment_mismatch[] = "increment_mismatch";
// A cluster snapshot omits a component the previous snapshot listed, without a removal record.
inline constexpr char component_dropped[] = "component_dropped";
// A cluster snapshot lists a component (or a removal) at a version lower than one already
// listed or applied, or the same version with another hash.
inline constexpr char rollback[] = "rollback";
// A cluster snapshot lists a component that is neither applied nor in the batch at that version.
inline constexpr char missing_component[] = "missing_component";
// A cluster snapshot lists a component whose applied content hash differs from the listed one.
inline constexpr char component_mismatch[] = "component_mismatch";
// Persisted ConfigState that does not parse or whose payloads do not match their hashes.
inline constexpr char state_corrupt[] = "state_corrupt";

}  // namespace rap::config::errc
