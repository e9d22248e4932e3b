#include "cluster_ca.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sodium.h>

#include <memory>

#include "rap/control/api.h"

namespace rap::control {

namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

X509Ptr read_pem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return X509Ptr();
  X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return X509Ptr(x);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

bool parse_hex(std::string_view hex, std::span<std::uint8_t> out) {
  if (hex.size() != out.size() * 2) return false;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return true;
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (auto b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

Result<std::string> load_or_create_master_key(Env& env, const std::string& path, Random& rng) {
  std::array<std::uint8_t, kMasterKeyBytes> key{};
  if (env.exists(path)) {
    auto text = env.read_file(path);
    if (!text) return tl::unexpected(text.error());
    std::string_view t = *text;
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.remove_suffix(1);
    if (!parse_hex(t, key))
      return fail("bad_master_key", "master key file must hold 64 lower-case hex characters");
  } else {
    rng.fill(key);
    if (auto w = env.write_file_atomic(path, to_hex(key) + "\n", 0600); !w)
      return tl::unexpected(w.error());
  }
  std::string out(reinterpret_cast<const char*>(key.data()), key.size());
  sodium_memzero(key.data(), key.size());
  return out;
}

Result<std::string> load_or_create_master_key_file(const std::string& path, Random& rng) {
  Env& env = default_env();
  const auto slash = path.rfind('/');
  if (!env.exists(path) && slash != std::string::npos && slash > 0) {
    if (auto r = env.make_dirs(path.substr(0, slash), 0700); !r) return tl::unexpected(r.error());
  }
  return load_or_create_master_key(env, path, rng);
}

std::string master_key_id(std::string_view master_key) {
  std::string data = "rap-master-key";
  data.append(master_key);
  const auto digest = crypto::sha256_hex(
      std::span(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
  sodium_memzero(data.data(), data.size());
  return digest.substr(0, 16);
}

std::string seal_secret(std::string_view master_key, std::string_view plaintext, Random& rng) {
  RAP_ASSERT(master_key.size() == crypto_secretbox_KEYBYTES);
  std::string out(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plaintext.size(), '\0');
  auto* o = reinterpret_cast<std::uint8_t*>(out.data());
  rng.fill(std::span(o, crypto_secretbox_NONCEBYTES));
  crypto_secretbox_easy(o + crypto_secretbox_NONCEBYTES,
                        reinterpret_cast<const std::uint8_t*>(plaintext.data()), plaintext.size(),
                        o, reinterpret_cast<const std::uint8_t*>(master_key.data()));
  return out;
}

Result<std::string> open_secret(std::string_view master_key, std::string_view sealed) {
  if (master_key.size() != crypto_secretbox_KEYBYTES)
    return fail("unseal_failed", "master key unavailable");
  if (sealed.size() < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
    return fail("unseal_failed", "sealed secret too short");
  const auto* s = reinterpret_cast<const std::uint8_t*>(sealed.data());
  std::string out(sealed.size() - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES, '\0');
  if (crypto_secretbox_open_easy(reinterpret_cast<std::uint8_t*>(out.data()),
                                 s + crypto_secretbox_NONCEBYTES,
                                 sealed.size() - crypto_secretbox_NONCEBYTES, s,
                                 reinterpret_cast<const std::uint8_t*>(master_key.data())) != 0) {
    return fail("unseal_failed", "cannot open sealed secret (wrong master key or altered data)");
  }
  return out;
}

Result<NewClusterCa> create_cluster_ca(std::string_view master_key, const std::string& cluster_id,
                                       Random& rng) {
  if (master_key.size() != kMasterKeyBytes) return fail("no_master_key", "master key unavailable");
  auto key = crypto::Ed25519Key::generate();
  if (!key) return tl::unexpected(key.error());
  const auto now = std::chrono::system_clock::now();
  auto cert = crypto::make_ca_certificate(
      *key, cluster_id,
      crypto::Validity{now - std::chrono::hours(1), now + std::chrono::hours(24 * 3650)});
  if (!cert) return tl::unexpected(cert.error());
  std::string pem = key->private_pem();
  NewClusterCa out{*cert, seal_secret(master_key, pem, rng), master_key_id(master_key)};
  sodium_memzero(pem.data(), pem.size());
  return out;
}

Result<IssuedCertificate> issue_cluster_node_certificate(
    std::string_view master_key, const std::string& ca_cert_pem, std::string_view sealed_ca_key,
    const crypto::PublicKey& node_key, const std::string& cluster_id, const std::string& node_id,
    std::chrono::seconds ttl, Random& rng) {
  auto pem = open_secret(master_key, sealed_ca_key);
  if (!pem) return tl::unexpected(pem.error());
  auto ca_key = crypto::Ed25519Key::from_pem(*pem);
  sodium_memzero(pem->data(), pem->size());
  if (!ca_key) return tl::unexpected(ca_key.error());
  std::array<std::uint8_t, 8> sb{};
  std::uint64_t serial = 0;
  while (serial == 0) {
    rng.fill(sb);
    serial = 0;
    for (auto b : sb) serial = (serial << 8) | b;
    serial >>= 1;  // fits a PostgreSQL bigint
  }
  IssuedCertificate out;
  out.serial = static_cast<std::int64_t>(serial);
  const auto now =
      std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  out.not_before = now - std::chrono::minutes(5);
  out.not_after = now + ttl;
  auto cert =
      crypto::issue_node_certificate(*ca_key, ca_cert_pem, node_key, cluster_id, node_id, serial,
                                     crypto::Validity{out.not_before, out.not_after});
  if (!cert) return tl::unexpected(cert.error());
  out.cert_pem = std::move(*cert);
  return out;
}

Result<IssuedCertificate> issue_and_record_node_certificate(pqxx::work& w,
                                                            std::string_view master_key,
                                                            const std::string& cluster_id,
                                                            const std::string& node_id,
                                                            const std::string& public_key_hex,
                                                            std::chrono::seconds ttl, Random& rng) {
  if (master_key.size() != kMasterKeyBytes) return fail("no_master_key", "master key unavailable");
  crypto::PublicKey pub{};
  if (!parse_hex(public_key_hex, pub)) return fail("bad_public_key", "invalid node public key");
  auto ca = w.exec_params(
      "SELECT cert_pem, key_ciphertext, key_id FROM cluster_cas WHERE cluster_id = $1::uuid",
      cluster_id);
  if (ca.empty()) return fail("no_cluster_ca", "cluster has no certificate authority");
  if (ca[0][2].as<std::string>() != master_key_id(master_key))
    return fail("unseal_failed", "cluster CA was sealed with a different master key");
  const std::string ca_pem = ca[0][0].as<std::string>();
  const std::string sealed_hex = ca[0][1].as<std::string>();
  std::string sealed(sealed_hex.size() / 2, '\0');
  if (!parse_hex(sealed_hex,
                 std::span(reinterpret_cast<std::uint8_t*>(sealed.data()), sealed.size())))
    return fail("unseal_failed", "sealed cluster CA key is malformed");
  auto cert = issue_cluster_node_certificate(master_key, ca_pem, sealed, pub, cluster_id, node_id,
                                             ttl, rng);
  if (!cert) return cert;
  const auto secs = [](std::chrono::system_clock::time_point tp) {
    return static_cast<long long>(std::chrono::system_clock::to_time_t(tp));
  };
  w.exec_params(
      "INSERT INTO node_certificates (serial, node_id, not_before, not_after, cert_pem) "
      "VALUES ($1, $2::uuid, to_timestamp($3), to_timestamp($4), $5)",
      cert->serial, node_id, secs(cert->not_before), secs(cert->not_after), cert->cert_pem);
  return cert;
}

Result<void> verify_node_certificate(const std::string& ca_cert_pem, const std::string& cert_pem) {
  X509Ptr ca = read_pem(ca_cert_pem);
  X509Ptr leaf = read_pem(cert_pem);
  if (!ca || !leaf) return fail("untrusted_certificate", "cannot parse certificate");
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), &X509_STORE_free);
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                      &X509_STORE_CTX_free);
  if (!store || !ctx || X509_STORE_add_cert(store.get(), ca.get()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), nullptr) != 1) {
    return fail("untrusted_certificate", "cannot set up certificate verification");
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    return fail("untrusted_certificate",
                X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())));
  }
  return {};
}

}  // namespace rap::control
