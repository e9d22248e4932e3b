// ConfigState: all-or-nothing batches, increments, snapshots, rollback, rotation, persistence.
#include <gtest/gtest.h>

#include "config_test_util.h"
#include "rap/config/errors.h"

using namespace rap::config;
using namespace rap::config::testing;

namespace {

class Apply : public ConfigFixture {
 protected:
  std::string full(ArtifactType t, std::uint64_t version, Json payload, Scope scope,
                   std::uint64_t epoch = 1) {
    return wire(sign(draft(t, std::move(scope), version, std::move(payload), epoch)));
  }
  std::string peers(std::uint64_t version, int seed, int n = 4) {
    return full(ArtifactType::peer_directory, version, peers_payload(n, seed), Scope::node("n1"));
  }
  std::string increment(std::uint64_t base, const Json& from, const Json& to) {
    auto a = signer_.sign_increment(ArtifactType::peer_directory, Scope::node("n1"), base, from, to,
                                    1, kNow - 1h, kNow + 24h);
    EXPECT_TRUE(a.has_value()) << a.error().message;
    return wire(*a);
  }
  static ComponentRef ref(ArtifactType t, Scope s, std::uint64_t v, const Json& payload) {
    return ComponentRef{t, std::move(s), v, *content_hash(payload)};
  }
  std::string snapshot(std::uint64_t version, const std::vector<ComponentRef>& comps,
                       const std::vector<ComponentRef>& removed = {}) {
    return full(ArtifactType::cluster_snapshot, version, make_snapshot_payload(comps, removed),
                Scope::node("n1"));
  }
  static std::string apply_code(ConfigState& s, std::vector<std::string> batch,
                                std::uint64_t min_epoch = 0) {
    auto r = s.apply(batch, kNow, min_epoch);
    return r ? std::string("ok") : r.error().code;
  }
};

}  // namespace

TEST_F(Apply, AppliesASnapshotWithItsComponents) {
  ConfigState s = state();
  const Json p = peers_payload(4, 0);
  const Json svc = peers_payload(2, 9);
  std::vector<std::string> batch = {
      snapshot(1,
               {ref(ArtifactType::peer_directory, Scope::node("n1"), 1, p),
                ref(ArtifactType::service_assignment_bundle, Scope::service("svc-rdp"), 1, svc)}),
      full(ArtifactType::peer_directory, 1, p, Scope::node("n1")),
      full(ArtifactType::service_assignment_bundle, 1, svc, Scope::service("svc-rdp")),
  };
  auto r = s.apply(batch, kNow);
  ASSERT_TRUE(r.has_value()) << r.error().code << ": " << r.error().message;
  EXPECT_EQ(r->changed.size(), 3u);
  EXPECT_EQ(r->changed.back(), "cluster_snapshot@node:n1");  // snapshot checked last
  ASSERT_NE(s.payload(ArtifactType::peer_directory, Scope::node("n1")), nullptr);
  EXPECT_EQ(*s.payload(ArtifactType::peer_directory, Scope::node("n1")), p);
  EXPECT_EQ(s.find(ArtifactType::peer_directory, Scope::node("n1"))->version, 1u);
  // Re-delivering the same batch is a no-op.
  auto again = s.apply(batch, kNow);
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->changed.empty());
  EXPECT_EQ(again->unchanged.size(), 3u);
}

