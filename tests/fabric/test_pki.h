// Test PKI: a cluster CA and node credentials made on the fly with the real crypto layer.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "rap/crypto/certs.h"
#include "rap/crypto/keys.h"

namespace rap::testing {

struct TestNode {
  crypto::NodeCredentials creds;
  crypto::Ed25519Key key;
  std::uint64_t serial;
};

class TestCa {
 public:
  explicit TestCa(std::string cluster)
      : cluster_(std::move(cluster)), key_(*crypto::Ed25519Key::generate()) {
    auto now = std::chrono::system_clock::now();
    ca_pem_ = *crypto::make_ca_certificate(
        key_, cluster_, {now - std::chrono::hours(1), now + std::chrono::hours(24 * 365)});
  }
  TestNode node(const std::string& node_id, std::chrono::hours valid_from = std::chrono::hours(-1),
                std::chrono::hours valid_to = std::chrono::hours(24)) {
    auto key = *crypto::Ed25519Key::generate();
    auto now = std::chrono::system_clock::now();
    const std::uint64_t serial = next_serial_++;
    auto cert = crypto::issue_node_certificate(key_, ca_pem_, key.public_key(), cluster_, node_id,
                                               serial, {now + valid_from, now + valid_to});
    EXPECT_TRUE(cert.has_value());
    return TestNode{crypto::NodeCredentials{ca_pem_, *cert, key.private_pem()}, key, serial};
  }
  const std::string& ca_pem() const { return ca_pem_; }
  const std::string& cluster() const { return cluster_; }
  const crypto::Ed25519Key& key() const { return key_; }

 private:
  std::string cluster_;
  crypto::Ed25519Key key_;
  std::string ca_pem_;
  std::uint64_t next_serial_ = 100;
};

}  // namespace rap::testing
