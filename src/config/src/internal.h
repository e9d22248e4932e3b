// Private helpers shared by the rap_config sources.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "rap/common/result.h"
#include "rap/config/canonical.h"
#include "rap/config/errors.h"

namespace rap::config::detail {

// Concatenation without temporaries (messages built inside loops).
inline std::string cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (auto p : parts) out += p;
  return out;
}

inline tl::unexpected<Error> malformed(std::string message) {
  return fail(errc::malformed, std::move(message));
}

// [A-Za-z0-9._-], 1..max bytes.
inline bool valid_id(std::string_view s, std::size_t max = 128) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

inline bool is_hex(std::string_view s, std::size_t len) {
  if (s.size() != len) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// `obj` is an object whose members are exactly within `allowed`.
inline Result<void> only_members(const Json& obj, std::initializer_list<std::string_view> allowed,
                                 std::string_view what) {
  if (!obj.is_object()) return malformed(std::string(what) + " is not an object");
  for (const auto& [k, v] : obj.items()) {
    bool known = false;
    for (auto a : allowed) known = known || (a == k);
    if (!known) return malformed(std::string(what) + " has unknown member \"" + k + "\"");
  }
  return {};
}

inline Result<std::string> get_string(const Json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || !it->is_string()) {
    return malformed(std::string("member \"") + name + "\" missing or not a string");
  }
  return it->get<std::string>();
}

inline Result<std::uint64_t> get_u64(const Json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || !it->is_number_integer() ||
      (it->is_number_integer() && !it->is_number_unsigned() && it->get<std::int64_t>() < 0)) {
    return malformed(std::string("member \"") + name + "\" missing or not a non-negative integer");
  }
  return it->get<std::uint64_t>();
}

inline Result<std::int64_t> get_i64(const Json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || !it->is_number_integer() ||
      (it->is_number_unsigned() && it->get<std::uint64_t>() > INT64_MAX)) {
    return malformed(std::string("member \"") + name + "\" missing or not an integer");
  }
  return it->get<std::int64_t>();
}

}  // namespace rap::config::detail
