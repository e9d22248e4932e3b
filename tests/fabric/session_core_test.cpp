#include "rap/fabric/session_core.h"

#include <gtest/gtest.h>

#include "core_pair.h"

using namespace rap;
using namespace rap::fabric;
using rap::testing::CorePair;
using rap::testing::RecordingObserver;

namespace {
std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
}  // namespace

TEST(SessionCore, HandshakeOpensBothSides) {
  CorePair p;
  EXPECT_TRUE(p.a->is_open());
  EXPECT_TRUE(p.b->is_open());
  EXPECT_TRUE(p.oa.ready);
  EXPECT_TRUE(p.ob.ready);
  EXPECT_EQ(p.a->negotiated_version(), 1);
  EXPECT_EQ(p.a->stats().tx.frames_by_type[static_cast<int>(FrameType::kHello)], 1u);
  EXPECT_EQ(p.b->stats().rx.frames_by_type[static_cast<int>(FrameType::kAuth)], 1u);
}

TEST(SessionCore, HelloCertificateMismatchRefused) {
  CorePair p({}, false);
  // b believes (from the certificate) that its peer is node-x, but a says node-a in HELLO.
  std::vector<std::uint8_t> binding(32, 0x5a);
  RecordingObserver ob;
  SessionConfig cfg = p.cfg_b;
  SessionCore b(cfg, *p.sb, rap::testing::proof_of(p.na, "cluster-1", "node-x", binding), &ob);
  p.a->start(p.clock.now());
  b.start(p.clock.now());
  std::vector<std::uint8_t> buf(65536);
  const auto n = p.a->produce(buf, p.clock.now());
  b.on_receive(std::span(buf).first(n), p.clock.now());
  ASSERT_TRUE(b.is_closed());
  EXPECT_EQ(b.close_reason().code, "auth_failed");
  EXPECT_NE(b.close_reason().message.find("does not match certificate"), std::string::npos);
  // The refusal goes to the peer as GOAWAY with the reason.
  const auto m = b.produce(buf, p.clock.now());
  p.a->on_receive(std::span(buf).first(m), p.clock.now());
  EXPECT_TRUE(p.a->is_closed());
  ASSERT_TRUE(p.oa.goaway_code.has_value());
  EXPECT_EQ(*p.oa.goaway_code, ErrorCode::kAuthFailed);
}

TEST(SessionCore, WrongClusterRefused) {
  CorePair p({}, false);
  std::vector<std::uint8_t> binding(32, 0x5a);
  RecordingObserver ob;
  SessionConfig cfg = p.cfg_b;
  cfg.cluster_id = "cluster-2";
  SessionCore b(cfg, *p.sb, rap::testing::proof_of(p.na, "cluster-1", "node-a", binding), &ob);
  p.a->start(p.clock.now());
  b.start(p.clock.now());
  std::vector<std::uint8_t> buf(65536);
  const auto n = p.a->produce(buf, p.clock.now());
  b.on_receive(std::span(buf).first(n), p.clock.now());
  ASSERT_TRUE(b.is_closed());
  EXPECT_NE(b.close_reason().message.find("cluster"), std::string::npos);
}

TEST(SessionCore, AuthWithWrongKeyRefused) {
  CorePair p({}, false);
  // a signs with a key that is not the one in its certificate.
  rap::testing::TestSigner wrong(*crypto::Ed25519Key::generate());
  std::vector<std::uint8_t> binding(32, 0x5a);
  RecordingObserver oa;
  SessionCore a(p.cfg_a, wrong, rap::testing::proof_of(p.nb, "cluster-1", "node-b", binding), &oa);
  a.start(p.clock.now());
  p.b->start(p.clock.now());
  std::vector<std::uint8_t> buf(65536);
  const auto n = a.produce(buf, p.clock.now());
  p.b->on_receive(std::span(buf).first(n), p.clock.now());
  ASSERT_TRUE(p.b->is_closed());
  EXPECT_NE(p.b->close_reason().message.find("AUTH signature"), std::string::npos);
}