TEST_F(Apply, FailedBatchLeavesStateUntouched) {
  ConfigState s = state();
  ASSERT_EQ(apply_code(s, {peers(1, 0)}), "ok");
  const std::string before = s.serialize();
  // Valid artifacts before and after a bad one: nothing of the batch is applied.
  std::string tampered = peers(3, 2);
  tampered.replace(tampered.find("eu-west"), 7, "eu-east");
  std::vector<std::string> batch = {
      peers(2, 1),
      full(ArtifactType::route_policy_bundle, 1, peers_payload(2), Scope::node("n1")),
      tampered,
      full(ArtifactType::qos_policy_bundle, 1, peers_payload(2), Scope::node("n1")),
  };
  auto r = s.apply(batch, kNow);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::hash_mismatch);
  EXPECT_NE(r.error().message.find("batch item 2"), std::string::npos) << r.error().message;
  EXPECT_EQ(s.serialize(), before);
  EXPECT_EQ(s.find(ArtifactType::route_policy_bundle, Scope::node("n1")), nullptr);
  // A failure found only at commit time (snapshot check) is all-or-nothing too.
  auto r2 =
      s.apply(std::vector<std::string>{peers(2, 1),
                                       snapshot(1, {ref(ArtifactType::qos_policy_bundle,
                                                        Scope::node("n1"), 1, peers_payload(2))})},
              kNow);
  ASSERT_FALSE(r2.has_value());
  EXPECT_EQ(r2.error().code, errc::missing_component);
  EXPECT_EQ(s.serialize(), before);
}

TEST_F(Apply, RollbackRefusedForEveryType) {
  for (ArtifactType t : kAllArtifactTypes) {
    SCOPED_TRACE(std::string(to_string(t)));
    ConfigState s = state();
    if (t == ArtifactType::snapshot_increment) {
      const Json v1 = peers_payload(3, 0), v2 = peers_payload(3, 1), v3 = peers_payload(3, 2);
      ASSERT_EQ(apply_code(s, {peers(1, 0, 3), increment(1, v1, v2), increment(2, v2, v3)}), "ok");
      EXPECT_EQ(apply_code(s, {increment(1, v1, v2)}), errc::replay);
      continue;
    }
    const Scope scope = scope_for(t);
    Json p2 = payload_for(t, 2);
    if (t == ArtifactType::trust_bundle) p2 = anchors().to_payload();  // keep our key
    ASSERT_EQ(apply_code(s, {full(t, 2, p2, scope)}), "ok");
    EXPECT_EQ(apply_code(s, {full(t, 1, payload_for(t, 1), scope)}), errc::replay);
    // Same version, different content: equivocation.
    Json p2b = payload_for(t, 3);
    if (t == ArtifactType::trust_bundle) {
      p2b = anchors().to_payload();
      p2b["keys"][0]["not_after"] = p2b["keys"][0]["not_after"].get<std::int64_t>() + 1;
    }
    if (t == ArtifactType::cluster_snapshot) p2b["note"] = "other";
    EXPECT_EQ(apply_code(s, {full(t, 2, p2b, scope)}), errc::replay);
    EXPECT_EQ(apply_code(s, {full(t, 3, p2b, scope)}), "ok");
  }
}

TEST_F(Apply, IncrementChainReproducesTheFullSnapshot) {
  const Json v1 = peers_payload(1000, 0);
  Json v2 = v1;
  v2["peers"][500]["weight"] = 7;  // one entry changes
  Json v3 = v2;
  v3["peers"].erase(v3["peers"].begin() + 10);                                    // one removed
  v3["peers"].push_back(Json{{"id", "node-999999"}, {"addr", "10.9.9.9:7443"}});  // one added
  v3 = *normalize_payload(v3);
  v3["generation"] = 3;

  ConfigState chain = state();
  ASSERT_EQ(apply_code(chain, {peers(1, 0, 1000)}), "ok");
  ASSERT_EQ(apply_code(chain, {increment(1, v1, v2)}), "ok");
  ASSERT_EQ(apply_code(chain, {increment(2, v2, v3)}), "ok");
  const AppliedEntry* e = chain.find(ArtifactType::peer_directory, Scope::node("n1"));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->version, 3u);

  // The full artifact of version 3 has exactly the same canonical payload and hash.
  const Artifact full3 = sign(draft(ArtifactType::peer_directory, Scope::node("n1"), 3, v3));
  EXPECT_EQ(e->content_hash, full3.header.content_hash);
  EXPECT_EQ(*canonical_encode(*e->payload), *canonical_encode(full3.payload));
  ConfigState fresh = state();
  ASSERT_EQ(apply_code(fresh, {wire(full3)}), "ok");
  EXPECT_EQ(fresh.find(ArtifactType::peer_directory, Scope::node("n1"))->content_hash,
            e->content_hash);

  // The whole chain in one batch, in any order, gives the same result.
  ConfigState batch = state();
  ASSERT_EQ(apply_code(batch, {increment(2, v2, v3), increment(1, v1, v2), peers(1, 0, 1000)}),
            "ok");
  EXPECT_EQ(batch.find(ArtifactType::peer_directory, Scope::node("n1"))->content_hash,
            e->content_hash);
}

