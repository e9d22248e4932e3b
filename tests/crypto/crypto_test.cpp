#include <gtest/gtest.h>

#include <chrono>

#include "rap/crypto/certs.h"
#include "rap/crypto/keys.h"
#include "rap/crypto/tls.h"

using namespace rap::crypto;
using namespace std::chrono_literals;

TEST(Ed25519, SignVerifyAndPemRoundTrip) {
  auto k = *Ed25519Key::generate();
  const std::string msg = "fabric";
  const auto m = std::span(reinterpret_cast<const std::uint8_t*>(msg.data()), msg.size());
  auto sig = k.sign(m);
  EXPECT_TRUE(verify_ed25519(k.public_key(), m, sig));
  sig[0] ^= 1;
  EXPECT_FALSE(verify_ed25519(k.public_key(), m, sig));
  auto again = Ed25519Key::from_pem(k.private_pem());
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->public_key(), k.public_key());
  EXPECT_FALSE(Ed25519Key::from_pem("not a key").has_value());
}

TEST(Ed25519, SealedBoxOpensOnlyWithTheRecipientsKey) {
  auto a = Ed25519Key::generate();
  auto b = Ed25519Key::generate();
  ASSERT_TRUE(a && b);
  auto box = rap::crypto::seal_to(a->public_key(), "route ticket");
  ASSERT_TRUE(box);
  auto opened = a->open_sealed(*box);
  ASSERT_TRUE(opened) << opened.error().message;
  EXPECT_EQ(*opened, "route ticket");
  EXPECT_EQ(b->open_sealed(*box).error().code, "bad_sealed_box");
  std::string tampered = *box;
  tampered[tampered.size() / 2] ^= 1;
  EXPECT_EQ(a->open_sealed(tampered).error().code, "bad_sealed_box");
  EXPECT_EQ(a->open_sealed("short").error().code, "bad_sealed_box");
}

TEST(Certificates, NodeIdentityComesFromTheSanUri) {
  auto ca_key = *Ed25519Key::generate();
  const auto now = std::chrono::system_clock::now();
  auto ca = make_ca_certificate(ca_key, "cluster-1", {now - 1h, now + 24h});
  ASSERT_TRUE(ca.has_value());
  auto node_key = *Ed25519Key::generate();
  auto cert = issue_node_certificate(ca_key, *ca, node_key.public_key(), "cluster-1", "edge-7", 42,
                                     {now - 1h, now + 24h});
  ASSERT_TRUE(cert.has_value());
  auto id = identity_from_pem(*cert);
  ASSERT_TRUE(id.has_value()) << id.error().message;
  EXPECT_EQ(id->cluster_id, "cluster-1");
  EXPECT_EQ(id->node_id, "edge-7");
  EXPECT_EQ(id->serial, 42u);
  EXPECT_EQ(id->public_key, node_key.public_key());
  // The CA certificate names no node.
  EXPECT_FALSE(identity_from_pem(*ca).has_value());
  // Ids with characters outside [A-Za-z0-9._-] are refused.
  EXPECT_FALSE(issue_node_certificate(ca_key, *ca, node_key.public_key(), "cluster-1", "a/b", 43,
                                      {now - 1h, now + 24h})
                   .has_value());
}

TEST(Revocation, BySerialOrNode) {
  RevocationList rl;
  NodeIdentity id{"c", "n", 7, {}};
  EXPECT_FALSE(rl.is_revoked(id));
  rl.revoke_serial(7);
  EXPECT_TRUE(rl.is_revoked(id));
  RevocationList by_node;
  by_node.revoke_node("n");
  EXPECT_TRUE(by_node.is_revoked(id));
  EXPECT_FALSE(by_node.is_revoked(NodeIdentity{"c", "m", 7, {}}));
}
