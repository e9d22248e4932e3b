// Artifacts: encoding, signing and every rejection rule of verify(), each with a real signed
// artifact tampered in one way.
#include <gtest/gtest.h>

#include "config_test_util.h"
#include "rap/config/errors.h"

using namespace rap::config;
using namespace rap::config::testing;

namespace {

class Verify : public ConfigFixture {
 protected:
  Artifact peers(std::uint64_t version = 1, Scope scope = Scope::node("n1"), int seed = 0) {
    return sign(
        draft(ArtifactType::peer_directory, std::move(scope), version, peers_payload(4, seed)));
  }
  // verify() of `a` (as wire bytes) in the default context; returns the error code or "ok".
  std::string code(const Artifact& a, VerifyContext c) { return code(wire(a), std::move(c)); }
  std::string code(const std::string& bytes, VerifyContext c) {
    auto r = verify(bytes, c);
    return r ? std::string("ok") : r.error().code;
  }
  // Re-encodes the wire JSON of `a` after `edit` (no re-signing).
  template <class F>
  std::string edited(const Artifact& a, F edit) {
    Json j = *parse_strict(wire(a));
    edit(j);
    return j.dump();
  }
};

}  // namespace

TEST_F(Verify, SignEncodeDecodeRoundTrip) {
  const Artifact a = peers();
  const std::string w = wire(a);
  auto d = decode_artifact(w);
  ASSERT_TRUE(d.has_value()) << d.error().message;
  EXPECT_EQ(d->id, a.id);
  EXPECT_EQ(d->signature, a.signature);
  EXPECT_EQ(d->payload, a.payload);
  EXPECT_EQ(signing_bytes(d->header), signing_bytes(a.header));
  EXPECT_EQ(wire(*d), w);  // the wire form is canonical
  EXPECT_EQ(a.id, artifact_id(a.header));
  EXPECT_EQ(a.header.content_hash, *content_hash(a.payload));
  EXPECT_EQ(a.header.signer_key_id.size(), 16u);
  EXPECT_EQ(a.header.signer_key_id, key_id_for(signer_.public_key()));
  auto v = verify(w, ctx(anchors()));
  ASSERT_TRUE(v.has_value()) << v.error().code << ": " << v.error().message;
  EXPECT_EQ(v->state_key, "peer_directory@node:n1");
  EXPECT_FALSE(v->unchanged);
}

TEST_F(Verify, SignedBytesAreExactlyTheDocumentedHeader) {
  ArtifactHeader h;
  h.type = ArtifactType::snapshot_increment;
  h.cluster = "c1";
  h.scope = Scope{ScopeKind::node, {"n1", "n2"}};
  h.version = 8;
  h.base_version = 7;
  h.epoch = 3;
  h.issued_at = from_unix_seconds(1700000000);
  h.expires_at = from_unix_seconds(1700086400);
  h.signer_key_id = "0123456789abcdef";
  h.content_hash = std::string(64, 'a');
  const std::string expected =
      std::string("RAP-CONFIG-ARTIFACT-V1") + '\0' +
      R"({"base_version":7,"cluster":"c1","content_hash":")" + std::string(64, 'a') +
      R"(","epoch":3,"expires_at":1700086400,"format":"rap-config-v1","issued_at":1700000000,)"
      R"("scope":{"ids":["n1","n2"],"kind":"node"},"signer":"0123456789abcdef",)"
      R"("type":"snapshot_increment","version":8})";
  EXPECT_EQ(signing_bytes(h), expected);
  EXPECT_EQ(artifact_id(h), sha256_hex(expected));
}