TEST(SessionCore, ChannelBindingMismatchRefused) {
  // A relayed AUTH (different TLS connection => different exporter) must not verify.
  CorePair p({}, false);
  std::vector<std::uint8_t> other(32, 0x11);
  RecordingObserver ob;
  SessionCore b(p.cfg_b, *p.sb, rap::testing::proof_of(p.na, "cluster-1", "node-a", other), &ob);
  p.a->start(p.clock.now());
  b.start(p.clock.now());
  std::vector<std::uint8_t> buf(65536);
  const auto n = p.a->produce(buf, p.clock.now());
  b.on_receive(std::span(buf).first(n), p.clock.now());
  EXPECT_TRUE(b.is_closed());
}

TEST(SessionCore, FramesBeforeHandshakeRefused) {
  CorePair p({}, false);
  p.b->start(p.clock.now());
  std::vector<std::uint8_t> raw;
  encode(raw, 1, OpenStream{TrafficClass::kBulk, 0, "x"});
  p.inject_to_b(raw);
  EXPECT_TRUE(p.b->is_closed());
  EXPECT_NE(p.b->close_reason().message.find("before the handshake"), std::string::npos);
}

TEST(SessionCore, StreamCarriesDataBothWaysAndCloses) {
  CorePair p;
  auto id = p.a->open_stream("echo", TrafficClass::kReliable, 7);
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(*id % 2, 1u);  // initiator ids are odd
  std::string msg(300000, 'x');
  for (std::size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<char>('a' + i % 26);
  std::size_t sent = 0;
  std::string got;
  while (sent < msg.size() || got.size() < msg.size()) {
    if (sent < msg.size()) sent += *p.a->write(*id, bytes(msg).subspan(sent));
    p.pump();
    got += p.read_all(*p.b, *id);
    p.pump();
  }
  EXPECT_EQ(got, msg);
  ASSERT_EQ(p.ob.opened.size(), 1u);
  auto info = p.b->stream_info(*id);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->service, "echo");
  EXPECT_EQ(info->route_id, 7u);
  // Reply and close both ways.
  ASSERT_TRUE(p.b->write(*id, bytes("pong")).has_value());
  ASSERT_TRUE(p.b->close_stream(*id).has_value());
  ASSERT_TRUE(p.a->close_stream(*id).has_value());
  p.pump();
  bool eof = false;
  EXPECT_EQ(p.read_all(*p.a, *id, &eof), "pong");
  EXPECT_TRUE(eof);
  p.read_all(*p.b, *id, &eof);
  EXPECT_TRUE(eof);
  p.a->release_stream(*id);
  p.b->release_stream(*id);
  EXPECT_EQ(p.a->stats().open_streams, 0u);
  EXPECT_EQ(p.b->stats().open_streams, 0u);
  EXPECT_EQ(p.b->stats().rx.bytes_by_class[static_cast<int>(TrafficClass::kReliable)], msg.size());
}

TEST(SessionCore, StalledReaderBlocksOnlyItsStream) {
  SessionConfig cfg;
  cfg.initial_stream_window = 64 * 1024;
  cfg.stream_send_buffer = 256 * 1024;
  CorePair p(cfg);
  auto bulk = *p.a->open_stream("bulk", TrafficClass::kBulk, 0);
  auto inter = *p.a->open_stream("ui", TrafficClass::kInteractive, 0);
  std::string big(1 << 20, 'b');
  std::size_t queued = *p.a->write(bulk, bytes(big));
  EXPECT_LT(queued, big.size());  // send buffer bound: backpressure, not unbounded buffering
  p.pump();
  // b never reads bulk: only its window crossed.
  EXPECT_LE(p.b->stats().recv_buffered_bytes, 64u * 1024);
  // Interactive data still flows.
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(*p.a->write(inter, bytes("key")), 3u);
    p.pump();
    EXPECT_EQ(p.read_all(*p.b, inter), "key");
  }
  // Now the bulk reader drains: the rest arrives.
  std::string got;
  for (int i = 0; i < 1000 && got.size() < queued; ++i) {
    got += p.read_all(*p.b, bulk);
    p.pump();
  }
  EXPECT_EQ(got.size(), queued);
}