TEST_F(Apply, IncrementRedeliveryIsIdempotent) {
  const Json v1 = peers_payload(5, 0), v2 = peers_payload(5, 1), v3 = peers_payload(5, 2);
  ConfigState s = state();
  const std::string i12 = increment(1, v1, v2);
  const std::string i23 = increment(2, v2, v3);
  ASSERT_EQ(apply_code(s, {peers(1, 0, 5), i12}), "ok");
  // Storage hands out the chain again from an older base: the applied step is a no-op.
  auto r = s.apply(std::vector<std::string>{i12, i23}, kNow);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->unchanged.size(), 1u);
  EXPECT_EQ(r->changed.size(), 1u);
  EXPECT_EQ(*s.payload(ArtifactType::peer_directory, Scope::node("n1")), v3);
  // Older than applied: replay.
  EXPECT_EQ(apply_code(s, {i12}), errc::replay);
}

TEST_F(Apply, IncrementCoversFieldsAndWholeCollections) {
  const Json from = {{"a", 1},
                     {"keep", 7},
                     {"gone", Json::array({Json{{"id", "x"}}})},
                     {"peers", Json::array({Json{{"id", "p1"}}, Json{{"id", "p2"}, {"w", 1}}})},
                     {"shape", Json::array({Json{{"id", "s"}}})}};
  const Json to = {{"b", Json{{"nested", Json::array({1, 2})}}},
                   {"fresh", Json::array({Json{{"id", "y"}}})},
                   {"keep", 7},
                   {"peers", Json::array({Json{{"id", "p2"}, {"w", 2}}, Json{{"id", "p3"}}})},
                   {"shape", "now a string"}};
  auto inc = make_increment_payload(ArtifactType::peer_directory, from, to);
  ASSERT_TRUE(inc.has_value()) << inc.error().message;
  auto out = apply_increment_payload(from, *inc);
  ASSERT_TRUE(out.has_value()) << out.error().message;
  EXPECT_EQ(*canonical_encode(*out), *canonical_encode(to));
  // Applied to a different base it does not reproduce its result.
  Json other = from;
  other["keep"] = 8;
  auto bad = apply_increment_payload(other, *inc);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, errc::increment_mismatch);
}

TEST_F(Apply, GapNeedsFullRefresh) {
  const Json v1 = peers_payload(5, 0), v2 = peers_payload(5, 1), v3 = peers_payload(5, 2);
  ConfigState s = state();
  ASSERT_EQ(apply_code(s, {peers(1, 0, 5)}), "ok");
  EXPECT_EQ(apply_code(s, {increment(2, v2, v3)}), errc::gap_needs_full_refresh);  // missed v2
  EXPECT_EQ(s.find(ArtifactType::peer_directory, Scope::node("n1"))->version, 1u);
  // The full refresh jumps straight to v3; later increments chain from there.
  ASSERT_EQ(apply_code(s, {full(ArtifactType::peer_directory, 3, v3, Scope::node("n1"))}), "ok");
  ASSERT_EQ(apply_code(s, {increment(3, v3, v1)}), "ok");
  EXPECT_EQ(*s.payload(ArtifactType::peer_directory, Scope::node("n1")), v1);
  // Increment for a (type, scope) never applied.
  auto orphan = signer_.sign_increment(ArtifactType::route_policy_bundle, Scope::node("n1"), 1, v1,
                                       v2, 1, kNow - 1h, kNow + 1h);
  EXPECT_EQ(apply_code(s, {wire(*orphan)}), errc::gap_needs_full_refresh);
}

