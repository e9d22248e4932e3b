// LiveState: the only interface through which the control plane touches Redis.
//
// Redis holds live coordination state only: node presence (heartbeats with a TTL), single-use
// short-lived tokens, rate-limit counters and change notifications between rap-control
// instances. Nothing in it is durable: PostgreSQL remains the source of truth, everything here
// can be lost at any time and is rebuilt by the nodes and the control plane (presence by the
// next heartbeat, counters start over, notifications are hints that make subscribers re-read
// PostgreSQL).
//
// Keys are namespaced by scope, a cluster id, an organization id or "platform":
//
//   rap:{<scope>}:presence:<node>     node presence value (PX ttl)
//   rap:{<scope>}:presence_index      sorted set node -> expiry (ms), for list-by-cluster
//   rap:{<scope>}:token:<id>          single-use token value (PX ttl)
//   rap:{<scope>}:rl:<bucket>         fixed-window rate-limit counter (PX window)
//   rap:{<scope>}:changes             pub/sub channel of change notifications
//
// The braces are Redis Cluster hash tags: all keys of one scope hash to one slot, so the
// multi-key scripts below stay valid on a Redis Cluster. Scopes and ids are validated
// (valid_scope/valid_id) so a caller-controlled string cannot reach another tenant's keys.
//
// Errors: every operation returns rap::Result; a Redis that is down, slow or misbehaving gives
// an Error with code "live_state_unavailable" (or "live_state_error" for a rejected command),
// never an exception and never a crash. Callers decide how to degrade (rap-control keeps
// serving from PostgreSQL). Implementations are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rap/common/clock.h"
#include "rap/common/result.h"

namespace rap::control {

// A change notification, delivered to the subscribers of every rap-control instance.
// At-most-once and unordered across scopes: a subscriber treats it as "re-read this from
// PostgreSQL", never as the data itself.
struct Change {
  std::string scope;    // cluster id, org id or "platform"
  std::string message;  // small JSON, e.g. {"kind":"org.created","id":"..."}
  // True for the synthetic notice a subscription delivers after (re)connecting: notifications
  // may have been missed, re-read everything of interest.
  bool resync = false;
};
using ChangeHandler = std::function<void(const Change&)>;

// A running subscription. stop() (also the destructor) ends delivery and joins its thread; after
// it returns the handler is not called again. The handler must not call stop() itself.
class Subscription {
 public:
  virtual ~Subscription() = default;
  virtual void stop() = 0;
};

struct RateCount {
  std::int64_t count = 0;              // hits in the current window (after this hit, for hit())
  std::chrono::milliseconds reset_in;  // time until the window ends (0 if no window is open)
};

class LiveState {
 public:
  virtual ~LiveState() = default;

  // --- node presence ---
  // Sets node `node`'s presence in `scope` (a cluster) to `value` for `ttl`.
  virtual Result<void> set_presence(const std::string& scope, const std::string& node,
                                    const std::string& value, std::chrono::milliseconds ttl) = 0;
  virtual Result<std::optional<std::string>> get_presence(const std::string& scope,
                                                          const std::string& node) = 0;
  // Every live (unexpired) node of `scope`: node -> value.
  virtual Result<std::map<std::string, std::string>> list_presence(const std::string& scope) = 0;

  // --- single-use short-lived tokens ---
  // Stores `value` under `id` for `ttl` (replacing an earlier one with the same id).
  virtual Result<void> put_token(const std::string& scope, const std::string& id,
                                 const std::string& value, std::chrono::milliseconds ttl) = 0;
  // Atomically returns and deletes the token (GETDEL): of concurrent takers, exactly one gets
  // the value; nullopt when absent or expired.
  virtual Result<std::optional<std::string>> take_token(const std::string& scope,
                                                        const std::string& id) = 0;

  // --- fixed-window rate limiting ---
  // Counts one hit on `bucket` (INCR; the first hit of a window sets its expiry, atomically).
  virtual Result<RateCount> rate_hit(const std::string& scope, const std::string& bucket,
                                     std::chrono::milliseconds window) = 0;
  // The current window's count without counting a hit.
  virtual Result<RateCount> rate_peek(const std::string& scope, const std::string& bucket) = 0;

  // --- change notifications ---
  virtual Result<void> publish(const std::string& scope, const std::string& message) = 0;
  // Delivers notifications of `scopes` (all scopes when empty) to `handler`, on a thread of the
  // implementation, until the returned Subscription is stopped. Reconnects by itself while
  // Redis is away and then delivers a Change{resync=true}.
  virtual Result<std::unique_ptr<Subscription>> subscribe(std::vector<std::string> scopes,
                                                          ChangeHandler handler) = 0;

  // --- health and observability ---
  // A round trip to the backend (bounded by the command timeout).
  virtual Result<void> ping() = 0;
  // "redis" or "memory".
  virtual std::string_view backend() const = 0;
  // Prometheus text: rap_control_live_state_up, rap_control_live_state_errors_total{op},
  // rap_control_live_state_degraded_total. Non-blocking.
  virtual std::string render_metrics() = 0;
};

// Scope: 1..128 of [A-Za-z0-9._-] (cluster/org ids, slugs, "platform").
bool valid_scope(std::string_view s);
// Node/token/bucket id: 1..256 of [A-Za-z0-9._:@-].
bool valid_id(std::string_view s);
// "rap:{scope}:<kind>" or "rap:{scope}:<kind>:<id>" (id may be empty). Inputs must be valid.
std::string live_key(std::string_view scope, std::string_view kind, std::string_view id = {});

// Where a Redis server is.
struct RedisEndpoint {
  std::string host;             // TCP host (empty for unix)
  int port = 6379;              // TCP port
  std::string unix_path;        // unix socket path (empty for TCP)
  std::string password;         // AUTH (secret: never logged)
  int db = 0;                   // SELECT
  std::string display() const;  // for logs: no password
};
// Parses redis://[:password@]host[:port][/db] (IPv6 host in brackets) or unix:///path[?db=N].
Result<RedisEndpoint> parse_redis_url(const std::string& url);

struct RedisClientOptions {
  std::size_t pool_size = 4;  // command connections
  std::chrono::milliseconds connect_timeout{500};
  std::chrono::milliseconds command_timeout{500};   // per read/write
  std::chrono::milliseconds acquire_timeout{1000};  // waiting for a pooled connection
  // After a failed connect, operations fail fast for this long instead of each paying a
  // connect timeout (a down Redis must not slow every request).
  std::chrono::milliseconds retry_backoff{1000};
};

// The Redis implementation (hiredis). Does not connect until first used: a Redis that is down
// at startup is a degraded mode, not a startup failure.
std::unique_ptr<LiveState> make_redis_live_state(RedisEndpoint endpoint,
                                                 RedisClientOptions opts = {});

// The in-memory implementation: the same semantics within one process (TTLs read from `clock`,
// notifications delivered synchronously on the publishing thread). For tests of the layers above
// and for a single rap-control instance without Redis. `clock` must outlive it.
std::unique_ptr<LiveState> make_memory_live_state(const Clock& clock);

}  // namespace rap::control
