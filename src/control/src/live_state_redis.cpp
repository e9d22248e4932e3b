// LiveState on Redis (hiredis, blocking API with socket timeouts).
//
// Commands go through a small pool of connections (at most RedisClientOptions::pool_size, each
// leased by one thread at a time). A connection that fails is dropped, not reused; the next
// lease reconnects. After a failed connect every operation fails fast for `retry_backoff`, so a
// down Redis costs callers an error, not a connect timeout per request. Multi-step operations
// are single Lua scripts (atomic on the server). Subscriptions run on their own thread with
// their own connection, poll(2) on the socket plus a wake pipe so that stop() is immediate.
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <thread>

#include "rap/control/live_state.h"
#include "sigpipe_guard.h"

namespace rap::control {

namespace {

using SteadyClock = std::chrono::steady_clock;

struct ContextFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextFree>;
struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

timeval to_timeval(std::chrono::milliseconds d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

Error unavailable(const std::string& what) {
  return Error{"live_state_unavailable", "Redis unavailable: " + what};
}

// Sends one command on a blocking context. nullptr reply: the connection is broken.
ReplyPtr command(redisContext* c, const std::vector<std::string>& args) {
  detail::SigpipeGuard no_sigpipe;
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return ReplyPtr(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data())));
}

// Opens a connection: connect (bounded), socket timeouts, AUTH, SELECT.
Result<ContextPtr> connect_redis(const RedisEndpoint& ep, const RedisClientOptions& o) {
  const timeval ctv = to_timeval(o.connect_timeout);
  ContextPtr c(ep.unix_path.empty() ? redisConnectWithTimeout(ep.host.c_str(), ep.port, ctv)
                                    : redisConnectUnixWithTimeout(ep.unix_path.c_str(), ctv));
  if (!c) return tl::unexpected(unavailable("cannot allocate a connection"));
  if (c->err != 0) return tl::unexpected(unavailable(std::string("connect: ") + c->errstr));
  if (redisSetTimeout(c.get(), to_timeval(o.command_timeout)) != REDIS_OK)
    return tl::unexpected(unavailable("cannot set socket timeouts"));
  if (ep.unix_path.empty()) redisEnableKeepAlive(c.get());
  auto expect_ok = [&](const std::vector<std::string>& args, const char* what) -> Result<void> {
    ReplyPtr r = command(c.get(), args);
    if (!r) return tl::unexpected(unavailable(std::string(what) + ": " + c->errstr));
    if (r->type == REDIS_REPLY_ERROR) {
      // The server's message (e.g. WRONGPASS) never contains the password itself.
      return fail("live_state_error", std::string(what) + " rejected: " + r->str);
    }
    return {};
  };
  if (!ep.password.empty()) {
    if (auto r = expect_ok({"AUTH", ep.password}, "AUTH"); !r) return tl::unexpected(r.error());
  }
  if (ep.db != 0) {
    if (auto r = expect_ok({"SELECT", std::to_string(ep.db)}, "SELECT"); !r)
      return tl::unexpected(r.error());
  }
  return c;
}

// --- Lua scripts (each one atomic on the server) ---

// KEYS[1]=presence key, KEYS[2]=index; ARGV[1]=node, ARGV[2]=value, ARGV[3]=ttl ms.
constexpr const char* kSetPresence = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
)lua";

// KEYS[1]=index; ARGV[1]=presence key prefix. Returns {node, value, node, value, ...}.
constexpr const char* kListPresence = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local v = redis.call('GET', ARGV[1] .. id)
  if v then
    out[#out + 1] = id
    out[#out + 1] = v
  end
end
return out
)lua";

// KEYS[1]=counter; ARGV[1]=window ms. Returns {count, ms until the window ends}.
constexpr const char* kRateHit = R"lua(
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
)lua";

// KEYS[1]=counter. Returns {count, ms until the window ends}.
constexpr const char* kRatePeek = R"lua(
local n = redis.call('GET', KEYS[1])
if not n then return {0, 0} end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then ttl = 0 end
return {tonumber(n), ttl}
)lua";