TEST_F(Apply, NonSequentialIncrementRefused) {
  const Json v1 = peers_payload(5, 0), v2 = peers_payload(5, 1);
  ConfigState s = state();
  ASSERT_EQ(apply_code(s, {peers(1, 0, 5)}), "ok");
  auto inc = signer_.sign_increment(ArtifactType::peer_directory, Scope::node("n1"), 1, v1, v2, 1,
                                    kNow - 1h, kNow + 1h);
  Artifact skip = *inc;
  skip.header.version = 3;  // 1 -> 3
  EXPECT_EQ(apply_code(s, {wire(force_sign(skip, key_))}), errc::non_sequential);
}

TEST_F(Apply, IncrementThatDoesNotReproduceItsHashIsRefused) {
  const Json v1 = peers_payload(5, 0), v2 = peers_payload(5, 1);
  ConfigState s = state();
  ASSERT_EQ(apply_code(s, {peers(1, 0, 5)}), "ok");
  Json inc = *make_increment_payload(ArtifactType::peer_directory, v1, v2);
  inc["result_hash"] = std::string(64, 'c');
  auto d = draft(ArtifactType::snapshot_increment, Scope::node("n1"), 2, inc);
  d.base_version = 1;
  EXPECT_EQ(apply_code(s, {wire(sign(d))}), errc::increment_mismatch);
  // Removing an entry the base does not have.
  Json rm = *make_increment_payload(ArtifactType::peer_directory, v1, v2);
  rm["ops"].push_back(Json{{"id", "peers/node-nope"}, {"op", "remove"}});
  d.payload = *normalize_payload(rm);
  EXPECT_EQ(apply_code(s, {wire(sign(d))}), errc::increment_mismatch);
  EXPECT_EQ(s.find(ArtifactType::peer_directory, Scope::node("n1"))->version, 1u);
}

TEST_F(Apply, IncrementIsSmallForAOneEntryChange) {
  const Json v1 = peers_payload(1000, 0);
  Json v2 = v1;
  v2["peers"][123]["addr"] = "192.0.2.1:7443";
  const std::string full_bytes = full(ArtifactType::peer_directory, 2, v2, Scope::node("n1"));
  const std::string inc_bytes = increment(1, v1, v2);
  EXPECT_LT(inc_bytes.size() * 20, full_bytes.size())
      << inc_bytes.size() << " vs " << full_bytes.size();
  Json ops = parse_strict(inc_bytes)->at("payload").at("ops");
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0]["id"], "peers/node-100123");
  EXPECT_EQ(ops[0]["op"], "upsert");
}

