// Signed configuration benchmarks, each beside its baseline in the same run:
//   sign+encode:  Signer::sign + encode_artifact of N node-scoped artifacts of a realistic size
//                 vs  raw Ed25519 signatures of the same signed bytes (and raw SHA-256 of the
//                 wire bytes, the hashing floor)
//   verify+apply: ConfigState::apply of each node's artifact (fresh state per node), and one
//                 node applying all N as a single batch (service-scoped)  vs  raw Ed25519
//                 verification of the same signatures
//   increment:    wire size of a one-entry change to a 1000-entry payload vs the full artifact;
//                 time to compute and to apply it vs verify+apply of the full artifact
// Usage: bench_config [--artifacts N] [--entries N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "rap/config/artifact.h"
#include "rap/config/payload.h"
#include "rap/config/signer.h"
#include "rap/config/state.h"

using namespace rap::config;
using namespace std::chrono_literals;
using Clk = std::chrono::steady_clock;

namespace {

const WallTime kNow =
    std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());

double secs_since(Clk::time_point t0) {
  return std::chrono::duration<double>(Clk::now() - t0).count();
}

std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// A service assignment bundle of `entries` services (~100 bytes each): the typical per-node
// artifact (2-3 KB at 24 entries).
Json node_payload(int node, int entries) {
  Json services = Json::array();
  for (int i = 0; i < entries; ++i) {
    services.push_back(Json{{"id", "svc-" + std::to_string(i)},
                            {"kind", i % 2 == 0 ? "tcp" : "rdp"},
                            {"org", "org-" + std::to_string(node % 50)},
                            {"target", "10.20." + std::to_string(i) + ".5:3389"},
                            {"max_sessions", 50 + i}});
  }
  return Json{{"node", "n-" + std::to_string(node)}, {"services", std::move(services)}};
}