TEST_F(Verify, Malformed) {
  const Artifact a = peers();
  const std::string w = wire(a);
  EXPECT_EQ(code(w.substr(0, w.size() - 1), ctx(anchors())), errc::malformed);
  EXPECT_EQ(code(edited(a, [](Json& j) { j["extra"] = 1; }), ctx(anchors())), errc::malformed);
  EXPECT_EQ(code(edited(a, [](Json& j) { j.erase("epoch"); }), ctx(anchors())), errc::malformed);
  EXPECT_EQ(code(edited(a, [](Json& j) { j["type"] = "nope"; }), ctx(anchors())), errc::malformed);
  EXPECT_EQ(code(edited(a, [](Json& j) { j["version"] = "1"; }), ctx(anchors())), errc::malformed);
  EXPECT_EQ(code(edited(a, [](Json& j) { j["version"] = 0; }), ctx(anchors())), errc::malformed);
  EXPECT_EQ(code(edited(a, [](Json& j) { j["payload"] = Json::array(); }), ctx(anchors())),
            errc::malformed);
  EXPECT_EQ(code(edited(a,
                        [](Json& j) {
                          j["scope"]["ids"] = {"n2", "n1"};
                        }),
                 ctx(anchors())),
            errc::malformed);
  // Timestamps beyond what a nanosecond time point holds.
  EXPECT_EQ(
      code(edited(a, [](Json& j) { j["expires_at"] = std::int64_t{1} << 40; }), ctx(anchors())),
      errc::malformed);
  // A float anywhere, even where a hash would not notice it.
  std::string with_float = w;
  with_float.replace(with_float.find("\"weight\":100"), 12, "\"weight\":100.0");
  EXPECT_EQ(code(with_float, ctx(anchors())), errc::malformed);
  // Duplicate JSON key in the envelope.
  EXPECT_EQ(code("{\"epoch\":1," + w.substr(1), ctx(anchors())), errc::malformed);
  // A payload array that is not a keyed collection, signed for real.
  Artifact bad = a;
  bad.payload["list"] = Json::array({1, 2});
  EXPECT_EQ(code(force_sign(bad, key_), ctx(anchors())), errc::malformed);
  // Base version on a full artifact.
  Artifact based = a;
  based.header.base_version = 3;
  EXPECT_EQ(code(force_sign(based, key_), ctx(anchors())), errc::malformed);
}

TEST_F(Verify, BadSignature) {
  Artifact a = peers();
  Artifact flipped = a;
  flipped.signature[10] ^= 0x01;
  EXPECT_EQ(code(flipped, ctx(anchors())), errc::bad_signature);
  // Any signed header field changed after signing.
  EXPECT_EQ(code(edited(a, [](Json& j) { j["version"] = 2; }), ctx(anchors())),
            errc::bad_signature);
  EXPECT_EQ(code(edited(a, [](Json& j) { j["expires_at"] = j["expires_at"].get<int>() + 3600; }),
                 ctx(anchors())),
            errc::bad_signature);
  EXPECT_EQ(code(edited(a,
                        [](Json& j) {
                          j["scope"]["ids"] = {"n1", "n9"};
                        }),
                 ctx(anchors())),
            errc::bad_signature);
  // A signature by another key under this key's id.
  Artifact other = force_sign(a, new_key());
  other.header.signer_key_id = a.header.signer_key_id;
  other.id = artifact_id(other.header);
  EXPECT_EQ(code(other, ctx(anchors())), errc::bad_signature);
}

TEST_F(Verify, UnknownSigner) {
  Signer stranger("c1", new_key());
  EXPECT_EQ(code(sign(stranger,
                      draft(ArtifactType::peer_directory, Scope::node("n1"), 1, peers_payload(2))),
                 ctx(anchors())),
            errc::unknown_signer);
}

TEST_F(Verify, RevokedSigner) {
  const Artifact a = peers();
  auto revoked =
      TrustStore::from_keys({signer_.trusted_key(kNow - 24h, kNow + 24h, KeyStatus::revoked)});
  EXPECT_EQ(code(a, ctx(*revoked)), errc::revoked_signer);
  const TrustStore trust = anchors();
  Revocations rl;
  rl.key_ids.insert(signer_.key_id());
  VerifyContext c = ctx(trust);
  c.revocations = &rl;
  EXPECT_EQ(code(a, c), errc::revoked_signer);
}

TEST_F(Verify, SignerOutsideItsValidity) {
  const Artifact a = peers();
  auto old =
      TrustStore::from_keys({signer_.trusted_key(kNow - 48h, kNow - 1h, KeyStatus::retired)});
  EXPECT_EQ(code(a, ctx(*old)), errc::signer_expired);
  auto future = TrustStore::from_keys({signer_.trusted_key(kNow + 1h, kNow + 48h)});
  EXPECT_EQ(code(a, ctx(*future)), errc::signer_expired);
}