Result<void> check_ids(const std::string& scope, const std::string& id) {
  if (!valid_scope(scope)) return fail("invalid_argument", "invalid live-state scope");
  if (!valid_id(id)) return fail("invalid_argument", "invalid live-state id");
  return {};
}

Result<void> check_ttl(std::chrono::milliseconds ttl) {
  if (ttl.count() <= 0) return fail("invalid_argument", "ttl must be positive");
  return {};
}

Result<RateCount> rate_reply(const redisReply* r) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
      r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER)
    return fail("live_state_error", "unexpected rate-limit reply");
  return RateCount{r->element[0]->integer, std::chrono::milliseconds(r->element[1]->integer)};
}

std::optional<std::string> string_reply(const redisReply* r) {
  if (r->type == REDIS_REPLY_STRING) return std::string(r->str, r->len);
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------

class RedisSubscription final : public Subscription {
 public:
  RedisSubscription(RedisEndpoint ep, RedisClientOptions opts, std::vector<std::string> scopes,
                    ChangeHandler handler)
      : ep_(std::move(ep)), opts_(opts), scopes_(std::move(scopes)), handler_(std::move(handler)) {}

  ~RedisSubscription() override { RedisSubscription::stop(); }

  Result<void> start() {
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0)
      return fail("live_state_error", "cannot create the subscriber wake pipe");
    thread_ = std::thread([this] { run(); });
    return {};
  }

  void stop() override {
    if (stopping_.exchange(true)) return;
    if (wake_[1] >= 0) {
      const char b = 1;
      (void)!::write(wake_[1], &b, 1);
    }
    if (thread_.joinable()) thread_.join();
    for (int& fd : wake_) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
  }

 private:
  // Sleeps up to `d` unless stop() is called; false when stopping.
  bool nap(std::chrono::milliseconds d) {
    pollfd p{wake_[0], POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(d.count()));
    return !stopping_;
  }

  void run() {
    bool was_up = true;
    while (!stopping_) {
      auto c = connect_redis(ep_, opts_);
      if (c) {
        if (!was_up) spdlog::info("live state: subscriber reconnected to {}", ep_.display());
        was_up = true;
        const std::string why = serve(c->get());
        if (stopping_) break;
        spdlog::warn("live state: subscriber connection lost ({}), reconnecting", why);
        was_up = false;
      } else if (was_up) {
        spdlog::warn("live state: subscriber cannot connect to {}: {}", ep_.display(),
                     c.error().message);
        was_up = false;
      }
      if (!nap(opts_.retry_backoff)) break;
    }
  }

  // Subscribes and delivers until the connection fails or stop() is called. Returns why it ended.
  std::string serve(redisContext* c) {
    std::vector<std::string> args;
    if (scopes_.empty()) {
      args = {"PSUBSCRIBE", "rap:{*}:changes"};
    } else {
      args = {"SUBSCRIBE"};
      for (const auto& s : scopes_) args.push_back(live_key(s, "changes"));
    }
    const std::size_t confirmations = args.size() - 1;
    ReplyPtr first = command(c, args);
    if (!first) return std::string("subscribe: ") + c->errstr;
    std::size_t confirmed = 1;
    // No timeouts from here on: poll(2) decides when to read.
    if (redisSetTimeout(c, timeval{0, 0}) != REDIS_OK) return "cannot clear socket timeouts";
    auto last_rx = SteadyClock::now();
    bool ping_outstanding = false;
    bool announced = false;
    for (;;) {
      if (stopping_) return "stopping";
      if (confirmed >= confirmations && !announced) {
        announced = true;
        deliver(Change{"", "", true});  // we may have missed notifications while away
      }
      void* raw = nullptr;
      if (redisGetReplyFromReader(c, &raw) != REDIS_OK) return "protocol error";
      if (raw != nullptr) {
        ReplyPtr r(static_cast<redisReply*>(raw));
        last_rx = SteadyClock::now();
        ping_outstanding = false;
        handle(r.get(), confirmed);
        continue;
      }
      pollfd fds[2] = {{c->fd, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      const int n = ::poll(fds, 2, kIdlePollMs);
      if (n < 0 && errno != EINTR) return "poll failed";
      if (stopping_) return "stopping";
      if (n > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        if (redisBufferRead(c) != REDIS_OK) return c->errstr;
        continue;
      }
      // Idle: check the connection with a PING (allowed in subscribed mode).
      const auto idle = SteadyClock::now() - last_rx;
      if (ping_outstanding && idle > std::chrono::milliseconds(3 * kIdlePollMs))
        return "no answer to PING";
      if (!ping_outstanding && idle > std::chrono::milliseconds(kIdlePollMs)) {
        if (redisAppendCommand(c, "PING") != REDIS_OK) return "cannot queue PING";
        detail::SigpipeGuard no_sigpipe;
        int done = 0;
        while (done == 0) {
          if (redisBufferWrite(c, &done) != REDIS_OK) return c->errstr;
        }
        ping_outstanding = true;
      }
    }
  }

  void handle(const redisReply* r, std::size_t& confirmed) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING)
      return;
    const std::string kind(r->element[0]->str, r->element[0]->len);
    if (kind == "subscribe" || kind == "psubscribe") {
      ++confirmed;
      return;
    }
    const redisReply* channel = nullptr;
    const redisReply* payload = nullptr;
    if (kind == "message" && r->elements == 3) {
      channel = r->element[1];
      payload = r->element[2];
    } else if (kind == "pmessage" && r->elements == 4) {
      channel = r->element[2];
      payload = r->element[3];
    } else {
      return;  // "pong" and anything else
    }
    if (channel->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING) return;
    // rap:{<scope>}:changes
    const std::string_view ch(channel->str, channel->len);
    const auto open = ch.find('{');
    const auto close = ch.find('}');
    if (open == std::string_view::npos || close == std::string_view::npos || close < open) return;
    deliver(Change{std::string(ch.substr(open + 1, close - open - 1)),
                   std::string(payload->str, payload->len), false});
  }

  void deliver(const Change& c) {
    try {
      handler_(c);
    } catch (const std::exception& e) {
      spdlog::error("live state: change handler threw: {}", e.what());
    } catch (...) {
      spdlog::error("live state: change handler threw");
    }
  }

  static constexpr int kIdlePollMs = 5000;
  RedisEndpoint ep_;
  RedisClientOptions opts_;
  std::vector<std::string> scopes_;
  ChangeHandler handler_;
  std::atomic<bool> stopping_{false};
  int wake_[2] = {-1, -1};
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------

class RedisLiveState final : public LiveState {
 public:
  RedisLiveState(RedisEndpoint ep, RedisClientOptions opts) : ep_(std::move(ep)), opts_(opts) {
    RAP_ASSERT(opts_.pool_size > 0);
  }

  ~RedisLiveState() override = default;  // pooled contexts are freed by idle_'s destructor

  Result<void> set_presence(const std::string& scope, const std::string& node,
                            const std::string& value, std::chrono::milliseconds ttl) override {
    if (auto v = check_ids(scope, node); !v) return v;
    if (auto v = check_ttl(ttl); !v) return v;
    auto r = run("set_presence",
                 {"EVAL", kSetPresence, "2", live_key(scope, "presence", node),
                  live_key(scope, "presence_index"), node, value, std::to_string(ttl.count())});
    if (!r) return tl::unexpected(r.error());
    return {};
  }

  Result<std::optional<std::string>> get_presence(const std::string& scope,
                                                  const std::string& node) override {
    if (auto v = check_ids(scope, node); !v) return tl::unexpected(v.error());
    auto r = run("get_presence", {"GET", live_key(scope, "presence", node)});
    if (!r) return tl::unexpected(r.error());
    return string_reply(r->get());
  }

  Result<std::map<std::string, std::string>> list_presence(const std::string& scope) override {
    if (!valid_scope(scope)) return fail("invalid_argument", "invalid live-state scope");
    auto r = run("list_presence", {"EVAL", kListPresence, "1", live_key(scope, "presence_index"),
                                   live_key(scope, "presence") + ":"});
    if (!r) return tl::unexpected(r.error());
    const redisReply* a = r->get();
    if (a->type != REDIS_REPLY_ARRAY || a->elements % 2 != 0)
      return fail("live_state_error", "unexpected presence list reply");
    std::map<std::string, std::string> out;
    for (std::size_t i = 0; i + 1 < a->elements; i += 2) {
      auto k = string_reply(a->element[i]);
      auto v = string_reply(a->element[i + 1]);
      if (k && v) out[*k] = *v;
    }
    return out;
  }

  Result<void> put_token(const std::string& scope, const std::string& id, const std::string& value,
                         std::chrono::milliseconds ttl) override {
    if (auto v = check_ids(scope, id); !v) return v;
    if (auto v = check_ttl(ttl); !v) return v;
    auto r = run("put_token",
                 {"SET", live_key(scope, "token", id), value, "PX", std::to_string(ttl.count())});
    if (!r) return tl::unexpected(r.error());
    return {};
  }

  Result<std::optional<std::string>> take_token(const std::string& scope,
                                                const std::string& id) override {
    if (auto v = check_ids(scope, id); !v) return tl::unexpected(v.error());
    auto r = run("take_token", {"GETDEL", live_key(scope, "token", id)});
    if (!r) return tl::unexpected(r.error());
    return string_reply(r->get());
  }

  Result<RateCount> rate_hit(const std::string& scope, const std::string& bucket,
                             std::chrono::milliseconds window) override {
    if (auto v = check_ids(scope, bucket); !v) return tl::unexpected(v.error());
    if (auto v = check_ttl(window); !v) return tl::unexpected(v.error());
    auto r = run("rate_hit", {"EVAL", kRateHit, "1", live_key(scope, "rl", bucket),
                              std::to_string(window.count())});
    if (!r) return tl::unexpected(r.error());
    return rate_reply(r->get());
  }

  Result<RateCount> rate_peek(const std::string& scope, const std::string& bucket) override {
    if (auto v = check_ids(scope, bucket); !v) return tl::unexpected(v.error());
    auto r = run("rate_peek", {"EVAL", kRatePeek, "1", live_key(scope, "rl", bucket)});
    if (!r) return tl::unexpected(r.error());
    return rate_reply(r->get());
  }

  Result<void> publish(const std::string& scope, const std::string& message) override {
    if (!valid_scope(scope)) return fail("invalid_argument", "invalid live-state scope");
    auto r = run("publish", {"PUBLISH", live_key(scope, "changes"), message});
    if (!r) return tl::unexpected(r.error());
    return {};
  }

  Result<std::unique_ptr<Subscription>> subscribe(std::vector<std::string> scopes,
                                                  ChangeHandler handler) override {
    for (const auto& s : scopes) {
      if (!valid_scope(s)) return fail("invalid_argument", "invalid live-state scope");
    }
    auto sub =
        std::make_unique<RedisSubscription>(ep_, opts_, std::move(scopes), std::move(handler));
    if (auto r = sub->start(); !r) return tl::unexpected(r.error());
    return std::unique_ptr<Subscription>(std::move(sub));
  }

  Result<void> ping() override {
    auto r = run("ping", {"PING"});
    if (!r) return tl::unexpected(r.error());
    return {};
  }

  std::string_view backend() const override { return "redis"; }

  std::string render_metrics() override {
    std::ostringstream o;
    std::lock_guard g(mu_);
    o << "# HELP rap_control_live_state_up 1 when the last live-state operation succeeded, 0 in "
         "degraded mode.\n"
      << "# TYPE rap_control_live_state_up gauge\n"
      << "rap_control_live_state_up{backend=\"redis\"} " << (up_ ? 1 : 0) << "\n"
      << "# HELP rap_control_live_state_degraded_total Transitions into degraded mode (Redis "
         "lost).\n"
      << "# TYPE rap_control_live_state_degraded_total counter\n"
      << "rap_control_live_state_degraded_total " << degraded_total_ << "\n"
      << "# HELP rap_control_live_state_errors_total Failed live-state operations by operation.\n"
      << "# TYPE rap_control_live_state_errors_total counter\n";
    for (const auto& [op, n] : errors_) {
      o << "rap_control_live_state_errors_total{op=\"" << op << "\"} " << n << "\n";
    }
    o << "# HELP rap_control_live_state_connections_open Open Redis command connections.\n"
      << "# TYPE rap_control_live_state_connections_open gauge\n"
      << "rap_control_live_state_connections_open " << open_ << "\n";
    return o.str();
  }

 private:
  // A leased connection: back to the pool on destruction unless marked broken.
  class Lease {
   public:
    Lease(RedisLiveState* owner, ContextPtr c) : owner_(owner), c_(std::move(c)) {}
    Lease(Lease&& o) noexcept : owner_(o.owner_), c_(std::move(o.c_)), broken_(o.broken_) {}
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() {
      if (c_) owner_->release(std::move(c_), broken_);
    }
    redisContext* get() const { return c_.get(); }
    void mark_broken() { broken_ = true; }

   private:
    RedisLiveState* owner_;
    ContextPtr c_;
    bool broken_ = false;
  };

  Result<Lease> acquire() {
    std::unique_lock l(mu_);
    if (SteadyClock::now() < down_until_) return tl::unexpected(unavailable(last_error_));
    const bool got = cv_.wait_for(l, opts_.acquire_timeout,
                                  [&] { return !idle_.empty() || open_ < opts_.pool_size; });
    if (!got) return fail("live_state_unavailable", "Redis connection pool exhausted");
    if (!idle_.empty()) {
      ContextPtr c = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(c));
    }
    ++open_;
    l.unlock();
    auto c = connect_redis(ep_, opts_);
    l.lock();
    if (!c) {
      --open_;
      cv_.notify_one();
      if (c.error().code == "live_state_unavailable") {
        down_until_ = SteadyClock::now() + opts_.retry_backoff;
        last_error_ = c.error().message;
      }
      return tl::unexpected(c.error());
    }
    return Lease(this, std::move(*c));
  }

  void release(ContextPtr c, bool broken) {
    std::lock_guard g(mu_);
    if (broken) {
      --open_;
    } else {
      idle_.push_back(std::move(c));
    }
    cv_.notify_one();
  }

  // Runs one command on a pooled connection; error replies become "live_state_error".
  Result<ReplyPtr> run(const char* op, const std::vector<std::string>& args) {
    auto lease = acquire();
    if (!lease) {
      note(op, false, lease.error());
      return tl::unexpected(lease.error());
    }
    ReplyPtr r = command(lease->get(), args);
    if (!r) {
      lease->mark_broken();
      Error e = unavailable(lease->get()->errstr);
      note(op, false, e);
      return tl::unexpected(e);
    }
    if (r->type == REDIS_REPLY_ERROR) {
      // The server answered: the connection is fine, the command was refused.
      Error e{"live_state_error", std::string(op) + ": " + std::string(r->str, r->len)};
      note(op, true, e);
      return tl::unexpected(e);
    }
    note(op, true, {});
    return r;
  }

  // Tracks up/degraded transitions (logged once per transition, not per failure) and counts.
  void note(const char* op, bool reachable, const Error& e) {
    std::lock_guard g(mu_);
    if (!e.code.empty()) ++errors_[op];
    if (reachable && !up_) {
      up_ = true;
      spdlog::info("live state: Redis {} reachable again, leaving degraded mode", ep_.display());
    } else if (!reachable && up_) {
      up_ = false;
      ++degraded_total_;
      spdlog::warn("live state: Redis {} unavailable, degraded mode (serving from PostgreSQL): {}",
                   ep_.display(), e.message);
    }
  }

  const RedisEndpoint ep_;
  const RedisClientOptions opts_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ContextPtr> idle_;
  std::size_t open_ = 0;
  SteadyClock::time_point down_until_{};
  std::string last_error_;
  bool up_ = true;
  std::uint64_t degraded_total_ = 0;
  std::map<std::string, std::uint64_t> errors_;
};

}  // namespace

std::unique_ptr<LiveState> make_redis_live_state(RedisEndpoint endpoint, RedisClientOptions opts) {
  return std::make_unique<RedisLiveState>(std::move(endpoint), opts);
}

}  // namespace rap::control