Json peers(int n) {
  Json arr = Json::array();
  for (int i = 0; i < n; ++i) {
    arr.push_back(
        Json{{"id", "node-" + std::to_string(100000 + i)},
             {"addr", "10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".7:7443"},
             {"region", i % 3 == 0 ? "eu-west" : "us-east"},
             {"weight", 100 + i % 7},
             {"roles", Json::array({"core", "relay"})}});
  }
  return Json{{"generation", 1}, {"peers", std::move(arr)}};
}

ArtifactDraft draft(ArtifactType t, Scope s, std::uint64_t v, Json p) {
  ArtifactDraft d;
  d.type = t;
  d.scope = std::move(s);
  d.version = v;
  d.epoch = 1;
  d.issued_at = kNow - 1min;
  d.expires_at = kNow + 24h;
  d.payload = std::move(p);
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 1000;
  int entries = 24;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--artifacts") == 0) n = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--entries") == 0) entries = std::atoi(argv[i + 1]);
  }
  auto key = rap::crypto::Ed25519Key::generate();
  if (!key) return 1;
  const Signer signer("bench", *key);
  auto anchors = TrustStore::from_keys({signer.trusted_key(kNow - 24h, kNow + 24h)});

  std::vector<Json> payloads;
  for (int i = 0; i < n; ++i) payloads.push_back(node_payload(i, entries));

  // ---- sign + encode ----
  std::vector<std::string> wires(n);
  std::vector<Artifact> arts(n);
  auto t0 = Clk::now();
  for (int i = 0; i < n; ++i) {
    auto a = signer.sign(draft(ArtifactType::service_assignment_bundle,
                               Scope::node("n-" + std::to_string(i)), 1, payloads[i]));
    if (!a) return 1;
    wires[i] = *encode_artifact(*a);
    arts[i] = std::move(*a);
  }
  const double sign_s = secs_since(t0);
  std::size_t total_bytes = 0;
  for (const auto& w : wires) total_bytes += w.size();

  std::vector<std::string> msgs(n);
  for (int i = 0; i < n; ++i) msgs[i] = signing_bytes(arts[i].header);
  t0 = Clk::now();
  std::vector<rap::crypto::Signature> raw_sigs(n);
  for (int i = 0; i < n; ++i) raw_sigs[i] = key->sign(bytes(msgs[i]));
  const double raw_sign_s = secs_since(t0);
  t0 = Clk::now();
  std::size_t sink = 0;
  for (int i = 0; i < n; ++i) sink += sha256_hex(wires[i]).size();
  const double sha_s = secs_since(t0);

  // ---- verify + apply ----
  t0 = Clk::now();
  for (int i = 0; i < n; ++i) {
    ConfigState st("bench", NodeScope{"n-" + std::to_string(i), {}, {}}, *anchors);
    auto r = st.apply(std::span(&wires[i], 1), kNow);
    if (!r) {
      std::fprintf(stderr, "apply failed: %s\n", r.error().message.c_str());
      return 1;
    }
  }
  const double apply_s = secs_since(t0);
  t0 = Clk::now();
  for (int i = 0; i < n; ++i) {
    if (!rap::crypto::verify_ed25519(signer.public_key(), bytes(msgs[i]), arts[i].signature)) {
      return 1;
    }
  }
  const double raw_verify_s = secs_since(t0);

  // One node, one batch of n service-scoped artifacts.
  NodeScope svc_node{"n-0", {}, {}};
  std::vector<std::string> batch(n);
  for (int i = 0; i < n; ++i) {
    const std::string sid = "s-" + std::to_string(i);
    svc_node.service_ids.insert(sid);
    batch[i] = *encode_artifact(*signer.sign(
        draft(ArtifactType::service_assignment_bundle, Scope::service(sid), 1, payloads[i])));
  }
  ConfigState big("bench", svc_node, *anchors);
  t0 = Clk::now();
  auto br = big.apply(batch, kNow);
  const double batch_s = secs_since(t0);
  if (!br) return 1;
  t0 = Clk::now();
  const std::string persisted = big.serialize();
  const double ser_s = secs_since(t0);
  t0 = Clk::now();
  auto restored = ConfigState::deserialize(persisted);
  const double deser_s = secs_since(t0);
  if (!restored) return 1;

  // ---- increment vs full ----
  const Json v1 = peers(1000);
  Json v2 = v1;
  v2["peers"][500]["weight"] = 1;
  const std::string full1 = *encode_artifact(
      *signer.sign(draft(ArtifactType::peer_directory, Scope::node("n-0"), 1, v1)));
  const std::string full2 = *encode_artifact(
      *signer.sign(draft(ArtifactType::peer_directory, Scope::node("n-0"), 2, v2)));
  t0 = Clk::now();
  auto inc = signer.sign_increment(ArtifactType::peer_directory, Scope::node("n-0"), 1, v1, v2, 1,
                                   kNow - 1min, kNow + 24h);
  const double diff_s = secs_since(t0);
  const std::string inc_wire = *encode_artifact(*inc);
  ConfigState node("bench", NodeScope{"n-0", {}, {}}, *anchors);
  if (!node.apply(std::span(&full1, 1), kNow)) return 1;
  ConfigState node_full = node;
  t0 = Clk::now();
  if (!node.apply(std::span(&inc_wire, 1), kNow)) return 1;
  const double inc_apply_s = secs_since(t0);
  t0 = Clk::now();
  if (!node_full.apply(std::span(&full2, 1), kNow)) return 1;
  const double full_apply_s = secs_since(t0);

  const double us = 1e6 / n;
  std::printf("signed config: %d node-scoped artifacts, %d entries each, %.0f bytes average\n", n,
              entries, static_cast<double>(total_bytes) / n);
  std::printf(
      "sign+encode:   %7.1f us/artifact   raw Ed25519 sign %6.1f us  = %.2fx   "
      "(raw SHA-256 of the wire bytes %.1f us)\n",
      sign_s * us, raw_sign_s * us, sign_s / raw_sign_s, sha_s * us);
  std::printf(
      "verify+apply:  %7.1f us/artifact   raw Ed25519 verify %6.1f us = %.2fx   "
      "(fresh state per node)\n",
      apply_s * us, raw_verify_s * us, apply_s / raw_verify_s);
  std::printf(
      "batch apply:   %7.1f us/artifact   = %.2fx raw verify   (one node, %d artifacts "
      "in one batch)\n",
      batch_s * us, batch_s / raw_verify_s, n);
  std::printf("persist:       serialize %.1f ms, deserialize %.1f ms for %zu bytes of state\n",
              ser_s * 1e3, deser_s * 1e3, persisted.size());
  std::printf("increment:     %zu bytes vs full %zu bytes = %.2f%% (1 of 1000 entries changed)\n",
              inc_wire.size(), full2.size(),
              100.0 * static_cast<double>(inc_wire.size()) / static_cast<double>(full2.size()));
  std::printf(
      "               compute+sign %.2f ms; apply %.2f ms vs full verify+apply %.2f ms "
      "= %.2fx\n",
      diff_s * 1e3, inc_apply_s * 1e3, full_apply_s * 1e3, inc_apply_s / full_apply_s);
  return sink == 0 ? 1 : 0;
}