TEST_F(Apply, SnapshotMayNotSilentlyDropAComponent) {
  const Json p = peers_payload(3, 0), q = peers_payload(3, 1);
  const auto peers_ref = ref(ArtifactType::peer_directory, Scope::node("n1"), 1, p);
  const auto route_ref = ref(ArtifactType::route_policy_bundle, Scope::node("n1"), 1, q);
  ConfigState s = state();
  ASSERT_EQ(apply_code(s, {snapshot(1, {peers_ref, route_ref}), peers(1, 0, 3),
                           full(ArtifactType::route_policy_bundle, 1, q, Scope::node("n1"))}),
            "ok");
  // v2 lists only the peers: the route policy disappeared without a removal record.
  EXPECT_EQ(apply_code(s, {snapshot(2, {peers_ref})}), errc::component_dropped);
  // With an explicit removal record at a newer version it is accepted and leaves a tombstone.
  ComponentRef removal = route_ref;
  removal.version = 2;
  auto r = s.apply(std::vector<std::string>{snapshot(2, {peers_ref}, {removal})}, kNow);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  ASSERT_EQ(r->removed.size(), 1u);
  EXPECT_EQ(r->removed[0], "route_policy_bundle@node:n1");
  EXPECT_EQ(s.payload(ArtifactType::route_policy_bundle, Scope::node("n1")), nullptr);
  // The removed component cannot come back at its old (or removal) version.
  EXPECT_EQ(apply_code(s, {full(ArtifactType::route_policy_bundle, 2, q, Scope::node("n1"))}),
            errc::replay);
  EXPECT_EQ(apply_code(s, {full(ArtifactType::route_policy_bundle, 3, q, Scope::node("n1"))}),
            "ok");
  // A removal record that is not newer than the listed version is a rollback.
  ConfigState t = state();
  ASSERT_EQ(apply_code(t, {snapshot(1, {peers_ref, route_ref}), peers(1, 0, 3),
                           full(ArtifactType::route_policy_bundle, 1, q, Scope::node("n1"))}),
            "ok");
  EXPECT_EQ(apply_code(t, {snapshot(2, {peers_ref}, {route_ref})}), errc::rollback);
}

TEST_F(Apply, SnapshotComponentVersionsNeverGoBack) {
  const Json p1 = peers_payload(3, 0), p2 = peers_payload(3, 1);
  ConfigState s = state();
  ASSERT_EQ(
      apply_code(s, {snapshot(1, {ref(ArtifactType::peer_directory, Scope::node("n1"), 2, p2)}),
                     full(ArtifactType::peer_directory, 2, p2, Scope::node("n1"))}),
      "ok");
  // A newer snapshot listing the component at an older version (and its old artifact).
  EXPECT_EQ(
      apply_code(s, {snapshot(2, {ref(ArtifactType::peer_directory, Scope::node("n1"), 1, p1)})}),
      errc::rollback);
  // Same version, other hash.
  EXPECT_EQ(
      apply_code(s, {snapshot(2, {ref(ArtifactType::peer_directory, Scope::node("n1"), 2, p1)})}),
      errc::rollback);
}

TEST_F(Apply, SnapshotComponentsMustBePresentAndMatch) {
  const Json p = peers_payload(3, 0), other = peers_payload(3, 5);
  ConfigState s = state();
  EXPECT_EQ(
      apply_code(s, {snapshot(1, {ref(ArtifactType::peer_directory, Scope::node("n1"), 1, p)})}),
      errc::missing_component);
  EXPECT_EQ(
      apply_code(s, {snapshot(1, {ref(ArtifactType::peer_directory, Scope::node("n1"), 1, other)}),
                     peers(1, 0, 3)}),
      errc::component_mismatch);
  EXPECT_TRUE(s.entries().empty());
}

TEST_F(Apply, DuplicateResourceInAPayloadIsNacked) {
  ConfigState s = state();
  Artifact a =
      sign(draft(ArtifactType::service_assignment_bundle, Scope::node("n1"), 1, peers_payload(3)));
  a.payload["peers"][2]["id"] = a.payload["peers"][1]["id"];
  EXPECT_EQ(apply_code(s, {wire(force_sign(a, key_))}), errc::duplicate_entry);
  EXPECT_TRUE(s.entries().empty());
}

