#include "rap/control/server.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <chrono>
#include <memory>

#include "rap/common/env.h"
#include "rap/common/log.h"
#include "rap/crypto/keys.h"

namespace rap::control {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// A fresh ECDSA P-256 key for the self-signed server certificate: browsers (the web console)
// do not accept Ed25519 server certificates in TLS, every other client accepts P-256.
Result<std::pair<std::shared_ptr<EVP_PKEY>, std::string>> make_server_key() {
  std::shared_ptr<EVP_PKEY> pkey(EVP_EC_gen("P-256"), &EVP_PKEY_free);
  if (!pkey) return fail("crypto_error", "EC key generation failed");
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return fail("crypto_error", "cannot encode the server key");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::make_pair(pkey, std::string(data, static_cast<std::size_t>(len)));
}

Result<std::string> make_server_certificate(EVP_PKEY* key) {
  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), &X509_free);
  if (!x) return fail("crypto_error", "X509_new failed");
  X509_set_version(x.get(), 2);
  std::uint8_t serial_bytes[8];
  SystemRandom rng;
  rng.fill(serial_bytes);
  std::uint64_t serial = 0;
  for (auto b : serial_bytes) serial = (serial << 8) | b;
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(x.get()), serial >> 1);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 365L * 24 * 3600);
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("rap-control"), -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  auto add = [&](int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x.get(), x.get(), nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (ext == nullptr) return false;
    const bool ok = X509_add_ext(x.get(), ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
  };
  if (!add(NID_basic_constraints, "critical,CA:FALSE") ||
      !add(NID_key_usage, "critical,digitalSignature") || !add(NID_ext_key_usage, "serverAuth") ||
      !add(NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1")) {
    return fail("crypto_error", "cannot add certificate extensions");
  }
  if (X509_sign(x.get(), key, EVP_sha256()) <= 0) {
    return fail("crypto_error", "certificate self-signature failed");
  }
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  if (!bio || PEM_write_bio_X509(bio.get(), x.get()) != 1)
    return fail("crypto_error", "cannot encode certificate");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

// Accepts any client certificate chain during the handshake: clients without a certificate
// (browsers, curl, rapctl) must still connect, and node certificates are verified per request
// against their cluster's CA by the API (Auth::kNode), which knows the clusters.
int accept_any_client_chain(int /*preverify_ok*/, X509_STORE_CTX* /*ctx*/) {
  return 1;
}

// PEM of the peer's certificate after the handshake, "" if it sent none.
std::string peer_certificate_pem(SSL* ssl) {
  X509* peer = SSL_get1_peer_certificate(ssl);
  if (peer == nullptr) return "";
  std::string out;
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio != nullptr && PEM_write_bio_X509(bio, peer) == 1) {
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    out.assign(data, static_cast<std::size_t>(len));
  }
  BIO_free(bio);
  X509_free(peer);
  return out;
}

Result<std::pair<std::string, std::uint16_t>> parse_listen(const std::string& s) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return fail("bad_listen", "listen address must be host:port");
  std::string host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const std::string port_s = s.substr(colon + 1);
  unsigned long port = 0;
  try {
    std::size_t idx = 0;
    port = std::stoul(port_s, &idx);
    if (idx != port_s.size() || port > 65535) return fail("bad_listen", "invalid port");
  } catch (const std::exception&) {
    return fail("bad_listen", "invalid port");
  }
  return std::make_pair(host, static_cast<std::uint16_t>(port));
}

}  // namespace

Result<TlsMaterial> ensure_self_signed_cert(const std::string& data_dir) {
  Env& env = default_env();
  const std::string dir = data_dir + "/tls";
  const std::string cert_path = dir + "/server.crt";
  const std::string key_path = dir + "/server.key";
  if (env.exists(cert_path) && env.exists(key_path)) return load_tls_files(cert_path, key_path);
  if (auto r = env.make_dirs(dir, 0700); !r) return tl::unexpected(r.error());
  auto key = make_server_key();
  if (!key) return tl::unexpected(key.error());
  auto cert = make_server_certificate(key->first.get());
  if (!cert) return tl::unexpected(cert.error());
  TlsMaterial m{*cert, key->second};
  if (auto r = env.write_file_atomic(key_path, m.key_pem, 0600); !r)
    return tl::unexpected(r.error());
  if (auto r = env.write_file_atomic(cert_path, m.cert_pem, 0644); !r)
    return tl::unexpected(r.error());
  spdlog::info("generated self-signed TLS certificate path={}", cert_path);
  return m;
}

