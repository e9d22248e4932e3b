// Chunk streams (rap/common/framing.h; the client ingress of docs/PROTOCOL.md §14.4 and the
// local stream API of §14.6): pieces without copies, split anywhere, strict ends.
#include "rap/common/framing.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace rap {
namespace {

std::string chunk(std::string_view body) {
  std::string out;
  append_frame(body, out);
  return out;
}

std::string join(const std::vector<std::string_view>& pieces) {
  std::string out;
  for (auto p : pieces) out.append(p);
  return out;
}

TEST(ChunkDecoder, PiecesAreViewsIntoTheInputAndSplitChunksComeOutInParts) {
  const std::string stream = chunk("hello ") + chunk("world") + chunk("");
  // Every split point, including inside a header, gives the same bytes.
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    ChunkDecoder d(1024);
    std::vector<std::string_view> pieces;
    const std::string_view a = std::string_view(stream).substr(0, cut);
    const std::string_view b = std::string_view(stream).substr(cut);
    ASSERT_TRUE(d.decode(a, pieces));
    for (auto p : pieces) {
      EXPECT_FALSE(p.empty());
      EXPECT_GE(p.data(), a.data());  // no copy: inside the buffer given
      EXPECT_LE(p.data() + p.size(), a.data() + a.size());
    }
    EXPECT_EQ(d.ended(), cut == stream.size()) << cut;
    ASSERT_TRUE(d.decode(b, pieces)) << cut;
    EXPECT_EQ(join(pieces), "hello world") << cut;
    EXPECT_TRUE(d.ended());
  }
}

TEST(ChunkDecoder, OversizedChunkAndBytesAfterTheEndAreErrors) {
  ChunkDecoder big(4);
  std::vector<std::string_view> pieces;
  const std::string big_in = chunk("12345");
  auto r = big.decode(big_in, pieces);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "bad_frame");
  // A failed decoder stays failed, even on good input.
  EXPECT_FALSE(big.decode(chunk("1"), pieces));

  ChunkDecoder d(1024);
  pieces.clear();
  const std::string in = chunk("ab") + chunk("") + "x";  // pieces are views into it
  auto late = d.decode(in, pieces);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, "bad_frame");
  EXPECT_EQ(join(pieces), "ab");
}

}  // namespace
}  // namespace rap
