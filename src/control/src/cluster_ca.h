// Cluster certificate authorities and the control plane's master key.
//
// Each cluster has its own Ed25519 CA. The CA certificate is public; the CA private key is kept
// in PostgreSQL only sealed with the master key (libsodium crypto_secretbox: XSalsa20-Poly1305,
// random 24-byte nonce prepended to the ciphertext). The master key is 32 random bytes stored
// as 64 hex characters in a 0600 file outside the database (rap-control --master-key-file), so
// a database dump alone does not reveal any CA key. Its key id (a SHA-256 prefix) is stored
// next to every sealed key so a wrong master key is reported as such.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <pqxx/pqxx>
#include <span>
#include <string>
#include <string_view>

#include "rap/common/env.h"
#include "rap/common/random.h"
#include "rap/common/result.h"
#include "rap/crypto/certs.h"
#include "rap/crypto/keys.h"

namespace rap::control {

inline constexpr std::size_t kMasterKeyBytes = 32;

// Reads the master key file (64 hex characters, optional trailing newline), or creates it with
// 32 random bytes and mode 0600 (atomically, via Env) when it does not exist.
// Errors: "io_error" from Env, "bad_master_key" for a malformed file.
Result<std::string> load_or_create_master_key(Env& env, const std::string& path, Random& rng);

// Stable public identifier of a master key: first 16 hex chars of SHA-256("rap-master-key" || key).
std::string master_key_id(std::string_view master_key);

// nonce || crypto_secretbox_easy(plaintext). `master_key` must be 32 bytes.
std::string seal_secret(std::string_view master_key, std::string_view plaintext, Random& rng);
// Inverse of seal_secret. Error "unseal_failed" if the key is wrong or the data was altered.
Result<std::string> open_secret(std::string_view master_key, std::string_view sealed);

// A freshly generated cluster CA: certificate (10 years) and sealed private key.
struct NewClusterCa {
  std::string cert_pem;
  std::string sealed_key;
  std::string key_id;
};
Result<NewClusterCa> create_cluster_ca(std::string_view master_key, const std::string& cluster_id,
                                       Random& rng);

// Issues a node certificate (SAN rap://<cluster_id>/node/<node_id>) valid from 5 minutes ago for
// `ttl`, signed by the cluster CA whose sealed key is given.
struct IssuedCertificate {
  std::string cert_pem;
  std::int64_t serial = 0;  // 1..2^63-1
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
};
Result<IssuedCertificate> issue_cluster_node_certificate(
    std::string_view master_key, const std::string& ca_cert_pem, std::string_view sealed_ca_key,
    const crypto::PublicKey& node_key, const std::string& cluster_id, const std::string& node_id,
    std::chrono::seconds ttl, Random& rng);

// Verifies that `cert_pem` chains to `ca_cert_pem` (signature, validity period, CA constraints).
// Error "untrusted_certificate" otherwise.
Result<void> verify_node_certificate(const std::string& ca_cert_pem, const std::string& cert_pem);

// Adapts a fill function (e.g. Ctx::random_bytes) to the Random interface.
class FnRandom final : public Random {
 public:
  explicit FnRandom(std::function<void(std::span<std::uint8_t>)> f) : f_(std::move(f)) {}
  void fill(std::span<std::uint8_t> out) override { f_(out); }

 private:
  std::function<void(std::span<std::uint8_t>)> f_;
};

// Inside the caller's transaction: loads the cluster CA of `cluster_id`, issues a node
// certificate for `public_key_hex` (64 hex chars) and records it in node_certificates.
// Errors: "no_master_key" / "unseal_failed" / crypto errors (the caller maps them to 503/500).
Result<IssuedCertificate> issue_and_record_node_certificate(pqxx::work& w,
                                                            std::string_view master_key,
                                                            const std::string& cluster_id,
                                                            const std::string& node_id,
                                                            const std::string& public_key_hex,
                                                            std::chrono::seconds ttl, Random& rng);

// Hex helpers for keys and signatures (lower-case hex in, exact length required).
bool parse_hex(std::string_view hex, std::span<std::uint8_t> out);
std::string to_hex(std::span<const std::uint8_t> bytes);

}  // namespace rap::control
