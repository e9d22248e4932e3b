#include "rap/agent/config_sync.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "rap/config/canonical.h"
#include "rap/config/errors.h"

namespace rap::agent {

using json = nlohmann::json;

namespace {

constexpr char kEnvelopeFormat[] = "rap-agent-config-v1";
constexpr char kSignatureDomain[] = "rap-agent-config-state-v1\n";

std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// What the node key signs: a domain prefix, the metadata and the serialized ConfigState.
std::string signed_message(const json& meta, const std::string& state) {
  std::string msg = kSignatureDomain;
  msg.append(meta.dump()).append("\n").append(state);
  return msg;
}

// Printable ASCII, at most `max` bytes: safe for logs and for the control plane's audit record.
std::string sanitize(const std::string& s, std::size_t max) {
  std::string out;
  out.reserve(std::min(s.size(), max));
  for (char c : s) {
    if (out.size() >= max) break;
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  return out;
}

// The applied version per artifact type (the highest over its scopes; tombstones excluded).
std::map<std::string, std::uint64_t> versions_by_type(const config::ConfigState& s) {
  std::map<std::string, std::uint64_t> out;
  for (const auto& [key, e] : s.entries()) {
    if (e.removed) continue;
    auto& v = out[std::string(config::to_string(e.type))];
    v = std::max(v, e.version);
  }
  return out;
}

json describe(const config::ConfigState& s) {
  json versions = json::object();
  for (const auto& [type, v] : versions_by_type(s)) versions[type] = v;
  json active = json::array();
  json keys = json::array();
  for (const auto& [id, k] : s.trust().keys()) {
    if (k.status == config::KeyStatus::active && s.revocations().key_ids.count(id) == 0) {
      active.push_back(id);
    }
    keys.push_back({{"id", id},
                    {"status", config::to_string(k.status)},
                    {"not_after", config::to_unix_seconds(k.not_after)}});
  }
  return json{{"applied_versions", versions},
              {"signer_key_ids", active},
              {"trust_keys", keys},
              {"authority_epoch", s.authority_epoch()},
              {"cluster_id", s.cluster_id()}};
}

// The batch index named by a ConfigState::apply error ("batch item <n>: ..."), if any.
std::optional<std::size_t> batch_index(const std::string& message) {
  static constexpr std::string_view kPrefix = "batch item ";
  if (message.rfind(kPrefix, 0) != 0) return std::nullopt;
  std::size_t i = kPrefix.size();
  std::size_t n = 0;
  bool any = false;
  while (i < message.size() && message[i] >= '0' && message[i] <= '9' && n < (1u << 24)) {
    n = n * 10 + static_cast<std::size_t>(message[i] - '0');
    ++i;
    any = true;
  }
  if (!any) return std::nullopt;
  return n;
}

}  // namespace

ConfigSync::ConfigSync(Env& env, std::string dir, std::string label, std::string cluster_id,
                       std::string node_id, const crypto::Ed25519Key& key)
    : env_(env),
      dir_(std::move(dir)),
      label_(std::move(label)),
      cluster_id_(std::move(cluster_id)),
      node_id_(std::move(node_id)),
      key_(key) {}

Result<ConfigSync::Persisted> ConfigSync::read_file(Env& env, const std::string& path,
                                                    const crypto::Ed25519Key& key) {
  Persisted p;
  if (!env.exists(path)) return p;
  auto text = env.read_file(path);
  if (!text) return tl::unexpected(text.error());
  if (text->size() > kMaxConfigStateBytes) {
    return fail("state_too_large",
                path + " is larger than " + std::to_string(kMaxConfigStateBytes) + " bytes");
  }
  const json doc = json::parse(*text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || doc.size() != 4 ||
      doc.value("format", std::string()) != kEnvelopeFormat || !doc.contains("meta") ||
      !doc["meta"].is_object() || !doc.contains("state") || !doc["state"].is_string() ||
      !doc.contains("signature") || !doc["signature"].is_string()) {
    return fail(config::errc::state_corrupt, path + " is not a signed agent config state file");
  }
  const json& meta = doc["meta"];
  const std::string& state_text = doc["state"].get_ref<const std::string&>();
  crypto::Signature sig{};
  if (!config::from_hex(doc["signature"].get<std::string>(), sig) ||
      !crypto::verify_ed25519(key.public_key(), bytes(signed_message(meta, state_text)), sig)) {
    return fail("state_tampered", path +
                                      " does not carry a valid signature of this node's key: it "
                                      "was modified outside the agent");
  }
  auto st = config::ConfigState::deserialize(state_text, {kMaxConfigStateBytes, 40});
  if (!st) return fail(st.error().code, path + ": " + st.error().message);
  const auto gen = meta.find("generation");
  const auto fetched = meta.find("last_fetch");
  if (gen == meta.end() || !(gen->is_null() || gen->is_number_integer()) || fetched == meta.end() ||
      !fetched->is_number_integer()) {
    return fail(config::errc::state_corrupt, path + ": bad metadata");
  }
  if (gen->is_number_integer()) p.generation = gen->get<std::int64_t>();
  p.last_fetch = fetched->get<std::int64_t>();
  if (const auto f = meta.find("authority_fence"); f != meta.end()) {
    if (!f->is_number_integer() || f->get<std::int64_t>() < 0) {
      return fail(config::errc::state_corrupt, path + ": bad authority fence");
    }
    p.fence = f->get<std::uint64_t>();
  }
  p.state = std::make_unique<config::ConfigState>(std::move(*st));
  return p;
}

void ConfigSync::load() {
  const std::string file = path();
  auto p = read_file(env_, file, key_);
  if (!p) {
    spdlog::error(
        "cluster {}: refusing persisted configuration {} ({}: {}); starting over with a fresh "
        "fetch from the control plane",
        label_, file, p.error().code, p.error().message);
    return;
  }
  if (!p->state) return;
  if (p->state->cluster_id() != cluster_id_ || p->state->node().node_id != node_id_) {
    spdlog::error(
        "cluster {}: refusing persisted configuration {}: it belongs to cluster {} node {}, not "
        "cluster {} node {}; starting over with a fresh fetch",
        label_, file, p->state->cluster_id(), p->state->node().node_id, cluster_id_, node_id_);
    return;
  }
  std::lock_guard g(mu_);
  const auto versions = versions_by_type(*p->state);
  spdlog::info("cluster {}: loaded persisted configuration (generation {}, {} artifact types)",
               label_, p->generation.value_or(0), versions.size());
  state_ = std::move(p->state);
  generation_ = p->generation;
  last_fetch_ = p->last_fetch;
  fence_ = p->fence;
}

Result<void> ConfigSync::persist(const config::ConfigState& state, std::int64_t generation,
                                 std::int64_t fetched_at, std::uint64_t fence) {
  const std::string st = state.serialize();
  const json meta{
      {"generation", generation}, {"last_fetch", fetched_at}, {"authority_fence", fence}};
  const auto sig = key_.sign(bytes(signed_message(meta, st)));
  const std::string text = json{
      {"format", kEnvelopeFormat},
      {"meta", meta},
      {"state", st},
      {"signature",
       config::to_hex(sig)}}.dump();
  if (text.size() > kMaxConfigStateBytes) {
    return fail("state_too_large",
                "config state would exceed " + std::to_string(kMaxConfigStateBytes) + " bytes");
  }
  if (auto d = env_.make_dirs(dir_, 0700); !d) return d;
  return env_.write_file_atomic(path(), text, 0600);
}

std::string ConfigSync::have_query() const {
  std::lock_guard g(mu_);
  if (!state_) return "";
  std::string out;
  for (const auto& [type, v] : versions_by_type(*state_)) {
    if (!out.empty()) out.push_back(',');
    out.append(type).append(":").append(std::to_string(v));
  }
  return out;
}

Result<std::pair<config::ConfigState, config::ApplyReport>> ConfigSync::apply_reply(
    const HttpReply& reply, config::WallTime now, std::uint64_t min_epoch, std::int64_t& generation,
    std::string& artifact_id) const {
  const json& body = reply.body;
  if (!body.is_object()) return fail(config::errc::malformed, "config response is not an object");
  const auto gen = body.find("config_generation");
  if (gen == body.end() || !gen->is_number_integer() || gen->get<std::int64_t>() < 0) {
    return fail(config::errc::malformed, "config response has no valid config_generation");
  }
  generation = gen->get<std::int64_t>();
  const auto arts = body.find("artifacts");
  if (arts == body.end() || !arts->is_array() || arts->size() > config::ConfigState::kMaxBatch) {
    return fail(config::errc::malformed, "config response has no valid artifacts list");
  }
  std::vector<std::string> batch;
  batch.reserve(arts->size());
  for (const auto& a : *arts) {
    if (!a.is_string()) return fail(config::errc::malformed, "an artifact is not a JSON string");
    batch.push_back(a.get<std::string>());
  }
  std::optional<config::ConfigState> next;
  {
    std::lock_guard g(mu_);
    if (state_) next.emplace(*state_);
  }
  if (!next) {
    // Trust on first use over the mTLS channel to the pinned control plane.
    const auto tb = body.find("trust_bundle");
    if (tb == body.end() || !tb->is_object()) {
      return fail(config::errc::malformed, "config response has no trust_bundle");
    }
    auto anchors = config::TrustStore::from_trust_bundle(*tb);
    if (!anchors) {
      return fail(anchors.error().code, "trust anchors: " + anchors.error().message);
    }
    if (anchors->empty()) return fail(config::errc::malformed, "trust anchors: no keys");
    next.emplace(cluster_id_, config::NodeScope{node_id_, {}, {}}, std::move(*anchors));
  }
  auto report = next->apply(batch, now, min_epoch);
  if (!report) {
    if (auto i = batch_index(report.error().message); i && *i < batch.size()) {
      if (auto a = config::decode_artifact(batch[*i])) artifact_id = a->id;
    }
    return tl::unexpected(report.error());
  }
  return std::make_pair(std::move(*next), std::move(*report));
}

void ConfigSync::reject(ConfigTransport& transport, const Error& e, const std::string& artifact_id,
                        config::WallTime now) {
  ConfigRejection r;
  r.at = config::to_unix_seconds(now);
  r.code = sanitize(e.code, 64);
  r.message = sanitize(e.message, kMaxRejectionMessageBytes);
  r.artifact_id = sanitize(artifact_id, 64);
  spdlog::error("cluster {}: configuration refused, nothing applied: {} ({}){}", label_, r.message,
                r.code, r.artifact_id.empty() ? "" : " artifact " + r.artifact_id);
  {
    std::lock_guard g(mu_);
    last_rejection_ = r;
  }
  const json body{{"code", r.code}, {"message", r.message}, {"artifact_id", r.artifact_id}};
  auto rep = transport.report_rejection(body);
  if (!rep) {
    spdlog::warn("cluster {}: cannot report the configuration rejection: {}", label_,
                 rep.error().message);
  } else if (rep->status != 204 && rep->status != 200) {
    spdlog::warn("cluster {}: the control plane did not accept the rejection report (HTTP {})",
                 label_, rep->status);
  }
}

std::string_view to_string(SourceKind kind) {
  switch (kind) {
    case SourceKind::nearby_storage:
      return "nearby-storage";
    case SourceKind::peer_storage:
      return "peer-storage";
    case SourceKind::bootstrap_storage:
      return "bootstrap-storage";
    case SourceKind::control:
      return "control";
  }
  return "control";
}

std::string ConfigSource::label() const {
  if (kind == SourceKind::control) return "control";
  return std::string(to_string(kind)) + ":" + id;
}

json SourceAttempt::to_json() const {
  return json{{"source", source}, {"outcome", outcome}, {"reason", reason}};
}

Result<bool> ConfigSync::sync(ConfigTransport& transport, config::WallTime now) {
  const ConfigSource control{SourceKind::control, "", &transport};
  return sync(std::span(&control, 1), transport, now);
}

Result<bool> ConfigSync::sync(std::span<const ConfigSource> sources, ConfigTransport& reporter,
                              config::WallTime now, std::int64_t announced_generation) {
  std::vector<SourceAttempt> attempts;
  std::optional<Error> control_error;
  std::optional<Error> last_error;
  for (const auto& src : sources) {
    SourceAttempt attempt{src.label(), "", ""};
    auto r = sync_from(src, reporter, now, announced_generation, attempt);
    attempt.reason = sanitize(attempt.reason, kMaxRejectionMessageBytes);
    attempts.push_back(attempt);
    if (r) {
      std::lock_guard g(mu_);
      attempts_ = std::move(attempts);
      source_ = src.label();
      on_local_snapshot_ = false;
      return r;
    }
    if (src.kind == SourceKind::control) control_error = r.error();
    last_error = r.error();
    if (src.kind != SourceKind::control) {
      spdlog::warn("cluster {}: config source {} {}: {}", label_, attempt.source, attempt.outcome,
                   attempt.reason);
    }
  }
  bool local = false;
  {
    std::lock_guard g(mu_);
    attempts_ = std::move(attempts);
    local = state_ != nullptr;
    on_local_snapshot_ = local;
  }
  if (local && sources.size() > 1) {
    spdlog::warn(
        "cluster {}: no configuration source answered; running on the last valid local "
        "snapshot",
        label_);
  }
  if (control_error) return tl::unexpected(*control_error);
  if (last_error) return tl::unexpected(*last_error);
  return fail("fetch_failed", "no configuration source");
}

Result<bool> ConfigSync::sync_from(const ConfigSource& src, ConfigTransport& reporter,
                                   config::WallTime now, std::int64_t announced_generation,
                                   SourceAttempt& attempt) {
  const bool control = src.kind == SourceKind::control;
  std::optional<std::int64_t> applied_generation;
  std::uint64_t fence = 0;
  {
    std::lock_guard g(mu_);
    applied_generation = generation_;
    fence = fence_;
    if (!control && !state_) {
      // Trust anchors only ever come from the control plane.
      attempt.outcome = "skipped";
      attempt.reason = "nothing applied yet: the first configuration comes from the control plane";
      return fail("fetch_failed", attempt.reason);
    }
  }
  std::string have = have_query();
  for (int round = 0;; ++round) {
    auto reply = src.transport->fetch(have);
    if (!reply) {
      attempt.outcome = "unreachable";
      attempt.reason = reply.error().message;
      return fail("fetch_failed", "config fetch failed: " + reply.error().message);
    }
    if (reply->status != 200) {
      attempt.outcome = "refused";
      attempt.reason = "HTTP " + std::to_string(reply->status) + " " + reply->error_code() + ": " +
                       reply->error_message();
      if (control && reply->status == 404) {
        return fail("not_supported", "the control plane does not serve signed configuration");
      }
      return fail("fetch_failed", "config fetch: " + attempt.reason);
    }
    const json& body = reply->body;
    std::uint64_t min_epoch = fence;
    if (control && body.is_object()) {
      // The control plane's current authority epoch (pinned mTLS channel): the fence for every
      // later artifact, whichever source serves it.
      const auto e = body.find("authority_epoch");
      if (e != body.end() && e->is_number_integer() && e->get<std::int64_t>() >= 0)
        min_epoch = std::max(fence, e->get<std::uint64_t>());
    }
    if (!control) {
      const auto gen = body.is_object() ? body.find("config_generation") : body.end();
      const std::int64_t floor = std::max(announced_generation, applied_generation.value_or(-1));
      if (gen != body.end() && gen->is_number_integer() && gen->get<std::int64_t>() < floor) {
        attempt.outcome = "stale";
        attempt.reason = "serves generation " + std::to_string(gen->get<std::int64_t>()) +
                         ", behind generation " + std::to_string(floor);
        return fail("stale_source", attempt.reason);
      }
    }
    std::int64_t generation = 0;
    std::string artifact_id;
    auto applied = apply_reply(*reply, now, min_epoch, generation, artifact_id);
    if (!applied) {
      const std::string& code = applied.error().code;
      const bool refresh =
          code == config::errc::gap_needs_full_refresh || code == config::errc::increment_mismatch;
      if (refresh && round == 0 && !have.empty()) {
        if (code != config::errc::gap_needs_full_refresh) {
          reject(reporter, applied.error(), artifact_id, now);
        }
        spdlog::info("cluster {}: config increment does not apply ({}); fetching full artifacts",
                     label_, code);
        have.clear();
        continue;
      }
      attempt.outcome = "rejected";
      attempt.reason = code + ": " + applied.error().message;
      reject(reporter, applied.error(), artifact_id, now);
      return tl::unexpected(applied.error());
    }
    auto& [next, report] = *applied;
    const std::int64_t fetched_at = config::to_unix_seconds(now);
    if (auto p = persist(next, generation, fetched_at, min_epoch); !p) {
      // The verified state stays in force in memory; the next successful round retries.
      spdlog::error("cluster {}: cannot persist the applied configuration: {}", label_,
                    p.error().message);
    }
    const bool changed = !report.changed.empty() || !report.removed.empty();
    attempt.outcome = changed ? "applied" : "unchanged";
    attempt.reason = "generation " + std::to_string(generation);
    if (changed) {
      std::string keys;
      for (const auto& k : report.changed) keys.append(keys.empty() ? "" : ", ").append(k);
      for (const auto& k : report.removed) {
        keys.append(keys.empty() ? "" : ", ").append("-").append(k);
      }
      spdlog::info("cluster {}: applied configuration generation {} from {} ({})", label_,
                   generation, src.label(), sanitize(keys, 1000));
    }
    std::lock_guard g(mu_);
    state_ = std::make_unique<config::ConfigState>(std::move(next));
    generation_ = generation;
    last_fetch_ = fetched_at;
    fence_ = min_epoch;
    return changed;
  }
}

std::vector<SourceAttempt> ConfigSync::last_attempts() const {
  std::lock_guard g(mu_);
  return attempts_;
}

std::uint64_t ConfigSync::authority_fence() const {
  std::lock_guard g(mu_);
  return fence_;
}

namespace {

std::vector<ArtifactLapse> lapses_of(const config::ConfigState& s, config::WallTime now) {
  std::vector<ArtifactLapse> out;
  for (const auto& [key, e] : s.entries()) {
    if (e.removed || !e.payload) continue;
    ArtifactLapse l;
    l.state_key = key;
    l.type = e.type;
    l.expires_at = config::to_unix_seconds(e.expires_at);
    const auto p = e.payload->is_object() ? e.payload->find("lapse_policy") : e.payload->end();
    l.policy = p != e.payload->end() && p->is_string() && *p == "stop" ? "stop" : "keep";
    l.lapsed = now >= e.expires_at;
    out.push_back(std::move(l));
  }
  return out;
}

json lapsed_list(const std::vector<ArtifactLapse>& lapses) {
  json out = json::array();
  for (const auto& l : lapses) {
    if (!l.lapsed || out.size() >= 32) continue;
    out.push_back({{"artifact", l.state_key}, {"policy", l.policy}, {"expires_at", l.expires_at}});
  }
  return out;
}

}  // namespace

std::vector<ArtifactLapse> ConfigSync::lapses(config::WallTime now) const {
  std::lock_guard g(mu_);
  if (!state_) return {};
  return lapses_of(*state_, now);
}

bool ConfigSync::stopped_by_lapse(config::ArtifactType type, const config::Scope& scope,
                                  config::WallTime now) const {
  const std::string key = config::state_key(type, scope);
  for (const auto& l : lapses(now)) {
    if (l.state_key == key) return l.lapsed && l.policy == "stop";
  }
  return false;
}

json ConfigSync::lapsed_json(config::WallTime now) const {
  return lapsed_list(lapses(now));
}

json ConfigSync::applied_versions() const {
  std::lock_guard g(mu_);
  json out = json::object();
  if (!state_) return out;
  for (const auto& [type, v] : versions_by_type(*state_)) {
    if (out.size() >= 64 || type.size() > 63) break;
    out[type] = v;
  }
  return out;
}

std::optional<std::int64_t> ConfigSync::generation() const {
  std::lock_guard g(mu_);
  return generation_;
}

bool ConfigSync::has_state() const {
  std::lock_guard g(mu_);
  return state_ != nullptr;
}

std::optional<ConfigRejection> ConfigSync::last_rejection() const {
  std::lock_guard g(mu_);
  return last_rejection_;
}

std::optional<ConfigSync::TrustSnapshot> ConfigSync::trust_snapshot() const {
  std::lock_guard g(mu_);
  if (!state_) return std::nullopt;
  return TrustSnapshot{state_->trust(), state_->revocations(), state_->authority_epoch()};
}

json ConfigSync::payload(config::ArtifactType type, const config::Scope& scope) const {
  std::lock_guard g(mu_);
  if (!state_) return nullptr;
  const auto* p = state_->payload(type, scope);
  return p != nullptr ? *p : json(nullptr);
}

std::string ConfigSync::source() const {
  std::lock_guard g(mu_);
  return source_;
}

json ConfigSync::status_json(config::WallTime now) const {
  const json lapsed = lapsed_json(now);
  std::lock_guard g(mu_);
  json j = state_ ? describe(*state_)
                  : json{{"applied_versions", json::object()}, {"signer_key_ids", json::array()}};
  j["source"] = source_.empty() ? json(nullptr) : json(source_);
  const json* sd =
      state_ ? state_->payload(config::ArtifactType::storage_directory, config::Scope::cluster())
             : nullptr;
  j["storages"] = sd != nullptr && sd->is_object() && sd->contains("storages") ? (*sd)["storages"]
                                                                               : json::array();
  j["generation"] = generation_ ? json(*generation_) : json(nullptr);
  j["last_fetch"] = last_fetch_;
  j["authority_fence"] = fence_;
  json attempts = json::array();
  for (const auto& a : attempts_) attempts.push_back(a.to_json());
  j["attempts"] = std::move(attempts);
  j["on_local_snapshot"] = on_local_snapshot_;
  j["lapsed"] = lapsed;
  if (last_rejection_) {
    j["last_rejection"] = {{"at", last_rejection_->at},
                           {"code", last_rejection_->code},
                           {"message", last_rejection_->message},
                           {"artifact_id", last_rejection_->artifact_id}};
  } else {
    j["last_rejection"] = nullptr;
  }
  return j;
}

json ConfigSync::read_status(Env& env, const std::string& dir, const crypto::Ed25519Key& key) {
  auto p = read_file(env, dir + "/config_state.json", key);
  if (!p) return json{{"error", p.error().code + ": " + p.error().message}};
  if (!p->state) return json{{"applied_versions", json::object()}, {"generation", nullptr}};
  json j = describe(*p->state);
  j["generation"] = p->generation ? json(*p->generation) : json(nullptr);
  j["last_fetch"] = p->last_fetch;
  j["authority_fence"] = p->fence;
  j["lapsed"] = lapsed_list(lapses_of(*p->state, std::chrono::system_clock::now()));
  return j;
}

}  // namespace rap::agent