TEST(SessionCore, ResetOfOneStreamLeavesOthersRunning) {
  CorePair p;
  auto s1 = *p.a->open_stream("one", TrafficClass::kBulk, 0);
  auto s2 = *p.a->open_stream("two", TrafficClass::kBulk, 0);
  ASSERT_TRUE(p.a->write(s1, bytes("hello")).has_value());
  ASSERT_TRUE(p.a->write(s2, bytes("world")).has_value());
  p.pump();
  p.b->reset_stream(s1, ErrorCode::kCancel, "not wanted");
  p.pump();
  ASSERT_EQ(p.oa.resets.count(s1), 1u);
  EXPECT_EQ(p.oa.resets[s1].first, ErrorCode::kCancel);
  EXPECT_EQ(p.oa.resets[s1].second, "not wanted");
  EXPECT_FALSE(p.a->write(s1, bytes("x")).has_value());
  ASSERT_TRUE(p.a->write(s2, bytes("!")).has_value());
  p.pump();
  EXPECT_EQ(p.read_all(*p.b, s2), "world!");
  EXPECT_TRUE(p.a->is_open());
  EXPECT_EQ(p.a->stats().resets_received.at("cancel"), 1u);
}

TEST(SessionCore, DataOnClosedStreamGetsReset) {
  CorePair p;
  auto s = *p.a->open_stream("x", TrafficClass::kReliable, 0);
  p.pump();
  ASSERT_TRUE(p.a->close_stream(s).has_value());
  p.pump();
  // Forge DATA after CLOSE_STREAM.
  std::vector<std::uint8_t> raw;
  std::vector<std::uint8_t> payload(3, 1);
  encode(raw, s, Data{0, payload});
  p.inject_to_b(raw);
  EXPECT_TRUE(p.b->is_open());
  EXPECT_EQ(p.b->stats().resets_sent.at("stream_closed"), 1u);
}

TEST(SessionCore, DataOnIdleStreamIsSessionError) {
  CorePair p;
  std::vector<std::uint8_t> raw;
  std::vector<std::uint8_t> payload(3, 1);
  encode(raw, 99, Data{0, payload});
  p.inject_to_b(raw);
  EXPECT_TRUE(p.b->is_closed());
  EXPECT_NE(p.b->close_reason().message.find("idle stream"), std::string::npos);
}

TEST(SessionCore, WindowViolationResetsStream) {
  SessionConfig cfg;
  cfg.initial_stream_window = 16 * 1024;
  CorePair p(cfg);
  auto s = *p.a->open_stream("x", TrafficClass::kBulk, 0);
  p.pump();
  std::vector<std::uint8_t> raw;
  std::vector<std::uint8_t> payload(20 * 1024, 1);
  encode(raw, s, Data{0, payload});
  p.inject_to_b(raw);
  EXPECT_TRUE(p.b->is_open());
  EXPECT_EQ(p.b->stats().resets_sent.at("flow_control_error"), 1u);
}

TEST(SessionCore, CreditOverflowResetsStream) {
  CorePair p;
  auto s = *p.b->open_stream("x", TrafficClass::kBulk, 0);
  p.pump();
  std::vector<std::uint8_t> raw;
  encode(raw, s, StreamCredit{0x7fffffff});
  p.inject_to_b(raw);
  EXPECT_TRUE(p.b->is_open());
  EXPECT_EQ(p.b->stats().resets_sent.at("flow_control_error"), 1u);
}

TEST(SessionCore, OversizedFrameIsGoaway) {
  CorePair p;
  std::vector<std::uint8_t> raw = {0x7f, 0xff, 0xff, 0x05, 0, 0, 0, 0, 1};
  p.inject_to_b(raw);
  EXPECT_TRUE(p.b->is_closed());
  EXPECT_EQ(p.b->close_reason().code, "frame_size_error");
  std::vector<std::uint8_t> buf(65536);
  const auto n = p.b->produce(buf, p.clock.now());
  auto r = decode_frame(std::span(buf).first(n), kMaxMaxFrameSize);
  ASSERT_EQ(r.status, DecodeResult::Status::kFrame);
  EXPECT_EQ(r.frame.header.type, FrameType::kGoaway);
  EXPECT_EQ(std::get<Goaway>(r.frame.body).code, ErrorCode::kFrameSizeError);
}

