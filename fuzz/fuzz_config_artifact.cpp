// Fuzz target for signed configuration (rap/config/*.h): canonical JSON, artifact decoding and
// verification, increments, and ConfigState::apply.
//
// Byte 0 selects the mode (the rest is the mode's input):
//  0  strict JSON: parse_strict; if accepted, canonical_encode succeeds, re-parses to the same
//     value and is a fixed point (encode(parse(c)) == c).
//  1  wire artifact: decode_artifact; if accepted, encode_artifact succeeds and decode/encode is
//     a fixed point; verify() (trusting both fuzz keys) never crashes and only accepts an
//     artifact whose signed header and payload are those of one of the genuine artifacts built
//     at start-up (unforgeability). Mode 3 runs the same check on every byte-flipped artifact.
//  2  increments: the input is split in two JSON documents A and B; when both normalize, the
//     increment A->B applies to A and reproduces B byte for byte.
//  3  state machine: a stream of ops over a pool of genuine signed artifacts (peer directory
//     versions, increment chains, snapshots with removals, trust-bundle rotation, revocation,
//     wrong scope/cluster/epoch, expired): pick an artifact, flip one of its bytes, cut a batch,
//     advance time. Oracles: a failed apply leaves serialize() unchanged; a successful one
//     round-trips through serialize/deserialize; per (type, scope) the applied version never
//     decreases and the authority epoch never decreases.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "rap/config/artifact.h"
#include "rap/config/payload.h"
#include "rap/config/signer.h"
#include "rap/config/state.h"
#include "rap/config/trust.h"
#include "rap/config/verifier.h"

