#include "rap/mesh/e2e.h"

#include <openssl/evp.h>
#include <sodium.h>

#include <cstring>

#include "rap/config/canonical.h"

namespace rap::mesh {

namespace {

constexpr char kDomain[] = "RAP-ROUTE-E2E-V1";

std::string transcript(const Lease& lease, std::string_view role, std::string_view entry_pub,
                       std::string_view exit_pub) {
  std::string t(kDomain);
  t.push_back('\0');
  t += lease.artifact_id;
  t += '|';
  t += role;
  t += '|';
  t += entry_pub;
  if (!exit_pub.empty()) {
    t += '|';
    t += exit_pub;
  }
  return t;
}

std::span<const std::uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// Binds the crypto_kx keys to the lease: BLAKE2b-256 keyed by the kx key over the lease id.
void bind(std::array<std::uint8_t, 32>& key, const Lease& lease) {
  std::array<std::uint8_t, 32> out{};
  crypto_generichash(out.data(), out.size(),
                     reinterpret_cast<const unsigned char*>(lease.artifact_id.data()),
                     lease.artifact_id.size(), key.data(), key.size());
  key = out;
  sodium_memzero(out.data(), out.size());
}

void nonce_for(std::uint64_t counter, std::array<std::uint8_t, 12>& nonce) {
  nonce.fill(0);
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<std::uint8_t>(counter >> (8 * i));
}

}  // namespace

E2eInitiator::E2eInitiator(const Lease& lease, const crypto::Ed25519Key& node_key, Random& random) {
  std::array<std::uint8_t, crypto_kx_SEEDBYTES> seed{};
  random.fill(seed);
  crypto_kx_seed_keypair(pk_.data(), sk_.data(), seed.data());
  sodium_memzero(seed.data(), seed.size());
  offer_.pub_hex = config::to_hex(pk_);
  const auto sig = node_key.sign(bytes_of(transcript(lease, "entry", offer_.pub_hex, "")));
  offer_.sig_hex = config::to_hex(sig);
}

Result<E2eKeys> E2eInitiator::finish(const Lease& lease, const E2eOffer& answer) const {
  std::array<std::uint8_t, 32> xpub{};
  crypto::Signature sig{};
  if (!config::from_hex(answer.pub_hex, xpub) || !config::from_hex(answer.sig_hex, sig))
    return fail("e2e_bad_answer", "exit's key exchange answer is malformed");
  const auto t = transcript(lease, "exit", offer_.pub_hex, answer.pub_hex);
  if (!crypto::verify_ed25519(lease.hops.back().public_key, bytes_of(t), sig))
    return fail("e2e_bad_signature", "exit's key exchange is not signed by the lease's exit node");
  E2eKeys k;
  if (crypto_kx_client_session_keys(k.rx.data(), k.tx.data(), pk_.data(), sk_.data(),
                                    xpub.data()) != 0)
    return fail("e2e_bad_answer", "exit's public key is unusable");
  bind(k.rx, lease);
  bind(k.tx, lease);
  return k;
}

Result<std::pair<E2eKeys, E2eOffer>> e2e_respond(const Lease& lease, const E2eOffer& offer,
                                                 const crypto::Ed25519Key& node_key,
                                                 Random& random) {
  std::array<std::uint8_t, 32> epub{};
  crypto::Signature sig{};
  if (!config::from_hex(offer.pub_hex, epub) || !config::from_hex(offer.sig_hex, sig))
    return fail("e2e_bad_offer", "entry's key exchange offer is malformed");
  if (!crypto::verify_ed25519(lease.hops.front().public_key,
                              bytes_of(transcript(lease, "entry", offer.pub_hex, "")), sig))
    return fail("e2e_bad_signature", "entry's key exchange is not signed by the lease's entry");
  std::array<std::uint8_t, 32> pk{};
  std::array<std::uint8_t, 32> sk{};
  std::array<std::uint8_t, crypto_kx_SEEDBYTES> seed{};
  random.fill(seed);
  crypto_kx_seed_keypair(pk.data(), sk.data(), seed.data());
  sodium_memzero(seed.data(), seed.size());
  E2eKeys k;
  const int rc =
      crypto_kx_server_session_keys(k.rx.data(), k.tx.data(), pk.data(), sk.data(), epub.data());
  sodium_memzero(sk.data(), sk.size());
  if (rc != 0) return fail("e2e_bad_offer", "entry's public key is unusable");
  bind(k.rx, lease);
  bind(k.tx, lease);
  E2eOffer answer;
  answer.pub_hex = config::to_hex(pk);
  answer.sig_hex = config::to_hex(
      node_key.sign(bytes_of(transcript(lease, "exit", offer.pub_hex, answer.pub_hex))));
  return std::pair{k, answer};
}

struct Aead::Ctx {
  EVP_CIPHER_CTX* enc = EVP_CIPHER_CTX_new();
  EVP_CIPHER_CTX* dec = EVP_CIPHER_CTX_new();
  ~Ctx() {
    EVP_CIPHER_CTX_free(enc);
    EVP_CIPHER_CTX_free(dec);
  }
};

Aead::Aead(const std::array<std::uint8_t, 32>& key) : ctx_(std::make_unique<Ctx>()) {
  RAP_ASSERT(ctx_->enc != nullptr && ctx_->dec != nullptr);
  RAP_ASSERT(EVP_EncryptInit_ex(ctx_->enc, EVP_chacha20_poly1305(), nullptr, key.data(), nullptr) ==
             1);
  RAP_ASSERT(EVP_DecryptInit_ex(ctx_->dec, EVP_chacha20_poly1305(), nullptr, key.data(), nullptr) ==
             1);
}

Aead::~Aead() = default;

void Aead::seal(std::uint64_t counter, std::span<std::uint8_t> data, std::uint8_t* tag) {
  std::array<std::uint8_t, 12> nonce{};
  nonce_for(counter, nonce);
  int len = 0;
  RAP_ASSERT(EVP_EncryptInit_ex(ctx_->enc, nullptr, nullptr, nullptr, nonce.data()) == 1);
  RAP_ASSERT(EVP_EncryptUpdate(ctx_->enc, data.data(), &len, data.data(),
                               static_cast<int>(data.size())) == 1);
  RAP_ASSERT(EVP_EncryptFinal_ex(ctx_->enc, data.data() + len, &len) == 1);
  RAP_ASSERT(EVP_CIPHER_CTX_ctrl(ctx_->enc, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1);
}

bool Aead::open(std::uint64_t counter, std::span<std::uint8_t> data, const std::uint8_t* tag) {
  std::array<std::uint8_t, 12> nonce{};
  nonce_for(counter, nonce);
  int len = 0;
  if (EVP_DecryptInit_ex(ctx_->dec, nullptr, nullptr, nullptr, nonce.data()) != 1) return false;
  if (EVP_CIPHER_CTX_ctrl(ctx_->dec, EVP_CTRL_AEAD_SET_TAG, 16, const_cast<std::uint8_t*>(tag)) !=
      1)
    return false;
  if (EVP_DecryptUpdate(ctx_->dec, data.data(), &len, data.data(), static_cast<int>(data.size())) !=
      1)
    return false;
  return EVP_DecryptFinal_ex(ctx_->dec, data.data() + len, &len) == 1;
}

void RecordSealer::seal(RecordType type, std::span<const std::uint8_t> data, std::string& out) {
  RAP_ASSERT(data.size() <= kMaxRecordPlaintext);
  const std::size_t clen = 1 + data.size() + 16;
  const std::size_t at = out.size();
  out.resize(at + 4 + clen);
  auto* p = reinterpret_cast<std::uint8_t*>(out.data()) + at;
  p[0] = static_cast<std::uint8_t>(clen >> 24);
  p[1] = static_cast<std::uint8_t>(clen >> 16);
  p[2] = static_cast<std::uint8_t>(clen >> 8);
  p[3] = static_cast<std::uint8_t>(clen);
  p[4] = static_cast<std::uint8_t>(type);
  if (!data.empty()) std::memcpy(p + 5, data.data(), data.size());
  aead_.seal(counter_++, {p + 4, 1 + data.size()}, p + 4 + 1 + data.size());
}

void RecordOpener::feed(std::span<const std::uint8_t> bytes) {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > 64 * 1024) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

Result<std::optional<RecordOpener::Record>> RecordOpener::next() {
  if (buf_.size() - pos_ < 4) return std::nullopt;
  auto* p = reinterpret_cast<std::uint8_t*>(buf_.data()) + pos_;
  const std::size_t clen = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) |
                           (std::size_t{p[2]} << 8) | std::size_t{p[3]};
  if (clen > kMaxRecordCiphertext)
    return fail("e2e_record_too_large",
                "record larger than " + std::to_string(kMaxRecordCiphertext) + " bytes");
  if (clen < 1 + 16) return fail("e2e_bad_record", "record shorter than its tag");
  if (buf_.size() - pos_ < 4 + clen) return std::nullopt;
  const std::size_t plen = clen - 16;
  if (!aead_.open(counter_, {p + 4, plen}, p + 4 + plen))
    return fail("e2e_bad_record", "record failed authentication (altered, forged or reordered)");
  counter_++;
  pos_ += 4 + clen;
  const std::uint8_t type = p[4];
  if (type > static_cast<std::uint8_t>(RecordType::kHello))
    return fail("e2e_bad_record", "unknown record type " + std::to_string(type));
  return std::optional<Record>(
      Record{static_cast<RecordType>(type), {reinterpret_cast<const char*>(p + 5), plen - 1}});
}

}  // namespace rap::mesh
