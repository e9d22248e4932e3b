// ControlClient: the agent's HTTPS JSON client for rap-control's node-facing API (docs/API.md).
// TLS 1.3 only; the control plane's certificate is verified against `ca_pem` (the operator
// pins rap-control's certificate or CA) or the system store when empty. After enrollment the
// node certificate and key are presented as the TLS client certificate (mutual TLS).
// One connection per request; every request has a deadline. Never throws.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "rap/common/result.h"

namespace rap::agent {

struct HttpReply {
  int status = 0;
  nlohmann::json body;  // discarded value when the body is not JSON
  std::string error_code() const;
  std::string error_message() const;
};

struct ClientIdentity {
  std::string cert_pem;
  std::string key_pem;  // private: kept in memory only while a request runs
};

class ControlClient {
 public:
  // url: https://host:port
  static Result<ControlClient> create(const std::string& url, std::string ca_pem);

  // Errors: "connect_failed", "tls_failed", "timeout", "protocol" (transport-level failures;
  // any HTTP status, including 4xx/5xx, is a reply), "cancelled" (`cancel` became true: checked
  // every 100 ms, so a long-poll never delays shutdown).
  Result<HttpReply> request(const std::string& method, const std::string& target,
                            const std::optional<nlohmann::json>& body,
                            const std::map<std::string, std::string>& headers,
                            const ClientIdentity* identity, std::chrono::seconds timeout,
                            const std::atomic<bool>* cancel = nullptr) const;

  const std::string& host() const { return host_; }
  const std::string& port() const { return port_; }

 private:
  ControlClient(std::string host, std::string port, std::string ca_pem)
      : host_(std::move(host)), port_(std::move(port)), ca_pem_(std::move(ca_pem)) {}
  std::string host_;
  std::string port_;
  std::string ca_pem_;
};

}  // namespace rap::agent
