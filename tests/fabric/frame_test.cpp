#include "rap/fabric/frame.h"

#include <gtest/gtest.h>

using namespace rap::fabric;

namespace {

Frame roundtrip(std::uint32_t sid, const FrameBody& body, std::uint8_t flags = 0,
                std::vector<std::uint8_t>* storage = nullptr) {
  std::vector<std::uint8_t> local;
  auto& buf = storage ? *storage : local;
  encode(buf, sid, body, flags);
  auto r = decode_frame(buf, kMaxMaxFrameSize);
  EXPECT_EQ(r.status, DecodeResult::Status::kFrame) << r.reason;
  EXPECT_EQ(r.consumed, buf.size());
  EXPECT_EQ(r.frame.header.type, frame_type_of(body));
  EXPECT_EQ(r.frame.header.stream_id, sid);
  return r.frame;
}

DecodeResult decode_bytes(std::vector<std::uint8_t> b, std::uint32_t max = 65536) {
  return decode_frame(b, max);
}

}  // namespace

TEST(FrameCodec, RoundTripsEveryFrameType) {
  Hello h;
  h.capabilities = 0x1234;
  h.max_frame_size = 65536;
  h.nonce[3] = 7;
  h.node_id = "node-a";
  h.cluster_id = "cluster-1";
  auto f = roundtrip(0, h);
  auto& hh = std::get<Hello>(f.body);
  EXPECT_EQ(hh.node_id, "node-a");
  EXPECT_EQ(hh.cluster_id, "cluster-1");
  EXPECT_EQ(hh.capabilities, 0x1234u);
  EXPECT_EQ(hh.nonce[3], 7);

  Auth a;
  a.signature[63] = 9;
  EXPECT_EQ(std::get<Auth>(roundtrip(0, a).body).signature[63], 9);

  SessionReady sr{1, 65536, 262144, 1 << 24, 10000, 30000, 5, 6};
  auto srd = std::get<SessionReady>(roundtrip(0, sr).body);
  EXPECT_EQ(srd.session_window, 1u << 24);
  EXPECT_EQ(srd.peer_epoch, 6u);

  auto o = std::get<OpenStream>(roundtrip(3, OpenStream{TrafficClass::kBulk, 77, "tcp"}).body);
  EXPECT_EQ(o.traffic_class, TrafficClass::kBulk);
  EXPECT_EQ(o.route_id, 77u);
  EXPECT_EQ(o.service, "tcp");

  std::vector<std::uint8_t> payload = {1, 2, 3, 4, 5};
  std::vector<std::uint8_t> storage;
  auto d = std::get<Data>(roundtrip(5, Data{1000, payload}, 0, &storage).body);
  EXPECT_EQ(d.sequence, 1000u);
  EXPECT_EQ(std::vector<std::uint8_t>(d.payload.begin(), d.payload.end()), payload);

  EXPECT_EQ(std::get<Ack>(roundtrip(5, Ack{42}).body).offset, 42u);
  EXPECT_EQ(std::get<Ping>(roundtrip(0, Ping{99}).body).opaque, 99u);
  EXPECT_EQ(std::get<Pong>(roundtrip(0, Pong{98}).body).opaque, 98u);
  auto ru = std::get<RouteUpdate>(roundtrip(0, RouteUpdate{1, 2, {9, 9}}).body);
  EXPECT_EQ(ru.epoch, 2u);
  EXPECT_EQ(ru.lease.size(), 2u);
  EXPECT_EQ(std::get<StreamCredit>(roundtrip(0, StreamCredit{4096}).body).increment, 4096u);
  EXPECT_EQ(std::get<StreamCredit>(roundtrip(7, StreamCredit{1}).body).increment, 1u);
  auto np = std::get<NodePressure>(roundtrip(0, NodePressure{2, 500, 1000, 2000}).body);
  EXPECT_EQ(np.level, 2);
  EXPECT_EQ(np.cpu_permille, 500);
  EXPECT_EQ(std::get<CloseStream>(roundtrip(9, CloseStream{123}).body).final_offset, 123u);
  auto rs = std::get<ResetStream>(roundtrip(9, ResetStream{ErrorCode::kCancel, "bye"}).body);
  EXPECT_EQ(rs.code, ErrorCode::kCancel);
  EXPECT_EQ(rs.reason, "bye");
  auto g = roundtrip(0, Goaway{11, ErrorCode::kShutdown, "maintenance"}, kFlagGoawayDrain);
  EXPECT_EQ(g.header.flags, kFlagGoawayDrain);
  EXPECT_EQ(std::get<Goaway>(g.body).last_stream_id, 11u);
}

TEST(FrameCodec, DataPrefixMatchesEncoder) {
  std::vector<std::uint8_t> a;
  std::vector<std::uint8_t> payload(100, 0xab);
  encode(a, 7, Data{55, payload});
  std::vector<std::uint8_t> b(kDataOverhead + payload.size());
  encode_data_prefix(b.data(), 7, 55, 100);
  std::copy(payload.begin(), payload.end(), b.begin() + kDataOverhead);
  EXPECT_EQ(a, b);
}

