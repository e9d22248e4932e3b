// Shared fixture of the rap_config tests: a cluster signing key, a node, and helpers that build
// real signed artifacts (and deliberately broken ones).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <span>
#include <string>
#include <vector>

#include "rap/config/artifact.h"
#include "rap/config/payload.h"
#include "rap/config/signer.h"
#include "rap/config/state.h"
#include "rap/config/trust.h"
#include "rap/config/verifier.h"

namespace rap::config::testing {

using namespace std::chrono_literals;

inline const WallTime kNow = from_unix_seconds(1'800'000'000);

inline crypto::Ed25519Key new_key() {
  auto k = crypto::Ed25519Key::generate();
  RAP_ASSERT(k.has_value());
  return std::move(*k);
}

// A payload with `n` keyed entries of a realistic size (~150 bytes each).
inline Json peers_payload(int n, int seed = 0) {
  Json peers = Json::array();
  for (int i = 0; i < n; ++i) {
    peers.push_back(Json{
        {"id", "node-" + std::to_string(100000 + i)},
        {"addr", "10." + std::to_string(i / 256 % 256) + "." + std::to_string(i % 256) + ".7:7443"},
        {"region", i % 3 == 0 ? "eu-west" : "us-east"},
        {"weight", 100 + ((i + seed) % 7)},
        {"roles", Json::array({"core", "relay"})}});
  }
  return Json{{"generation", seed}, {"peers", std::move(peers)}};
}

inline std::string wire(const Artifact& a) {
  auto w = encode_artifact(a);
  RAP_ASSERT(w.has_value());
  return *w;
}

class ConfigFixture : public ::testing::Test {
 protected:
  ConfigFixture() : key_(new_key()), signer_("c1", key_) {}

  TrustStore anchors() const {
    auto t = TrustStore::from_keys({signer_.trusted_key(kNow - 24h, kNow + 365 * 24h)});
    RAP_ASSERT(t.has_value());
    return *t;
  }
  NodeScope node() const { return NodeScope{"n1", {"org-a"}, {"svc-rdp"}}; }
  ConfigState state() const { return ConfigState("c1", node(), anchors()); }

  VerifyContext ctx(const TrustStore& trust) const {
    VerifyContext c;
    c.cluster_id = "c1";
    c.node = node();
    c.trust = &trust;
    c.now = kNow;
    return c;
  }

  static ArtifactDraft draft(ArtifactType type, Scope scope, std::uint64_t version, Json payload,
                             std::uint64_t epoch = 1) {
    ArtifactDraft d;
    d.type = type;
    d.scope = std::move(scope);
    d.version = version;
    d.epoch = epoch;
    d.issued_at = kNow - 1h;
    d.expires_at = kNow + 24h;
    d.payload = std::move(payload);
    return d;
  }

  Artifact sign(const Signer& s, ArtifactDraft d) const {
    auto a = s.sign(std::move(d));
    EXPECT_TRUE(a.has_value()) << a.error().code << ": " << a.error().message;
    return std::move(*a);
  }
  Artifact sign(ArtifactDraft d) const { return sign(signer_, std::move(d)); }

  // A valid payload for any full type.
  static Json payload_for(ArtifactType t, int seed = 0) {
    switch (t) {
      case ArtifactType::cluster_snapshot:
        return make_snapshot_payload({});
      case ArtifactType::trust_bundle:
        return Json{{"keys", Json::array()}};
      case ArtifactType::revocation_list:
        return Revocations{{}, {"node-" + std::to_string(seed)}, {}}.to_payload();
      default:
        return peers_payload(3, seed);
    }
  }
  static Scope scope_for(ArtifactType t) {
    return (t == ArtifactType::trust_bundle || t == ArtifactType::revocation_list ||
            t == ArtifactType::cluster_snapshot)
               ? Scope::cluster()
               : Scope::node("n1");
  }

  // Re-signs `a` exactly as given (no normalization or checks) with `key`: for forged
  // artifacts that the Signer refuses to produce.
  static Artifact force_sign(Artifact a, const crypto::Ed25519Key& key) {
    auto hash = content_hash(a.payload);
    RAP_ASSERT(hash.has_value());
    a.header.content_hash = *hash;
    a.header.signer_key_id = key_id_for(key.public_key());
    const std::string msg = signing_bytes(a.header);
    a.signature =
        key.sign(std::span(reinterpret_cast<const std::uint8_t*>(msg.data()), msg.size()));
    a.id = artifact_id(a.header);
    return a;
  }

  crypto::Ed25519Key key_;
  Signer signer_;
};

}  // namespace rap::config::testing
