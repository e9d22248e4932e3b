#include "rap/agent/config_storage.h"

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>
#include <string_view>

#include "rap/config/artifact.h"
#include "rap/crypto/tls.h"

namespace rap::agent {

using json = nlohmann::json;

namespace {

bool valid_node_id(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

json error_body(const std::string& code, const std::string& message) {
  return json{{"error", {{"code", code}, {"message", message}}}};
}

}  // namespace

Result<std::vector<std::pair<std::string, std::uint64_t>>> parse_have(const std::string& have) {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  if (have.empty()) return out;
  if (have.size() > kMaxHaveQueryBytes) return fail("bad_request", "have is too long");
  std::string_view rest(have);
  while (true) {
    const auto comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    const auto colon = item.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 >= item.size()) {
      return fail("bad_request", "have entries are type:version");
    }
    const std::string_view type = item.substr(0, colon);
    const std::string_view ver = item.substr(colon + 1);
    std::uint64_t v = 0;
    const auto [ptr, ec] = std::from_chars(ver.data(), ver.data() + ver.size(), v);
    if (ec != std::errc() || ptr != ver.data() + ver.size()) {
      return fail("bad_request", "have version is not a number");
    }
    if (!std::all_of(type.begin(), type.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; })) {
      return fail("bad_request", "have type is not valid");
    }
    out.emplace_back(std::string(type), v);
    if (out.size() > 64) return fail("bad_request", "too many have entries");
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return out;
}

Result<void> StorageCache::load_bundle(const json& body) {
  if (!body.is_object()) return fail("malformed", "storage bundle is not an object");
  const auto gen = body.find("config_generation");
  if (gen == body.end() || !gen->is_number_integer() || gen->get<std::int64_t>() < 0) {
    return fail("malformed", "storage bundle has no valid config_generation");
  }
  const auto nodes = body.find("nodes");
  if (nodes == body.end() || !nodes->is_object() || nodes->size() > kMaxStorageNodes) {
    return fail("malformed", "storage bundle has no valid nodes object");
  }
  std::map<std::string, std::vector<Entry>> next;
  std::size_t bytes = 0;
  for (const auto& [id, arts] : nodes->items()) {
    if (!valid_node_id(id)) return fail("malformed", "storage bundle has an invalid node id");
    if (!arts.is_array() || arts.size() > config::ConfigState::kMaxBatch) {
      return fail("malformed", "storage bundle node " + id + " has no valid artifact list");
    }
    std::vector<Entry> entries;
    entries.reserve(arts.size());
    for (const auto& a : arts) {
      if (!a.is_string()) return fail("malformed", "a storage bundle artifact is not a string");
      const auto& wire = a.get_ref<const std::string&>();
      bytes += wire.size() + id.size();
      if (bytes > kMaxStorageCacheBytes) {
        return fail("too_large",
                    "storage bundle exceeds " + std::to_string(kMaxStorageCacheBytes) + " bytes");
      }
      auto art = config::decode_artifact(wire);
      if (!art) {
        return fail("malformed", "storage bundle artifact for node " + id +
                                     " does not decode: " + art.error().message);
      }
      entries.push_back(
          Entry{std::string(config::to_string(art->header.type)), art->header.version, wire});
    }
    next.emplace(id, std::move(entries));
  }
  std::lock_guard g(mu_);
  generation_ = gen->get<std::int64_t>();
  nodes_ = std::move(next);
  bytes_ = bytes;
  return {};
}

std::optional<std::int64_t> StorageCache::generation() const {
  std::lock_guard g(mu_);
  return generation_;
}

std::size_t StorageCache::node_count() const {
  std::lock_guard g(mu_);
  return nodes_.size();
}

std::size_t StorageCache::total_bytes() const {
  std::lock_guard g(mu_);
  return bytes_;
}

HttpReply StorageCache::lookup(const std::string& node_id, const std::string& have) const {
  auto parsed = parse_have(have);
  if (!parsed) return HttpReply{400, error_body("bad_request", parsed.error().message)};
  const std::set<std::pair<std::string, std::uint64_t>> skip(parsed->begin(), parsed->end());
  std::lock_guard g(mu_);
  const auto it = nodes_.find(node_id);
  if (!generation_ || it == nodes_.end()) {
    return HttpReply{404, error_body("unknown_node", "this storage node has no config for you")};
  }
  json arts = json::array();
  for (const auto& e : it->second) {
    if (skip.contains({e.type, e.version})) continue;
    arts.push_back(e.wire);
  }
  return HttpReply{200, json{{"config_generation", *generation_}, {"artifacts", std::move(arts)}}};
}

std::vector<StorageEndpoint> parse_storage_directory(const json& payload,
                                                     const std::string& self_id) {
  std::vector<StorageEndpoint> out;
  if (!payload.is_object()) return out;
  const auto s = payload.find("storages");
  if (s == payload.end() || !s->is_array()) return out;
  for (const auto& e : *s) {
    if (!e.is_object()) continue;
    const auto id = e.find("id");
    const auto ep = e.find("endpoint");
    if (id == e.end() || ep == e.end() || !id->is_string() || !ep->is_string()) continue;
    const auto& ids = id->get_ref<const std::string&>();
    const auto& eps = ep->get_ref<const std::string&>();
    if (!valid_node_id(ids) || ids == self_id || eps.empty() || eps.size() > 255) continue;
    out.push_back(StorageEndpoint{ids, eps});
    if (out.size() >= 16) break;
  }
  return out;
}

std::vector<PlannedSource> plan_recovery(const std::vector<StorageEndpoint>& storages,
                                         const std::map<std::string, double>& rtt_ms,
                                         const std::set<std::string>& live) {
  // Measured storages by RTT (stable: listed order among equals), then the unmeasured ones.
  std::vector<const StorageEndpoint*> order;
  order.reserve(storages.size());
  for (const auto& s : storages) order.push_back(&s);
  const auto rtt = [&](const StorageEndpoint* s) {
    const auto it = rtt_ms.find(s->id);
    return it == rtt_ms.end() ? std::numeric_limits<double>::infinity() : it->second;
  };
  std::stable_sort(order.begin(), order.end(),
                   [&](const auto* a, const auto* b) { return rtt(a) < rtt(b); });
  std::vector<PlannedSource> out;
  std::set<std::string> taken;
  if (!order.empty() && std::isfinite(rtt(order.front()))) {
    out.push_back({SourceKind::nearby_storage, *order.front()});
    taken.insert(order.front()->id);
  }
  for (const auto* s : order) {
    if (!taken.contains(s->id) && live.contains(s->id)) {
      out.push_back({SourceKind::peer_storage, *s});
      taken.insert(s->id);
    }
  }
  for (const auto* s : order) {
    if (taken.insert(s->id).second) out.push_back({SourceKind::bootstrap_storage, *s});
  }
  return out;
}

// ---- network side ----------------------------------------------------------------------------

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

Result<std::pair<std::string, std::string>> split_host_port(const std::string& hostport) {
  const auto colon = hostport.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == hostport.size()) {
    return fail("bad_endpoint", "expected host:port (got '" + hostport + "')");
  }
  std::string host = hostport.substr(0, colon);
  std::string port = hostport.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  unsigned p = 0;
  const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || ptr != port.data() + port.size() || p > 65535) {
    return fail("bad_endpoint", "bad port in '" + hostport + "'");
  }
  return std::make_pair(std::move(host), std::move(port));
}

