#include "rap/agent/state_store.h"

#include <spdlog/spdlog.h>

#include <cstdio>

namespace rap::agent {

using json = nlohmann::json;

namespace {

std::string hex(std::span<const std::uint8_t> b) {
  static const char* d = "0123456789abcdef";
  std::string out;
  out.reserve(b.size() * 2);
  for (auto c : b) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

bool unhex(const std::string& s, std::span<std::uint8_t> out) {
  if (s.size() != out.size() * 2) return false;
  auto v = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = v(s[2 * i]);
    const int lo = v(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return true;
}

std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// What is signed: a domain-separation prefix and the canonical (sorted-key) dump of the state.
std::string signed_message(const json& state) {
  return "rap-agent-state-v1\n" + state.dump();
}

}  // namespace

json MembershipState::to_json() const {
  return json{{"cluster", cluster},
              {"control_url", control_url},
              {"enroll_status", enroll_status},
              {"request_id", request_id},
              {"node_id", node_id},
              {"cert_pem", cert_pem},
              {"ca_pem", ca_pem},
              {"cert_not_after", cert_not_after},
              {"desired_version", desired_version},
              {"roles", roles},
              {"workloads", workloads},
              {"revoked_grants", revoked_grants},
              {"last_contact", last_contact},
              {"partition_state", partition_state},
              {"last_error", last_error},
              {"profile", profile}};
}

Result<MembershipState> MembershipState::from_json(const json& j) {
  if (!j.is_object()) return fail("state_corrupt", "state is not a JSON object");
  MembershipState s;
  try {
    s.cluster = j.at("cluster").get<std::string>();
    s.control_url = j.at("control_url").get<std::string>();
    s.enroll_status = j.at("enroll_status").get<std::string>();
    s.request_id = j.at("request_id").get<std::string>();
    s.node_id = j.at("node_id").get<std::string>();
    s.cert_pem = j.at("cert_pem").get<std::string>();
    s.ca_pem = j.at("ca_pem").get<std::string>();
    s.cert_not_after = j.at("cert_not_after").get<std::int64_t>();
    s.desired_version = j.at("desired_version").get<std::int64_t>();
    s.roles = j.at("roles");
    s.workloads = j.at("workloads");
    s.revoked_grants = j.value("revoked_grants", json::array());
    s.last_contact = j.at("last_contact").get<std::int64_t>();
    s.partition_state = j.at("partition_state").get<std::string>();
    s.last_error = j.at("last_error").get<std::string>();
    s.profile = j.value("profile", std::string("thick"));
  } catch (const json::exception& e) {
    return fail("state_corrupt", std::string("state has the wrong shape: ") + e.what());
  }
  if (!s.roles.is_array() || !s.workloads.is_array() || !s.revoked_grants.is_array()) {
    return fail("state_corrupt", "roles, workloads and revoked_grants must be arrays");
  }
  return s;
}

Result<crypto::Ed25519Key> StateStore::load_or_create_key() {
  if (auto d = env_.make_dirs(dir_, 0700); !d) return tl::unexpected(d.error());
  const std::string path = key_path();
  if (!env_.exists(path)) {
    auto k = crypto::Ed25519Key::generate();
    if (!k) return k;
    if (auto w = env_.write_file_atomic(path, k->private_pem(), 0600); !w) {
      return tl::unexpected(w.error());
    }
    spdlog::info("generated node key {} (public {})", path,
                 crypto::sha256_hex(k->public_key()).substr(0, 16));
    return k;
  }
  auto mode = env_.file_mode(path);
  if (!mode) return tl::unexpected(mode.error());
  if ((*mode & 077) != 0) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04o", *mode & 07777u);
    return fail("key_permissions", "key file " + path + " has mode " + buf +
                                       "; it must be readable by its owner only (chmod 600 " +
                                       path + ")");
  }
  auto pem = env_.read_file(path);
  if (!pem) return tl::unexpected(pem.error());
  auto k = crypto::Ed25519Key::from_pem(*pem);
  if (!k) return fail("bad_key", "key file " + path + " is not an Ed25519 private key");
  return k;
}

Result<std::optional<MembershipState>> StateStore::load(const crypto::Ed25519Key& key) {
  const std::string path = state_path();
  if (!env_.exists(path)) return std::optional<MembershipState>();
  auto text = env_.read_file(path);
  if (!text) return tl::unexpected(text.error());
  if (text->size() > kMaxStateBytes) {
    return fail("state_too_large", path + " is larger than " + std::to_string(kMaxStateBytes));
  }
  json doc = json::parse(*text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("state") ||
      !doc.contains("signature") || !doc["signature"].is_string()) {
    return fail("state_corrupt", path + " is not a signed agent state file");
  }
  crypto::Signature sig{};
  const std::string msg = signed_message(doc["state"]);
  if (!unhex(doc["signature"].get<std::string>(), sig) ||
      !crypto::verify_ed25519(key.public_key(), bytes(msg), sig)) {
    return fail("state_tampered", path +
                                      " does not carry a valid signature of this node's key: "
                                      "it was modified outside the agent; refusing to use it "
                                      "(move it away to re-enroll)");
  }
  auto st = MembershipState::from_json(doc["state"]);
  if (!st) return tl::unexpected(st.error());
  return std::optional<MembershipState>(std::move(*st));
}

Result<void> StateStore::save(const MembershipState& state, const crypto::Ed25519Key& key) {
  const json st = state.to_json();
  const std::string msg = signed_message(st);
  const auto sig = key.sign(bytes(msg));
  const std::string text = json{{"state", st}, {"signature", hex(sig)}}.dump(2);
  if (text.size() > kMaxStateBytes) {
    return fail("state_too_large", "agent state would exceed " + std::to_string(kMaxStateBytes));
  }
  return env_.write_file_atomic(state_path(), text, 0600);
}

}  // namespace rap::agent
