// Ed25519 node and CA keys (OpenSSL EVP). A node's private key never leaves its host: it is
// generated locally, stored PEM/PKCS#8 with mode 0600, and only its public half is shared.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "rap/common/result.h"

using EVP_PKEY = struct evp_pkey_st;

namespace rap::crypto {

using PublicKey = std::array<std::uint8_t, 32>;
using Signature = std::array<std::uint8_t, 64>;

class Ed25519Key {
 public:
  static Result<Ed25519Key> generate();
  static Result<Ed25519Key> from_pem(const std::string& pem);

  std::string private_pem() const;  // PKCS#8; treat as secret
  PublicKey public_key() const;
  Signature sign(std::span<const std::uint8_t> message) const;
  EVP_PKEY* native() const { return pkey_.get(); }
  // Opens a box made by seal_to(public_key(), ...). Error "bad_sealed_box" when it was sealed
  // to another key or altered.
  Result<std::string> open_sealed(std::string_view sealed) const;

 private:
  struct Free {
    void operator()(EVP_PKEY* p) const;
  };
  explicit Ed25519Key(EVP_PKEY* p);
  std::shared_ptr<EVP_PKEY> pkey_;
};

// Anonymous sealed box (libsodium crypto_box_seal) to the X25519 key derived from an Ed25519
// public key: only the holder of the matching Ed25519 private key can open it; nobody can alter
// it unnoticed. Used for route tickets, which carry topology a tenant must not see.
Result<std::string> seal_to(const PublicKey& recipient, std::string_view plaintext);

bool verify_ed25519(const PublicKey& pub, std::span<const std::uint8_t> message,
                    std::span<const std::uint8_t> signature);

// Lower-case hex SHA-256 of `data`: used for fingerprints in logs instead of secrets.
std::string sha256_hex(std::span<const std::uint8_t> data);
std::array<std::uint8_t, 32> sha256(std::span<const std::uint8_t> data);

}  // namespace rap::crypto
