// End-to-end route protection (pure): handshake binding to the lease and both node keys, record
// sealing, and every way a relay could tamper with records.
#include "rap/mesh/e2e.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include "rap/config/canonical.h"

using namespace rap;
using namespace rap::mesh;

namespace {

struct Fixture {
  crypto::Ed25519Key entry = *crypto::Ed25519Key::generate();
  crypto::Ed25519Key exit = *crypto::Ed25519Key::generate();
  crypto::Ed25519Key other = *crypto::Ed25519Key::generate();
  SeededRandom rng{7};
  Lease lease() const {
    Lease l;
    l.artifact_id = std::string(64, 'a');
    l.hops = {
        {"entry", entry.public_key()}, {"relay", other.public_key()}, {"exit", exit.public_key()}};
    return l;
  }
};

std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace

TEST(E2e, HandshakeDerivesMatchingKeysAndRecordsRoundTrip) {
  Fixture f;
  const Lease l = f.lease();
  E2eInitiator init(l, f.entry, f.rng);
  auto resp = e2e_respond(l, init.offer(), f.exit, f.rng);
  ASSERT_TRUE(resp) << resp.error().message;
  auto keys = init.finish(l, resp->second);
  ASSERT_TRUE(keys) << keys.error().message;
  EXPECT_EQ(keys->tx, resp->first.rx);
  EXPECT_EQ(keys->rx, resp->first.tx);
  EXPECT_NE(keys->tx, keys->rx);

  RecordSealer s(keys->tx);
  RecordOpener o(resp->first.rx);
  std::string wire;
  const std::string big(kMaxRecordPlaintext, 'x');
  s.seal(RecordType::kHello, bytes("{\"grant\":1}"), wire);
  s.seal(RecordType::kData, bytes(big), wire);
  s.seal(RecordType::kEnd, {}, wire);
  EXPECT_EQ(wire.find("grant"), std::string::npos);  // ciphertext only
  // Fed one byte at a time: framing is independent of read sizes.
  struct Got {
    RecordType type;
    std::string data;  // copied: a record's view is valid only until the next feed()
  };
  std::vector<Got> got;
  for (char c : wire) {
    o.feed(bytes(std::string(1, c)));
    for (;;) {
      auto r = o.next();
      ASSERT_TRUE(r) << r.error().message;
      if (!*r) break;
      got.push_back(Got{(*r)->type, std::string((*r)->data)});
    }
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].type, RecordType::kHello);
  EXPECT_EQ(got[0].data, "{\"grant\":1}");
  EXPECT_EQ(got[1].data, big);
  EXPECT_EQ(got[2].type, RecordType::kEnd);
}

TEST(E2e, WrongKeysOrAnotherLeaseAreRefused) {
  Fixture f;
  const Lease l = f.lease();
  // An entry that is not hops[0] (a relay pretending) is refused by the exit.
  E2eInitiator fake(l, f.other, f.rng);
  EXPECT_EQ(e2e_respond(l, fake.offer(), f.exit, f.rng).error().code, "e2e_bad_signature");
  // An exit that is not the last hop is refused by the entry.
  E2eInitiator init(l, f.entry, f.rng);
  auto wrong = e2e_respond(l, init.offer(), f.other, f.rng);
  ASSERT_TRUE(wrong);
  EXPECT_EQ(init.finish(l, wrong->second).error().code, "e2e_bad_signature");
  // An offer made for another lease does not verify under this one.
  Lease l2 = l;
  l2.artifact_id = std::string(64, 'b');
  EXPECT_EQ(e2e_respond(l2, init.offer(), f.exit, f.rng).error().code, "e2e_bad_signature");
  EXPECT_EQ(e2e_respond(l, E2eOffer{"zz", "yy"}, f.exit, f.rng).error().code, "e2e_bad_offer");
}

TEST(E2e, TamperedReorderedTruncatedOrOversizedRecordsFail) {
  std::array<std::uint8_t, 32> key{};
  key.fill(9);
  auto sealed = [&](int n) {
    RecordSealer s(key);
    std::string w;
    for (int i = 0; i < n; ++i) s.seal(RecordType::kData, bytes("record" + std::to_string(i)), w);
    return w;
  };
  {  // flipped bit
    std::string w = sealed(1);
    w[10] ^= 1;
    RecordOpener o(key);
    o.feed(bytes(w));
    EXPECT_EQ(o.next().error().code, "e2e_bad_record");
  }
  {  // reordered: second record first
    std::string w = sealed(2);
    const std::size_t one = w.size() / 2;
    RecordOpener o(key);
    o.feed(bytes(w.substr(one) + w.substr(0, one)));
    EXPECT_EQ(o.next().error().code, "e2e_bad_record");
  }
  {  // replayed: the first record twice
    std::string w = sealed(1);
    RecordOpener o(key);
    o.feed(bytes(w + w));
    ASSERT_TRUE(o.next());
    EXPECT_EQ(o.next().error().code, "e2e_bad_record");
  }
  {  // a length beyond the limit
    RecordOpener o(key);
    o.feed(bytes(std::string("\x7f\x00\x00\x00", 4)));
    EXPECT_EQ(o.next().error().code, "e2e_record_too_large");
  }
  {  // partial record: needs more bytes, no error
    std::string w = sealed(1);
    RecordOpener o(key);
    o.feed(bytes(w.substr(0, w.size() - 1)));
    auto r = o.next();
    ASSERT_TRUE(r);
    EXPECT_FALSE(*r);
  }
}

// The records are RFC 8439 ChaCha20-Poly1305 exactly as libsodium's IETF construction: any
// implementation can interoperate (docs/PROTOCOL.md §14.5).
TEST(E2e, RecordsAreRfc8439ChaCha20Poly1305) {
  std::array<std::uint8_t, 32> key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i * 7);
  RecordSealer s(key);
  std::string w;
  s.seal(RecordType::kData, bytes("first"), w);
  s.seal(RecordType::kData, bytes("second record"), w);
  std::size_t off = 0;
  for (std::uint64_t counter = 0; counter < 2; ++counter) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(w.data()) + off;
    const std::size_t clen =
        (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | p[3];
    std::array<std::uint8_t, 12> nonce{};
    for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<std::uint8_t>(counter >> (8 * i));
    std::string plain(clen - 16, '\0');
    unsigned long long plen = 0;
    ASSERT_EQ(crypto_aead_chacha20poly1305_ietf_decrypt(
                  reinterpret_cast<unsigned char*>(plain.data()), &plen, nullptr, p + 4, clen,
                  nullptr, 0, nonce.data(), key.data()),
              0);
    EXPECT_EQ(plain[0], 0);  // data record
    EXPECT_EQ(plain.substr(1), counter == 0 ? "first" : "second record");
    off += 4 + clen;
  }
}
