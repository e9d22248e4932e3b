#include "rap/cli/config.h"

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace rap::cli {

using json = nlohmann::json;

namespace {

constexpr unsigned kFileMode = 0600;
constexpr unsigned kDirMode = 0700;

}  // namespace

Result<std::string> default_config_path() {
  if (const char* p = std::getenv("RAPCTL_CONFIG"); p != nullptr && *p != '\0') return p;
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0')
    return std::string(home) + "/.config/rapctl/config.json";
  return fail("no_config_path", "neither RAPCTL_CONFIG nor HOME is set");
}

Result<Config> load_config(Env& env, const std::string& path) {
  if (!env.exists(path)) return Config{};
  auto text = env.read_file(path);
  if (!text) return tl::unexpected(text.error());
  const json j = json::parse(*text, nullptr, false);
  if (!j.is_object()) return fail("invalid_config", path + " is not a JSON object");
  Config c;
  for (auto [key, field] :
       {std::pair{"server", &c.server}, std::pair{"email", &c.email}, std::pair{"token", &c.token},
        std::pair{"expires_at", &c.expires_at}, std::pair{"ca_file", &c.ca_file}}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_string())
      return fail("invalid_config", path + ": \"" + key + "\" must be a string");
    *field = j[key].get<std::string>();
  }
  if (j.contains("insecure")) {
    if (!j["insecure"].is_boolean())
      return fail("invalid_config", path + ": \"insecure\" must be true or false");
    c.insecure = j["insecure"].get<bool>();
  }
  return c;
}

Result<void> save_config(Env& env, const std::string& path, const Config& c) {
  json j = json::object();
  auto put = [&j](const char* key, const std::string& v) {
    if (!v.empty()) j[key] = v;
  };
  put("server", c.server);
  put("email", c.email);
  put("token", c.token);
  put("expires_at", c.expires_at);
  put("ca_file", c.ca_file);
  if (c.insecure) j["insecure"] = true;
  std::string text;
  try {
    text = j.dump(2) + "\n";
  } catch (const json::exception&) {
    return fail("invalid_config", "configuration values must be valid UTF-8");
  }
  const std::string dir = std::filesystem::path(path).parent_path().string();
  // Only create a missing directory: never change the mode of an existing one (e.g. /tmp).
  if (!dir.empty() && !env.exists(dir)) {
    if (auto r = env.make_dirs(dir, kDirMode); !r) return r;
  }
  return env.write_file_atomic(path, text, kFileMode);
}

}  // namespace rap::cli