TEST_F(Verify, HashMismatch) {
  const Artifact a = peers();
  // Payload changed after signing (header and signature intact).
  EXPECT_EQ(
      code(edited(a, [](Json& j) { j["payload"]["peers"][0]["weight"] = 1; }), ctx(anchors())),
      errc::hash_mismatch);
  EXPECT_EQ(code(edited(a, [](Json& j) { j["payload"].erase("generation"); }), ctx(anchors())),
            errc::hash_mismatch);
  // Id that is not the hash of the signed header.
  EXPECT_EQ(code(edited(a, [](Json& j) { j["id"] = std::string(64, '0'); }), ctx(anchors())),
            errc::hash_mismatch);
}

TEST_F(Verify, WrongCluster) {
  Signer other_cluster("c2", key_);  // same key used for another cluster
  EXPECT_EQ(code(sign(other_cluster,
                      draft(ArtifactType::peer_directory, Scope::node("n1"), 1, peers_payload(2))),
                 ctx(anchors())),
            errc::wrong_cluster);
}

TEST_F(Verify, WrongScope) {
  EXPECT_EQ(code(peers(1, Scope::node("n2")), ctx(anchors())), errc::wrong_scope);
  EXPECT_EQ(code(peers(1, Scope{ScopeKind::node, {"n1", "n2"}}), ctx(anchors())), "ok");
  EXPECT_EQ(code(peers(1, Scope::org("org-a")), ctx(anchors())), "ok");
  EXPECT_EQ(code(peers(1, Scope::org("org-b")), ctx(anchors())), errc::wrong_scope);
  // An artifact spanning another organization is refused even though it covers ours.
  EXPECT_EQ(code(peers(1, Scope{ScopeKind::org, {"org-a", "org-b"}}), ctx(anchors())),
            errc::wrong_scope);
  EXPECT_EQ(code(peers(1, Scope::service("svc-rdp")), ctx(anchors())), "ok");
  EXPECT_EQ(code(peers(1, Scope::service("svc-vpn")), ctx(anchors())), errc::wrong_scope);
}

TEST_F(Verify, StaleEpoch) {
  const Artifact a = sign(
      draft(ArtifactType::peer_directory, Scope::node("n1"), 1, peers_payload(2), /*epoch=*/4));
  const TrustStore trust = anchors();
  VerifyContext c = ctx(trust);
  c.min_epoch = 4;
  EXPECT_EQ(code(a, c), "ok");
  c.min_epoch = 5;
  EXPECT_EQ(code(a, c), errc::stale_epoch);
}

TEST_F(Verify, ExpiredAndNotYetValid) {
  auto d = draft(ArtifactType::peer_directory, Scope::node("n1"), 1, peers_payload(2));
  d.issued_at = kNow - 48h;
  d.expires_at = kNow;
  EXPECT_EQ(code(sign(d), ctx(anchors())), errc::expired);
  d.issued_at = kNow + 10min;
  d.expires_at = kNow + 48h;
  EXPECT_EQ(code(sign(d), ctx(anchors())), errc::not_yet_valid);
  d.issued_at = kNow + 30s;  // within the tolerated clock skew
  EXPECT_EQ(code(sign(d), ctx(anchors())), "ok");
}

TEST_F(Verify, ReplayAndIdempotentRedelivery) {
  const Artifact v2 = peers(2, Scope::node("n1"), 0);
  const TrustStore trust = anchors();
  AppliedVersions applied;
  applied["peer_directory@node:n1"] = AppliedVersion{3, std::string(64, 'b'), false};
  VerifyContext c = ctx(trust);
  c.applied = &applied;
  EXPECT_EQ(code(v2, c), errc::replay);  // older
  applied["peer_directory@node:n1"] = AppliedVersion{2, std::string(64, 'b'), false};
  EXPECT_EQ(code(v2, c), errc::replay);  // same version, other content
  applied["peer_directory@node:n1"] = AppliedVersion{2, v2.header.content_hash, false};
  auto same = verify(wire(v2), c);
  ASSERT_TRUE(same.has_value());
  EXPECT_TRUE(same->unchanged);  // same version, same content: no-op
  applied["peer_directory@node:n1"] = AppliedVersion{2, v2.header.content_hash, true};
  EXPECT_EQ(code(v2, c), errc::replay);  // at a removal tombstone
  applied["peer_directory@node:n1"] = AppliedVersion{1, std::string(64, 'b'), false};
  EXPECT_EQ(code(v2, c), "ok");
}

