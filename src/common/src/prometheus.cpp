#include "rap/common/prometheus.h"

#include <map>
#include <string_view>
#include <utility>
#include <vector>

namespace rap {

std::string merge_prometheus(const std::string& base, const std::string& extra,
                             const std::string& name, const std::string& value) {
  std::vector<std::string> order;
  struct Family {
    std::string help, type, lines;
  };
  std::map<std::string, Family> families;
  auto family = [&](const std::string& f) -> Family& {
    auto it = families.find(f);
    if (it == families.end()) {
      order.push_back(f);
      it = families.emplace(f, Family{}).first;
    }
    return it->second;
  };
  const std::string label = name + "=\"" + value + "\"";
  auto add = [&](std::string_view text, bool labelled) {
    while (!text.empty()) {
      auto eol = text.find('\n');
      std::string_view line = text.substr(0, eol);
      text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
      if (line.empty()) continue;
      if (line.starts_with("# TYPE ") || line.starts_with("# HELP ")) {
        const auto rest = line.substr(7);
        auto& f = family(std::string(rest.substr(0, rest.find(' '))));
        auto& keep = line[2] == 'T' ? f.type : f.help;
        if (keep.empty()) keep = std::string(line);
        continue;
      }
      if (line.front() == '#') continue;
      const auto cut = line.find_first_of("{ ");
      if (cut == std::string_view::npos || cut == 0) continue;  // not a sample
      auto& f = family(std::string(line.substr(0, cut)));
      if (!labelled) {
        f.lines.append(line).push_back('\n');
      } else if (line[cut] == '{') {
        const bool empty_set = cut + 1 < line.size() && line[cut + 1] == '}';
        f.lines.append(line.substr(0, cut + 1)).append(label);
        if (!empty_set) f.lines.push_back(',');
        f.lines.append(line.substr(cut + 1)).push_back('\n');
      } else {
        f.lines.append(line.substr(0, cut)).append("{").append(label).append("}");
        f.lines.append(line.substr(cut)).push_back('\n');
      }
    }
  };
  add(base, false);
  add(extra, true);
  std::string out;
  for (const auto& f : order) {
    const auto& fam = families[f];
    if (!fam.help.empty()) out.append(fam.help).push_back('\n');
    if (!fam.type.empty()) out.append(fam.type).push_back('\n');
    out += fam.lines;
  }
  return out;
}

}  // namespace rap
