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
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "rap/common/random.h"
#include "rap/common/result.h"
#include "rap/control/db.h"

namespace rap::control {

namespace detail {
class Router;
}

struct HttpRequest {
  std::string method;         // "GET", "POST", ...
  std::string target;         // path + optional query
  std::string authorization;  // raw Authorization header ("" if absent)
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string allow;  // for 405
};

struct ApiOptions {
  std::chrono::seconds session_ttl{12 * 3600};
};

class Api {
 public:
  Api(Db& db, Random& rng, ApiOptions opts = {});
  ~Api();
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  // Routes and executes one request. Blocking; never throws.
  HttpResponse handle(const HttpRequest& req);

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
};

// First-run bootstrap. When no platform owner exists and setup is not completed: generates a new
// one-time setup token, stores only its SHA-256 (replacing any earlier unused token) and returns
// it so the caller can print it exactly once. Returns nullopt when setup is already done.
// Runs in one transaction under an advisory lock.
Result<std::optional<std::string>> bootstrap_setup_token(Db& db, Random& rng);

// JSON error body {"error":{"code":..,"message":..}}.
std::string error_body(const std::string& code, const std::string& message);

}  // namespace rap::control
