// The control plane HTTP API (transport-independent): routing, authentication, authorization,
// validation and the PostgreSQL-backed operations. Api::handle is blocking (it talks to
// PostgreSQL and hashes passwords) and must run on the Db thread pool (see db.h); the HTTPS
// server (server.h) does exactly that. Every mutation writes its audit_events row in the same
// transaction. Every error is JSON: {"error":{"code":"...","message":"..."}}.
//
// Tenancy rules enforced here:
//  * the platform owner sees and manages everything;
//  * other users see only organizations they are members of; an organization they are not a
//    member of answers 404 (its existence is not revealed);
//  * org_admin may add members to, and read the audit log of, their own organizations only.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "rap/common/random.h"
#include "rap/common/result.h"
#include "rap/control/db.h"

namespace rap::control {

namespace detail {
class Router;
class NodeHotState;
}  // namespace detail
class LiveState;     // live_state.h
class Subscription;  // live_state.h

struct HttpRequest {
  std::string method;         // "GET", "POST", ...
  std::string target;         // path + optional query
  std::string authorization;  // raw Authorization header ("" if absent)
  std::string body;
  // PEM of the TLS client certificate, "" if none was presented. The server accepts any chain
  // during the handshake (the client proved possession of the key); Auth::kNode routes verify it
  // against the cluster CA.
  std::string client_cert_pem;
  // X-RAP-* request headers, names lower-cased (e.g. "x-rap-proof"), at most 8.
  std::map<std::string, std::string> rap_headers;
  // Set by the server when it re-runs a long-poll request (HttpResponse::long_poll): a handler
  // may then answer "still nothing new" cheaply; the server keeps the first run's response.
  bool long_poll_rerun = false;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string allow;  // for 405
  // > 0: sent as a Retry-After header (seconds), e.g. with 429 rate_limited.
  int retry_after_seconds = 0;
  // Long-poll hint: the response reports "nothing new yet" and the client agreed to wait this
  // long. The HTTPS server re-runs the request (every 250 ms, without holding a DB thread) until
  // a response without the hint arrives or this much time has passed since the first run, then
  // sends the last response. Direct callers of Api::handle may ignore it.
  std::chrono::milliseconds long_poll{0};
  // "" = "no-store" (every API response); static console assets set a long-lived value.
  std::string cache_control;
  // Further response headers (e.g. the console's Content-Security-Policy).
  std::vector<std::pair<std::string, std::string>> headers;
};

struct ApiOptions {
  std::chrono::seconds session_ttl{12 * 3600};
  // Live coordination state (Redis, live_state.h): login rate limits, change notifications.
  // nullptr: none (no login rate limit, no notifications). Not owned; must outlive the Api.
  LiveState* live = nullptr;
  // Login throttling (needs `live`): after this many failed logins for one email within the
  // window, POST /api/v1/login answers 429 rate_limited with Retry-After until the window ends.
  int login_max_failures = 10;
  std::chrono::seconds login_failure_window{300};
  // 32-byte master key sealing cluster CA private keys (cluster_ca.h); empty: cluster creation and
  // certificate issuance answer 503 master_key_unavailable. Secret: never log it.
  std::string master_key;
  // Offline horizon of access tickets: how long past a ticket's expiry nodes that cannot reach
  // the control plane keep honouring its signed grant and route leases (renewed from their cached
  // policy; docs/OPERATIONS.md "Without the control plane"). Signed into each grant and lease as
  // offline_until; 0 disables offline renewal. Nodes cap it at 24 h.
  std::chrono::seconds offline_lease_grace{3600};
  // Lifetime of issued node certificates.
  std::chrono::seconds node_cert_ttl{7 * 24 * 3600};
  // Heartbeats write PostgreSQL (nodes.last_heartbeat_at/last_state and one node_heartbeats
  // history row) when their durable part (version, capabilities, workloads, applied config
  // versions, partition state: everything but `load`) changed, and otherwise at most once per
  // this interval per node; the others are answered after the per-request authentication
  // lookup alone. 0: write every heartbeat. Keep it well below the 30 s "online" window of the
  // node health (at most 20 s is accepted by rap-control).
  std::chrono::seconds heartbeat_write_interval{0};
  // How long a node's mTLS authentication row (status, certificate revocation and expiry,
  // desired_state_version) is reused without re-reading PostgreSQL. Changes made through any
  // rap-control instance drop it at once (this instance) or on the "node.changed" notification
  // (others, through `live`); the TTL bounds the delay when a notification is lost. 0: read
  // PostgreSQL on every node request.
  std::chrono::milliseconds node_auth_cache_ttl{2000};
  // Node presence (LiveState::set_presence, TTL presence_ttl) is written in one batch per
  // presence_flush_interval for every node seen since the last batch. Needs `live`.
  std::chrono::milliseconds presence_flush_interval{1000};
  std::chrono::milliseconds presence_ttl{30000};
  // Directory of the built web console (index.html + assets/) served for non-API GET paths;
  // empty: the API only (routes_web.cpp).
  std::string web_dir;
};

// Reads the master key file (64 hex chars), or creates it (32 random bytes, mode 0600, parent
// directory 0700) when absent. Returns the 32 raw key bytes for ApiOptions::master_key.
// Errors: "io_error"-style codes from Env, "bad_master_key" for a malformed file.
Result<std::string> load_or_create_master_key_file(const std::string& path, Random& rng);

class Api {
 public:
  Api(Db& db, Random& rng, ApiOptions opts = {});
  ~Api();
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  // Routes and executes one request. Blocking; never throws.
  HttpResponse handle(const HttpRequest& req);

  // The part of the API that needs no blocking call (no database, no Redis): an unchanged
  // heartbeat of a node whose authentication is cached. Returns nullopt when the request must
  // go to handle() on the Db pool. Non-blocking; never throws.
  std::optional<HttpResponse> try_handle_fast(const HttpRequest& req);

  // Stops the background tasks (presence flusher, change subscription); idempotent, also run
  // by the destructor. handle() keeps working afterwards (without presence updates).
  void stop();

  // Prometheus text exposition: request counts by route/method/status, DB pool gauges.
  // Non-blocking (safe on the I/O thread).
  std::string render_metrics();

  // Counts a response (also used by the server for requests rejected before routing).
  void record(const std::string& route, const std::string& method, int status);

 private:
  HttpResponse dispatch(const HttpRequest& req, std::string& route_out);

  Db& db_;
  Random& rng_;
  std::mutex rng_mu_;
  ApiOptions opts_;
  std::mutex metrics_mu_;
  std::map<std::tuple<std::string, std::string, int>, std::uint64_t> requests_;
  std::unique_ptr<detail::Router> router_;
  std::unique_ptr<detail::NodeHotState> hot_;
  std::unique_ptr<Subscription> changes_;  // "node.changed" -> hot_ invalidation
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // guarded by stop_mu_
  std::thread presence_flusher_;
  void flush_presence();
  void flush_access();  // open access sessions of entries (LiveState, per organization)
};

// First-run bootstrap. When no platform owner exists and setup is not completed: generates a new
// one-time setup token, stores only its SHA-256 (replacing any earlier unused token) and returns
// it so the caller can print it exactly once. Returns nullopt when setup is already done.
// Runs in one transaction under an advisory lock.
Result<std::optional<std::string>> bootstrap_setup_token(Db& db, Random& rng);

// JSON error body {"error":{"code":..,"message":..}}.
std::string error_body(const std::string& code, const std::string& message);

}  // namespace rap::control
