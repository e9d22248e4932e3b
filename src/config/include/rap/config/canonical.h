// Canonical JSON (RFC 8785 / JCS style) so that hashes and signatures are stable:
//
//  * objects: members sorted by key (byte order of the UTF-8 key), no duplicate keys;
//  * no insignificant whitespace;
//  * numbers: integers only (int64 or uint64 range), written in plain decimal; floats, exponents
//    and integers outside that range are refused (they have no single canonical text);
//  * strings: UTF-8; only `"`, `\` and control characters are escaped (`\b \f \n \r \t`, other
//    controls as `\u00xx`, lower-case hex); everything else, including non-ASCII, is literal.
//
// Key order differs from RFC 8785 (which sorts by UTF-16 code units) only for keys containing
// characters above U+FFFF; RAP keys are ASCII. Parsing is strict and never throws: invalid
// UTF-8, floats, duplicate keys, nesting deeper than `max_depth` and input larger than
// `max_bytes` are errors with code "malformed".
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "rap/common/result.h"

namespace rap::config {

using Json = nlohmann::json;

struct ParseLimits {
  std::size_t max_bytes = 16u * 1024 * 1024;  // one artifact on the wire
  std::size_t max_depth = 32;                 // nesting of objects and arrays (root = 1)
};

// Strict parse of untrusted text (rules above). The input need not be canonical.
Result<Json> parse_strict(std::string_view text, const ParseLimits& limits = {});

// Canonical text of `value`. Fails ("malformed") on floats, invalid UTF-8 in strings, nesting
// deeper than `max_depth`, or discarded values.
Result<std::string> canonical_encode(const Json& value, std::size_t max_depth = 32);

// SHA-256 of `bytes` as 64 lower-case hex digits.
std::string sha256_hex(std::string_view bytes);

// Lower-case hex of bytes, and its inverse (fails on odd length or non-hex digits).
std::string to_hex(const std::uint8_t* data, std::size_t size);
template <std::size_t N>
std::string to_hex(const std::array<std::uint8_t, N>& bytes) {
  return to_hex(bytes.data(), N);
}
template <std::size_t N>
bool from_hex(std::string_view hex, std::array<std::uint8_t, N>& out);
extern template bool from_hex<32>(std::string_view, std::array<std::uint8_t, 32>&);
extern template bool from_hex<64>(std::string_view, std::array<std::uint8_t, 64>&);

}  // namespace rap::config