Result<TlsMaterial> load_tls_files(const std::string& cert_path, const std::string& key_path) {
  Env& env = default_env();
  auto cert = env.read_file(cert_path);
  if (!cert) return tl::unexpected(cert.error());
  auto key = env.read_file(key_path);
  if (!key) return tl::unexpected(key.error());
  return TlsMaterial{*cert, *key};
}

struct Server::Impl {
  asio::io_context& io;
  Api& api;
  Db& db;
  ServerOptions opts;
  asio::ssl::context ssl{asio::ssl::context::tls_server};
  tcp::acceptor acceptor;
  std::shared_ptr<bool> stopped = std::make_shared<bool>(false);

  Impl(asio::io_context& i, Api& a, Db& d, ServerOptions o)
      : io(i), api(a), db(d), opts(std::move(o)), acceptor(i) {}

  asio::awaitable<void> accept_loop() {
    auto stopped_flag = stopped;
    while (!*stopped_flag) {
      auto [ec, sock] = co_await acceptor.async_accept(kTuple);
      if (*stopped_flag) co_return;
      if (ec) {
        if (ec == asio::error::operation_aborted) co_return;
        spdlog::warn("accept failed: {}", ec.message());
        continue;
      }
      asio::co_spawn(io, session(std::move(sock)), asio::detached);
    }
  }