TEST_F(Apply, KeyRotation) {
  ConfigState s = state();
  const Signer next("c1", new_key());
  // Bundle v1 (signed by the old key): new key active, old key retired until kNow + 1h.
  auto bundle =
      TrustStore::from_keys({signer_.trusted_key(kNow - 24h, kNow + 1h, KeyStatus::retired),
                             next.trusted_key(kNow - 1h, kNow + 365 * 24h)});
  ASSERT_TRUE(bundle.has_value());
  const std::string b1 =
      full(ArtifactType::trust_bundle, 1, bundle->to_payload(), Scope::cluster());
  // Same batch: the bundle, an artifact signed by the new key, one by the retired key.
  const std::string by_new = wire(
      sign(next, draft(ArtifactType::route_policy_bundle, Scope::node("n1"), 1, peers_payload(2))));
  const std::string by_old = peers(1, 0);
  ASSERT_EQ(apply_code(s, {by_new, by_old, b1}), "ok");
  EXPECT_EQ(s.trust().keys().size(), 2u);

  // After the retired key's not_after, it no longer verifies.
  auto late = s.apply(std::vector<std::string>{peers(2, 1)}, kNow + 2h);
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error().code, errc::signer_expired);

  // Bundle v2 (signed by the new key) revokes the old key: refused at once.
  auto revoking =
      TrustStore::from_keys({signer_.trusted_key(kNow - 24h, kNow + 1h, KeyStatus::revoked),
                             next.trusted_key(kNow - 1h, kNow + 365 * 24h)});
  const std::string b2 = wire(
      sign(next, draft(ArtifactType::trust_bundle, Scope::cluster(), 2, revoking->to_payload())));
  ASSERT_EQ(apply_code(s, {b2}), "ok");
  EXPECT_EQ(apply_code(s, {peers(2, 1)}), errc::revoked_signer);

  // Revocation is sticky: a later bundle listing the old key as active does not revive it.
  auto revive = TrustStore::from_keys(
      {signer_.trusted_key(kNow - 24h, kNow + 24h), next.trusted_key(kNow - 1h, kNow + 365 * 24h)});
  const std::string b3 = wire(
      sign(next, draft(ArtifactType::trust_bundle, Scope::cluster(), 3, revive->to_payload())));
  ASSERT_EQ(apply_code(s, {b3}), "ok");
  EXPECT_EQ(apply_code(s, {peers(2, 1)}), errc::revoked_signer);
  EXPECT_EQ(s.trust().keys().at(signer_.key_id()).status, KeyStatus::revoked);

  // A trust bundle signed by an untrusted key cannot add itself.
  const Signer rogue("c1", new_key());
  auto rogue_bundle = TrustStore::from_keys({rogue.trusted_key(kNow - 1h, kNow + 24h)});
  EXPECT_EQ(apply_code(s, {wire(sign(rogue, draft(ArtifactType::trust_bundle, Scope::cluster(), 4,
                                                  rogue_bundle->to_payload())))}),
            errc::unknown_signer);
}

TEST_F(Apply, RevocationListRevokesSigningKeysAndNodes) {
  ConfigState s = state();
  const Signer second("c1", new_key());
  auto bundle = TrustStore::from_keys(
      {signer_.trusted_key(kNow - 24h, kNow + 24h), second.trusted_key(kNow - 24h, kNow + 24h)});
  ASSERT_EQ(
      apply_code(s, {full(ArtifactType::trust_bundle, 1, bundle->to_payload(), Scope::cluster())}),
      "ok");
  Revocations rl;
  rl.key_ids.insert(second.key_id());
  rl.node_ids.insert("n7");
  rl.serials.insert(42);
  ASSERT_EQ(
      apply_code(s, {full(ArtifactType::revocation_list, 1, rl.to_payload(), Scope::cluster())}),
      "ok");
  EXPECT_EQ(s.revocations(), rl);
  EXPECT_EQ(apply_code(s, {wire(sign(second, draft(ArtifactType::peer_directory, Scope::node("n1"),
                                                   1, peers_payload(2))))}),
            errc::revoked_signer);
  // A later list that forgets the key does not un-revoke it.
  ASSERT_EQ(apply_code(s, {full(ArtifactType::revocation_list, 2, Revocations{}.to_payload(),
                                Scope::cluster())}),
            "ok");
  EXPECT_EQ(s.revocations().key_ids.count(second.key_id()), 1u);
  EXPECT_TRUE(s.revocations().node_ids.empty());
}