namespace {

using Stream = beast::ssl_stream<beast::tcp_stream>;

struct Counters {
  std::shared_ptr<std::atomic<std::uint64_t>> requests;
  std::shared_ptr<std::atomic<std::uint64_t>> refused;
  std::shared_ptr<std::atomic<std::size_t>> active;
};

// A server TLS context for `creds` that refuses revoked clients in the handshake.
Result<std::shared_ptr<asio::ssl::context>> server_context(
    const crypto::NodeCredentials& creds, const crypto::RevocationList* revocations) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  if (auto r = crypto::configure_mutual_tls(ctx->native_handle(), creds, revocations); !r) {
    return tl::unexpected(r.error());
  }
  return ctx;
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(asio::ip::tcp::socket sock, std::shared_ptr<asio::ssl::context> ctx,
          std::string cluster_id, std::shared_ptr<const StorageCache> cache,
          std::shared_ptr<const crypto::RevocationList> revocations, Counters counters)
      : ctx_(std::move(ctx)),
        stream_(std::move(sock), *ctx_),
        cluster_id_(std::move(cluster_id)),
        cache_(std::move(cache)),
        revocations_(std::move(revocations)),
        counters_(std::move(counters)) {
    counters_.active->fetch_add(1);
  }
  ~Session() { counters_.active->fetch_sub(1); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void run() {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(10));
    parser_.header_limit(8192);
    parser_.body_limit(0);
    stream_.async_handshake(
        asio::ssl::stream_base::server, [self = shared_from_this()](beast::error_code ec) {
          if (ec) {
            self->counters_.refused->fetch_add(1);
            spdlog::debug("config storage: TLS handshake refused: {}", ec.message());
            return;
          }
          self->read();
        });
  }

