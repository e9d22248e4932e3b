// Helpers shared by the route modules: JSON responses and parsing, routing, the audit chain.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "api_internal.h"

namespace rap::control::detail {

HttpResponse json_response(int status, const json& j) {
  HttpResponse r;
  r.status = status;
  r.body = j.dump();
  return r;
}

HttpResponse error_response(int status, const std::string& code, const std::string& message) {
  HttpResponse r;
  r.status = status;
  r.body = error_body(code, message);
  return r;
}

HttpResponse from_error(const Error& e) {
  if (e.code == "db_timeout" || e.code == "db_unavailable") {
    spdlog::warn("database unavailable code={} msg={}", e.code, e.message);
    return error_response(503, "unavailable", "database temporarily unavailable");
  }
  if (e.code == "conflict") return error_response(409, "conflict", "resource already exists");
  spdlog::error("internal error code={} msg={}", e.code, e.message);
  return error_response(500, "internal", "internal error");
}

HttpResponse to_response(const Error& e) {
  if (e.code.rfind("http:", 0) == 0) {
    const auto second = e.code.find(':', 5);
    int status = 500;
    std::from_chars(e.code.data() + 5, e.code.data() + second, status);
    return error_response(status, e.code.substr(second + 1), e.message);
  }
  return from_error(e);
}

tl::unexpected<Error> http_fail(int status, const std::string& code, const std::string& message) {
  return fail("http:" + std::to_string(status) + ":" + code, message);
}

Step<json> parse_object(const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return tl::unexpected(error_response(400, "malformed_json", "request body is not valid JSON"));
  }
  if (!j.is_object()) {
    return tl::unexpected(
        error_response(400, "invalid_request", "request body must be a JSON object"));
  }
  return j;
}

Step<std::map<std::string, std::string>> parse_fields(const std::string& body,
                                                      std::initializer_list<const char*> keys) {
  auto j = parse_object(body);
  if (!j) return tl::unexpected(j.error());
  std::map<std::string, std::string> out;
  for (const char* k : keys) {
    auto v = req_string(*j, k);
    if (!v) return tl::unexpected(v.error());
    out[k] = *v;
  }
  if (auto bad = reject_unknown_fields(*j, keys)) return tl::unexpected(*bad);
  return out;
}

std::optional<HttpResponse> reject_unknown_fields(const json& j,
                                                  std::initializer_list<const char*> allowed) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    const bool ok =
        std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return it.key() == a; });
    if (!ok) {
      // Echo only printable ASCII: a cut multi-byte character would make the JSON error body
      // itself invalid (nlohmann throws on bad UTF-8 when dumping).
      std::string k;
      for (char ch : it.key()) {
        if (k.size() == 64) break;
        k.push_back(ch >= 0x20 && ch < 0x7f ? ch : '?');
      }
      return error_response(400, "invalid_request", "unknown field '" + k + "' in request body");
    }
  }
  return std::nullopt;
}

Step<std::optional<std::string>> opt_string(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) {
    return tl::unexpected(error_response(400, "invalid_request",
                                         std::string("field '") + key + "' must be a string"));
  }
  return std::optional<std::string>(it->get<std::string>());
}

Step<std::optional<std::int64_t>> opt_int(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::optional<std::int64_t>();
  if (!it->is_number_integer()) {
    return tl::unexpected(error_response(400, "invalid_request",
                                         std::string("field '") + key + "' must be an integer"));
  }
  return std::optional<std::int64_t>(it->get<std::int64_t>());
}

Step<std::optional<bool>> opt_bool(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::optional<bool>();
  if (!it->is_boolean()) {
    return tl::unexpected(error_response(400, "invalid_request",
                                         std::string("field '") + key + "' must be a boolean"));
  }
  return std::optional<bool>(it->get<bool>());
}

Step<std::string> req_string(const json& j, const char* key) {
  auto v = opt_string(j, key);
  if (!v) return tl::unexpected(v.error());
  if (!*v) {
    return tl::unexpected(
        error_response(400, "invalid_request", std::string("missing field '") + key + "'"));
  }
  return **v;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::map<std::string, std::string> parse_query(std::string_view q) {
  std::map<std::string, std::string> out;
  while (!q.empty()) {
    const auto amp = q.find('&');
    const std::string_view part = q.substr(0, amp);
    const auto eq = part.find('=');
    if (eq != std::string_view::npos) {
      out[std::string(part.substr(0, eq))] = std::string(part.substr(eq + 1));
    } else if (!part.empty()) {
      out[std::string(part)] = "";
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const auto slash = path.find('/');
    out.emplace_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash);
  }
  return out;
}

bool valid_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

bool valid_name(std::string_view s, std::size_t max_bytes) {
  if (s.empty() || s.size() > max_bytes) return false;
  return std::none_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c < 0x20 || c == 0x7f;
  });
}

// ---------------- router ----------------

void Router::add(std::string method, std::string pattern, Auth auth, Handler h) {
  auto segs = split_path(pattern);
  Route r{std::move(method), std::move(pattern), std::move(segs), auth, std::move(h)};
  routes_.push_back(std::move(r));
}

