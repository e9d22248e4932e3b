// Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP): HMAC-SHA1, 30-second steps,
// 6 digits, accepted within +-1 step of the server clock. Secrets travel as RFC 4648 base32
// (no padding), the form authenticator apps expect in otpauth:// URIs.
//
// Replay protection is the caller's job: verify() takes the last step accepted for the user and
// accepts only later steps; the caller then stores the returned step atomically (see
// routes_account.cpp, which does `UPDATE ... WHERE last_used_step < $step`).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rap/common/result.h"

namespace rap::control::totp {

inline constexpr std::int64_t kStepSeconds = 30;
inline constexpr int kDigits = 6;
inline constexpr std::int64_t kWindow = 1;       // steps accepted either side of "now"
inline constexpr std::size_t kSecretBytes = 20;  // 160 bits, as RFC 4226 recommends

// RFC 4226 HOTP value of `counter`, zero-padded to `digits` (1..9) decimal digits.
std::string hotp(std::span<const std::uint8_t> secret, std::uint64_t counter, int digits = kDigits);

// The TOTP step containing `unix_seconds` (floor(t / 30); negative times give step 0).
std::int64_t step_at(std::int64_t unix_seconds);

// Code for the step containing `unix_seconds`.
std::string code_at(std::span<const std::uint8_t> secret, std::int64_t unix_seconds,
                    int digits = kDigits);

// Checks `code` against the steps step_at(now)-kWindow .. step_at(now)+kWindow, skipping every
// step <= `last_used_step`. Returns the matching step, or nullopt (wrong, malformed, or
// replayed code). The comparison is constant-time per candidate.
std::optional<std::int64_t> verify(std::span<const std::uint8_t> secret, std::string_view code,
                                   std::int64_t now_unix,
                                   std::optional<std::int64_t> last_used_step);

// RFC 4648 base32 (A-Z2-7), without '=' padding.
std::string base32_encode(std::span<const std::uint8_t> data);
// Accepts upper or lower case, ignores '=' padding; error "invalid_base32" otherwise.
Result<std::vector<std::uint8_t>> base32_decode(std::string_view text);

// otpauth://totp/<issuer>:<account>?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30
// (issuer and account are percent-encoded).
std::string otpauth_uri(std::string_view issuer, std::string_view account,
                        std::string_view secret_base32);

}  // namespace rap::control::totp
