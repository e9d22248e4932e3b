#include "rap/common/framing.h"

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

}  // namespace rap