TEST(FrameCodec, TruncatedInputNeedsMore) {
  std::vector<std::uint8_t> buf;
  encode(buf, 0, Ping{1});
  for (std::size_t n = 0; n < buf.size(); ++n) {
    auto r = decode_frame(std::span(buf).first(n), 65536);
    EXPECT_EQ(r.status, DecodeResult::Status::kNeedMore) << n;
  }
}

TEST(FrameCodec, OversizedFrameRefusedFromHeaderAlone) {
  // Header announces 1 MiB payload; only the header is present.
  auto r = decode_bytes({0x10, 0x00, 0x00, 0x05, 0x00, 0, 0, 0, 1}, 65536);
  ASSERT_EQ(r.status, DecodeResult::Status::kError);
  EXPECT_EQ(r.error, ErrorCode::kFrameSizeError);
  EXPECT_NE(r.reason.find("exceeds max frame size"), std::string::npos);
}

TEST(FrameCodec, UnknownTypeRejected) {
  auto r = decode_bytes({0, 0, 0, 0x7f, 0, 0, 0, 0, 0});
  ASSERT_EQ(r.status, DecodeResult::Status::kError);
  EXPECT_EQ(r.error, ErrorCode::kProtocolError);
  EXPECT_NE(r.reason.find("unknown frame type"), std::string::npos);
}

TEST(FrameCodec, UndefinedFlagsRejected) {
  std::vector<std::uint8_t> buf;
  encode(buf, 0, Ping{1}, 0x80);
  auto r = decode_frame(buf, 65536);
  ASSERT_EQ(r.status, DecodeResult::Status::kError);
  EXPECT_NE(r.reason.find("flags"), std::string::npos);
}

TEST(FrameCodec, StreamIdRulesEnforced) {
  std::vector<std::uint8_t> data_on_zero;
  std::vector<std::uint8_t> p(4);
  encode(data_on_zero, 0, Data{0, p});
  auto r = decode_frame(data_on_zero, 65536);
  ASSERT_EQ(r.status, DecodeResult::Status::kError);
  EXPECT_NE(r.reason.find("on stream 0"), std::string::npos);

  std::vector<std::uint8_t> ping_on_stream;
  encode(ping_on_stream, 5, Ping{1});
  r = decode_frame(ping_on_stream, 65536);
  ASSERT_EQ(r.status, DecodeResult::Status::kError);
  EXPECT_NE(r.reason.find("must be 0"), std::string::npos);

  auto reserved = decode_bytes({0, 0, 8, 0x07, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
  ASSERT_EQ(reserved.status, DecodeResult::Status::kError);
  EXPECT_NE(reserved.reason.find("reserved"), std::string::npos);
}

TEST(FrameCodec, CreditOverflowAndZeroRejectedAtStreamLevel) {
  auto r = decode_bytes({0, 0, 4, 0x0a, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff});
  ASSERT_EQ(r.status, DecodeResult::Status::kError);
  EXPECT_EQ(r.error, ErrorCode::kFlowControlError);
  EXPECT_TRUE(r.stream_error);
  r = decode_bytes({0, 0, 4, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  ASSERT_EQ(r.status, DecodeResult::Status::kError);
  EXPECT_FALSE(r.stream_error);  // session credit: whole session
}

TEST(FrameCodec, MalformedPayloadsRejected) {
  // HELLO with a bad magic.
  Hello h;
  h.max_frame_size = 65536;
  h.node_id = "n";
  h.cluster_id = "c";
  std::vector<std::uint8_t> buf;
  encode(buf, 0, h);
  buf[kHeaderSize] ^= 0xff;
  EXPECT_EQ(decode_frame(buf, 65536).status, DecodeResult::Status::kError);
  // HELLO with trailing garbage (length says more than the fields).
  buf.clear();
  encode(buf, 0, h);
  buf.push_back(0);
  buf[2] = static_cast<std::uint8_t>(buf[2] + 1);
  EXPECT_EQ(decode_frame(buf, 65536).status, DecodeResult::Status::kError);
  // OPEN_STREAM with an unknown traffic class.
  buf.clear();
  encode(buf, 1, OpenStream{TrafficClass::kBulk, 0, "x"});
  buf[kHeaderSize] = 9;
  auto r = decode_frame(buf, 65536);
  ASSERT_EQ(r.status, DecodeResult::Status::kError);
  EXPECT_NE(r.reason.find("traffic class"), std::string::npos);
  // AUTH with a short signature.
  auto a = decode_bytes({0, 0, 3, 0x02, 0, 0, 0, 0, 0, 1, 1, 0});
  EXPECT_EQ(a.status, DecodeResult::Status::kError);
  // SESSION_READY with a zero window.
  buf.clear();
  encode(buf, 0, SessionReady{1, 65536, 0, 1, 0, 0, 0, 0});
  EXPECT_EQ(decode_frame(buf, 65536).status, DecodeResult::Status::kError);
}
