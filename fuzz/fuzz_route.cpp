// Fuzz target for the route layer's parsers (docs/PROTOCOL.md §14): e2e records, the client
// ingress framing and hello, route leases / access grants / sealed tickets.
//
// Byte 0 selects the mode:
//  0  e2e records: the rest is fed to a RecordOpener in pieces (sizes from the input). Oracles:
//     no crash; an error is sticky in meaning (the caller stops); genuine records sealed by a
//     RecordSealer with the same key and appended after a prefix the opener rejects never open.
//     Round trip: every input, sealed as data records and opened again, comes back unchanged.
//  1  ingress: FrameReader over the rest (frames never exceed the limit; the consumed and
//     buffered sizes add up) and parse_client_hello on every frame; ChunkDecoder over the same
//     bytes in other pieces yields exactly what a one-pass reference decoder yields (data, end,
//     error).
//  2  credentials: verify_lease / verify_grant on the rest (trusting one fixed key) and
//     open_ticket on it as base64 text; anything accepted must be well-formed.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "rap/crypto/keys.h"
#include "rap/mesh/e2e.h"
#include "rap/mesh/lease.h"
#include "rap/services/tcp_access/ingress.h"

namespace {

using rap::fuzz::Cursor;

std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

void records(Cursor& c) {
  std::array<std::uint8_t, 32> key{};
  key.fill(0x5a);
  // Round trip of the input itself.
  std::string plain;
  while (!c.empty() && plain.size() < 40000) plain.push_back(static_cast<char>(c.u8()));
  {
    rap::mesh::RecordSealer s(key);
    rap::mesh::RecordOpener o(key);
    std::string wire;
    for (std::size_t off = 0; off < plain.size(); off += rap::mesh::kMaxRecordPlaintext) {
      const auto n = std::min(plain.size() - off, rap::mesh::kMaxRecordPlaintext);
      s.seal(rap::mesh::RecordType::kData, bytes(plain).subspan(off, n), wire);
    }
    o.feed(bytes(wire));
    std::string back;
    for (;;) {
      auto r = o.next();
      FUZZ_CHECK(r.has_value());
      if (!*r) break;
      FUZZ_CHECK((*r)->type == rap::mesh::RecordType::kData);
      back.append((*r)->data);
    }
    FUZZ_CHECK(back == plain);
  }
  // The input as wire bytes: must never open as anything unless sealed with the key.
  rap::mesh::RecordOpener o(key);
  std::size_t off = 0;
  std::size_t step = 1;
  while (off < plain.size()) {
    const auto n = std::min(plain.size() - off, step);
    o.feed(bytes(plain).subspan(off, n));
    off += n;
    step = step * 3 + 1;
    for (;;) {
      auto r = o.next();
      if (!r) return;  // rejected: the caller resets the stream
      if (!*r) break;
      // A record the fuzzer forged without the key would be a broken AEAD.
      FUZZ_CHECK(false);
    }
  }
}

void chunks(const std::string& in);

void ingress(Cursor& c) {
  std::string in;
  while (!c.empty()) in.push_back(static_cast<char>(c.u8()));
  chunks(in);
  rap::services::tcp::FrameReader r(1024);
  std::size_t fed = 0;
  std::size_t consumed = 0;
  for (std::size_t off = 0; off < in.size();) {
    const std::size_t n = std::min<std::size_t>(in.size() - off, 1 + (off % 97));
    r.feed(in.data() + off, n);
    fed += n;
    off += n;
    for (;;) {
      auto f = r.next();
      if (!f) return;
      if (!*f) break;
      FUZZ_CHECK((*f)->size() <= 1024);
      consumed += 4 + (*f)->size();
      auto h = rap::services::tcp::parse_client_hello(**f);
      if (h) FUZZ_CHECK(!h->ticket.empty());
    }
    FUZZ_CHECK(consumed + r.buffered() == fed);
  }
}

// The chunk stream decoded in one pass, the obvious way.
struct Decoded {
  std::string data;
  bool ended = false;
  bool failed = false;
};
Decoded reference_chunks(const std::string& in, std::size_t max) {
  Decoded d;
  std::size_t i = 0;
  while (i < in.size()) {
    if (d.ended) {
      d.failed = true;
      break;
    }
    if (in.size() - i < 4) break;
    const auto* p = reinterpret_cast<const unsigned char*>(in.data()) + i;
    const std::size_t n = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) |
                          (std::size_t{p[2]} << 8) | std::size_t{p[3]};
    i += 4;
    if (n > max) {
      d.failed = true;
      break;
    }
    if (n == 0) d.ended = true;
    const std::size_t take = std::min(n, in.size() - i);
    d.data.append(in, i, take);
    i += take;
  }
  return d;
}

void chunks(const std::string& in) {
  const Decoded want = reference_chunks(in, 1024);
  rap::services::tcp::ChunkDecoder dec(1024);
  Decoded got;
  std::vector<std::string_view> pieces;
  for (std::size_t off = 0; off < in.size() && !got.failed;) {
    const std::size_t n = std::min<std::size_t>(in.size() - off, 1 + (off % 13));
    pieces.clear();
    const auto r = dec.decode(std::string_view(in).substr(off, n), pieces);
    for (const auto& p : pieces) {
      FUZZ_CHECK(!p.empty());
      got.data.append(p);
    }
    got.failed = !r.has_value();
    off += n;
  }
  got.ended = dec.ended();
  FUZZ_CHECK(got.data == want.data);
  FUZZ_CHECK(got.failed == want.failed);
  FUZZ_CHECK(got.ended == want.ended);
}

void credentials(Cursor& c) {
  static const rap::crypto::Ed25519Key key = *rap::crypto::Ed25519Key::generate();
  std::string in;
  while (!c.empty()) in.push_back(static_cast<char>(c.u8()));
  rap::mesh::TrustView view;
  view.cluster_id = "cluster-1";
  view.node_id = "node-1";
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1800000000));
  if (auto l = rap::mesh::verify_lease(in, view, now)) {
    FUZZ_CHECK(l->hops.size() >= 2 && l->hops.size() <= 6);
  }
  (void)rap::mesh::verify_grant(in, view, now);
  if (auto t = rap::mesh::open_ticket(in, key)) FUZZ_CHECK(!t->grant.empty());
  (void)rap::services::tcp::parse_client_hello(in);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Cursor c(data, size);
  switch (c.u8() % 3) {
    case 0:
      records(c);
      break;
    case 1:
      ingress(c);
      break;
    default:
      credentials(c);
      break;
  }
  return 0;
}
