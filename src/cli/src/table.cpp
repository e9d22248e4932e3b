#include "rap/cli/table.h"

#include <algorithm>
#include <cstddef>

namespace rap::cli {

namespace {

// Replaces C0/C1 control characters and DEL so that server data cannot drive the terminal.
std::string sanitize(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      out.push_back('?');
    } else if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(s[i + 1]) <= 0x9f) {
      out.push_back('?');  // U+0080..U+009F (C1 controls, e.g. CSI)
      ++i;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Display width approximated by the number of UTF-8 code points.
std::size_t width(const std::string& s) {
  return static_cast<std::size_t>(std::count_if(s.begin(), s.end(), [](char ch) {
    return (static_cast<unsigned char>(ch) & 0xc0U) != 0x80U;
  }));
}

const json* lookup(const json& row, const std::string& key) {
  const json* cur = &row;
  std::size_t start = 0;
  while (true) {
    const auto dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? dot : dot - start);
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(part);
    if (it == cur->end()) return nullptr;
    cur = &*it;
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

// For an array of objects that all carry one of these string members: that member.
const char* label_member(const json& arr) {
  for (const char* key : {"email", "slug", "name", "role", "id"}) {
    if (std::all_of(arr.begin(), arr.end(), [key](const json& e) {
          return e.is_object() && e.contains(key) && e[key].is_string();
        }))
      return key;
  }
  return nullptr;
}

std::string scalar_text(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_array() && !v.empty() && v.front().is_object()) {
    if (const char* key = label_member(v)) {
      std::string out;
      for (const auto& e : v) out += (out.empty() ? "" : ",") + e[key].get<std::string>();
      return out;
    }
  }
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (v.is_array() && std::all_of(v.begin(), v.end(),
                                  [](const json& e) { return e.is_primitive() && !e.is_null(); })) {
    if (v.empty()) return "-";
    std::string out;
    for (const auto& e : v) {
      if (!out.empty()) out += ",";
      out += e.is_string() ? e.get<std::string>() : e.dump();
    }
    return out;
  }
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

void pad_to(std::string& line, std::size_t target) {
  const std::size_t w = width(line);
  if (w < target) line.append(target - w, ' ');
}

void flatten(const json& obj, const std::string& prefix,
             std::vector<std::pair<std::string, std::string>>& out) {
  for (const auto& [k, v] : obj.items()) {
    std::string key = prefix;
    if (!key.empty()) key += ".";
    key += k;
    if (v.is_object() && !v.empty()) {
      flatten(v, key, out);
    } else {
      out.emplace_back(sanitize(key), sanitize(scalar_text(v)));
    }
  }
}

}  // namespace

std::string cell_text(const json& row, const std::string& key) {
  const json* v = lookup(row, key);
  return sanitize(v == nullptr ? "-" : scalar_text(*v));
}

std::string render_table(const std::vector<Column>& columns, const json& rows) {
  std::vector<std::vector<std::string>> cells;
  cells.emplace_back();
  for (const auto& c : columns) cells.back().push_back(c.header);
  if (rows.is_array()) {
    for (const auto& row : rows) {
      cells.emplace_back();
      for (const auto& c : columns) cells.back().push_back(cell_text(row, c.key));
    }
  }
  std::vector<std::size_t> widths(columns.size(), 0);
  for (const auto& line : cells)
    for (std::size_t i = 0; i < line.size(); ++i) widths[i] = std::max(widths[i], width(line[i]));
  std::string out;
  for (const auto& line : cells) {
    std::string text;
    for (std::size_t i = 0; i < line.size(); ++i) {
      text += line[i];
      if (i + 1 < line.size()) {
        std::size_t target = 0;
        for (std::size_t k = 0; k <= i; ++k) target += widths[k] + 2;
        pad_to(text, target);
      }
    }
    out += text + "\n";
  }
  return out;
}

std::string render_object(const json& obj) {
  std::vector<std::pair<std::string, std::string>> lines;
  if (obj.is_object()) flatten(obj, "", lines);
  std::size_t w = 0;
  for (const auto& [k, v] : lines) w = std::max(w, width(k) + 1);
  std::string out;
  for (const auto& [k, v] : lines) {
    std::string line = k + ":";
    pad_to(line, w + 2);
    out += line + v + "\n";
  }
  return out;
}

}  // namespace rap::cli
