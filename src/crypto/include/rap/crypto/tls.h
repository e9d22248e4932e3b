// Mutual TLS 1.3 configuration shared by every fabric carrier.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "rap/common/result.h"
#include "rap/crypto/certs.h"

using SSL_CTX = struct ssl_ctx_st;
using SSL = struct ssl_st;

namespace rap::crypto {

// Revoked certificate serials and node ids, updated at runtime from the revocation list artifact.
// Thread-safe; shared by every TLS context of a process.
class RevocationList {
 public:
  void revoke_serial(std::uint64_t serial);
  void revoke_node(const std::string& node_id);
  bool is_revoked(const NodeIdentity& id) const;

 private:
  mutable std::mutex mu_;
  std::set<std::uint64_t> serials_;
  std::set<std::string> nodes_;
};

// The TLS 1.3 suites every RAP endpoint offers, AES-128-GCM first (hardware AES; the fabric and
// the client ingress use the same list).
inline constexpr const char* kTls13Ciphersuites =
    "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384";

// Configures `ctx` for mutual TLS 1.3 with Ed25519 certificates: our certificate and key, the
// cluster CA as the only trust anchor, peer certificate required, revocation checked in the
// verify callback (the reason reaches the peer as a TLS alert and us as the error string).
// `revocations` must outlive ctx.
Result<void> configure_mutual_tls(SSL_CTX* ctx, const NodeCredentials& creds,
                                  const RevocationList* revocations);

// After a successful handshake: the peer identity proven by its certificate.
Result<NodeIdentity> peer_identity(SSL* ssl);

// RFC 8446 exporter bound to this TLS connection, used by the fabric AUTH frame.
Result<std::vector<std::uint8_t>> export_keying_material(SSL* ssl, const std::string& label,
                                                         std::size_t length);

// Human-readable reason of the last TLS/verification failure on `ssl` (may be empty).
std::string verify_failure_reason(SSL* ssl);

}  // namespace rap::crypto