 private:
  void read() {
    http::async_read(stream_, buf_, parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) return;
                       self->respond();
                     });
  }

  void respond() {
    counters_.requests->fetch_add(1);
    const auto& req = parser_.get();
    HttpReply reply;
    auto id = crypto::peer_identity(stream_.native_handle());
    if (!id || id->cluster_id != cluster_id_) {
      reply = HttpReply{403, json{{"error",
                                   {{"code", "forbidden"},
                                    {"message", "client certificate is not of this cluster"}}}}};
    } else if (revocations_ && revocations_->is_revoked(*id)) {
      counters_.refused->fetch_add(1);
      reply = HttpReply{
          403, json{{"error", {{"code", "revoked"}, {"message", "this node has been revoked"}}}}};
    } else if (req.method() != http::verb::get) {
      reply = HttpReply{405,
                        json{{"error", {{"code", "method_not_allowed"}, {"message", "GET only"}}}}};
    } else {
      const std::string target(req.target());
      const std::string path = target.substr(0, target.find('?'));
      std::string query = target.size() > path.size() ? target.substr(path.size() + 1) : "";
      if (path != "/api/v1/node/config") {
        reply = HttpReply{404, json{{"error", {{"code", "not_found"}, {"message", "no route"}}}}};
      } else if (!query.empty() && query.rfind("have=", 0) != 0) {
        reply = HttpReply{
            400, json{{"error", {{"code", "bad_request"}, {"message", "unknown parameter"}}}}};
      } else {
        std::string have = query.empty() ? "" : query.substr(5);
        // Percent-decode ':' and ',' (the only characters besides [a-z0-9_] a have list has).
        std::string decoded;
        for (std::size_t i = 0; i < have.size(); ++i) {
          const std::string hex = have[i] == '%' ? have.substr(i + 1, 2) : "";
          if (hex == "3A" || hex == "3a") {
            decoded.push_back(':');
            i += 2;
          } else if (hex == "2C" || hex == "2c") {
            decoded.push_back(',');
            i += 2;
          } else {
            decoded.push_back(have[i]);  // parse_have refuses anything unexpected
          }
        }
        reply = cache_->lookup(id->node_id, decoded);
      }
    }
    res_.result(static_cast<unsigned>(reply.status));
    res_.version(11);
    res_.set(http::field::content_type, "application/json");
    res_.set(http::field::server, "rap-node-agent");
    res_.keep_alive(false);
    res_.body() = reply.body.dump();
    res_.prepare_payload();
    http::async_write(
        stream_, res_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
          if (ec) return;
          beast::get_lowest_layer(self->stream_).expires_after(std::chrono::seconds(2));
          self->stream_.async_shutdown([self](beast::error_code) {});
        });
  }

  std::shared_ptr<asio::ssl::context> ctx_;  // before stream_, which uses it
  Stream stream_;
  std::string cluster_id_;
  std::shared_ptr<const StorageCache> cache_;
  std::shared_ptr<const crypto::RevocationList> revocations_;
  Counters counters_;
  beast::flat_buffer buf_;
  http::request_parser<http::empty_body> parser_;
  http::response<http::string_body> res_;
};

}  // namespace

struct ConfigStorageServer::Impl {
  asio::io_context io;
  std::shared_ptr<asio::ssl::context> ctx;  // I/O thread (reload() posts the swap)
  asio::ip::tcp::acceptor acceptor{io};
  std::string cluster_id;
  std::shared_ptr<const StorageCache> cache;
  std::shared_ptr<const crypto::RevocationList> revocations;
  Counters counters;

  void accept() {
    acceptor.async_accept([this](beast::error_code ec, asio::ip::tcp::socket sock) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (!ec) {
        if (counters.active->load() >= kMaxStorageConnections) {
          counters.refused->fetch_add(1);
          beast::error_code ignored;
          sock.close(ignored);
        } else {
          std::make_shared<Session>(std::move(sock), ctx, cluster_id, cache, revocations, counters)
              ->run();
        }
      }
      accept();
    });
  }
};

ConfigStorageServer::ConfigStorageServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ConfigStorageServer::~ConfigStorageServer() {
  stop();
}

