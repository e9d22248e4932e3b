#include "rap/crypto/keys.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <sodium.h>

namespace rap::crypto {

void Ed25519Key::Free::operator()(EVP_PKEY* p) const {
  EVP_PKEY_free(p);
}

Ed25519Key::Ed25519Key(EVP_PKEY* p) : pkey_(p, Free{}) {}

Result<Ed25519Key> Ed25519Key::generate() {
  EVP_PKEY* p = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (p == nullptr) return fail("crypto_error", "Ed25519 key generation failed");
  return Ed25519Key(p);
}

Result<Ed25519Key> Ed25519Key::from_pem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* p = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (p == nullptr) return fail("bad_key", "not a PEM private key");
  if (EVP_PKEY_id(p) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(p);
    return fail("bad_key", "private key is not Ed25519");
  }
  return Ed25519Key(p);
}

std::string Ed25519Key::private_pem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, pkey_.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

PublicKey Ed25519Key::public_key() const {
  PublicKey pk{};
  std::size_t len = pk.size();
  EVP_PKEY_get_raw_public_key(pkey_.get(), pk.data(), &len);
  return pk;
}

Signature Ed25519Key::sign(std::span<const std::uint8_t> message) const {
  Signature sig{};
  std::size_t len = sig.size();
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const int ok = EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, pkey_.get()) == 1 &&
                 EVP_DigestSign(ctx, sig.data(), &len, message.data(), message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  RAP_ASSERT(ok && len == sig.size());
  return sig;
}

bool verify_ed25519(const PublicKey& pub, std::span<const std::uint8_t> message,
                    std::span<const std::uint8_t> signature) {
  if (signature.size() != 64) return false;
  EVP_PKEY* p = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, pub.data(), pub.size());
  if (p == nullptr) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok = EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, p) == 1 &&
                  EVP_DigestVerify(ctx, signature.data(), signature.size(), message.data(),
                                   message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(p);
  return ok;
}

std::array<std::uint8_t, 32> sha256(std::span<const std::uint8_t> data) {
  std::array<std::uint8_t, 32> out{};
  SHA256(data.data(), data.size(), out.data());
  return out;
}

std::string sha256_hex(std::span<const std::uint8_t> data) {
  static const char* hex = "0123456789abcdef";
  auto d = sha256(data);
  std::string s;
  s.reserve(64);
  for (auto b : d) {
    s.push_back(hex[b >> 4]);
    s.push_back(hex[b & 15]);
  }
  return s;
}

}  // namespace rap::crypto

namespace rap::crypto {

Result<std::string> seal_to(const PublicKey& recipient, std::string_view plaintext) {
  std::array<std::uint8_t, crypto_box_PUBLICKEYBYTES> x{};
  if (crypto_sign_ed25519_pk_to_curve25519(x.data(), recipient.data()) != 0)
    return fail("bad_public_key", "not a valid Ed25519 public key");
  std::string out(plaintext.size() + crypto_box_SEALBYTES, '\0');
  crypto_box_seal(reinterpret_cast<unsigned char*>(out.data()),
                  reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(),
                  x.data());
  return out;
}

Result<std::string> Ed25519Key::open_sealed(std::string_view sealed) const {
  if (sealed.size() < crypto_box_SEALBYTES) return fail("bad_sealed_box", "sealed box too short");
  std::array<std::uint8_t, 32> seed{};
  std::size_t len = seed.size();
  if (EVP_PKEY_get_raw_private_key(pkey_.get(), seed.data(), &len) != 1 || len != 32)
    return fail("bad_sealed_box", "key has no raw private half");
  std::array<std::uint8_t, crypto_sign_PUBLICKEYBYTES> epk{};
  std::array<std::uint8_t, crypto_sign_SECRETKEYBYTES> esk{};
  crypto_sign_seed_keypair(epk.data(), esk.data(), seed.data());
  std::array<std::uint8_t, crypto_box_SECRETKEYBYTES> xsk{};
  std::array<std::uint8_t, crypto_box_PUBLICKEYBYTES> xpk{};
  crypto_sign_ed25519_sk_to_curve25519(xsk.data(), esk.data());
  const bool pk_ok = crypto_sign_ed25519_pk_to_curve25519(xpk.data(), epk.data()) == 0;
  sodium_memzero(seed.data(), seed.size());
  sodium_memzero(esk.data(), esk.size());
  std::string out(sealed.size() - crypto_box_SEALBYTES, '\0');
  const bool ok =
      pk_ok && crypto_box_seal_open(reinterpret_cast<unsigned char*>(out.data()),
                                    reinterpret_cast<const unsigned char*>(sealed.data()),
                                    sealed.size(), xpk.data(), xsk.data()) == 0;
  sodium_memzero(xsk.data(), xsk.size());
  if (!ok) return fail("bad_sealed_box", "sealed box does not open with this key");
  return out;
}

}  // namespace rap::crypto