namespace {

using namespace rap::config;
using namespace std::chrono_literals;

// Test-only keys (fixed so that crashes reproduce byte for byte).
constexpr char kKeyA[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIKaG21dAnrndL7BgbclIi+jq9KZedxyheWp3O8/+J+h3\n"
    "-----END PRIVATE KEY-----\n";
constexpr char kKeyB[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIB57XCMIP0KBpSHgmfWiB1cnms/O4hj7Ar36d09+UwXd\n"
    "-----END PRIVATE KEY-----\n";

const WallTime kNow = from_unix_seconds(1'800'000'000);

Json peers(int n, int seed) {
  Json arr = Json::array();
  for (int i = 0; i < n; ++i) {
    arr.push_back(Json{{"id", "p" + std::to_string(i)}, {"w", (i + seed) % 5}});
  }
  return Json{{"gen", seed}, {"peers", std::move(arr)}};
}

struct World {
  Signer a{"c1", *rap::crypto::Ed25519Key::from_pem(kKeyA)};
  Signer b{"c1", *rap::crypto::Ed25519Key::from_pem(kKeyB)};
  TrustStore anchors;   // key a only (the node's enrollment anchor)
  TrustStore trust_ab;  // both keys: every genuine artifact's signer
  NodeScope node{"n1", {"o1"}, {"s1"}};
  std::vector<std::string> pool;             // genuine wire artifacts
  std::map<std::string, std::string> known;  // signing bytes -> canonical payload

  void add(const rap::Result<Artifact>& art) {
    FUZZ_CHECK(art.has_value());
    pool.push_back(*encode_artifact(*art));
    known[signing_bytes(art->header)] = *canonical_encode(art->payload);
  }
  ArtifactDraft draft(ArtifactType t, Scope s, std::uint64_t v, Json p, std::uint64_t epoch = 1) {
    ArtifactDraft d;
    d.type = t;
    d.scope = std::move(s);
    d.version = v;
    d.epoch = epoch;
    d.issued_at = kNow - 1h;
    d.expires_at = kNow + 2h;
    d.payload = std::move(p);
    return d;
  }

  World() {
    anchors = *TrustStore::from_keys({a.trusted_key(kNow - 24h, kNow + 24h)});
    trust_ab = *TrustStore::from_keys(
        {a.trusted_key(kNow - 24h, kNow + 24h), b.trusted_key(kNow - 24h, kNow + 24h)});
    const Scope n1 = Scope::node("n1");
    for (int v = 1; v <= 4; ++v) {
      add(a.sign(draft(ArtifactType::peer_directory, n1, v, peers(6, v))));
    }
    for (int v = 1; v <= 3; ++v) {
      add(a.sign_increment(ArtifactType::peer_directory, n1, v, peers(6, v), peers(6, v + 1), 1,
                           kNow - 1h, kNow + 2h));
    }
    add(a.sign_increment(ArtifactType::peer_directory, n1, 4, peers(6, 4), peers(7, 9), 1,
                         kNow - 1h, kNow + 2h));
    add(a.sign(draft(ArtifactType::route_policy_bundle, Scope::org("o1"), 1, peers(2, 1))));
    add(a.sign(draft(ArtifactType::qos_policy_bundle, Scope::service("s1"), 1, peers(2, 1))));
    add(a.sign(draft(ArtifactType::qos_policy_bundle, Scope::node("n2"), 1, peers(2, 1))));
    const auto ref = [](ArtifactType t, Scope s, std::uint64_t v, const Json& p) {
      return ComponentRef{t, std::move(s), v, *content_hash(p)};
    };
    add(a.sign(draft(ArtifactType::cluster_snapshot, n1, 1,
                     make_snapshot_payload({ref(ArtifactType::peer_directory, n1, 1, peers(6, 1)),
                                            ref(ArtifactType::route_policy_bundle, Scope::org("o1"),
                                                1, peers(2, 1))}))));
    add(a.sign(draft(ArtifactType::cluster_snapshot, n1, 2,
                     make_snapshot_payload({ref(ArtifactType::peer_directory, n1, 2, peers(6, 2))},
                                           {ComponentRef{ArtifactType::route_policy_bundle,
                                                         Scope::org("o1"), 2, ""}}))));
    add(a.sign(
        draft(ArtifactType::cluster_snapshot, n1, 3,
              make_snapshot_payload({ref(ArtifactType::peer_directory, n1, 3, peers(6, 3))}))));
    // Rotation to b, then revocation of a.
    add(a.sign(
        draft(ArtifactType::trust_bundle, Scope::cluster(), 1,
              TrustStore::from_keys({a.trusted_key(kNow - 24h, kNow + 1h, KeyStatus::retired),
                                     b.trusted_key(kNow - 24h, kNow + 48h)})
                  ->to_payload())));
    add(b.sign(
        draft(ArtifactType::trust_bundle, Scope::cluster(), 2,
              TrustStore::from_keys({a.trusted_key(kNow - 24h, kNow + 1h, KeyStatus::revoked),
                                     b.trusted_key(kNow - 24h, kNow + 48h)})
                  ->to_payload())));
    add(b.sign(draft(ArtifactType::peer_directory, n1, 5, peers(3, 5))));
    Revocations rl;
    rl.node_ids.insert("n9");
    rl.key_ids.insert(b.key_id());
    add(a.sign(draft(ArtifactType::revocation_list, Scope::cluster(), 1, rl.to_payload())));
    add(a.sign(draft(ArtifactType::peer_directory, n1, 6, peers(3, 6), /*epoch=*/2)));
    add(a.sign(draft(ArtifactType::update_manifest, Scope::cluster(), 1, peers(1, 0), 0)));
    add(Signer("c2", *rap::crypto::Ed25519Key::from_pem(kKeyA))
            .sign(draft(ArtifactType::storage_directory, Scope::cluster(), 1, peers(1, 0))));
  }
};

World& world() {
  static World w;
  return w;
}

void fuzz_json(std::string_view in) {
  auto j = parse_strict(in);
  if (!j) return;
  auto c = canonical_encode(*j);
  FUZZ_CHECK(c.has_value());
  auto again = parse_strict(*c);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(*again == *j);
  FUZZ_CHECK(*canonical_encode(*again) == *c);
}

void fuzz_wire(std::string_view in) {
  World& w = world();
  auto a = decode_artifact(in);
  if (a) {
    auto e = encode_artifact(*a);
    FUZZ_CHECK(e.has_value());
    auto d = decode_artifact(*e);
    FUZZ_CHECK(d.has_value());
    FUZZ_CHECK(*encode_artifact(*d) == *e);
  }
  VerifyContext ctx;
  ctx.cluster_id = "c1";
  ctx.node = w.node;
  ctx.trust = &w.trust_ab;
  ctx.now = kNow;
  auto v = verify(in, ctx);
  if (v) {
    auto it = w.known.find(signing_bytes(v->artifact.header));
    FUZZ_CHECK(it != w.known.end());
    FUZZ_CHECK(*canonical_encode(v->artifact.payload) == it->second);
  }
}

void fuzz_increment(std::string_view in) {
  const auto cut = in.find('\n');
  if (cut == std::string_view::npos) return;
  auto from = parse_strict(in.substr(0, cut));
  auto to = parse_strict(in.substr(cut + 1));
  if (!from || !to) return;
  auto nf = normalize_payload(*from);
  auto nt = normalize_payload(*to);
  if (!nf || !nt) return;
  auto inc = make_increment_payload(ArtifactType::peer_directory, *nf, *nt);
  FUZZ_CHECK(inc.has_value());
  FUZZ_CHECK(check_payload_for(ArtifactType::snapshot_increment, *inc).has_value());
  auto applied = apply_increment_payload(*nf, *inc);
  FUZZ_CHECK(applied.has_value());
  FUZZ_CHECK(*canonical_encode(*applied) == *canonical_encode(*nt));
}

void fuzz_state(rap::fuzz::Cursor& c) {
  World& w = world();
  ConfigState state("c1", w.node, w.anchors);
  std::vector<std::string> batch;
  WallTime now = kNow;
  std::map<std::string, std::uint64_t> seen;
  std::uint64_t epoch = 0;
  auto flush = [&] {
    const std::string before = state.serialize();
    auto r = state.apply(batch, now);
    batch.clear();
    if (!r) {
      FUZZ_CHECK(state.serialize() == before);
      return;
    }
    const std::string after = state.serialize();
    auto back = ConfigState::deserialize(after);
    FUZZ_CHECK(back.has_value());
    FUZZ_CHECK(back->serialize() == after);
    for (const auto& [key, v] : state.applied_versions()) {
      auto& last = seen[key];
      FUZZ_CHECK(v.version >= last);
      last = v.version;
    }
    FUZZ_CHECK(state.authority_epoch() >= epoch);
    epoch = state.authority_epoch();
  };
  int ops = 0;
  while (!c.empty() && ops++ < 24) {
    const std::uint8_t op = c.u8();
    switch (op % 4) {
      case 0:
      case 1: {
        std::string art = w.pool[c.u8() % w.pool.size()];
        if (op & 0x80) {  // flip one byte
          const std::size_t pos = c.u16() % art.size();
          art[pos] = static_cast<char>(art[pos] ^ (c.u8() | 1));
          fuzz_wire(art);  // a flipped byte never yields a new artifact that verifies
        }
        batch.push_back(std::move(art));
        break;
      }
      case 2:
        flush();
        break;
      default:
        now += std::chrono::minutes(c.u8());
        break;
    }
  }
  flush();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      fuzz_json(in);
      break;
    case 1:
      fuzz_wire(in);
      break;
    case 2:
      fuzz_increment(in);
      break;
    default: {
      rap::fuzz::Cursor c(data + 1, size - 1);
      fuzz_state(c);
      break;
    }
  }
  return 0;
}
