// Structured logging: one line per event, `key=value` pairs after a fixed message, through
// spdlog. Never log secrets (tokens, keys, passwords): pass their fingerprints instead.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace rap::log {

// Configures the process-wide default logger: `component` appears on each line; `json` switches
// to one JSON object per line for log shippers.
void init(std::string_view component, bool json = false,
          spdlog::level::level_enum level = spdlog::level::info);

}  // namespace rap::log
