#include "rap/crypto/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace rap::crypto {
namespace {

int revocation_index() {
  static const int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

int verify_cb(int preverify_ok, X509_STORE_CTX* store) {
  if (preverify_ok != 1) return preverify_ok;
  if (X509_STORE_CTX_get_error_depth(store) != 0) return 1;
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  SSL_CTX* ctx = SSL_get_SSL_CTX(ssl);
  const auto* rl = static_cast<const RevocationList*>(SSL_CTX_get_ex_data(ctx, revocation_index()));
  auto id = identity_from_certificate(X509_STORE_CTX_get_current_cert(store));
  if (!id) {
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  if (rl != nullptr && rl->is_revoked(*id)) {
    X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REVOKED);
    return 0;
  }
  return 1;
}

std::string last_ssl_error() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

}  // namespace

void RevocationList::revoke_serial(std::uint64_t serial) {
  std::lock_guard lk(mu_);
  serials_.insert(serial);
}
void RevocationList::revoke_node(const std::string& node_id) {
  std::lock_guard lk(mu_);
  nodes_.insert(node_id);
}
bool RevocationList::is_revoked(const NodeIdentity& id) const {
  std::lock_guard lk(mu_);
  return serials_.count(id.serial) != 0 || nodes_.count(id.node_id) != 0;
}

Result<void> configure_mutual_tls(SSL_CTX* ctx, const NodeCredentials& creds,
                                  const RevocationList* revocations) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  if (SSL_CTX_set_ciphersuites(ctx, kTls13Ciphersuites) != 1) {
    return fail("tls_config", last_ssl_error());
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // Certificate + key.
  BIO* cb = BIO_new_mem_buf(creds.cert_pem.data(), static_cast<int>(creds.cert_pem.size()));
  X509* cert = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
  BIO_free(cb);
  if (cert == nullptr) return fail("bad_cert", "node certificate is not PEM X.509");
  const int cert_ok = SSL_CTX_use_certificate(ctx, cert);
  X509_free(cert);
  if (cert_ok != 1) return fail("bad_cert", last_ssl_error());
  auto key = Ed25519Key::from_pem(creds.key_pem);
  if (!key) return tl::unexpected(key.error());
  if (SSL_CTX_use_PrivateKey(ctx, key->native()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    return fail("bad_key", "node key does not match node certificate");
  }
  // Trust anchor: only the cluster CA.
  X509_STORE* store = X509_STORE_new();
  BIO* ab = BIO_new_mem_buf(creds.ca_pem.data(), static_cast<int>(creds.ca_pem.size()));
  X509* ca = PEM_read_bio_X509(ab, nullptr, nullptr, nullptr);
  BIO_free(ab);
  if (ca == nullptr) {
    X509_STORE_free(store);
    return fail("bad_cert", "cluster CA is not PEM X.509");
  }
  X509_STORE_add_cert(store, ca);
  X509_free(ca);
  SSL_CTX_set_cert_store(ctx, store);
  SSL_CTX_set_ex_data(ctx, revocation_index(), const_cast<RevocationList*>(revocations));
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
  SSL_CTX_set_verify_depth(ctx, 2);
  return {};
}

Result<NodeIdentity> peer_identity(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) return fail("no_certificate", "peer presented no certificate");
  if (SSL_get_verify_result(ssl) != X509_V_OK) {
    return fail("cert_invalid", X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
  }
  return identity_from_certificate(cert);
}

Result<std::vector<std::uint8_t>> export_keying_material(SSL* ssl, const std::string& label,
                                                         std::size_t length) {
  std::vector<std::uint8_t> out(length);
  if (SSL_export_keying_material(ssl, out.data(), out.size(), label.data(), label.size(), nullptr,
                                 0, 0) != 1) {
    return fail("tls_exporter", "TLS exporter failed");
  }
  return out;
}

std::string verify_failure_reason(SSL* ssl) {
  const long r = SSL_get_verify_result(ssl);
  if (r != X509_V_OK) return X509_verify_cert_error_string(r);
  return {};
}

}  // namespace rap::crypto
