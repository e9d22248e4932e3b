// Fuzz target for the sans-I/O session state machine (rap/fabric/session_core.h).
//
// The fuzzer plays a hostile peer against one SessionCore (the "target") while also driving the
// target's application API and its clock. Credentials are real Ed25519 keys, parsed once at
// static init from fixed PEMs so every run (and every crash reproduction) is deterministic.
//
// Input layout:
//   byte 0: bit0   mode: 0 = handshake already completed in memory with an honest peer core
//                  (plus a few streams), 1 = the target has only started (peer bytes arrive
//                  before the handshake completes)
//           bit1   target role: 0 = acceptor, 1 = initiator
//           bit2   config: 0 = small windows/limits (reachable with short inputs), 1 = defaults
//   then ops until the input runs out; each op is one byte (op = byte % kOpCount) plus operands.
//   See `run_op` for the list: raw peer bytes in fuzz-sized chunks, structured peer frames
//   (DATA with the right sequence, credit, ACK, ...), the honest peer's canned handshake frames,
//   produce() with varying buffer sizes, clock advance + on_tick(), and app calls (open, write,
//   read, close, reset, release, goaway, ping, route updates).
//
// Invariants, checked after every op (trap on violation):
//   * on_receive never consumes more than it was given;
//   * produce() never writes more than the buffer (guard bytes after the buffer stay intact);
//   * stats().recv_buffered_bytes <= configured session_window; each stream's receive queue
//     <= max_stream_window; per-stream queues add up to the session totals (while not closed);
//   * everything the target produces decodes as valid frames; DATA frames respect the peer's
//     max frame size; before on_ready only handshake frames and GOAWAY go out;
//   * after is_closed(): no DATA frame, and no more bytes than the control bytes that were
//     queued at the moment of closing; on_closed fires at most once.
//   * produce() returns (a hang shows up as a libFuzzer timeout).
//
// Regressions this fuzzer found (fixed, with unit tests in tests/fabric/session_core_test.cpp):
// produce() spinning on a droppable message larger than the credit or the output room, and
// control frames queued after close.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "rap/common/clock.h"
#include "rap/crypto/keys.h"
#include "rap/fabric/frame.h"
#include "rap/fabric/session_core.h"

