// RFC 6238 TOTP / RFC 4226 HOTP with OpenSSL's one-shot HMAC (see totp.h).
#include "rap/control/totp.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>

#include "rap/control/auth.h"

namespace rap::control::totp {

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

std::string percent_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}
}  // namespace

std::string hotp(std::span<const std::uint8_t> secret, std::uint64_t counter, int digits) {
  RAP_ASSERT(digits >= 1 && digits <= 9);
  std::array<std::uint8_t, 8> msg{};
  for (int i = 7; i >= 0; --i) {
    msg[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(counter & 0xff);
    counter >>= 8;
  }
  std::array<std::uint8_t, EVP_MAX_MD_SIZE> mac{};
  unsigned int mac_len = 0;
  const std::uint8_t empty = 0;
  const auto* r =
      HMAC(EVP_sha1(), secret.empty() ? &empty : secret.data(), static_cast<int>(secret.size()),
           msg.data(), msg.size(), mac.data(), &mac_len);
  RAP_ASSERT(r != nullptr && mac_len == 20);
  // Dynamic truncation (RFC 4226 section 5.3).
  const std::size_t off = mac[19] & 0x0f;
  const std::uint32_t bin = (static_cast<std::uint32_t>(mac[off] & 0x7f) << 24) |
                            (static_cast<std::uint32_t>(mac[off + 1]) << 16) |
                            (static_cast<std::uint32_t>(mac[off + 2]) << 8) |
                            static_cast<std::uint32_t>(mac[off + 3]);
  std::uint32_t mod = 1;
  for (int i = 0; i < digits; ++i) mod *= 10;
  std::string out = std::to_string(bin % mod);
  if (out.size() < static_cast<std::size_t>(digits))
    out.insert(0, static_cast<std::size_t>(digits) - out.size(), '0');
  return out;
}

std::int64_t step_at(std::int64_t unix_seconds) {
  return unix_seconds < 0 ? 0 : unix_seconds / kStepSeconds;
}

std::string code_at(std::span<const std::uint8_t> secret, std::int64_t unix_seconds, int digits) {
  return hotp(secret, static_cast<std::uint64_t>(step_at(unix_seconds)), digits);
}

std::optional<std::int64_t> verify(std::span<const std::uint8_t> secret, std::string_view code,
                                   std::int64_t now_unix,
                                   std::optional<std::int64_t> last_used_step) {
  if (code.size() != static_cast<std::size_t>(kDigits)) return std::nullopt;
  for (const char c : code) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  const std::int64_t now = step_at(now_unix);
  std::optional<std::int64_t> found;
  for (std::int64_t s = now - kWindow; s <= now + kWindow; ++s) {
    if (s < 0 || (last_used_step && s <= *last_used_step)) continue;
    // Every candidate is computed and compared, so timing does not reveal which one matched.
    if (constant_time_equal(hotp(secret, static_cast<std::uint64_t>(s)), code) && !found) found = s;
  }
  return found;
}

std::string base32_encode(std::span<const std::uint8_t> data) {
  std::string out;
  std::uint32_t buf = 0;
  int bits = 0;
  for (const std::uint8_t b : data) {
    buf = (buf << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out.push_back(kAlphabet[(buf >> (bits - 5)) & 0x1f]);
      bits -= 5;
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(buf << (5 - bits)) & 0x1f]);
  return out;
}

Result<std::vector<std::uint8_t>> base32_decode(std::string_view text) {
  std::vector<std::uint8_t> out;
  std::uint32_t buf = 0;
  int bits = 0;
  for (const char ch : text) {
    if (ch == '=') continue;
    int v = -1;
    if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
    if (ch >= 'a' && ch <= 'z') v = ch - 'a';
    if (ch >= '2' && ch <= '7') v = ch - '2' + 26;
    if (v < 0) return fail("invalid_base32", "not a base32 string");
    buf = (buf << 5) | static_cast<std::uint32_t>(v);
    bits += 5;
    if (bits >= 8) {
      out.push_back(static_cast<std::uint8_t>((buf >> (bits - 8)) & 0xff));
      bits -= 8;
    }
  }
  return out;
}

std::string otpauth_uri(std::string_view issuer, std::string_view account,
                        std::string_view secret_base32) {
  return "otpauth://totp/" + percent_encode(issuer) + ":" + percent_encode(account) +
         "?secret=" + std::string(secret_base32) + "&issuer=" + percent_encode(issuer) +
         "&algorithm=SHA1&digits=" + std::to_string(kDigits) +
         "&period=" + std::to_string(kStepSeconds);
}

}  // namespace rap::control::totp
