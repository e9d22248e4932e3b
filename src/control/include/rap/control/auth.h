// Credential primitives of the control plane. Secrets (passwords, tokens) are never stored or
// logged: passwords are kept as Argon2id strings (libsodium crypto_pwhash_str, INTERACTIVE
// limits), tokens only as their SHA-256 hex.
#pragma once

#include <string>
#include <string_view>

#include "rap/common/random.h"
#include "rap/common/result.h"

namespace rap::control {

// Argon2id hash string (self-describing, salted). Error "internal" if out of memory.
Result<std::string> hash_password(std::string_view password);
// Constant-time verification against a hash string from hash_password.
bool verify_password(const std::string& hash, std::string_view password);
// Burns about the same CPU/memory as a real verification (used when the user does not exist).
void dummy_password_verify(std::string_view password);

// 32 random bytes as 64 lower-case hex characters.
std::string random_token_hex(Random& rng);
// SHA-256 of the token text, lower-case hex: the only form in which tokens are stored.
std::string token_sha256(std::string_view token);
// Constant-time equality of two strings of equal length (false when lengths differ).
bool constant_time_equal(std::string_view a, std::string_view b);

// Input validation shared by the API.
bool valid_slug(std::string_view slug);          // [a-z0-9-]{2,63}
bool valid_email(std::string_view email);        // local@domain.tld shape, <= 254 bytes
bool valid_password(std::string_view password);  // 12..1024 bytes
bool valid_token_shape(std::string_view token);  // 64 lower-case hex chars

}  // namespace rap::control