TEST(SessionCore, ControlFramesGoOutBeforeQueuedData) {
  CorePair p;
  auto bulk = *p.a->open_stream("bulk", TrafficClass::kBulk, 0);
  std::string big(200000, 'z');
  ASSERT_TRUE(p.a->write(bulk, bytes(big)).has_value());
  p.a->ping(p.clock.now());
  std::vector<std::uint8_t> buf(64 * 1024);
  const auto n = p.a->produce(buf, p.clock.now());
  // First frames: OPEN_STREAM then PING, then DATA.
  auto r1 = decode_frame(std::span(buf).first(n), kMaxMaxFrameSize);
  ASSERT_EQ(r1.status, DecodeResult::Status::kFrame);
  EXPECT_EQ(r1.frame.header.type, FrameType::kOpenStream);
  auto r2 = decode_frame(std::span(buf).subspan(r1.consumed, n - r1.consumed), kMaxMaxFrameSize);
  ASSERT_EQ(r2.status, DecodeResult::Status::kFrame);
  EXPECT_EQ(r2.frame.header.type, FrameType::kPing);
}

TEST(SessionCore, InteractiveSharesWithBulkByWeight) {
  SessionConfig cfg;
  cfg.initial_stream_window = 8 * 1024 * 1024;
  cfg.stream_send_buffer = 8 * 1024 * 1024;
  CorePair p(cfg);
  auto bulk = *p.a->open_stream("bulk", TrafficClass::kBulk, 0);
  auto inter = *p.a->open_stream("ui", TrafficClass::kInteractive, 0);
  std::string big(4 << 20, 'b');
  ASSERT_EQ(*p.a->write(bulk, bytes(big)), big.size());
  ASSERT_EQ(*p.a->write(inter, bytes(big)), big.size());
  // One 256 KiB write: interactive (weight 8) gets about 4x bulk (weight 2).
  std::vector<std::uint8_t> buf(512 * 1024);
  const auto before = p.a->stats().tx.bytes_by_class;
  p.a->produce(buf, p.clock.now());
  const auto after = p.a->stats().tx.bytes_by_class;
  const auto di = after[2] - before[2];
  const auto db = after[4] - before[4];
  EXPECT_GT(db, 0u);  // bulk is not starved
  EXPECT_GT(di, 2 * db);
}

TEST(SessionCore, DroppableIsHeadDropped) {
  SessionConfig cfg;
  cfg.droppable_queue_limit = 1000;
  CorePair p(cfg);
  auto s = *p.a->open_stream("telemetry", TrafficClass::kDroppable, 0);
  for (int i = 0; i < 10; ++i) {
    std::string m(300, static_cast<char>('0' + i));
    ASSERT_EQ(*p.a->write(s, bytes(m)), 300u);
  }
  EXPECT_EQ(p.a->stats().droppable_messages_shed, 7u);
  p.pump();
  auto got = p.read_all(*p.b, s);
  ASSERT_EQ(got.size(), 900u);
  EXPECT_EQ(got.front(), '7');  // the oldest went first; the newest survived
  EXPECT_EQ(got.back(), '9');
}

TEST(SessionCore, GoawayDrainLetsOpenStreamsFinish) {
  CorePair p;
  auto s = *p.a->open_stream("x", TrafficClass::kReliable, 0);
  p.pump();
  p.b->goaway(ErrorCode::kShutdown, "maintenance", true);
  p.pump();
  EXPECT_EQ(p.a->state(), SessionCore::State::kDraining);
  EXPECT_FALSE(p.a->open_stream("y", TrafficClass::kReliable, 0).has_value());
  ASSERT_TRUE(p.a->write(s, bytes("last words")).has_value());
  ASSERT_TRUE(p.a->close_stream(s).has_value());
  p.pump();
  bool eof = false;
  EXPECT_EQ(p.read_all(*p.b, s, &eof), "last words");
  EXPECT_TRUE(eof);
  ASSERT_TRUE(p.b->close_stream(s).has_value());
  p.pump();
  p.read_all(*p.a, s, &eof);
  EXPECT_TRUE(eof);
  p.pump();
  EXPECT_TRUE(p.a->is_closed());
  EXPECT_TRUE(p.b->is_closed());
  EXPECT_EQ(p.oa.goaway_reason, "maintenance");
}

