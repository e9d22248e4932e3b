#include "rap/agent/control_client.h"

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <memory>

namespace rap::agent {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;

std::string HttpReply::error_code() const {
  if (body.is_object() && body.contains("error") && body["error"].is_object() &&
      body["error"].contains("code") && body["error"]["code"].is_string()) {
    return body["error"]["code"].get<std::string>();
  }
  return "http_" + std::to_string(status);
}

std::string HttpReply::error_message() const {
  if (body.is_object() && body.contains("error") && body["error"].is_object() &&
      body["error"].contains("message") && body["error"]["message"].is_string()) {
    return body["error"]["message"].get<std::string>();
  }
  return "HTTP " + std::to_string(status);
}

Result<ControlClient> ControlClient::create(const std::string& url, std::string ca_pem) {
  const std::string prefix = "https://";
  if (url.rfind(prefix, 0) != 0) {
    return fail("bad_url", "control plane URL must start with https:// (got '" + url + "')");
  }
  std::string rest = url.substr(prefix.size());
  if (auto slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size()) {
    return fail("bad_url", "control plane URL needs host:port (got '" + url + "')");
  }
  return ControlClient(rest.substr(0, colon), rest.substr(colon + 1), std::move(ca_pem));
}

namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

Result<void> load_pem_into(SSL_CTX* ctx, const std::string& ca_pem) {
  std::unique_ptr<BIO, BioFree> bio(
      BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size())));
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int n = 0;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store, x);
    X509_free(x);
    ++n;
  }
  if (n == 0) return fail("bad_ca", "control plane CA/certificate file contains no certificate");
  return {};
}

Result<void> use_identity(SSL_CTX* ctx, const ClientIdentity& id) {
  std::unique_ptr<BIO, BioFree> cb(
      BIO_new_mem_buf(id.cert_pem.data(), static_cast<int>(id.cert_pem.size())));
  X509* cert = PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr);
  if (cert == nullptr) return fail("bad_identity", "node certificate is not PEM");
  const int ok_cert = SSL_CTX_use_certificate(ctx, cert);
  X509_free(cert);
  std::unique_ptr<BIO, BioFree> kb(
      BIO_new_mem_buf(id.key_pem.data(), static_cast<int>(id.key_pem.size())));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) return fail("bad_identity", "node key is not PEM");
  const int ok_key = SSL_CTX_use_PrivateKey(ctx, key);
  EVP_PKEY_free(key);
  if (ok_cert != 1 || ok_key != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    return fail("bad_identity", "node certificate and key do not match");
  }
  return {};
}

}  // namespace

Result<HttpReply> ControlClient::request(const std::string& method, const std::string& target,
                                         const std::optional<json>& body,
                                         const std::map<std::string, std::string>& headers,
                                         const ClientIdentity* identity,
                                         std::chrono::seconds timeout,
                                         const std::atomic<bool>* cancel) const {
  asio::io_context io;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_3_VERSION);
  if (ca_pem_.empty()) {
    boost::system::error_code ec;
    ctx.set_default_verify_paths(ec);
  } else if (auto r = load_pem_into(ctx.native_handle(), ca_pem_); !r) {
    return tl::unexpected(r.error());
  }
  ctx.set_verify_mode(asio::ssl::verify_peer);
  if (identity != nullptr) {
    if (auto r = use_identity(ctx.native_handle(), *identity); !r) return tl::unexpected(r.error());
  }
  beast::ssl_stream<beast::tcp_stream> stream(io, ctx);
  // SSL_set_tlsext_host_name is a macro with a C cast; this is its expansion.
  SSL_ctrl(stream.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
           const_cast<char*>(host_.c_str()));
  // rap-control's self-signed certificate names its host; checking the chain against the pinned
  // certificate is what authenticates it, so no hostname check when a pin is configured.
  if (ca_pem_.empty()) {
    SSL_set1_host(stream.native_handle(), host_.c_str());
  }

  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, host_ + ":" + port_);
  req.set(http::field::user_agent, "rap-node-agent");
  for (const auto& [k, v] : headers) req.set(k, v);
  if (body) {
    req.set(http::field::content_type, "application/json");
    req.body() = body->dump();
  }
  req.prepare_payload();

  Result<HttpReply> out = fail("timeout", "control plane did not answer in time");
  std::string stage = "connect_failed";
  asio::ip::tcp::resolver resolver(io);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  auto finish = [&](const beast::error_code& ec, const std::string& code) {
    if (ec == beast::error::timeout) {
      out = fail("timeout", "control plane " + host_ + ":" + port_ + " timed out (" + code + ")");
    } else {
      out = fail(code, host_ + ":" + port_ + ": " + ec.message());
    }
  };
  beast::get_lowest_layer(stream).expires_after(timeout);
  resolver.async_resolve(host_, port_, [&](beast::error_code ec, auto results) {
    if (ec) return finish(ec, "connect_failed");
    beast::get_lowest_layer(stream).async_connect(results, [&](beast::error_code ec2, auto) {
      if (ec2) return finish(ec2, "connect_failed");
      stream.async_handshake(asio::ssl::stream_base::client, [&](beast::error_code ec3) {
        if (ec3) return finish(ec3, "tls_failed");
        http::async_write(stream, req, [&](beast::error_code ec4, std::size_t) {
          if (ec4) return finish(ec4, "protocol");
          http::async_read(stream, buf, res, [&](beast::error_code ec5, std::size_t) {
            if (ec5) return finish(ec5, "protocol");
            HttpReply r;
            r.status = static_cast<int>(res.result_int());
            r.body = json::parse(res.body(), nullptr, false);
            out = std::move(r);
            beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
            stream.async_shutdown([](beast::error_code) {});
          });
        });
      });
    });
  });
  while (!io.stopped()) {
    io.run_for(std::chrono::milliseconds(100));
    if (cancel != nullptr && cancel->load() && !io.stopped()) {
      beast::get_lowest_layer(stream).cancel();
      beast::get_lowest_layer(stream).close();
      io.run_for(std::chrono::milliseconds(200));  // let the handlers see the cancellation
      return fail("cancelled", "agent is stopping");
    }
  }
  return out;
}

}  // namespace rap::agent
