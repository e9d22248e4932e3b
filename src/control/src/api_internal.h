// Internals shared by the control plane's route modules (routes_*.cpp). Not a public header.
//
// A route module registers its handlers on the Router:
//
//   void register_identity_routes(Router& r) {
//     r.add("POST", "/api/v1/orgs/{slug}/members", Auth::kUser, [](Ctx& c) { ... });
//   }
//
// Handlers are blocking (they run on the Db thread pool), never throw on bad input (they return
// 4xx responses) and write an audit event in the same transaction as every mutation.
#pragma once

#include <functional>
#include <initializer_list>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "rap/common/random.h"
#include "rap/common/result.h"
#include "rap/control/api.h"
#include "rap/control/db.h"
#include "rap/control/live_state.h"

namespace rap::control::detail {

using json = nlohmann::json;
class NodeHotState;  // node_hot_state.h

// Timestamps leave the database as RFC 3339 UTC strings.
#define RAP_TS(col) "to_char((" col ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

// The result of a handler step: a value or the HTTP error response to send.
template <class T>
using Step = tl::expected<T, HttpResponse>;

HttpResponse json_response(int status, const json& j);
HttpResponse error_response(int status, const std::string& code, const std::string& message);
// Infrastructure error from the DB layer -> 503/409/500 (details logged, not returned).
HttpResponse from_error(const Error& e);
// Like from_error, but errors made by http_fail() keep their status and code.
HttpResponse to_response(const Error& e);
// An error that passes through Db::with_transaction and becomes `status` + `code`.
tl::unexpected<Error> http_fail(int status, const std::string& code, const std::string& message);

// Parses a JSON object body; 400 malformed_json / invalid_request otherwise.
Step<json> parse_object(const std::string& body);
// A JSON object whose members are exactly `keys`, all strings.
Step<std::map<std::string, std::string>> parse_fields(const std::string& body,
                                                      std::initializer_list<const char*> keys);
// Checks that `j` has only members from `allowed`; 400 invalid_request naming the first other.
std::optional<HttpResponse> reject_unknown_fields(const json& j,
                                                  std::initializer_list<const char*> allowed);
// Typed member accessors: nullopt if absent; a 400 response if present with the wrong type.
Step<std::optional<std::string>> opt_string(const json& j, const char* key);
Step<std::optional<std::int64_t>> opt_int(const json& j, const char* key);
Step<std::optional<bool>> opt_bool(const json& j, const char* key);
Step<std::string> req_string(const json& j, const char* key);

std::string lower(std::string s);
std::map<std::string, std::string> parse_query(std::string_view q);
std::vector<std::string> split_path(std::string_view path);
bool valid_uuid(std::string_view s);
// A display name: 1..max_bytes bytes, no control characters (U+0000..U+001F, U+007F).
bool valid_name(std::string_view s, std::size_t max_bytes = 100);

// One audit event. Written in the caller's transaction; events form a SHA-256 hash chain
// (see audit.cpp) so that an edited or deleted row is detectable.
struct AuditEvent {
  std::string actor_user_id;        // "" for none
  std::string actor_node_id;        // "" for none (node-initiated events)
  std::string org_id;               // "" for platform-level events
  std::string cluster_id;           // "" when not about a cluster
  std::string action;               // e.g. "org.created"
  std::string target;               // e.g. "org:acme"
  std::string outcome = "success";  // "success" or "denied"
  json details = json::object();
};
void audit(pqxx::work& w, const AuditEvent& e);
// Audit in its own transaction (for denied attempts, where the main transaction rolled back).
void audit_standalone(Db& db, const AuditEvent& e);

struct AuditVerifyReport {
  std::int64_t events = 0;
  bool ok = true;
  std::int64_t first_bad_id = 0;  // 0 when ok
  std::string problem;
  std::string head_hash;  // record it elsewhere to detect truncation of the newest events
};
Result<AuditVerifyReport> verify_audit_chain(Db& db);

// Who is calling.
struct Caller {
  std::string user_id;
  std::string email;
  bool is_owner = false;
  // Platform admin (users.is_platform_admin): cluster, node and topology administration like the
  // owner, but cannot manage other platform admins.
  bool is_platform_admin = false;
  std::string token_hash;
  std::int64_t token_id = 0;
  std::string token_kind = "session";  // "session" (login) or "api" (automation token)
  std::string token_scope;             // api tokens: "read" (GET only) or "admin"; "" for sessions
  std::string token_org;  // api tokens restricted to one organization: its slug; "" otherwise
  // Step-up state: a session within its elevated_until window, or an "admin"-scope API token
  // (API tokens can only be created by an elevated session, see routes_account.cpp).
  bool elevated = false;
};

// An organization as the caller may see it. find_org answers 404 org_not_found both for a slug
// that does not exist and for one the caller is not a member of (existence is not revealed).
struct OrgView {
  json org;
  std::string id;
  std::string role;  // caller's membership role; "" for the platform owner
};
Result<OrgView> find_org(pqxx::transaction_base& t, const Caller& caller, const std::string& slug);

enum class Auth : std::uint8_t {
  kNone,  // public (setup, login, healthz, enrollment with a join token)
  kUser,  // bearer token of a user
  kNode,  // TLS client certificate of an active node, chained to its cluster's CA
};

// An authenticated node (Auth::kNode): identity from its verified client certificate.
struct NodeCaller {
  std::string node_id;
  std::string cluster_id;
  std::int64_t serial = 0;
  // Read by the same query that authenticated the request (no second round trip): the node's
  // desired_state_version and the database's now() (RAP_TS format).
  std::int64_t desired_state_version = 0;
  std::string db_now;
  // The cluster's config generation (bumped on every change of a config input): a node
  // fetches GET /api/v1/node/config when it differs from its last fetch.
  std::int64_t config_generation = 0;
};

// Per-request context handed to a handler.
struct Ctx {
  const HttpRequest& req;
  std::map<std::string, std::string> params;  // {name} path segments
  std::map<std::string, std::string> query;
  const Caller* caller = nullptr;    // set for Auth::kUser routes
  const NodeCaller* node = nullptr;  // set for Auth::kNode routes
  Db& db;
  ApiOptions& opts;
  // Thread-safe randomness (handlers run concurrently on the Db pool).
  std::function<std::string()> random_token;
  std::function<void(std::span<std::uint8_t>)> random_bytes;
  // Live state (Redis) or nullptr (ApiOptions::live). Its errors mean degraded mode: serve from
  // PostgreSQL, never fail a request only because Redis is away.
  LiveState* live = nullptr;
  // The node hot path's in-memory caches (node_hot_state.h); owned by the Api.
  NodeHotState* hot = nullptr;