TEST(SessionCore, PingMeasuresRttAndIdleTimeoutCloses) {
  SessionConfig cfg;
  cfg.keepalive = std::chrono::seconds(1);
  cfg.idle_timeout = std::chrono::seconds(3);
  CorePair p(cfg);
  p.a->ping(p.clock.now());
  std::vector<std::uint8_t> buf(65536);
  auto n = p.a->produce(buf, p.clock.now());
  p.b->on_receive(std::span(buf).first(n), p.clock.now());
  p.clock.advance(std::chrono::milliseconds(20));
  n = p.b->produce(buf, p.clock.now());
  p.a->on_receive(std::span(buf).first(n), p.clock.now());
  EXPECT_EQ(p.a->stats().rtt_last, std::chrono::milliseconds(20));
  // Keepalive: a tick after the interval sends PING.
  const auto pings = p.a->stats().tx.frames_by_type[static_cast<int>(FrameType::kPing)];
  p.clock.advance(std::chrono::milliseconds(1100));
  p.a->on_tick(p.clock.now());
  EXPECT_EQ(p.a->stats().tx.frames_by_type[static_cast<int>(FrameType::kPing)], pings + 1);
  // Peer silent past the idle timeout: closed with a reason.
  p.clock.advance(std::chrono::seconds(4));
  p.a->on_tick(p.clock.now());
  EXPECT_TRUE(p.a->is_closed());
  EXPECT_EQ(p.a->close_reason().code, "idle_timeout");
}

TEST(SessionCore, HandshakeTimeout) {
  CorePair p({}, false);
  p.a->start(p.clock.now());
  p.clock.advance(std::chrono::seconds(11));
  p.a->on_tick(p.clock.now());
  EXPECT_TRUE(p.a->is_closed());
  EXPECT_NE(p.a->close_reason().message.find("timed out"), std::string::npos);
}

TEST(SessionCore, PressureSignalReachesPeer) {
  SessionConfig cfg;
  cfg.pressure_bytes = 100 * 1024;
  cfg.initial_stream_window = 16 * 1024;
  cfg.stream_send_buffer = 1 << 20;
  CorePair p(cfg);
  auto s = *p.a->open_stream("bulk", TrafficClass::kBulk, 0);
  std::string big(200 * 1024, 'q');
  ASSERT_TRUE(p.a->write(s, bytes(big)).has_value());
  p.pump();  // b does not read: a's queue stays high
  p.a->on_tick(p.clock.now());
  p.pump();
  EXPECT_GE(p.a->stats().local_pressure_level, 2);
  EXPECT_GE(p.b->stats().peer_pressure_level, 2);
}

TEST(SessionCore, WindowGrowsWithFastConsumption) {
  SessionConfig cfg;
  cfg.initial_stream_window = 64 * 1024;
  cfg.stream_send_buffer = 4 << 20;
  CorePair p(cfg);
  auto s = *p.a->open_stream("bulk", TrafficClass::kBulk, 0);
  std::string big(4 << 20, 'g');
  std::size_t sent = 0, got = 0;
  while (got < big.size()) {
    if (sent < big.size()) sent += *p.a->write(s, bytes(big).subspan(sent));
    p.pump();
    got += p.read_all(*p.b, s).size();
  }
  auto st = p.b->stream_stats();
  ASSERT_EQ(st.size(), 1u);
  EXPECT_GT(st[0].recv_window, 64u * 1024);  // auto-tuned upward
}

// Regression: a service that writes its reply, half-closes and drops its handle must not lose
// the queued reply (it used to be reset with "stream released by application").
TEST(SessionCore, ReleasedHalfClosedStreamStillDeliversQueuedData) {
  SessionConfig cfg;
  cfg.initial_stream_window = 16 * 1024;
  CorePair p(cfg);
  auto s = *p.a->open_stream("discard", TrafficClass::kBulk, 0);
  ASSERT_TRUE(p.a->close_stream(s).has_value());
  p.pump();
  std::string reply(100000, 'r');  // more than one window: must linger across credit rounds
  ASSERT_EQ(*p.b->write(s, bytes(reply)), reply.size());
  ASSERT_TRUE(p.b->close_stream(s).has_value());
  p.b->release_stream(s);
  std::string got;
  bool eof = false;
  for (int i = 0; i < 100 && !eof; ++i) {
    p.pump();
    got += p.read_all(*p.a, s, &eof);
  }
  EXPECT_EQ(got.size(), reply.size());
  EXPECT_TRUE(eof);
  p.a->release_stream(s);
  p.pump();
  EXPECT_EQ(p.b->stats().open_streams, 0u);
  EXPECT_EQ(p.a->stats().open_streams, 0u);
  EXPECT_TRUE(p.oa.resets.empty());
}