std::optional<Router::Match> Router::match(const std::string& method,
                                           const std::vector<std::string>& segs) const {
  std::optional<Match> path_match;
  for (const auto& r : routes_) {
    if (r.segs.size() != segs.size()) continue;
    std::map<std::string, std::string> params;
    bool ok = true;
    for (std::size_t i = 0; i < segs.size() && ok; ++i) {
      const auto& p = r.segs[i];
      if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
        params[p.substr(1, p.size() - 2)] = segs[i];
      } else {
        ok = p == segs[i];
      }
    }
    if (!ok) continue;
    if (r.method == method) return Match{&r.handler, r.auth, r.pattern, std::move(params), ""};
    if (!path_match) path_match = Match{nullptr, r.auth, r.pattern, {}, ""};
    if (!path_match->allow.empty()) path_match->allow += ", ";
    path_match->allow += r.method;
  }
  return path_match;
}

// ---------------- audit chain ----------------

namespace {
constexpr std::int64_t kAuditLockKey = 0x7261705f61756474;  // "rap_audt"
}

void audit(pqxx::work& w, const AuditEvent& e) {
  // Serializes audit writers until commit so that each event's prev_hash is the hash of the
  // event committed just before it. rap_audit_digest (migration 2) defines the hashed form.
  w.exec_params("SELECT pg_advisory_xact_lock($1)", kAuditLockKey);
  w.exec_params(
      "INSERT INTO audit_events (id, at, actor_user_id, actor_node_id, org_id, cluster_id, "
      "action, target, outcome, details, prev_hash, hash) "
      "SELECT n.id, n.at, NULLIF($1, '')::uuid, $2, NULLIF($3, '')::uuid, NULLIF($4, '')::uuid, "
      "$5, $6, $7, $8::jsonb, n.prev, rap_audit_digest(n.prev, n.id, n.at, NULLIF($1, '')::uuid, "
      "$2, NULLIF($3, '')::uuid, NULLIF($4, '')::uuid, $5, $6, $7, $8::jsonb) "
      "FROM (SELECT nextval('audit_events_id_seq') AS id, clock_timestamp() AS at, "
      "COALESCE((SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1), '') AS prev) n",
      e.actor_user_id, e.actor_node_id, e.org_id, e.cluster_id, e.action, e.target, e.outcome,
      e.details.dump());
}

void audit_standalone(Db& db, const AuditEvent& e) {
  auto r = db.with_transaction<void>([&](pqxx::work& w) -> Result<void> {
    audit(w, e);
    return {};
  });
  if (!r) spdlog::error("audit write failed action={} code={}", e.action, r.error().code);
}

Result<AuditVerifyReport> verify_audit_chain(Db& db) {
  return db.with_connection<AuditVerifyReport>(
      [](pqxx::connection& c) -> Result<AuditVerifyReport> {
        AuditVerifyReport rep;
        pqxx::read_transaction t(c);
        std::string prev;
        std::int64_t after = 0;
        for (;;) {
          auto rows = t.exec_params(
              "SELECT id, prev_hash, hash, rap_audit_digest(prev_hash, id, at, actor_user_id, "
              "actor_node_id, org_id, cluster_id, action, target, outcome, details) "
              "FROM audit_events WHERE id > $1 ORDER BY id LIMIT 5000",
              after);
          if (rows.empty()) break;
          for (const auto& row : rows) {
            const auto id = row[0].as<std::int64_t>();
            const std::string p = row[1].is_null() ? "" : row[1].as<std::string>();
            const std::string h = row[2].is_null() ? "" : row[2].as<std::string>();
            const std::string d = row[3].is_null() ? "" : row[3].as<std::string>();
            ++rep.events;
            after = id;
            if (!rep.ok) continue;
            if (p != prev) {
              rep.ok = false;
              rep.first_bad_id = id;
              rep.problem = "prev_hash does not match the previous event (an event was removed)";
            } else if (h != d) {
              rep.ok = false;
              rep.first_bad_id = id;
              rep.problem = "hash does not match the event's content (the event was edited)";
            }
            prev = h;
          }
        }
        rep.head_hash = prev;
        return rep;
      });
}

// ---------------- step-up ----------------

std::optional<HttpResponse> require_step_up(Ctx& c) {
  RAP_ASSERT(c.caller != nullptr);
  if (c.caller->elevated) return std::nullopt;
  const std::string path =
      c.req.target.substr(0, std::min<std::size_t>(c.req.target.find('?'), 200));
  audit_standalone(c.db, AuditEvent{.actor_user_id = c.caller->user_id,
                                    .action = "auth.step_up_required",
                                    .target = "token:" + std::to_string(c.caller->token_id),
                                    .outcome = "denied",
                                    .details = json{{"method", c.req.method}, {"path", path}}});
  return error_response(403, "step_up_required",
                        "this action requires a recent step-up (POST /api/v1/auth/step-up)");
}

}  // namespace rap::control::detail
