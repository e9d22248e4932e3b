#include "rap/common/framing.h"

#include <algorithm>
#include <cstring>

namespace rap {

void append_frame(std::string_view body, std::string& out) {
  const auto n = static_cast<std::uint32_t>(body.size());
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out.append(body);
}

void FrameReader::feed(const void* data, std::size_t n) {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > 256 * 1024) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(static_cast<const char*>(data), n);
}

Result<std::optional<std::string_view>> FrameReader::next() {
  if (buf_.size() - pos_ < 4) return std::nullopt;
  const auto* p = reinterpret_cast<const unsigned char*>(buf_.data()) + pos_;
  const std::size_t n = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) |
                        (std::size_t{p[2]} << 8) | std::size_t{p[3]};
  if (n > max_)
    return fail("bad_frame",
                "frame of " + std::to_string(n) + " bytes exceeds " + std::to_string(max_));
  if (buf_.size() - pos_ < 4 + n) return std::nullopt;
  const std::string_view out(buf_.data() + pos_ + 4, n);
  pos_ += 4 + n;
  return std::optional<std::string_view>(out);
}

Result<void> ChunkDecoder::decode(std::string_view in, std::vector<std::string_view>& out) {
  if (failed_) return fail("bad_frame", "the chunk stream failed earlier");
  std::size_t i = 0;
  while (i < in.size()) {
    if (ended_) {
      failed_ = true;
      return fail("bad_frame", "bytes after the end of the stream");
    }
    if (remaining_ > 0) {
      const std::size_t n = std::min(remaining_, in.size() - i);
      out.push_back(in.substr(i, n));
      i += n;
      remaining_ -= n;
      continue;
    }
    const std::size_t take = std::min(hdr_.size() - hdr_len_, in.size() - i);
    std::memcpy(hdr_.data() + hdr_len_, in.data() + i, take);
    hdr_len_ += take;
    i += take;
    if (hdr_len_ < hdr_.size()) break;
    hdr_len_ = 0;
    const std::size_t n = (std::size_t{hdr_[0]} << 24) | (std::size_t{hdr_[1]} << 16) |
                          (std::size_t{hdr_[2]} << 8) | std::size_t{hdr_[3]};
    if (n > max_) {
      failed_ = true;
      return fail("bad_frame",
                  "chunk of " + std::to_string(n) + " bytes exceeds " + std::to_string(max_));
    }
    if (n == 0) ended_ = true;
    remaining_ = n;
  }
  return {};
}

}  // namespace rap