// Regression: both sides sending GOAWAY(drain) at once must drain, not close at once.
TEST(SessionCore, SimultaneousDrainGoawaysStillDrain) {
  CorePair p;
  auto s = *p.a->open_stream("x", TrafficClass::kReliable, 0);
  p.pump();
  p.a->goaway(ErrorCode::kShutdown, "a leaving", true);
  p.b->goaway(ErrorCode::kShutdown, "b leaving", true);
  p.pump();
  EXPECT_EQ(p.a->state(), SessionCore::State::kDraining);
  EXPECT_EQ(p.b->state(), SessionCore::State::kDraining);
  ASSERT_TRUE(p.a->write(s, bytes("bye")).has_value());
  p.pump();
  EXPECT_EQ(p.read_all(*p.b, s), "bye");
}

TEST(SessionCore, RouteUpdateReachesPeerAndOversizedLeaseIsRefused) {
  CorePair p;
  auto s = *p.a->open_stream("x", TrafficClass::kReliable, 1);
  p.pump();
  ASSERT_TRUE(
      p.a->send_route_update(s, RouteUpdate{42, 7, std::vector<std::uint8_t>(100, 1)}).has_value());
  p.pump();
  EXPECT_EQ(p.b->stream_info(s)->route_id, 42u);
  EXPECT_FALSE(p.a->send_route_update(0, RouteUpdate{1, 1, std::vector<std::uint8_t>(70000, 1)})
                   .has_value());
  EXPECT_TRUE(p.a->is_open());
}

// Regression (found by fuzz_session): a droppable message larger than the stream's credit made
// produce() loop forever.
TEST(SessionCore, DroppableMessageLargerThanCreditDoesNotHang) {
  SessionConfig cfg;
  cfg.initial_stream_window = 1024;
  CorePair p(cfg);
  auto s = *p.a->open_stream("telemetry", TrafficClass::kDroppable, 0);
  std::string big(4000, 'd');
  ASSERT_EQ(*p.a->write(s, bytes(big)), big.size());
  std::vector<std::uint8_t> buf(64 * 1024);
  p.a->produce(buf, p.clock.now());  // returns (used to spin)
  std::vector<std::uint8_t> tiny(100);
  p.a->produce(tiny, p.clock.now());  // message larger than the room: also returns
  EXPECT_FALSE(p.a->write(s, bytes(std::string(kMaxDroppableMessage + 1, 'x'))).has_value());
}

// Regression (found by fuzz_session): close_stream()/read() after the session closed queued
// CLOSE_STREAM/STREAM_CREDIT frames behind the final GOAWAY.
TEST(SessionCore, NothingIsQueuedAfterClose) {
  SessionConfig cfg;
  cfg.initial_stream_window = 16 * 1024;
  CorePair p(cfg);
  auto s = *p.a->open_stream("x", TrafficClass::kBulk, 0);
  std::string data(16 * 1024, 'z');
  ASSERT_TRUE(p.a->write(s, bytes(data)).has_value());
  p.pump();
  p.b->goaway(ErrorCode::kShutdown, "bye", false);
  std::vector<std::uint8_t> buf(64 * 1024);
  const auto n = p.b->produce(buf, p.clock.now());  // the GOAWAY
  EXPECT_GT(n, 0u);
  EXPECT_FALSE(p.b->wants_write());
  (void)p.b->close_stream(s);
  bool eof = false;
  std::vector<std::uint8_t> rd(32 * 1024);
  (void)p.b->read(s, rd, eof, p.clock.now());
  EXPECT_FALSE(p.b->wants_write());
  EXPECT_EQ(p.b->produce(buf, p.clock.now()), 0u);
}

