// HTTPS JSON client of the rap-control API (docs/API.md), used by rapctl.
//
// One request per connection, synchronous from the caller's point of view (Boost.Beast over
// asio::ssl on a private io_context), TLS 1.3 only. Server certificates are verified against the
// system trust store by default, against a specific PEM file with `ca_file`, or not at all with
// `insecure` (the caller prints the warning). The host name (or IP address) of the URL is checked
// against the certificate.
//
// Transport failures are returned as rap::Error with one of these codes (see exit_code()):
//   invalid_url        the server URL is not https://HOST[:PORT][/PREFIX]
//   resolve_failed     DNS lookup failed
//   connect_failed     TCP connect failed (refused, unreachable)
//   tls_verify_failed  the server certificate was not trusted (message suggests --ca-file)
//   tls_error          any other TLS failure (handshake, protocol version)
//   ca_file_error      the --ca-file cannot be read or holds no PEM certificate
//   timeout            an operation took longer than the timeout
//   io_error           the connection broke while sending or receiving
// HTTP error statuses are not transport failures: they come back as an HttpReply.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "rap/common/result.h"

namespace rap::cli {

using json = nlohmann::json;

// A parsed server URL: https://HOST[:PORT][/PREFIX]. `host` has no brackets for IPv6.
struct ServerUrl {
  std::string host;
  std::uint16_t port = 443;
  std::string prefix;  // "" or "/path" without trailing slash; prepended to request paths
  // Canonical form for messages and the config file: https://host:port/prefix.
  std::string str() const;
};
Result<ServerUrl> parse_server_url(const std::string& url);

struct ClientOptions {
  std::string server;     // https://HOST:PORT
  std::string token;      // bearer token; "" sends no Authorization header
  std::string ca_file;    // PEM file of trusted certificates; "" = system trust store
  bool insecure = false;  // skip certificate verification entirely
  std::chrono::milliseconds timeout{30000};  // per connect / handshake / write / read
};

struct HttpReply {
  int status = 0;
  std::string body;
  json j;  // parsed body; discarded (null) if the body is not JSON
};

class HttpClient {
 public:
  explicit HttpClient(ClientOptions opts) : opts_(std::move(opts)) {}

  // Sends `method path` (path includes the query string) with an optional JSON body.
  Result<HttpReply> request(const std::string& method, const std::string& path,
                            const std::optional<json>& body = std::nullopt) const;

  const ClientOptions& options() const { return opts_; }

 private:
  ClientOptions opts_;
};

// For an HTTP error reply: the API's {"error":{"code","message"}}, or a generic code
// ("http_<status>") when the body does not have that shape.
Error api_error(const HttpReply& r);

// Percent-encodes a path segment or query value (RFC 3986 unreserved characters stay).
std::string url_encode(const std::string& s);

}  // namespace rap::cli
