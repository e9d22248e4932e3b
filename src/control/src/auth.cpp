#include "rap/control/auth.h"

#include <sodium.h>

#include <array>
#include <cstdint>
#include <mutex>
#include <span>

#include "rap/crypto/keys.h"

namespace rap::control {

namespace {

void ensure_sodium() {
  static std::once_flag once;
  std::call_once(once, [] { RAP_ASSERT(sodium_init() >= 0); });
}

const std::string& dummy_hash() {
  static const std::string h = [] {
    auto r = hash_password("rap-control-dummy-password");
    return r ? *r : std::string();
  }();
  return h;
}

}  // namespace

Result<std::string> hash_password(std::string_view password) {
  ensure_sodium();
  std::array<char, crypto_pwhash_STRBYTES> out{};
  if (crypto_pwhash_str(out.data(), password.data(), password.size(),
                        crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
    return fail("internal", "password hashing failed (out of memory)");
  }
  return std::string(out.data());
}

bool verify_password(const std::string& hash, std::string_view password) {
  ensure_sodium();
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return false;
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

void dummy_password_verify(std::string_view password) {
  (void)verify_password(dummy_hash(), password);
}

std::string random_token_hex(Random& rng) {
  std::array<std::uint8_t, 32> raw{};
  rng.fill(raw);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (auto b : raw) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  sodium_memzero(raw.data(), raw.size());
  return out;
}

std::string token_sha256(std::string_view token) {
  return crypto::sha256_hex(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(token.data()), token.size()));
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  ensure_sodium();
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool valid_slug(std::string_view slug) {
  if (slug.size() < 2 || slug.size() > 63) return false;
  for (char c : slug) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

bool valid_email(std::string_view email) {
  if (email.size() < 5 || email.size() > 254) return false;
  const auto at = email.find('@');
  if (at == std::string_view::npos || at == 0 || email.find('@', at + 1) != std::string_view::npos)
    return false;
  for (char c : email) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '<' || c == '>' || c == '"' || c == '\\' || c == ',' ||
        c == ';')
      return false;
  }
  const std::string_view domain = email.substr(at + 1);
  const auto dot = domain.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 >= domain.size()) return false;
  if (domain.find("..") != std::string_view::npos || domain.front() == '.') return false;
  return true;
}

bool valid_password(std::string_view password) {
  return password.size() >= 12 && password.size() <= 1024;
}

bool valid_token_shape(std::string_view token) {
  if (token.size() != 64) return false;
  for (char c : token) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace rap::control
