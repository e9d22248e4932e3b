#include "rap/cli/http_client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <exception>

#include "rap/common/env.h"

namespace rap::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t kMaxResponseBody = 16U * 1024U * 1024U;
constexpr const char* kUserAgent = "rapctl/0.1";

tl::unexpected<Error> bad_url(const std::string& url, const std::string& why) {
  return fail("invalid_url",
              "invalid server URL '" + url + "': " + why + " (expected https://HOST:PORT)");
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  (void)asio::ip::make_address(host, ec);
  return !ec;
}

std::string host_header(const ServerUrl& u) {
  const bool v6 = u.host.find(':') != std::string::npos;
  return (v6 ? "[" + u.host + "]" : u.host) + ":" + std::to_string(u.port);
}

tl::unexpected<Error> timed_out(const ServerUrl& u, const char* what) {
  return fail("timeout", std::string(what) + " " + u.str() + " timed out");
}

// One request on a fresh connection. Everything it touches outlives the io_context run.
asio::awaitable<Result<HttpReply>> exchange(ssl::context& ctx, const ServerUrl& u,
                                            const ClientOptions& o,
                                            const http::request<http::string_body>& req) {
  const auto tok = asio::as_tuple(asio::use_awaitable);
  auto ex = co_await asio::this_coro::executor;

  tcp::resolver resolver(ex);
  auto [rerr, endpoints] = co_await resolver.async_resolve(u.host, std::to_string(u.port), tok);
  if (rerr) co_return fail("resolve_failed", "cannot resolve " + u.host + ": " + rerr.message());

  beast::ssl_stream<beast::tcp_stream> stream(ex, ctx);
  auto& tcp_layer = beast::get_lowest_layer(stream);
  tcp_layer.expires_after(o.timeout);
  auto [cerr, ep] = co_await tcp_layer.async_connect(endpoints, tok);
  (void)ep;
  if (cerr == beast::error::timeout) co_return timed_out(u, "connecting to");
  if (cerr)
    co_return fail("connect_failed", "cannot connect to " + u.str() + ": " + cerr.message());

  SSL* ssl_handle = stream.native_handle();
  const bool ip = is_ip_literal(u.host);
  if (!ip) {
    // SNI (names only). SSL_set_tlsext_host_name() is a macro with an old-style cast.
    SSL_ctrl(ssl_handle, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(u.host.c_str()));
  }
  if (!o.insecure) {
    // The certificate must name the host (DNS SAN) or the IP address (IP SAN) of the URL.
    if (ip) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_handle), u.host.c_str());
    } else {
      SSL_set_hostflags(ssl_handle, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      SSL_set1_host(ssl_handle, u.host.c_str());
    }
  }
  tcp_layer.expires_after(o.timeout);
  auto [herr] = co_await stream.async_handshake(ssl::stream_base::client, tok);
  if (herr == beast::error::timeout) co_return timed_out(u, "TLS handshake with");
  if (herr) {
    const long vr = SSL_get_verify_result(ssl_handle);
    if (!o.insecure && vr != X509_V_OK) {
      std::string hint = o.ca_file.empty()
                             ? "pass --ca-file PEM with the server's CA certificate"
                             : "check that " + o.ca_file + " holds the server's CA certificate";
      co_return fail("tls_verify_failed", "TLS certificate of " + u.str() + " is not trusted: " +
                                              X509_verify_cert_error_string(vr) + "; " + hint);
    }
    co_return fail("tls_error", "TLS handshake with " + u.str() + " failed: " + herr.message());
  }

  tcp_layer.expires_after(o.timeout);
  auto [werr, wn] = co_await http::async_write(stream, req, tok);
  (void)wn;
  if (werr == beast::error::timeout) co_return timed_out(u, "sending request to");
  if (werr) co_return fail("io_error", "sending request to " + u.str() + ": " + werr.message());

  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBody);
  tcp_layer.expires_after(o.timeout);
  auto [rderr, rn] = co_await http::async_read(stream, buf, parser, tok);
  (void)rn;
  if (rderr == beast::error::timeout) co_return timed_out(u, "waiting for a response from");
  if (rderr)
    co_return fail("io_error", "reading response from " + u.str() + ": " + rderr.message());

  HttpReply reply;
  reply.status = static_cast<int>(parser.get().result_int());
  reply.body = std::move(parser.get().body());
  reply.j = json::parse(reply.body, nullptr, false);
  if (reply.j.is_discarded()) reply.j = nullptr;
  // One request per connection: close the TCP connection without waiting for close_notify.
  beast::error_code ignored;
  tcp_layer.socket().shutdown(tcp::socket::shutdown_both, ignored);
  co_return reply;
}

}  // namespace

