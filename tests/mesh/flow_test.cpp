// The resumable-flow protocol core (rap/mesh/flow.h): frame header codec, the receiver's
// exactly-once sequencing (fencing of late and replayed frames) and the sender's resend buffer.
#include "rap/mesh/flow.h"

#include <gtest/gtest.h>

#include <array>
#include <string>

using namespace rap::mesh;

namespace {
std::vector<std::uint8_t> bytes(const std::string& s) {
  return {s.begin(), s.end()};
}
}  // namespace

TEST(FlowFrame, HeaderRoundTripsAndRejectsMalformedInput) {
  std::array<std::uint8_t, kFlowHeaderSize> h{};
  encode_flow_header({FlowFrameType::kData, 65536, 0x0102030405060708ULL}, h.data());
  auto d = decode_flow_header(h);
  ASSERT_TRUE(d && *d);
  EXPECT_EQ((*d)->type, FlowFrameType::kData);
  EXPECT_EQ((*d)->length, 65536u);
  EXPECT_EQ((*d)->offset, 0x0102030405060708ULL);

  auto partial = decode_flow_header(std::span<const std::uint8_t>(h).first(12));
  ASSERT_TRUE(partial);
  EXPECT_FALSE(*partial);

  auto bad = h;
  bad[0] = 4;
  EXPECT_EQ(decode_flow_header(bad).error().code, "flow_bad_frame");
  bad[0] = 0;
  EXPECT_FALSE(decode_flow_header(bad));
  encode_flow_header({FlowFrameType::kAck, 5, 10}, bad.data());
  EXPECT_FALSE(decode_flow_header(bad)) << "ACK with payload";
  encode_flow_header({FlowFrameType::kData, kMaxFlowData + 1, 0}, bad.data());
  EXPECT_FALSE(decode_flow_header(bad)) << "DATA too long";
  encode_flow_header({FlowFrameType::kData, 10, UINT64_MAX - 3}, bad.data());
  EXPECT_FALSE(decode_flow_header(bad)) << "offset overflow";
}

TEST(FlowRx, DeliversEachPositionOnceAndDropsLateOrReplayedFrames) {
  FlowRx rx;
  auto first = rx.old_prefix(0, 100);
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, 0u);
  rx.next = 100;
  // A late copy of the same frame (the old route after a switch): all of it is old.
  EXPECT_EQ(*rx.old_prefix(0, 100), 100u);
  // A resend overlapping what was delivered: only the new tail counts.
  EXPECT_EQ(*rx.old_prefix(60, 100), 40u);
  // Exactly the next position.
  EXPECT_EQ(*rx.old_prefix(100, 10), 0u);
  // A frame beyond the next position would lose bytes: refused.
  auto gap = rx.old_prefix(101, 10);
  ASSERT_FALSE(gap);
  EXPECT_EQ(gap.error().code, "flow_gap");
}

TEST(FlowTx, KeepsUnacknowledgedBytesAndResendsFromThePeersPosition) {
  FlowTx tx;
  EXPECT_EQ(tx.push(bytes("hello ")), 0u);
  EXPECT_EQ(tx.push(bytes("world")), 6u);
  EXPECT_EQ(tx.next(), 11u);
  EXPECT_EQ(tx.unacked_bytes(), 11u);

  std::string resent;
  std::optional<std::uint64_t> end;
  auto collect = [&](std::uint64_t from) {
    resent.clear();
    end.reset();
    tx.resend_from(
        from,
        [&](std::uint64_t off, std::span<const std::uint8_t> b) {
          EXPECT_EQ(off, from + resent.size());
          resent.append(b.begin(), b.end());
        },
        [&](std::uint64_t at) { end = at; });
  };
  collect(3);
  EXPECT_EQ(resent, "lo world");
  EXPECT_FALSE(end);

  ASSERT_TRUE(tx.ack(6));  // first chunk delivered: released
  EXPECT_EQ(tx.unacked_bytes(), 5u);
  ASSERT_TRUE(tx.ack(4));  // an older ack changes nothing
  EXPECT_EQ(tx.acked(), 6u);
  collect(8);
  EXPECT_EQ(resent, "rld");

  EXPECT_EQ(tx.push_end(), 11u);
  EXPECT_EQ(tx.next(), 12u);
  collect(11);
  EXPECT_EQ(resent, "");
  ASSERT_TRUE(end);
  EXPECT_EQ(*end, 11u);

  auto beyond = tx.ack(13);
  ASSERT_FALSE(beyond);
  EXPECT_EQ(beyond.error().code, "flow_bad_ack");
  ASSERT_TRUE(tx.ack(12));
  EXPECT_EQ(tx.unacked_bytes(), 0u);
  collect(12);
  EXPECT_EQ(resent, "");
  EXPECT_FALSE(end) << "the END was acknowledged";
}