Result<std::unique_ptr<ConfigStorageServer>> ConfigStorageServer::start(
    const std::string& listen, const crypto::NodeCredentials& creds, std::string cluster_id,
    std::shared_ptr<const StorageCache> cache,
    std::shared_ptr<const crypto::RevocationList> revocations) {
  auto hp = split_host_port(listen);
  if (!hp) return tl::unexpected(hp.error());
  beast::error_code ec;
  const auto addr = asio::ip::make_address(hp->first, ec);
  if (ec) return fail("bad_endpoint", "config_storage_listen host must be an IP address");
  auto impl = std::make_unique<Impl>();
  auto ctx = server_context(creds, revocations.get());
  if (!ctx) return tl::unexpected(ctx.error());
  impl->ctx = std::move(*ctx);
  impl->cluster_id = std::move(cluster_id);
  impl->cache = std::move(cache);
  impl->revocations = std::move(revocations);
  impl->counters = Counters{std::make_shared<std::atomic<std::uint64_t>>(0),
                            std::make_shared<std::atomic<std::uint64_t>>(0),
                            std::make_shared<std::atomic<std::size_t>>(0)};
  const asio::ip::tcp::endpoint ep(addr, static_cast<unsigned short>(std::stoul(hp->second)));
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen_failed", "config storage " + listen + ": " + ec.message());
  const auto local = impl->acceptor.local_endpoint(ec);
  if (ec) return fail("listen_failed", "config storage " + listen + ": " + ec.message());
  std::unique_ptr<ConfigStorageServer> s(new ConfigStorageServer(std::move(impl)));
  const std::string host =
      hp->first.find(':') != std::string::npos ? "[" + hp->first + "]" : hp->first;
  s->endpoint_ = host + ":" + std::to_string(local.port());
  s->requests_ = s->impl_->counters.requests;
  s->refused_ = s->impl_->counters.refused;
  s->impl_->accept();
  s->thread_ = std::thread([impl = s->impl_.get()] {
    try {
      impl->io.run();
    } catch (const std::exception& e) {
      spdlog::error("config storage server stopped: {}", e.what());
    }
  });
  return s;
}

Result<void> ConfigStorageServer::reload(const crypto::NodeCredentials& creds) {
  if (!impl_) return fail("stopped", "config storage server is stopped");
  auto ctx = server_context(creds, impl_->revocations.get());
  if (!ctx) return tl::unexpected(ctx.error());
  asio::post(impl_->io,
             [impl = impl_.get(), c = std::move(*ctx)]() mutable { impl->ctx = std::move(c); });
  return {};
}

void ConfigStorageServer::stop() {
  if (!impl_) return;
  asio::post(impl_->io, [impl = impl_.get()] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
    impl->io.stop();
  });
  if (thread_.joinable()) thread_.join();
}

Result<HttpReply> StorageConfigTransport::fetch(const std::string& have) {
  auto hp = split_host_port(endpoint_);
  if (!hp) return tl::unexpected(hp.error());
  const auto& [host, port] = *hp;
  asio::io_context io;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  if (auto r = crypto::configure_mutual_tls(ctx.native_handle(), creds_, nullptr); !r) {
    return tl::unexpected(r.error());
  }
  Stream stream(io, ctx);
  http::request<http::empty_body> req{
      http::verb::get, have.empty() ? "/api/v1/node/config" : "/api/v1/node/config?have=" + have,
      11};
  req.set(http::field::host, endpoint_);
  req.set(http::field::user_agent, "rap-node-agent");
  Result<HttpReply> out = fail("timeout", "storage " + storage_id_ + " did not answer in time");
  asio::ip::tcp::resolver resolver(io);
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxConfigStateBytes);
  const std::string where = "storage " + storage_id_ + " (" + endpoint_ + ")";
  auto finish = [&](const beast::error_code& ec, const std::string& code) {
    out = ec == beast::error::timeout ? fail("timeout", where + " timed out")
                                      : fail(code, where + ": " + ec.message());
  };
  beast::get_lowest_layer(stream).expires_after(timeout_);
  resolver.async_resolve(host, port, [&](beast::error_code ec, auto results) {
    if (ec) return finish(ec, "connect_failed");
    beast::get_lowest_layer(stream).async_connect(results, [&](beast::error_code ec2, auto) {
      if (ec2) return finish(ec2, "connect_failed");
      stream.async_handshake(asio::ssl::stream_base::client, [&](beast::error_code ec3) {
        if (ec3) return finish(ec3, "tls_failed");
        auto id = crypto::peer_identity(stream.native_handle());
        if (!id || id->cluster_id != cluster_id_ || id->node_id != storage_id_) {
          out = fail("wrong_peer", where + " does not present the certificate of node " +
                                       storage_id_ + " of this cluster");
          return;
        }
        http::async_write(stream, req, [&](beast::error_code ec4, std::size_t) {
          if (ec4) return finish(ec4, "protocol");
          http::async_read(stream, buf, parser, [&](beast::error_code ec5, std::size_t) {
            if (ec5) return finish(ec5, "protocol");
            HttpReply r;
            r.status = static_cast<int>(parser.get().result_int());
            r.body = json::parse(parser.get().body(), nullptr, false);
            out = std::move(r);
            beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
            stream.async_shutdown([](beast::error_code) {});
          });
        });
      });
    });
  });
  io.run();
  return out;
}

Result<HttpReply> StorageConfigTransport::report_rejection(const json&) {
  return fail("not_supported", "storage nodes take no rejection reports");
}

}  // namespace rap::agent
