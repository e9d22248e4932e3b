// Standard base64 (RFC 4648 §4: alphabet A-Z a-z 0-9 + /, '=' padding), e.g. for route tickets
// in JSON (docs/PROTOCOL.md §14.3).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace rap {

std::string base64_encode(std::string_view bytes);
// Strict: padding required, no whitespace or other characters; nullopt otherwise.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace rap