  const std::string& param(const std::string& k) const { return params.at(k); }
};

using Handler = std::function<HttpResponse(Ctx&)>;

class Router {
 public:
  void add(std::string method, std::string pattern, Auth auth, Handler h);

  struct Match {
    const Handler* handler = nullptr;
    Auth auth = Auth::kNone;
    std::string pattern;                        // metrics label
    std::map<std::string, std::string> params;  // {name} -> segment
    std::string allow;                          // set when the path matched but the method not
  };
  // nullopt: no route has this path.
  std::optional<Match> match(const std::string& method, const std::vector<std::string>& segs) const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segs;
    Auth auth;
    Handler handler;
  };
  std::vector<Route> routes_;
};

// Step-up gate for high-risk actions (user creation, API tokens, org_admin grants, cluster join
// tokens, node approval, revocation...). Returns nullopt when the caller is elevated (see
// Caller::elevated); otherwise writes a "auth.step_up_required" denied audit event (own
// transaction) and returns the 403 step_up_required response to send. Call it after the
// ordinary authorization checks and outside any open transaction.
std::optional<HttpResponse> require_step_up(Ctx& c);

// Second factor of `user_id` inside the caller's transaction (login, step-up): when the user has
// a confirmed TOTP secret (sealed with `master_key`), `code` must be a valid, not yet used code
// (the step is then recorded); errors are http_fail 401 totp_required / invalid_totp, 503
// master_key_unavailable. Returns whether TOTP is enabled.
Result<bool> check_second_factor(pqxx::work& w, std::string_view master_key,
                                 const std::string& user_id,
                                 const std::optional<std::string>& code);

// routes_web.cpp: the web console's static files for a GET outside /api/ (`path` without the
// query): file, SPA fallback to index.html, or a JSON 404/405. Never reads outside `web_dir`.
HttpResponse serve_web(const std::string& web_dir, const HttpRequest& req, const std::string& path);
// Content-Security-Policy of the console: its own scripts, styles and API only.
inline constexpr const char* kConsoleCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'";

// Route modules.
void register_identity_routes(Router& r);
void register_cluster_routes(Router& r);  // routes_clusters.cpp: platform-owner cluster admin
void register_node_routes(Router& r);     // routes_node.cpp: enrollment and node-facing API

// Auth::kNode: verifies req.client_cert_pem against its cluster's CA, checks that the certificate
// is known and not revoked and that the node is active (routes_node.cpp).
// The verified row is cached in `hot` (node_hot_state.h).
Step<NodeCaller> authenticate_node(Db& db, NodeHotState& hot, const HttpRequest& req);
// An unchanged heartbeat of a node whose authentication row is cached, answered without the
// database (non-blocking: safe on the I/O thread); nullopt when it needs the database path.
std::optional<HttpResponse> fast_heartbeat(NodeHotState& hot, const ApiOptions& opts,
                                           const HttpRequest& req);
// After a committed change of a node's status, certificates, roles or workloads: drops its
// cached authentication row here and publishes "node.changed" to the other instances.
void node_changed(Ctx& ctx, const std::string& cluster_id, const std::string& node_id);
void register_account_routes(Router& r);  // /api/v1/me..., /api/v1/auth/step-up
void register_tenancy_routes(Router& r);  // /api/v1/orgs/{slug}/{groups,resources,policies,...}
// routes_topology.cpp: node groups, cluster authority, egress pools, platform admins.
void register_topology_routes(Router& r);
// routes_console.cpp: read-only summaries for the web console (platform overview, compact node
// list, trust, node audit timeline; tenant-safe organization status).
void register_console_routes(Router& r);
// routes_access.cpp: route tickets for users (POST .../resources/{id}/connect) and the access
// records of nodes (POST /api/v1/node/access), docs/PROTOCOL.md §14.
void register_access_routes(Router& r);
// routes_sessions.cpp: an organization's open access sessions (terminate) and access points
void register_session_routes(Router& r);

}  // namespace rap::control::detail
