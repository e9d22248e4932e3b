// Two SessionCores joined in memory, with a manual clock: the unit-test rig for the state machine.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "rap/fabric/session_core.h"
#include "test_pki.h"

namespace rap::testing {

class RecordingObserver : public fabric::SessionObserver {
 public:
  void on_ready() override { ready = true; }
  void on_stream_opened(std::uint32_t id) override { opened.push_back(id); }
  void on_readable(std::uint32_t id) override { readable[id]++; }
  void on_writable(std::uint32_t id) override { writable[id]++; }
  void on_stream_reset(std::uint32_t id, fabric::ErrorCode code,
                       const std::string& reason) override {
    resets[id] = {code, reason};
  }
  void on_goaway(fabric::ErrorCode code, const std::string& reason) override {
    goaway_code = code;
    goaway_reason = reason;
  }
  void on_closed(const Error& why) override {
    closed = why;
    closed_calls++;
  }
  bool ready = false;
  std::vector<std::uint32_t> opened;
  std::map<std::uint32_t, int> readable, writable;
  std::map<std::uint32_t, std::pair<fabric::ErrorCode, std::string>> resets;
  std::optional<fabric::ErrorCode> goaway_code;
  std::string goaway_reason;
  std::optional<Error> closed;
  int closed_calls = 0;
};

class TestSigner : public fabric::Signer {
 public:
  explicit TestSigner(crypto::Ed25519Key k) : key_(std::move(k)) {}
  std::array<std::uint8_t, 64> sign(std::span<const std::uint8_t> m) const override {
    return key_.sign(m);
  }

 private:
  crypto::Ed25519Key key_;
};

inline fabric::PeerProof proof_of(const TestNode& n, const std::string& cluster,
                                  const std::string& node,
                                  const std::vector<std::uint8_t>& binding) {
  fabric::PeerProof p;
  p.cluster_id = cluster;
  p.node_id = node;
  p.serial = n.serial;
  p.public_key = n.key.public_key();
  p.channel_binding = binding;
  return p;
}

struct CorePair {
  explicit CorePair(fabric::SessionConfig base = {}, bool auto_start = true)
      : ca("cluster-1"), na(ca.node("node-a")), nb(ca.node("node-b")) {
    std::vector<std::uint8_t> binding(32, 0x5a);
    cfg_a = base;
    cfg_a.role = fabric::Role::kInitiator;
    cfg_a.node_id = "node-a";
    cfg_a.cluster_id = "cluster-1";
    cfg_b = base;
    cfg_b.role = fabric::Role::kAcceptor;
    cfg_b.node_id = "node-b";
    cfg_b.cluster_id = "cluster-1";
    sa = std::make_unique<TestSigner>(na.key);
    sb = std::make_unique<TestSigner>(nb.key);
    a = std::make_unique<fabric::SessionCore>(cfg_a, *sa,
                                              proof_of(nb, "cluster-1", "node-b", binding), &oa);
    b = std::make_unique<fabric::SessionCore>(cfg_b, *sb,
                                              proof_of(na, "cluster-1", "node-a", binding), &ob);
    if (auto_start) {
      a->start(clock.now());
      b->start(clock.now());
      pump();
    }
  }

  // Moves bytes both ways until both sides are quiet. `cap` bounds each produce() call.
  void pump(std::size_t cap = 256 * 1024, int max_rounds = 10000) {
    std::vector<std::uint8_t> buf(cap);
    for (int i = 0; i < max_rounds; ++i) {
      bool moved = false;
      moved |= move(*a, *b, a_to_b, buf);
      moved |= move(*b, *a, b_to_a, buf);
      if (!moved) return;
    }
  }
  bool move(fabric::SessionCore& from, fabric::SessionCore& to, std::vector<std::uint8_t>& pending,
            std::vector<std::uint8_t>& buf) {
    const std::size_t n = from.produce(buf, clock.now());
    pending.insert(pending.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    if (pending.empty()) return false;
    const std::size_t used = to.on_receive(pending, clock.now());
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(used));
    return n > 0 || used > 0;
  }
  // Injects raw bytes as if `a` had sent them to `b`.
  void inject_to_b(const std::vector<std::uint8_t>& raw) { b->on_receive(raw, clock.now()); }

  std::string read_all(fabric::SessionCore& c, std::uint32_t id, bool* eof_out = nullptr) {
    std::string out;
    std::vector<std::uint8_t> tmp(65536);
    for (;;) {
      bool eof = false;
      auto r = c.read(id, tmp, eof, clock.now());
      if (!r || *r == 0) {
        if (eof_out) *eof_out = eof;
        return out;
      }
      out.append(reinterpret_cast<char*>(tmp.data()), *r);
    }
  }

  ManualClock clock;
  TestCa ca;
  TestNode na, nb;
  fabric::SessionConfig cfg_a, cfg_b;
  std::unique_ptr<TestSigner> sa, sb;
  RecordingObserver oa, ob;
  std::unique_ptr<fabric::SessionCore> a, b;
  std::vector<std::uint8_t> a_to_b, b_to_a;
};

}  // namespace rap::testing
