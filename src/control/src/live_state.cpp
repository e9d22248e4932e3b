// LiveState helpers (key names, validation, Redis URL parsing) and the in-memory implementation.
#include "rap/control/live_state.h"

#include <algorithm>
#include <charconv>
#include <list>
#include <mutex>
#include <sstream>

namespace rap::control {

namespace {

bool all_of_set(std::string_view s, std::size_t max, std::string_view extra) {
  if (s.empty() || s.size() > max) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           extra.find(c) != std::string_view::npos;
  });
}

bool parse_int(std::string_view s, int& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

bool valid_scope(std::string_view s) {
  return all_of_set(s, 128, "._-");
}

bool valid_id(std::string_view s) {
  return all_of_set(s, 256, "._:@-");
}

std::string live_key(std::string_view scope, std::string_view kind, std::string_view id) {
  RAP_ASSERT(valid_scope(scope));
  std::string k = "rap:{";
  k.append(scope).append("}:").append(kind);
  if (!id.empty()) k.append(":").append(id);
  return k;
}

std::string RedisEndpoint::display() const {
  std::string out = unix_path.empty()
                        ? "redis://" +
                              (host.find(':') != std::string::npos ? "[" + host + "]" : host) +
                              ":" + std::to_string(port)
                        : "unix://" + unix_path;
  if (db != 0) out += (unix_path.empty() ? "/" : "?db=") + std::to_string(db);
  return out;
}

Result<RedisEndpoint> parse_redis_url(const std::string& url) {
  RedisEndpoint ep;
  const auto bad = [&](const std::string& why) {
    // The URL may hold a password: never echo it.
    return fail("bad_redis_url", "invalid Redis URL: " + why +
                                     " (expected redis://[:password@]host[:port][/db] or "
                                     "unix:///path[?db=N])");
  };
  std::string_view u = url;
  if (u.starts_with("unix://")) {
    u.remove_prefix(7);
    const auto q = u.find('?');
    ep.unix_path = std::string(u.substr(0, q));
    if (ep.unix_path.empty() || ep.unix_path.front() != '/')
      return bad("socket path must be absolute");
    if (q != std::string_view::npos) {
      std::string_view query = u.substr(q + 1);
      if (!query.starts_with("db=") || !parse_int(query.substr(3), ep.db) || ep.db < 0)
        return bad("only ?db=N is supported");
    }
    return ep;
  }
  if (!u.starts_with("redis://")) return bad("unknown scheme");
  u.remove_prefix(8);
  const auto slash = u.find('/');
  std::string_view authority = u.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view path = u.substr(slash + 1);
    if (!path.empty() && (!parse_int(path, ep.db) || ep.db < 0)) return bad("bad database number");
  }
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) return bad("credentials must be :password");
    ep.password = std::string(userinfo.substr(colon + 1));
  }
  std::string_view port;
  if (authority.starts_with("[")) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated IPv6 address");
    ep.host = std::string(authority.substr(1, close - 1));
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("junk after IPv6 address");
      port = rest.substr(1);
    }
  } else {
    const auto colon = authority.find(':');
    ep.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (ep.host.empty()) return bad("missing host");
  if (!port.empty() && (!parse_int(port, ep.port) || ep.port < 1 || ep.port > 65535))
    return bad("bad port");
  return ep;
}

namespace {

// ---------------------------------------------------------------------------------------------
// In-memory implementation.

class MemoryLiveState final : public LiveState {
 public:
  explicit MemoryLiveState(const Clock& clock) : clock_(clock) {}

  Result<void> set_presence(const std::string& scope, const std::string& node,
                            const std::string& value, std::chrono::milliseconds ttl) override {
    if (auto v = check(scope, node, ttl); !v) return v;
    std::lock_guard g(mu_);
    sweep_locked();
    values_[live_key(scope, "presence", node)] = Entry{value, clock_.now() + ttl};
    return {};
  }

  Result<std::optional<std::string>> get_presence(const std::string& scope,
                                                  const std::string& node) override {
    if (auto v = check(scope, node); !v) return tl::unexpected(v.error());
    std::lock_guard g(mu_);
    return get_locked(live_key(scope, "presence", node), false);
  }

  Result<std::map<std::string, std::string>> list_presence(const std::string& scope) override {
    if (!valid_scope(scope)) return fail("invalid_argument", "invalid live-state scope");
    const std::string prefix = live_key(scope, "presence") + ":";
    std::lock_guard g(mu_);
    std::map<std::string, std::string> out;
    const auto now = clock_.now();
    for (auto it = values_.lower_bound(prefix); it != values_.end(); ++it) {
      if (!it->first.starts_with(prefix)) break;
      if (it->second.expires > now) out[it->first.substr(prefix.size())] = it->second.value;
    }
    return out;
  }

  Result<void> put_token(const std::string& scope, const std::string& id, const std::string& value,
                         std::chrono::milliseconds ttl) override {
    if (auto v = check(scope, id, ttl); !v) return v;
    std::lock_guard g(mu_);
    sweep_locked();
    values_[live_key(scope, "token", id)] = Entry{value, clock_.now() + ttl};
    return {};
  }

  Result<std::optional<std::string>> take_token(const std::string& scope,
                                                const std::string& id) override {
    if (auto v = check(scope, id); !v) return tl::unexpected(v.error());
    std::lock_guard g(mu_);
    return get_locked(live_key(scope, "token", id), true);
  }

