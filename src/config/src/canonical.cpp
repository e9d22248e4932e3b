#include "rap/config/canonical.h"

#include <span>
#include <vector>

#include "rap/config/errors.h"
#include "rap/crypto/keys.h"

namespace rap::config {
namespace {

// Builds the DOM from SAX events, refusing what canonical JSON cannot represent.
class StrictBuilder final : public nlohmann::json_sax<Json> {
 public:
  explicit StrictBuilder(std::size_t max_depth) : max_depth_(max_depth) {}

  bool null() override { return put(Json(nullptr)) != nullptr; }
  bool boolean(bool v) override { return put(Json(v)) != nullptr; }
  bool number_integer(number_integer_t v) override { return put(Json(v)) != nullptr; }
  bool number_unsigned(number_unsigned_t v) override { return put(Json(v)) != nullptr; }
  bool number_float(number_float_t /*v*/, const string_t& text) override {
    return refuse("non-integer number " + text.substr(0, 32) + " (integers only)");
  }
  bool string(string_t& v) override { return put(Json(std::move(v))) != nullptr; }
  bool binary(binary_t& /*v*/) override { return refuse("binary value"); }
  bool start_object(std::size_t /*n*/) override { return open(Json::object()); }
  bool key(string_t& k) override {
    Json& obj = *stack_.back();
    if (obj.contains(k)) return refuse("duplicate key \"" + k.substr(0, 64) + "\"");
    key_target_ = &obj[k];
    return true;
  }
  bool end_object() override {
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t /*n*/) override { return open(Json::array()); }
  bool end_array() override {
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) override {
    if (error_.empty()) error_ = ex.what();
    return false;
  }

  Json take() { return std::move(root_); }
  const std::string& error() const { return error_; }

 private:
  Json* put(Json v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Json& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    *key_target_ = std::move(v);
    return key_target_;
  }
  bool open(Json container) {
    if (stack_.size() >= max_depth_) return refuse("nesting deeper than the limit");
    Json* p = put(std::move(container));
    stack_.push_back(p);
    return true;
  }
  bool refuse(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
  }

  std::size_t max_depth_;
  Json root_;
  std::vector<Json*> stack_;
  Json* key_target_ = nullptr;
  std::string error_;
};

Result<void> check_encodable(const Json& v, std::size_t depth, std::size_t max_depth) {
  switch (v.type()) {
    case Json::value_t::object:
    case Json::value_t::array:
      if (depth >= max_depth) return fail(errc::malformed, "nesting deeper than the limit");
      for (const auto& child : v) {
        auto r = check_encodable(child, depth + 1, max_depth);
        if (!r) return r;
      }
      return {};
    case Json::value_t::number_float:
      return fail(errc::malformed, "non-integer number (integers only)");
    case Json::value_t::binary:
    case Json::value_t::discarded:
      return fail(errc::malformed, "value has no JSON text");
    default:
      return {};
  }
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case is not canonical
}

}  // namespace

Result<Json> parse_strict(std::string_view text, const ParseLimits& limits) {
  if (text.size() > limits.max_bytes) return fail(errc::malformed, "input larger than the limit");
  StrictBuilder builder(limits.max_depth);
  bool ok = false;
  try {
    ok = Json::sax_parse(text.begin(), text.end(), &builder, Json::input_format_t::json, true);
  } catch (const std::exception& e) {  // allocation failure; the parser itself reports via SAX
    return fail(errc::malformed, std::string("JSON parse failed: ") + e.what());
  }
  if (!ok) {
    return fail(errc::malformed,
                "invalid JSON: " + (builder.error().empty() ? "parse error" : builder.error()));
  }
  return builder.take();
}

Result<std::string> canonical_encode(const Json& value, std::size_t max_depth) {
  auto ok = check_encodable(value, 0, max_depth);
  if (!ok) return tl::unexpected(ok.error());
  try {
    return value.dump(-1, ' ', false, Json::error_handler_t::strict);
  } catch (const Json::exception& e) {  // invalid UTF-8 in a string built by the caller
    return fail(errc::malformed, std::string("not encodable: ") + e.what());
  }
}

std::string sha256_hex(std::string_view bytes) {
  return crypto::sha256_hex(
      std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
}

std::string to_hex(const std::uint8_t* data, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(size * 2, '0');
  for (std::size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0x0f];
  }
  return out;
}

template <std::size_t N>
bool from_hex(std::string_view hex, std::array<std::uint8_t, N>& out) {
  if (hex.size() != 2 * N) return false;
  for (std::size_t i = 0; i < N; ++i) {
    const int hi = hex_digit(hex[2 * i]);
    const int lo = hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>((hi << 4) | lo);
  }
  return true;
}
template bool from_hex<32>(std::string_view, std::array<std::uint8_t, 32>&);
template bool from_hex<64>(std::string_view, std::array<std::uint8_t, 64>&);

}  // namespace rap::config
