#include "rap/crypto/certs.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <memory>
#include <optional>

namespace rap::crypto {
namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

X509Ptr read_cert(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return X509Ptr(x);
}

std::string write_cert(X509* x) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

bool set_time(ASN1_TIME* field, std::chrono::system_clock::time_point tp) {
  return ASN1_TIME_set(field, std::chrono::system_clock::to_time_t(tp)) != nullptr;
}

bool add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

bool valid_id(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

Result<std::string> make_ca_certificate(const Ed25519Key& ca_key, const std::string& cluster_id,
                                        Validity validity) {
  if (!valid_id(cluster_id)) return fail("bad_id", "invalid cluster id");
  X509Ptr x(X509_new());
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(x.get()), 1);
  set_time(X509_getm_notBefore(x.get()), validity.not_before);
  set_time(X509_getm_notAfter(x.get()), validity.not_after);
  X509_set_pubkey(x.get(), ca_key.native());
  X509_NAME* name = X509_get_subject_name(x.get());
  const std::string cn = "RAP cluster CA " + cluster_id;
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  if (!add_ext(x.get(), x.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
      !add_ext(x.get(), x.get(), NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !add_ext(x.get(), x.get(), NID_subject_key_identifier, "hash") ||
      !add_ext(x.get(), x.get(), NID_subject_alt_name, "URI:rap://" + cluster_id + "/ca")) {
    return fail("crypto_error", "cannot add CA extensions");
  }
  if (X509_sign(x.get(), ca_key.native(), nullptr) <= 0) {
    return fail("crypto_error", "CA self-signature failed");
  }
  return write_cert(x.get());
}

Result<std::string> issue_node_certificate(const Ed25519Key& ca_key, const std::string& ca_cert_pem,
                                           const PublicKey& node_public_key,
                                           const std::string& cluster_id,
                                           const std::string& node_id, std::uint64_t serial,
                                           Validity validity) {
  if (!valid_id(cluster_id) || !valid_id(node_id)) return fail("bad_id", "invalid cluster/node id");
  X509Ptr ca = read_cert(ca_cert_pem);
  if (!ca) return fail("bad_cert", "CA certificate is not PEM X.509");
  EVP_PKEY* node_pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, node_public_key.data(),
                                                  node_public_key.size());
  if (node_pk == nullptr) return fail("bad_key", "invalid node public key");
  X509Ptr x(X509_new());
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(x.get()), serial);
  set_time(X509_getm_notBefore(x.get()), validity.not_before);
  set_time(X509_getm_notAfter(x.get()), validity.not_after);
  X509_set_pubkey(x.get(), node_pk);
  EVP_PKEY_free(node_pk);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(node_id.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), X509_get_subject_name(ca.get()));
  if (!add_ext(x.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE") ||
      !add_ext(x.get(), ca.get(), NID_key_usage, "critical,digitalSignature") ||
      !add_ext(x.get(), ca.get(), NID_ext_key_usage, "serverAuth,clientAuth") ||
      !add_ext(x.get(), ca.get(), NID_authority_key_identifier, "keyid:always") ||
      !add_ext(x.get(), ca.get(), NID_subject_alt_name,
               "URI:rap://" + cluster_id + "/node/" + node_id)) {
    return fail("crypto_error", "cannot add node certificate extensions");
  }
  if (X509_sign(x.get(), ca_key.native(), nullptr) <= 0) {
    return fail("crypto_error", "node certificate signature failed");
  }
  return write_cert(x.get());
}

Result<NodeIdentity> identity_from_certificate(X509* cert) {
  if (cert == nullptr) return fail("no_certificate", "peer presented no certificate");
  NodeIdentity id;
  std::uint64_t serial = 0;
  if (ASN1_INTEGER_get_uint64(&serial, X509_get0_serialNumber(cert)) != 1) {
    return fail("bad_cert", "certificate serial out of range");
  }
  id.serial = serial;
  EVP_PKEY* pk = X509_get0_pubkey(cert);
  if (pk == nullptr || EVP_PKEY_id(pk) != EVP_PKEY_ED25519) {
    return fail("bad_cert", "certificate key is not Ed25519");
  }
  std::size_t len = id.public_key.size();
  EVP_PKEY_get_raw_public_key(pk, id.public_key.data(), &len);
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans == nullptr) return fail("bad_cert", "certificate has no rap:// identity");
  std::string uri;
  for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
    if (gn->type == GEN_URI) {
      const ASN1_IA5STRING* s = gn->d.uniformResourceIdentifier;
      uri.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                 static_cast<std::size_t>(ASN1_STRING_length(s)));
      break;
    }
  }
  GENERAL_NAMES_free(sans);
  const std::string prefix = "rap://";
  const auto node_pos = uri.find("/node/");
  if (uri.rfind(prefix, 0) != 0 || node_pos == std::string::npos) {
    return fail("bad_cert", "certificate identity is not rap://<cluster>/node/<node>");
  }
  id.cluster_id = uri.substr(prefix.size(), node_pos - prefix.size());
  id.node_id = uri.substr(node_pos + 6);
  if (id.cluster_id.empty() || id.node_id.empty()) {
    return fail("bad_cert", "certificate identity has an empty cluster or node");
  }
  return id;
}

Result<NodeIdentity> identity_from_pem(const std::string& cert_pem) {
  X509Ptr x = read_cert(cert_pem);
  if (!x) return fail("bad_cert", "not a PEM X.509 certificate");
  return identity_from_certificate(x.get());
}

Result<Validity> validity_from_pem(const std::string& cert_pem) {
  X509Ptr x = read_cert(cert_pem);
  if (!x) return fail("bad_cert", "not a PEM X.509 certificate");
  auto conv = [](const ASN1_TIME* t) -> std::optional<std::chrono::system_clock::time_point> {
    std::tm tm{};
    if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
    return std::chrono::system_clock::from_time_t(timegm(&tm));
  };
  auto nb = conv(X509_get0_notBefore(x.get()));
  auto na = conv(X509_get0_notAfter(x.get()));
  if (!nb || !na) return fail("bad_cert", "certificate validity cannot be read");
  return Validity{*nb, *na};
}

}  // namespace rap::crypto
