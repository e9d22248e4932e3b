// Payload rules shared by every artifact type, the type-specific payload shapes, and increments.
//
// Generic rule (checked by the signer and every verifier): a payload is a JSON object whose
// member names are 1..128 bytes without '/'. Every top-level member whose value is an ARRAY is a
// keyed collection: each element is an object with a non-empty string "id", and elements
// are sorted by id in strictly ascending byte order. The same id twice is "duplicate_entry"
// (NACKed like xDS); any other violation is "malformed". Nested arrays are opaque values.
// normalize_payload() sorts collections, so producers can build them in any order.
//
// Type-specific payloads (all other types only follow the generic rule):
//   trust_bundle       {"keys":[{"id":key_id,"public_key":hex32,"status":"active|retired|revoked",
//                                "not_before":unix,"not_after":unix}]}        (trust.h)
//   revocation_list    {"keys":[{"id":key_id}],"nodes":[{"id":node_id}],
//                       "serials":[{"id":"<decimal serial>"}]}                  (trust.h)
//   cluster_snapshot   {"components":[{"id":state_key,"type":..,"scope":{..},"version":n,
//                                      "content_hash":hex}],
//                       "removed":[{"id":state_key,"type":..,"scope":{..},"version":n}], ...}
//   snapshot_increment {"target_type":type,"result_hash":hex,"ops":[op...]} where op is one of
//                        {"id":"<field>","op":"set","value":any}
//                        {"id":"<field>","op":"unset"}
//                        {"id":"<collection>/<key>","op":"upsert","value":{"id":key,...}}
//                        {"id":"<collection>/<key>","op":"remove"}
//
// Increment semantics: field ops (set/unset) apply first, then element ops (upsert inserts or
// replaces the element with that id, remove deletes it; removing a missing element is
// "increment_mismatch"); the result must satisfy the generic rule and its canonical SHA-256 must
// equal result_hash ("increment_mismatch" otherwise). So a chain of increments reproduces
// byte-for-byte the payload a full artifact of the same version would carry.
#pragma once

#include "rap/common/result.h"
#include "rap/config/artifact.h"
#include "rap/config/canonical.h"

namespace rap::config {

// The generic rule; collections must already be sorted.
Result<void> check_payload(const Json& payload);
// Sorts every keyed collection by id, then checks the generic rule.
Result<Json> normalize_payload(Json payload);
// Generic rule plus the shape of `type` (table above).
Result<void> check_payload_for(ArtifactType type, const Json& payload);

// sha256_hex(canonical_encode(payload)).
Result<std::string> content_hash(const Json& payload, std::size_t max_depth = 32);

// One entry of a cluster_snapshot's "components" or "removed".
struct ComponentRef {
  ArtifactType type = ArtifactType::peer_directory;
  Scope scope;
  std::uint64_t version = 0;
  std::string content_hash;  // empty for removal records
  Json to_json() const;
};
struct SnapshotContents {
  std::vector<ComponentRef> components;
  std::vector<ComponentRef> removed;
};
Result<SnapshotContents> snapshot_contents(const Json& cluster_snapshot_payload);
// Builds a cluster_snapshot payload (sorted). Extra top-level members may be added afterwards.
Json make_snapshot_payload(const std::vector<ComponentRef>& components,
                           const std::vector<ComponentRef>& removed = {});

// The increment payload turning `from` into `to` (both must satisfy the generic rule): the
// changed top-level fields and the upserted/removed elements of keyed collections.
Result<Json> make_increment_payload(ArtifactType target, const Json& from, const Json& to);
// Applies an increment payload to `base`; checks the result against result_hash.
Result<Json> apply_increment_payload(const Json& base, const Json& increment);
// The target type named by an increment payload.
Result<ArtifactType> increment_target(const Json& increment);

}  // namespace rap::config