// Regression: a revocation list (or trust bundle) delivered as an increment updated the stored
// payload but not the revocations in force.
TEST_F(Apply, RevocationListIncrementTakesEffect) {
  ConfigState s = state();
  Revocations v1;
  v1.node_ids.insert("n7");
  ASSERT_EQ(
      apply_code(s, {full(ArtifactType::revocation_list, 1, v1.to_payload(), Scope::cluster())}),
      "ok");
  Revocations v2 = v1;
  v2.node_ids.insert("n8");
  auto inc = signer_.sign_increment(ArtifactType::revocation_list, Scope::cluster(), 1,
                                    v1.to_payload(), v2.to_payload(), 1, kNow - 1h, kNow + 24h);
  ASSERT_TRUE(inc.has_value()) << inc.error().message;
  ASSERT_EQ(apply_code(s, {wire(*inc)}), "ok");
  EXPECT_EQ(s.revocations().node_ids.count("n8"), 1u);
}

TEST_F(Apply, AuthorityEpochNeverGoesBack) {
  ConfigState s = state();
  ASSERT_EQ(apply_code(s, {full(ArtifactType::peer_directory, 1, peers_payload(2),
                                Scope::node("n1"), /*epoch=*/5)}),
            "ok");
  EXPECT_EQ(s.authority_epoch(), 5u);
  EXPECT_EQ(apply_code(s, {full(ArtifactType::route_policy_bundle, 1, peers_payload(2),
                                Scope::node("n1"), /*epoch=*/4)}),
            errc::stale_epoch);
  EXPECT_EQ(
      apply_code(
          s, {full(ArtifactType::route_policy_bundle, 1, peers_payload(2), Scope::node("n1"), 5)},
          /*min_epoch=*/6),
      errc::stale_epoch);
}

TEST_F(Apply, WrongClusterOrScopeInABatch) {
  ConfigState s = state();
  Signer other("c2", key_);
  EXPECT_EQ(apply_code(
                s, {peers(1, 0), wire(sign(other, draft(ArtifactType::peer_directory,
                                                        Scope::node("n1"), 1, peers_payload(2))))}),
            errc::wrong_cluster);
  EXPECT_EQ(
      apply_code(s, {full(ArtifactType::peer_directory, 1, peers_payload(2), Scope::node("n2"))}),
      errc::wrong_scope);
  EXPECT_TRUE(s.entries().empty());
}

TEST_F(Apply, SerializeRoundTrip) {
  ConfigState s = state();
  const Json v1 = peers_payload(20, 0), v2 = peers_payload(20, 1);
  Revocations rl;
  rl.node_ids.insert("n7");
  ASSERT_EQ(
      apply_code(s, {peers(1, 0, 20), increment(1, v1, v2),
                     full(ArtifactType::revocation_list, 1, rl.to_payload(), Scope::cluster()),
                     snapshot(1, {ref(ArtifactType::peer_directory, Scope::node("n1"), 2, v2)})}),
      "ok");
  const std::string bytes = s.serialize();
  auto back = ConfigState::deserialize(bytes);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->serialize(), bytes);
  EXPECT_EQ(back->revocations(), rl);
  EXPECT_EQ(back->node(), s.node());
  EXPECT_EQ(back->applied_versions().size(), s.applied_versions().size());
  // The restored state keeps enforcing: old versions are still refused, increments chain on.
  EXPECT_EQ(apply_code(*back, {peers(1, 0, 20)}), errc::replay);
  EXPECT_EQ(apply_code(*back, {increment(2, v2, v1)}), "ok");

  // A payload edited on disk is refused.
  std::string edited = bytes;
  edited.replace(edited.find("eu-west"), 7, "eu-east");
  auto bad = ConfigState::deserialize(edited);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, errc::state_corrupt);
  EXPECT_EQ(ConfigState::deserialize("{}").error().code, errc::state_corrupt);
  EXPECT_EQ(ConfigState::deserialize(bytes.substr(0, 100)).error().code, errc::state_corrupt);
}
