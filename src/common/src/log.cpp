#include "rap/common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <string>

namespace rap::log {

void init(std::string_view component, bool json, spdlog::level::level_enum level) {
  auto logger = spdlog::stderr_color_mt(std::string(component));
  if (json) {
    logger->set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","component":"%n","msg":"%v"})",
        spdlog::pattern_time_type::utc);
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %l %n %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

}  // namespace rap::log