TEST_F(Verify, DuplicateEntry) {
  Artifact a = peers();
  a.payload["peers"][1]["id"] = a.payload["peers"][0]["id"];
  EXPECT_EQ(code(force_sign(a, key_), ctx(anchors())), errc::duplicate_entry);
  // The signer refuses to produce it in the first place.
  auto d = draft(ArtifactType::peer_directory, Scope::node("n1"), 1, a.payload);
  auto refused = signer_.sign(d);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, errc::duplicate_entry);
  // Unsorted collections are normalized by the signer but refused on the wire.
  Artifact unsorted = peers();
  std::swap(unsorted.payload["peers"][0], unsorted.payload["peers"][1]);
  EXPECT_EQ(code(force_sign(unsorted, key_), ctx(anchors())), errc::malformed);
}

TEST_F(Verify, IncrementSequenceRules) {
  const Json base = peers_payload(5, 0);
  const Json next = peers_payload(5, 1);
  const TrustStore trust = anchors();
  AppliedVersions applied;
  VerifyContext c = ctx(trust);
  c.applied = &applied;
  auto inc = signer_.sign_increment(ArtifactType::peer_directory, Scope::node("n1"), 4, base, next,
                                    1, kNow - 1h, kNow + 1h);
  ASSERT_TRUE(inc.has_value()) << inc.error().message;
  EXPECT_EQ(code(*inc, c), errc::gap_needs_full_refresh);  // nothing applied
  applied["peer_directory@node:n1"] = AppliedVersion{3, "x", false};
  EXPECT_EQ(code(*inc, c), errc::gap_needs_full_refresh);  // base 4, applied 3
  applied["peer_directory@node:n1"] = AppliedVersion{5, "x", false};
  EXPECT_EQ(code(*inc, c), errc::replay);  // already past it
  applied["peer_directory@node:n1"] = AppliedVersion{4, "x", false};
  auto ok = verify(wire(*inc), c);
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(ok->target_type, ArtifactType::peer_directory);
  EXPECT_EQ(ok->state_key, "peer_directory@node:n1");
  // version != base + 1, signed for real.
  Artifact skip = *inc;
  skip.header.version = 6;
  EXPECT_EQ(code(force_sign(skip, key_), c), errc::non_sequential);
}

TEST_F(Verify, TrustedKeyValidityMustBeRepresentable) {
  auto forever =
      TrustStore::from_keys({signer_.trusted_key(kNow, from_unix_seconds(kMaxUnixSeconds + 1))});
  ASSERT_FALSE(forever.has_value());
  EXPECT_EQ(forever.error().code, errc::malformed);
  auto d = draft(ArtifactType::peer_directory, Scope::node("n1"), 1, peers_payload(2));
  d.expires_at = from_unix_seconds(kMaxUnixSeconds + 1);
  EXPECT_FALSE(signer_.sign(d).has_value());
}

TEST_F(Verify, TrustBundleAndRevocationListAreClusterScoped) {
  auto d = draft(ArtifactType::trust_bundle, Scope::node("n1"), 1, anchors().to_payload());
  auto r = signer_.sign(d);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::malformed);
  // A trust bundle whose key id is not derived from its key.
  Json bad = anchors().to_payload();
  bad["keys"][0]["id"] = "0000000000000000";
  auto r2 = signer_.sign(draft(ArtifactType::trust_bundle, Scope::cluster(), 1, bad));
  ASSERT_FALSE(r2.has_value());
  EXPECT_EQ(r2.error().code, errc::malformed);
}