std::string ServerUrl::str() const {
  return "https://" + host_header(*this) + prefix;
}

Result<ServerUrl> parse_server_url(const std::string& url) {
  constexpr std::string_view kScheme = "https://";
  if (url.rfind("http://", 0) == 0) return bad_url(url, "plain http is not supported");
  if (url.rfind(kScheme, 0) != 0) return bad_url(url, "must start with https://");
  const std::string rest = url.substr(kScheme.size());
  const auto slash = rest.find('/');
  const std::string hostport = rest.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "" : rest.substr(slash);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (prefix.find_first_of("?#") != std::string::npos || hostport.find('@') != std::string::npos)
    return bad_url(url, "query, fragment and user info are not allowed");

  ServerUrl u;
  std::string port;
  bool has_port = false;
  if (!hostport.empty() && hostport.front() == '[') {
    const auto close = hostport.find(']');
    if (close == std::string::npos) return bad_url(url, "unterminated [IPv6] address");
    u.host = hostport.substr(1, close - 1);
    const std::string after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad_url(url, "unexpected text after ]");
      has_port = true;
      port = after.substr(1);
    }
  } else {
    const auto colon = hostport.rfind(':');
    u.host = hostport.substr(0, colon);
    if (colon != std::string::npos) {
      has_port = true;
      port = hostport.substr(colon + 1);
    }
    if (u.host.find(':') != std::string::npos)
      return bad_url(url, "IPv6 addresses must be written in brackets");
  }
  if (u.host.empty()) return bad_url(url, "missing host");
  if (has_port) {
    unsigned value = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || p != port.data() + port.size() || value == 0 || value > 65535)
      return bad_url(url, "invalid port");
    u.port = static_cast<std::uint16_t>(value);
  }
  u.prefix = prefix;
  return u;
}

Result<HttpReply> HttpClient::request(const std::string& method, const std::string& path,
                                      const std::optional<json>& body) const {
  auto url = parse_server_url(opts_.server);
  if (!url) return tl::unexpected(url.error());

  ssl::context ctx(ssl::context::tls_client);
  if (SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_3_VERSION) != 1)
    return fail("tls_error", "cannot require TLS 1.3");
  boost::system::error_code ec;
  if (opts_.insecure) {
    ctx.set_verify_mode(ssl::verify_none);
  } else {
    ctx.set_verify_mode(ssl::verify_peer);
    if (opts_.ca_file.empty()) {
      ctx.set_default_verify_paths(ec);
      if (ec) return fail("tls_error", "cannot load the system trust store: " + ec.message());
    } else {
      auto pem = default_env().read_file(opts_.ca_file);
      if (!pem) return fail("ca_file_error", "cannot read CA file: " + pem.error().message);
      ctx.add_certificate_authority(asio::buffer(*pem), ec);
      if (ec)
        return fail("ca_file_error", "CA file " + opts_.ca_file +
                                         " holds no usable PEM certificate: " + ec.message());
    }
  }

  http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) return fail("invalid_request", "unknown HTTP method " + method);
  http::request<http::string_body> req{verb, url->prefix + path, 11};
  req.set(http::field::host, host_header(*url));
  req.set(http::field::user_agent, kUserAgent);
  req.set(http::field::accept, "application/json");
  if (!opts_.token.empty()) req.set(http::field::authorization, "Bearer " + opts_.token);
  if (body) {
    try {
      req.body() = body->dump();
    } catch (const json::exception&) {
      return fail("invalid_input", "an argument is not valid UTF-8");
    }
    req.set(http::field::content_type, "application/json");
  }
  req.prepare_payload();

  asio::io_context io(1);
  Result<HttpReply> out = fail("internal", "request did not complete");
  asio::co_spawn(io, exchange(ctx, *url, opts_, req),
                 [&out](const std::exception_ptr& e, Result<HttpReply> r) {
                   if (e) {
                     out = fail("io_error", "unexpected failure while talking to the server");
                   } else {
                     out = std::move(r);
                   }
                 });
  io.run();
  return out;
}

Error api_error(const HttpReply& r) {
  const json& j = r.j;
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    const json& e = j["error"];
    if (e.contains("code") && e["code"].is_string()) {
      std::string message = e.contains("message") && e["message"].is_string()
                                ? e["message"].get<std::string>()
                                : "HTTP " + std::to_string(r.status);
      return Error{e["code"].get<std::string>(), message};
    }
  }
  return Error{"http_" + std::to_string(r.status),
               "server answered HTTP " + std::to_string(r.status)};
}

std::string url_encode(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4U]);
      out.push_back(kHex[c & 0xFU]);
    }
  }
  return out;
}

}  // namespace rap::cli
