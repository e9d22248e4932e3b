// Cluster certificate authority and node certificates (X.509, Ed25519).
//
// A node certificate names its identity in one SAN URI: rap://<cluster-id>/node/<node-id>.
// The fabric trusts a peer only when its chain ends at the cluster CA, the URI's cluster matches
// the local cluster, and the certificate is neither expired nor on the revocation list.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "rap/common/result.h"
#include "rap/crypto/keys.h"

using X509 = struct x509_st;

namespace rap::crypto {

struct NodeIdentity {
  std::string cluster_id;
  std::string node_id;
  std::uint64_t serial = 0;
  PublicKey public_key{};
};

struct Validity {
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
};

// Self-signed CA certificate for `cluster_id`.
Result<std::string> make_ca_certificate(const Ed25519Key& ca_key, const std::string& cluster_id,
                                        Validity validity);

// Node certificate signed by the cluster CA for the node's public key.
Result<std::string> issue_node_certificate(const Ed25519Key& ca_key, const std::string& ca_cert_pem,
                                           const PublicKey& node_public_key,
                                           const std::string& cluster_id,
                                           const std::string& node_id, std::uint64_t serial,
                                           Validity validity);

// Identity named by a certificate (no chain validation: that is TLS's job).
Result<NodeIdentity> identity_from_certificate(X509* cert);
Result<NodeIdentity> identity_from_pem(const std::string& cert_pem);
// notBefore / notAfter of a PEM certificate.
Result<Validity> validity_from_pem(const std::string& cert_pem);

// Convenience for tests, the demo and the fabric tool: a CA and node credentials on disk.
struct NodeCredentials {
  std::string ca_pem;    // trust anchor of the cluster
  std::string cert_pem;  // this node's certificate
  std::string key_pem;   // this node's private key (secret)
};

}  // namespace rap::crypto