// Regression (found by fuzz_session in CI): a drain GOAWAY received while already draining, whose
// refused streams were the last ones, closed the session and then re-entered "draining", calling
// on_closed twice.
TEST(SessionCore, DrainGoawayThatRefusesTheLastStreamClosesOnce) {
  CorePair p;
  auto s = p.a->open_stream("x", TrafficClass::kReliable, 0);  // b never hears of it
  ASSERT_TRUE(s.has_value());
  p.a->goaway(ErrorCode::kShutdown, "a leaving", true);
  p.b->goaway(ErrorCode::kShutdown, "b leaving", true);  // last_stream_id = 0
  std::vector<std::uint8_t> buf(64 * 1024);
  const auto n = p.b->produce(buf, p.clock.now());
  p.a->on_receive(std::span(buf).first(n), p.clock.now());
  EXPECT_TRUE(p.a->is_closed());
  EXPECT_EQ(p.oa.closed_calls, 1);
}

// The latency guard: with an interactive stream open, a bulk stream whose bytes queue up in the
// pipe (PONGs come back late) gets its window cut; without one, the same queueing leaves the
// bulk window alone (throughput first).
namespace {
struct GuardRun {
  std::uint64_t shrinks = 0;
  std::uint32_t window = 0;
  std::uint32_t peak_window = 0;
};

GuardRun run_bulk_with_queueing(bool interactive_open, std::uint32_t initial_window = 64 * 1024) {
  SessionConfig cfg;
  cfg.initial_stream_window = initial_window;
  cfg.stream_send_buffer = 8 << 20;
  CorePair p(cfg);
  if (interactive_open) (void)*p.a->open_stream("echo", TrafficClass::kInteractive, 0);
  auto s = *p.a->open_stream("bulk", TrafficClass::kBulk, 0);
  std::string big(32 << 20, 'q');
  std::size_t sent = 0, got = 0;
  GuardRun out;
  std::vector<std::uint8_t> buf(64 * 1024);
  int round = 0;
  while (got < big.size()) {
    if (sent < big.size()) sent += *p.a->write(s, bytes(big).subspan(sent));
    // The first 4 MiB flow over a 50 us hop (the window grows, the minimum RTT is learnt); after
    // that each hop takes 2 ms, as when the pipe holds a deep queue.
    p.clock.advance(got > (4u << 20) ? std::chrono::microseconds(2000)
                                     : std::chrono::microseconds(50));
    p.move(*p.a, *p.b, p.a_to_b, buf);
    p.move(*p.b, *p.a, p.b_to_a, buf);
    got += p.read_all(*p.b, s).size();
    auto st = p.b->stream_stats();
    for (const auto& x : st) {
      if (x.id == s) {
        out.window = x.recv_window;
        out.peak_window = std::max(out.peak_window, x.recv_window);
      }
    }
    if (++round > 200000) break;
  }
  EXPECT_EQ(got, big.size());
  out.shrinks = p.b->stats().latency_guard_shrinks;
  return out;
}
}  // namespace

TEST(SessionCore, LatencyGuardShrinksBulkWindowOnlyWhileInteractiveIsOpen) {
  const auto guarded = run_bulk_with_queueing(true);
  EXPECT_GT(guarded.shrinks, 0u);
  EXPECT_GT(guarded.peak_window, 64u * 1024);
  EXPECT_LT(guarded.window, guarded.peak_window);

  const auto free_run = run_bulk_with_queueing(false);
  EXPECT_EQ(free_run.shrinks, 0u);
  EXPECT_EQ(free_run.window, free_run.peak_window);
}

// With the default initial window (256 KiB) the guard still cuts a queueing bulk stream down to
// 64 KiB (four TLS records), not to the initial window: 256 KiB in flight was 2.6 ms of queue
// ahead of every interactive message at 100 MB/s across a relay.
TEST(SessionCore, LatencyGuardShrinksBelowTheInitialWindowToItsFloor) {
  const auto guarded = run_bulk_with_queueing(true, 256 * 1024);
  EXPECT_GT(guarded.shrinks, 0u);
  EXPECT_LT(guarded.window, 256u * 1024);
  EXPECT_GE(guarded.window, 64u * 1024);
}
