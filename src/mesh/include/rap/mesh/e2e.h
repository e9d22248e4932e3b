// End-to-end protection of a route between its entry and its exit (docs/PROTOCOL.md §14.5):
// relays splice the bytes but can neither read nor alter them.
//
// Handshake: each end has an ephemeral X25519 key signed by its node key over the lease's
// artifact id, so the exit knows the entry is hops[0] of that lease and the entry knows the exit
// is the last hop; session keys come from libsodium crypto_kx keyed with the lease id.
// Records: [u32 big-endian ciphertext length][ChaCha20-Poly1305-IETF(type byte || data)], nonce =
// 64-bit record counter per direction. Pure code: no I/O, randomness injected.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "rap/common/random.h"
#include "rap/common/result.h"
#include "rap/crypto/keys.h"
#include "rap/mesh/lease.h"

namespace rap::mesh {

inline constexpr std::size_t kMaxRecordPlaintext = 16 * 1024;  // data bytes per record
inline constexpr std::size_t kRecordOverhead = 4 + 1 + 16;     // length, type, tag
inline constexpr std::size_t kMaxRecordCiphertext = kMaxRecordPlaintext + 1 + 16;

enum class RecordType : std::uint8_t { kData = 0, kEnd = 1, kHello = 2 };

struct E2eKeys {
  std::array<std::uint8_t, 32> tx{};
  std::array<std::uint8_t, 32> rx{};
};

struct E2eOffer {
  std::string pub_hex;  // 64 hex
  std::string sig_hex;  // 128 hex
};

// The entry's half.
class E2eInitiator {
 public:
  E2eInitiator(const Lease& lease, const crypto::Ed25519Key& node_key, Random& random);
  const E2eOffer& offer() const { return offer_; }
  // Checks the exit's answer against the lease's last hop and derives the keys.
  // Errors: "e2e_bad_answer", "e2e_bad_signature".
  Result<E2eKeys> finish(const Lease& lease, const E2eOffer& answer) const;

 private:
  std::array<std::uint8_t, 32> pk_{};
  std::array<std::uint8_t, 32> sk_{};
  E2eOffer offer_;
};

// The exit's half: checks the entry's offer against hops[0] and answers.
// Errors: "e2e_bad_offer", "e2e_bad_signature".
Result<std::pair<E2eKeys, E2eOffer>> e2e_respond(const Lease& lease, const E2eOffer& offer,
                                                 const crypto::Ed25519Key& node_key,
                                                 Random& random);

// Per-direction AEAD state (OpenSSL EVP ChaCha20-Poly1305, RFC 8439: the same bytes as
// libsodium's crypto_aead_chacha20poly1305_ietf, about 2.5x faster here).
class Aead {
 public:
  explicit Aead(const std::array<std::uint8_t, 32>& key);
  ~Aead();
  Aead(const Aead&) = delete;
  Aead& operator=(const Aead&) = delete;
  // In place: `data` becomes ciphertext, the 16-byte tag goes to `tag`.
  void seal(std::uint64_t counter, std::span<std::uint8_t> data, std::uint8_t* tag);
  // In place; false when the tag does not verify.
  bool open(std::uint64_t counter, std::span<std::uint8_t> data, const std::uint8_t* tag);

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// Seals records in one direction.
class RecordSealer {
 public:
  explicit RecordSealer(const std::array<std::uint8_t, 32>& key) : aead_(key) {}
  // Appends one record (data.size() <= kMaxRecordPlaintext) to `out`.
  void seal(RecordType type, std::span<const std::uint8_t> data, std::string& out);
  std::uint64_t records() const { return counter_; }

 private:
  Aead aead_;
  std::uint64_t counter_ = 0;
};

// Opens records in one direction from a byte stream fed in arbitrary pieces. Records are
// decrypted in place: a returned record's data stays valid until the next feed().
class RecordOpener {
 public:
  explicit RecordOpener(const std::array<std::uint8_t, 32>& key) : aead_(key) {}
  void feed(std::span<const std::uint8_t> bytes);
  struct Record {
    RecordType type = RecordType::kData;
    std::string_view data;
  };
  // The next complete record, nullopt when more bytes are needed. Errors (the stream is then
  // unusable): "e2e_record_too_large", "e2e_bad_record" (forged, altered, replayed, reordered,
  // unknown type).
  Result<std::optional<Record>> next();
  std::size_t buffered() const { return buf_.size() - pos_; }

 private:
  Aead aead_;
  std::uint64_t counter_ = 0;
  std::string buf_;
  std::size_t pos_ = 0;
};

}  // namespace rap::mesh