  asio::awaitable<void> session(tcp::socket sock) {
    beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(sock)), ssl);
    stream.next_layer().expires_after(std::chrono::seconds(10));
    auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kTuple);
    if (hec) co_return;
    // Optional client certificate (nodes): the handshake proved possession of its key; the API
    // verifies the chain for Auth::kNode routes.
    const std::string client_cert_pem = peer_certificate_pem(stream.native_handle());
    beast::flat_buffer buf;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(opts.body_limit);
      parser.header_limit(16 * 1024);
      stream.next_layer().expires_after(std::chrono::seconds(30));
      auto [rec, n] = co_await http::async_read(stream, buf, parser, kTuple);
      (void)n;
      if (rec) {
        const bool http_error =
            rec.category() == http::make_error_code(http::error::bad_target).category();
        const bool eof = rec == http::error::end_of_stream || rec == http::error::partial_message;
        if (http_error && !eof) {
          const bool too_big = rec == http::error::body_limit;
          api.record("unmatched", "", too_big ? 413 : 400);
          http::response<http::string_body> res{
              too_big ? http::status::payload_too_large : http::status::bad_request, 11};
          res.set(http::field::content_type, "application/json");
          res.set(http::field::connection, "close");
          res.body() = too_big ? error_body("payload_too_large", "request body exceeds 64 KiB")
                               : error_body("bad_request", "malformed HTTP request");
          res.prepare_payload();
          stream.next_layer().expires_after(std::chrono::seconds(5));
          co_await http::async_write(stream, res, kTuple);
          // Lingering close: swallow what the client is still sending (bounded) so that it can
          // read our error instead of getting a connection reset.
          std::array<char, 16 * 1024> sink{};
          std::size_t drained = 0;
          stream.next_layer().expires_after(std::chrono::seconds(2));
          while (drained < 1024 * 1024) {
            auto [dec, dn] = co_await stream.async_read_some(asio::buffer(sink), kTuple);
            if (dec) break;
            drained += dn;
          }
        }
        break;
      }
      auto& req = parser.get();
      HttpRequest r{std::string(req.method_string()),
                    std::string(req.target()),
                    std::string(req[http::field::authorization]),
                    std::move(req.body()),
                    client_cert_pem,
                    {}};
      for (const auto& f : req) {
        std::string name(f.name_string());
        for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (name.rfind("x-rap-", 0) == 0 && r.rap_headers.size() < 8)
          r.rap_headers[name] = std::string(f.value());
      }
      HttpResponse out;
      const std::string path = r.target.substr(0, r.target.find('?'));
      std::optional<HttpResponse> fast;
      if (path == "/metrics") {
        out = api.handle(r);  // non-blocking: no database access
      } else if (fast = api.try_handle_fast(r); fast) {
        out = std::move(*fast);  // e.g. an unchanged heartbeat: answered from memory
      } else {
        try {
          auto shared_req = std::make_shared<const HttpRequest>(std::move(r));
          Api* a = &api;
          auto task = db.run([a, shared_req]() { return a->handle(*shared_req); });
          out = co_await std::move(task);
          // Long poll: re-run every 250 ms (no DB thread held while waiting) until the answer
          // changes or the client's wait is over. Re-runs are flagged so that the handler can
          // answer "nothing new" from cached state; the first run's response is the one sent
          // if nothing changes.
          const auto deadline =
              std::chrono::steady_clock::now() +
              std::min<std::chrono::milliseconds>(out.long_poll, std::chrono::seconds(30));
          std::shared_ptr<const HttpRequest> rerun_req;
          while (out.long_poll.count() > 0 && std::chrono::steady_clock::now() < deadline &&
                 !*stopped) {
            asio::steady_timer timer(io, std::chrono::milliseconds(250));
            auto [tec] = co_await timer.async_wait(kTuple);
            if (tec) break;
            if (!rerun_req) {
              auto copy = std::make_shared<HttpRequest>(*shared_req);
              copy->long_poll_rerun = true;
              rerun_req = std::move(copy);
            }
            auto again = db.run([a, rerun_req]() { return a->handle(*rerun_req); });
            HttpResponse next = co_await std::move(again);
            if (next.long_poll.count() == 0) {
              out = std::move(next);
              break;
            }
          }
          out.long_poll = std::chrono::milliseconds(0);
        } catch (const std::exception& e) {
          spdlog::error("request handler failed: {}", e.what());
          out.status = 500;
          out.body = error_body("internal", "internal error");
        }
      }
      http::response<http::string_body> res{static_cast<http::status>(out.status), req.version()};
      res.set(http::field::server, "rap-control");
      res.set(http::field::content_type, out.content_type);
      res.set(http::field::cache_control,
              out.cache_control.empty() ? std::string("no-store") : out.cache_control);
      res.set("X-Content-Type-Options", "nosniff");
      res.set("X-Frame-Options", "DENY");
      for (const auto& [name, value] : out.headers) res.set(name, value);
      if (!out.allow.empty()) res.set(http::field::allow, out.allow);
      if (out.retry_after_seconds > 0)
        res.set(http::field::retry_after, std::to_string(out.retry_after_seconds));
      if (out.status == 401) res.set(http::field::www_authenticate, "Bearer");
      res.keep_alive(req.keep_alive());
      res.body() = std::move(out.body);
      res.prepare_payload();
      stream.next_layer().expires_after(std::chrono::seconds(30));
      auto [wec, wn] = co_await http::async_write(stream, res, kTuple);
      (void)wn;
      if (wec || !res.keep_alive()) break;
    }
    stream.next_layer().expires_after(std::chrono::seconds(5));
    co_await stream.async_shutdown(kTuple);
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::create(asio::io_context& io, Api& api, Db& db,
                                               ServerOptions opts) {
  auto hp = parse_listen(opts.listen);
  if (!hp) return tl::unexpected(hp.error());
  auto impl = std::make_unique<Impl>(io, api, db, std::move(opts));
  SSL_CTX* ctx = impl->ssl.native_handle();
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1)
    return fail("tls_error", "cannot require TLS 1.3");
  boost::system::error_code ec;
  impl->ssl.use_certificate_chain(asio::buffer(impl->opts.tls.cert_pem), ec);
  if (ec) return fail("tls_error", "invalid TLS certificate: " + ec.message());
  impl->ssl.use_private_key(asio::buffer(impl->opts.tls.key_pem), asio::ssl::context::pem, ec);
  if (ec) return fail("tls_error", "invalid TLS private key: " + ec.message());
  if (SSL_CTX_check_private_key(ctx) != 1)
    return fail("tls_error", "TLS private key does not match the certificate");
  // Request (never require) a client certificate; see accept_any_client_chain.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any_client_chain);
  static constexpr unsigned char kSessionContext[] = "rap-control";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);

  auto addr = asio::ip::make_address(hp->first, ec);
  if (ec) return fail("bad_listen", "invalid listen address: " + hp->first);
  tcp::endpoint ep(addr, hp->second);
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return fail("listen_failed", "cannot listen on " + impl->opts.listen + ": " + ec.message());
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

std::uint16_t Server::port() const {
  return impl_->acceptor.local_endpoint().port();
}

std::string Server::local_address() const {
  auto ep = impl_->acceptor.local_endpoint();
  // (Built with append: g++ 12 -O2 warns falsely (-Wrestrict) on "[" + std::string.)
  std::string out;
  if (ep.address().is_v6())
    out.append("[").append(ep.address().to_string()).append("]");
  else
    out.append(ep.address().to_string());
  out.append(":").append(std::to_string(ep.port()));
  return out;
}

void Server::start() {
  asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
}

void Server::stop() {
  *impl_->stopped = true;
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
}

}  // namespace rap::control