  Result<RateCount> rate_hit(const std::string& scope, const std::string& bucket,
                             std::chrono::milliseconds window) override {
    if (auto v = check(scope, bucket, window); !v) return tl::unexpected(v.error());
    std::lock_guard g(mu_);
    sweep_locked();
    const auto now = clock_.now();
    auto& c = counters_[live_key(scope, "rl", bucket)];
    if (c.expires <= now) c = Counter{0, now + window};
    ++c.count;
    return RateCount{c.count, remaining(c.expires, now)};
  }

  Result<RateCount> rate_peek(const std::string& scope, const std::string& bucket) override {
    if (auto v = check(scope, bucket); !v) return tl::unexpected(v.error());
    std::lock_guard g(mu_);
    const auto now = clock_.now();
    auto it = counters_.find(live_key(scope, "rl", bucket));
    if (it == counters_.end() || it->second.expires <= now)
      return RateCount{0, std::chrono::milliseconds(0)};
    return RateCount{it->second.count, remaining(it->second.expires, now)};
  }

  Result<void> publish(const std::string& scope, const std::string& message) override {
    if (!valid_scope(scope)) return fail("invalid_argument", "invalid live-state scope");
    std::vector<std::shared_ptr<Sub>> subs;
    {
      std::lock_guard g(mu_);
      for (auto& s : subs_) {
        if (s->scopes.empty() ||
            std::find(s->scopes.begin(), s->scopes.end(), scope) != s->scopes.end())
          subs.push_back(s);
      }
    }
    for (auto& s : subs) s->deliver(Change{scope, message, false});
    return {};
  }

  Result<std::unique_ptr<Subscription>> subscribe(std::vector<std::string> scopes,
                                                  ChangeHandler handler) override {
    for (const auto& s : scopes) {
      if (!valid_scope(s)) return fail("invalid_argument", "invalid live-state scope");
    }
    auto sub = std::make_shared<Sub>();
    sub->scopes = std::move(scopes);
    sub->handler = std::move(handler);
    {
      std::lock_guard g(mu_);
      subs_.push_back(sub);
    }
    return std::unique_ptr<Subscription>(new Handle(this, sub));
  }

  Result<void> ping() override { return {}; }
  std::string_view backend() const override { return "memory"; }
  std::string render_metrics() override {
    return "# HELP rap_control_live_state_up 1 when the live-state backend answers.\n"
           "# TYPE rap_control_live_state_up gauge\n"
           "rap_control_live_state_up{backend=\"memory\"} 1\n";
  }

 private:
  struct Entry {
    std::string value;
    TimePoint expires;
  };
  struct Counter {
    std::int64_t count = 0;
    TimePoint expires{};
  };
  struct Sub {
    std::vector<std::string> scopes;
    ChangeHandler handler;
    std::recursive_mutex mu;  // held while delivering; stop() waits for it
    bool active = true;
    void deliver(const Change& c) {
      std::lock_guard g(mu);
      if (active) handler(c);
    }
  };
  class Handle final : public Subscription {
   public:
    Handle(MemoryLiveState* owner, std::shared_ptr<Sub> sub)
        : owner_(owner), sub_(std::move(sub)) {}
    ~Handle() override { Handle::stop(); }
    void stop() override {
      if (!sub_) return;
      {
        std::lock_guard g(sub_->mu);
        sub_->active = false;
      }
      std::lock_guard g(owner_->mu_);
      owner_->subs_.remove(sub_);
      sub_.reset();
    }

   private:
    MemoryLiveState* owner_;
    std::shared_ptr<Sub> sub_;
  };

  static Result<void> check(const std::string& scope, const std::string& id,
                            std::chrono::milliseconds ttl = std::chrono::milliseconds(1)) {
    if (!valid_scope(scope)) return fail("invalid_argument", "invalid live-state scope");
    if (!valid_id(id)) return fail("invalid_argument", "invalid live-state id");
    if (ttl.count() <= 0) return fail("invalid_argument", "ttl must be positive");
    return {};
  }

  static std::chrono::milliseconds remaining(TimePoint expires, TimePoint now) {
    return std::chrono::ceil<std::chrono::milliseconds>(expires - now);
  }

  // Every 256 writes, drops expired entries (bounded memory under many distinct keys).
  void sweep_locked() {
    if (++writes_ % 256 != 0) return;
    const auto now = clock_.now();
    std::erase_if(values_, [&](const auto& kv) { return kv.second.expires <= now; });
    std::erase_if(counters_, [&](const auto& kv) { return kv.second.expires <= now; });
  }

  std::optional<std::string> get_locked(const std::string& key, bool erase) {
    auto it = values_.find(key);
    if (it == values_.end()) return std::nullopt;
    if (it->second.expires <= clock_.now()) {
      values_.erase(it);
      return std::nullopt;
    }
    std::string v = it->second.value;
    if (erase) values_.erase(it);
    return v;
  }

  const Clock& clock_;
  std::mutex mu_;
  std::map<std::string, Entry> values_;
  std::map<std::string, Counter> counters_;
  std::list<std::shared_ptr<Sub>> subs_;
  std::uint64_t writes_ = 0;
};

}  // namespace

std::unique_ptr<LiveState> make_memory_live_state(const Clock& clock) {
  return std::make_unique<MemoryLiveState>(clock);
}

}  // namespace rap::control