namespace {

using namespace rap;
using namespace rap::fabric;
using rap::fuzz::Cursor;
using Status = DecodeResult::Status;

// Fixed test-only Ed25519 keys (never used outside the fuzzer).
constexpr char kKeyA[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ4705rFY5aaKGFz6u0DlReWPvvcg4ar/RObOsyAW8mV\n"
    "-----END PRIVATE KEY-----\n";
constexpr char kKeyB[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIAmGw9So6/HWdk8ws5zlppFUQdtFFcVqjGvEcAqFGo+E\n"
    "-----END PRIVATE KEY-----\n";
constexpr char kCluster[] = "cluster-1";
constexpr char kNodeA[] = "node-a";  // initiator
constexpr char kNodeB[] = "node-b";  // acceptor

// Ed25519 signatures are deterministic: cache them so a run costs verifications only.
class CachingSigner : public Signer {
 public:
  explicit CachingSigner(crypto::Ed25519Key k) : key_(std::move(k)) {}
  std::array<std::uint8_t, 64> sign(std::span<const std::uint8_t> m) const override {
    std::vector<std::uint8_t> msg(m.begin(), m.end());
    auto it = cache_.find(msg);
    if (it == cache_.end()) it = cache_.emplace(std::move(msg), key_.sign(m)).first;
    return it->second;
  }

 private:
  crypto::Ed25519Key key_;
  mutable std::map<std::vector<std::uint8_t>, std::array<std::uint8_t, 64>> cache_;
};

struct Credentials {
  crypto::Ed25519Key key_a = *crypto::Ed25519Key::from_pem(kKeyA);
  crypto::Ed25519Key key_b = *crypto::Ed25519Key::from_pem(kKeyB);
  CachingSigner signer_a{key_a};
  CachingSigner signer_b{key_b};
};

const Credentials& creds() {
  static const Credentials c;
  return c;
}

SessionConfig make_config(bool defaults, Role role) {
  SessionConfig c;
  c.role = role;
  c.node_id = role == Role::kInitiator ? kNodeA : kNodeB;
  c.cluster_id = kCluster;
  if (!defaults) {
    c.max_frame_size = kMinMaxFrameSize;
    c.initial_stream_window = 4096;
    c.max_stream_window = 32 * 1024;
    c.session_window = 16 * 1024;
    c.stream_send_buffer = 16 * 1024;
    c.droppable_queue_limit = 4096;
    c.pressure_bytes = 32 * 1024;
    c.max_control_queue = 8 * 1024;
    c.max_streams = 6;
    c.keepalive = std::chrono::seconds(2);
    c.idle_timeout = std::chrono::seconds(6);
    c.handshake_timeout = std::chrono::seconds(3);
  }
  return c;
}

// What the target knows about its peer (as a TLS carrier would prove it).
PeerProof proof_for(Role peer_role) {
  PeerProof p;
  p.cluster_id = kCluster;
  const bool a = peer_role == Role::kInitiator;
  p.node_id = a ? kNodeA : kNodeB;
  p.serial = a ? 100 : 101;
  p.public_key = a ? creds().key_a.public_key() : creds().key_b.public_key();
  p.channel_binding.assign(kExporterLength, 0x5a);
  return p;
}

const Signer& signer_for(Role role) {
  return role == Role::kInitiator ? creds().signer_a : creds().signer_b;
}

class Observer : public SessionObserver {
 public:
  void on_ready() override { ready = true; }
  void on_stream_opened(std::uint32_t id) override { opened.push_back(id); }
  void on_closed(const Error& /*why*/) override { closed_calls++; }
  bool ready = false;
  std::vector<std::uint32_t> opened;
  int closed_calls = 0;
};

// Splits a byte stream into whole frames.
std::vector<std::vector<std::uint8_t>> split_frames(const std::vector<std::uint8_t>& bytes) {
  std::vector<std::vector<std::uint8_t>> out;
  std::size_t off = 0;
  while (off < bytes.size()) {
    auto r = decode_frame(std::span<const std::uint8_t>(bytes).subspan(off), kMaxMaxFrameSize);
    if (r.status != Status::kFrame) break;
    out.emplace_back(bytes.begin() + static_cast<std::ptrdiff_t>(off),
                     bytes.begin() + static_cast<std::ptrdiff_t>(off + r.consumed));
    off += r.consumed;
  }
  return out;
}

// Two honest cores joined in memory; time starts at the epoch of a ManualClock.
struct Pair {
  Pair(bool defaults, ManualClock& clock) : clock_(clock) {
    a = std::make_unique<SessionCore>(make_config(defaults, Role::kInitiator),
                                      signer_for(Role::kInitiator), proof_for(Role::kAcceptor),
                                      &oa);
    b = std::make_unique<SessionCore>(make_config(defaults, Role::kAcceptor),
                                      signer_for(Role::kAcceptor), proof_for(Role::kInitiator),
                                      &ob);
    a->start(clock_.now());
    b->start(clock_.now());
  }
  void pump() {
    static std::vector<std::uint8_t> buf(512 * 1024);
    for (int i = 0; i < 1000; ++i) {
      bool moved = move(*a, *b, a_to_b, buf, &a_sent);
      moved = move(*b, *a, b_to_a, buf, &b_sent) || moved;
      if (!moved) return;
    }
  }
  bool move(SessionCore& from, SessionCore& to, std::vector<std::uint8_t>& pending,
            std::vector<std::uint8_t>& buf, std::vector<std::uint8_t>* log) {
    const std::size_t n = from.produce(buf, clock_.now());
    pending.insert(pending.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    log->insert(log->end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    if (pending.empty()) return false;
    const std::size_t used = to.on_receive(pending, clock_.now());
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(used));
    return n > 0 || used > 0;
  }

  ManualClock& clock_;
  Observer oa, ob;
  std::unique_ptr<SessionCore> a, b;
  std::vector<std::uint8_t> a_to_b, b_to_a, a_sent, b_sent;
};

// The honest peer's handshake frames for each (config, target role), recorded once.
struct Canned {
  std::array<std::array<std::vector<std::vector<std::uint8_t>>, 2>, 2> to_target;
};
const Canned& canned() {
  static const Canned c = [] {
    Canned out;
    for (int defaults = 0; defaults < 2; ++defaults) {
      ManualClock clock;
      Pair p(defaults != 0, clock);
      p.pump();
      FUZZ_CHECK(p.a->is_open() && p.b->is_open());
      out.to_target[static_cast<std::size_t>(defaults)][0] = split_frames(p.a_sent);  // to b
      out.to_target[static_cast<std::size_t>(defaults)][1] = split_frames(p.b_sent);  // to a
    }
    return out;
  }();
  return c;
}

class Harness {
 public:
  explicit Harness(std::uint8_t mode_byte)
      : established_((mode_byte & 1) == 0),
        role_((mode_byte & 2) != 0 ? Role::kInitiator : Role::kAcceptor),
        defaults_((mode_byte & 4) != 0),
        tcfg_(make_config(defaults_, role_)),
        pcfg_(
            make_config(defaults_, role_ == Role::kInitiator ? Role::kAcceptor : Role::kInitiator)),
        canned_(canned().to_target[defaults_ ? 1 : 0][role_ == Role::kInitiator ? 1 : 0]) {
    next_peer_id_ = role_ == Role::kInitiator ? 2 : 1;
    if (established_) {
      pair_ = std::make_unique<Pair>(defaults_, clock_);
      pair_->pump();
      SessionCore& t = role_ == Role::kInitiator ? *pair_->a : *pair_->b;
      SessionCore& p = role_ == Role::kInitiator ? *pair_->b : *pair_->a;
      FUZZ_CHECK(t.is_open() && p.is_open());
      // A couple of streams each way, with a little data in flight.
      for (TrafficClass cls : {TrafficClass::kReliable, TrafficClass::kDroppable}) {
        auto id = t.open_stream("svc-local", cls, 7);
        FUZZ_CHECK(id.has_value());
        ids_.push_back(*id);
      }
      auto pid = p.open_stream("svc-remote", TrafficClass::kBulk, 9);
      FUZZ_CHECK(pid.has_value());
      const std::uint8_t hello[] = {'h', 'e', 'l', 'l', 'o'};
      FUZZ_CHECK(p.write(*pid, hello).has_value());
      FUZZ_CHECK(t.write(ids_[0], hello).has_value());
      pair_->pump();
      next_peer_id_ = *pid + 2;
      ids_.push_back(*pid);
      target_ = &t;
      obs_ = role_ == Role::kInitiator ? &pair_->oa : &pair_->ob;
      opened_seen_ = obs_->opened.size();
      FUZZ_CHECK(!t.wants_write());
      ever_ready_ = true;
      // The honest peer is detached from here on: the fuzzer speaks for it.
    } else {
      own_obs_ = std::make_unique<Observer>();
      obs_ = own_obs_.get();
      own_ = std::make_unique<SessionCore>(
          tcfg_, signer_for(role_),
          proof_for(role_ == Role::kInitiator ? Role::kAcceptor : Role::kInitiator), obs_);
      target_ = own_.get();
      target_->start(clock_.now());
    }
    check_invariants();
  }

  void run(Cursor& in) {
    int ops = 0;
    while (!in.empty() && ops++ < 4096) {
      run_op(in);
      check_invariants();
    }
    // Drain whatever is left so the output checks see it.
    produce(1 << 20);
    check_invariants();
  }

 private:
  static constexpr int kOpCount = 16;

  void run_op(Cursor& in) {
    const std::uint8_t op = in.u8() % kOpCount;
    switch (op) {
      case 0:
      case 1: {  // raw peer bytes, chunk size from the input
        std::size_t len = in.u8();
        if (len == 255) len = in.u16();
        feed(in.take(len));
        break;
      }
      case 2:
      case 3:
        feed_structured(in);
        break;
      case 4: {  // one of the honest peer's handshake frames
        if (canned_.empty()) break;
        const auto& f = canned_[in.u8() % canned_.size()];
        feed(f);
        break;
      }
      case 5: {
        static constexpr std::array<std::size_t, 12> kCaps = {
            0, 1, 8, 9, 17, 100, 1024, 2047, 4096, 16 * 1024 + 17, 65536, 300 * 1024};
        produce(kCaps[in.u8() % kCaps.size()]);
        break;
      }
      case 6: {  // time passes
        const std::uint8_t b = in.u8();
        static constexpr std::array<Duration, 4> kScale = {
            std::chrono::milliseconds(1), std::chrono::milliseconds(50), std::chrono::seconds(1),
            std::chrono::seconds(10)};
        clock_.advance((b & 0x3f) * kScale[b >> 6]);
        target_->on_tick(clock_.now());
        (void)target_->next_deadline();
        break;
      }
      case 7: {  // app read
        const std::uint32_t id = pick_id(in.u8());
        std::vector<std::uint8_t> buf(std::size_t{in.u8()} * 97 + 1);
        bool eof = false;
        auto r = target_->read(id, buf, eof, clock_.now());
        if (r) {
          FUZZ_CHECK(*r <= buf.size());
          if (eof) FUZZ_CHECK(*r == 0);
        }
        break;
      }
      case 8: {  // app write
        const std::uint32_t id = pick_id(in.u8());
        std::size_t len = std::size_t{in.u8()} * 131;
        if (len > 30000) len = 64 * 1024;  // 255 * 131 > 30000: a big write
        std::vector<std::uint8_t> data(len, static_cast<std::uint8_t>(id));
        const std::size_t before = target_->stats().send_queue_bytes;
        auto r = target_->write(id, data);
        if (r) {
          FUZZ_CHECK(*r <= len);
          if (!target_->is_closed()) {
            FUZZ_CHECK(target_->stats().send_queue_bytes <= before + *r);
          }
        }
        break;
      }
      case 9: {  // app opens a stream
        static constexpr std::array<const char*, 3> kServices = {"svc", "dns", "x"};
        const std::uint8_t b = in.u8();
        auto r = target_->open_stream(kServices[b % 3],
                                      static_cast<TrafficClass>((b >> 2) % kClassCount), in.u8());
        if (r) {
          FUZZ_CHECK(target_->is_open());
          ids_.push_back(*r);
        }
        break;
      }
      case 10: {
        const std::uint32_t id = pick_id(in.u8());
        (void)target_->close_stream(id);
        break;
      }
      case 11: {
        const std::uint32_t id = pick_id(in.u8());
        target_->reset_stream(id, static_cast<ErrorCode>(in.u8() % 14), "app reset");
        break;
      }
      case 12: {
        target_->release_stream(pick_id(in.u8()));
        break;
      }
      case 13: {
        const std::uint8_t b = in.u8();
        switch (b % 4) {
          case 0:
            target_->goaway(ErrorCode::kShutdown, "bye", (b & 4) != 0);
            break;
          case 1:
            // The runtime only pings an open session.
            if (target_->is_open()) target_->ping(clock_.now());
            break;
          case 2: {
            RouteUpdate u;
            u.route_id = in.u8();
            u.epoch = in.u8();
            u.lease.assign(in.u8() % 40, 0xab);
            target_->send_route_update((b & 4) != 0 ? pick_id(in.u8()) : 0, u);
            break;
          }
          default:
            target_->set_node_load(in.u16(), in.u32());
            break;
        }
        break;
      }
      case 14: {
        if (in.u8() == 0xee) target_->on_transport_error("fuzz: carrier failed");
        break;
      }
      default: {
        // Several produce/feed rounds in one op: lets short inputs reach flow control.
        const int rounds = in.u8() % 8 + 1;
        for (int i = 0; i < rounds; ++i) {
          produce(64 * 1024);
          feed_structured(in);
        }
        break;
      }
    }
  }

  // A well-formed peer frame built from input bytes, with stream state filled in from what the
  // target reports so sequences and offsets are right unless the input says otherwise.
  void feed_structured(Cursor& in) {
    const std::uint8_t kind = in.u8();
    const std::uint8_t sel = in.u8();
    std::uint32_t sid = pick_id(sel);
    const StreamStats* st = nullptr;
    const auto streams = target_->stream_stats();
    for (const auto& s : streams) {
      if (s.id == sid) st = &s;
    }
    const std::uint8_t skew = in.u8();
    // Mostly exact, sometimes off by a little or a lot.
    const std::int64_t delta = skew < 200 ? 0 : (skew < 250 ? skew - 225 : std::int64_t{1} << 40);
    auto off = [&](std::uint64_t base) { return base + static_cast<std::uint64_t>(delta); };
    std::vector<std::uint8_t> frame;
    std::uint8_t flags = 0;
    switch (kind % 14) {
      case 0:
      case 1:
      case 2: {  // DATA
        std::size_t len = std::size_t{in.u8()} * 64 + in.u8() % 64;
        if (kind % 14 == 2) len = std::size_t{in.u16()} % (tcfg_.max_frame_size + 64);
        Data d;
        d.sequence = off(st != nullptr ? st->bytes_received : 0);
        std::vector<std::uint8_t> payload(len, static_cast<std::uint8_t>(len));
        d.payload = payload;
        encode(frame, sid, d);
        break;
      }
      case 3: {
        const std::uint32_t inc = skew < 128 ? std::uint32_t{in.u16()} + 1 : in.u32();
        encode(frame, (sel & 1) != 0 ? 0 : sid, StreamCredit{inc});
        break;
      }
      case 4:
        encode(frame, sid, Ack{off(st != nullptr ? st->bytes_sent : 0)});
        break;
      case 5:
        encode(frame, sid, CloseStream{off(st != nullptr ? st->bytes_received : 0)});
        break;
      case 6:
        encode(frame, sid, ResetStream{static_cast<ErrorCode>(in.u8() % 16), "peer reset"});
        break;
      case 7: {
        OpenStream o;
        o.traffic_class = static_cast<TrafficClass>(in.u8() % kClassCount);
        o.route_id = 3;
        o.service = "svc-peer";
        std::uint32_t id = next_peer_id_;
        if (delta != 0) id = sid;
        encode(frame, id, o);
        if (delta == 0) next_peer_id_ += 2;
        break;
      }
      case 8:
        encode(frame, 0, Ping{in.u64()});
        break;
      case 9:
        encode(frame, 0, Pong{(sel & 1) != 0 ? last_ping_ : off(last_ping_)});
        break;
      case 10: {
        Goaway g;
        g.last_stream_id = (sel & 1) != 0 ? 0 : sid;
        g.code = static_cast<ErrorCode>(in.u8() % 14);
        g.reason = "peer goaway";
        flags = (skew & 1) != 0 ? kFlagGoawayDrain : 0;
        encode(frame, 0, g, flags);
        break;
      }
      case 11: {
        NodePressure p;
        p.level = in.u8() % 4;
        p.cpu_permille = in.u16() % 1001;
        p.queue_bytes = in.u32();
        p.memory_kib = in.u32();
        encode(frame, 0, p);
        break;
      }
      case 12: {
        RouteUpdate u;
        u.route_id = in.u8();
        u.epoch = in.u8();
        u.lease.assign(in.u8(), 0xcd);
        encode(frame, (sel & 1) != 0 ? 0 : sid, u);
        break;
      }
      default: {
        SessionReady r;
        r.version = delta == 0 ? 1 : static_cast<std::uint16_t>(skew);
        r.max_frame_size = std::max<std::uint32_t>(kMinMaxFrameSize, in.u32() & 0xffffff);
        r.initial_stream_window = std::max<std::uint32_t>(1, in.u32() & 0x7fffffff);
        r.session_window = std::max<std::uint32_t>(1, in.u32() & 0x7fffffff);
        encode(frame, 0, r);
        break;
      }
    }
    feed(frame);
  }

  std::uint32_t pick_id(std::uint8_t b) {
    if ((b & 0x80) != 0 || ids_.empty()) return b & 0x7f;
    return ids_[b % ids_.size()];
  }

  void feed(std::span<const std::uint8_t> bytes) {
    rx_.insert(rx_.end(), bytes.begin(), bytes.end());
    const std::size_t given = rx_.size();
    const std::size_t used = target_->on_receive(rx_, clock_.now());
    FUZZ_CHECK(used <= given);
    rx_.erase(rx_.begin(), rx_.begin() + static_cast<std::ptrdiff_t>(used));
    if (target_->is_closed()) FUZZ_CHECK(rx_.empty());  // a closed core discards input
  }

  void produce(std::size_t cap) {
    constexpr std::size_t kGuard = 64;
    // Reused across runs (large buffers cost a lot under ASan); only the guard is re-armed.
    static std::vector<std::uint8_t> buf;
    if (buf.size() < cap + kGuard) buf.resize(cap + kGuard);
    std::fill_n(buf.begin() + static_cast<std::ptrdiff_t>(cap), kGuard, std::uint8_t{0xa5});
    observe_close();
    const std::size_t n = target_->produce(std::span<std::uint8_t>(buf.data(), cap), clock_.now());
    FUZZ_CHECK(n <= cap);
    for (std::size_t i = cap; i < cap + kGuard; ++i) FUZZ_CHECK(buf[i] == 0xa5);
    observe_close();
    if (closed_seen_) {
      FUZZ_CHECK(n <= after_close_budget_);
      after_close_budget_ -= n;
    }
    check_output(std::span<const std::uint8_t>(buf.data(), n));
  }

  // Everything the target sends must be a valid frame stream.
  void check_output(std::span<const std::uint8_t> bytes) {
    if (obs_->ready) ever_ready_ = true;
    tx_.insert(tx_.end(), bytes.begin(), bytes.end());
    std::size_t off = 0;
    for (;;) {
      auto r = decode_frame(std::span<const std::uint8_t>(tx_).subspan(off), kMaxMaxFrameSize);
      if (r.status == Status::kNeedMore) break;
      if (r.status == Status::kError) {
        std::fprintf(stderr, "target produced a malformed frame: %s\n", r.reason.c_str());
      }
      FUZZ_CHECK(r.status == Status::kFrame);
      const auto t = r.frame.header.type;
      if (t == FrameType::kData) {
        FUZZ_CHECK(r.frame.header.length <= pcfg_.max_frame_size);
        // No DATA frame may start after the close was observed.
        FUZZ_CHECK(!closed_seen_ || tx_consumed_ + off < close_offset_);
      }
      if (!ever_ready_) {
        FUZZ_CHECK(t == FrameType::kHello || t == FrameType::kAuth ||
                   t == FrameType::kSessionReady || t == FrameType::kGoaway);
      }
      if (t == FrameType::kPing) last_ping_ = std::get<Ping>(r.frame.body).opaque;
      off += r.consumed;
    }
    tx_.erase(tx_.begin(), tx_.begin() + static_cast<std::ptrdiff_t>(off));
    tx_consumed_ += off;
  }

  // The first time the target is seen closed: remember how many control bytes it may still
  // send, and where its output stood (no DATA frame may start after that point).
  void observe_close() {
    if (closed_seen_ || !target_->is_closed()) return;
    closed_seen_ = true;
    after_close_budget_ = target_->stats().control_queue_bytes;
    close_offset_ = tx_consumed_ + tx_.size();
  }

  void check_invariants() {
    if (obs_->ready) ever_ready_ = true;
    for (; opened_seen_ < obs_->opened.size(); ++opened_seen_) {
      ids_.push_back(obs_->opened[opened_seen_]);
    }
    observe_close();
    FUZZ_CHECK(obs_->closed_calls <= 1);
    const SessionStats st = target_->stats();
    FUZZ_CHECK(st.recv_buffered_bytes <= tcfg_.session_window);
    const auto streams = target_->stream_stats();
    std::uint64_t recv_sum = 0;
    std::uint64_t send_sum = 0;
    for (const auto& s : streams) {
      FUZZ_CHECK(s.recv_queue_bytes <= tcfg_.max_stream_window);
      FUZZ_CHECK(s.recv_window <= tcfg_.max_stream_window);
      recv_sum += s.recv_queue_bytes;
      send_sum += s.send_queue_bytes;
      if (s.traffic_class != TrafficClass::kDroppable) {
        FUZZ_CHECK(s.send_queue_bytes <= tcfg_.stream_send_buffer);
      }
    }
    if (target_->is_closed()) {
      FUZZ_CHECK(obs_->closed_calls == 1);
      FUZZ_CHECK(st.control_queue_bytes <= after_close_budget_);
      FUZZ_CHECK(!target_->wants_write() || st.control_queue_bytes > 0);
      FUZZ_CHECK(!target_->is_open());
    } else {
      FUZZ_CHECK(obs_->closed_calls == 0);
      FUZZ_CHECK(recv_sum == st.recv_buffered_bytes);
      FUZZ_CHECK(send_sum == st.send_queue_bytes);
      FUZZ_CHECK(st.open_streams == streams.size());
    }
  }

  const bool established_;
  const Role role_;
  const bool defaults_;
  const SessionConfig tcfg_;
  const SessionConfig pcfg_;
  const std::vector<std::vector<std::uint8_t>>& canned_;
  ManualClock clock_;
  std::unique_ptr<Pair> pair_;
  std::unique_ptr<Observer> own_obs_;
  std::unique_ptr<SessionCore> own_;
  SessionCore* target_ = nullptr;
  Observer* obs_ = nullptr;
  std::vector<std::uint32_t> ids_;  // stream ids the app knows (opened by either side)
  std::size_t opened_seen_ = 0;
  std::uint32_t next_peer_id_ = 0;
  std::uint64_t last_ping_ = 0;
  bool ever_ready_ = false;
  std::vector<std::uint8_t> rx_;  // peer -> target bytes not consumed yet
  std::vector<std::uint8_t> tx_;  // target output not decoded yet (partial frame)
  std::uint64_t tx_consumed_ = 0;
  bool closed_seen_ = false;
  std::size_t after_close_budget_ = 0;
  std::uint64_t close_offset_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  (void)canned();  // keys + canned handshakes once, outside the timed runs
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  Cursor in(data + 1, size - 1);
  Harness h(data[0]);
  h.run(in);
  return 0;
}
