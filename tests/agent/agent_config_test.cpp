// AgentConfig: the interactive lane's default by profile, and its validation.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "rap/agent/agent.h"

using rap::agent::AgentConfig;
using json = nlohmann::json;

namespace {

// The smallest valid configuration plus `extra`.
json config(json extra) {
  extra["memberships"] =
      json::array({{{"cluster", "main"}, {"control_url", "https://control.example:8443"}}});
  return extra;
}

}  // namespace

TEST(AgentConfig, InteractiveLaneIsOnByDefaultExceptOnThinNodes) {
  auto thick = AgentConfig::from_json(config(json::object()));
  ASSERT_TRUE(thick) << thick.error().message;
  EXPECT_TRUE(thick->interactive_lane);
  auto thin = AgentConfig::from_json(config(json{{"profile", "thin"}}));
  ASSERT_TRUE(thin) << thin.error().message;
  EXPECT_FALSE(thin->interactive_lane);
  auto thin_on =
      AgentConfig::from_json(config(json{{"profile", "thin"}, {"interactive_lane", true}}));
  ASSERT_TRUE(thin_on);
  EXPECT_TRUE(thin_on->interactive_lane);
  auto off = AgentConfig::from_json(config(json{{"interactive_lane", false}}));
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->interactive_lane);
}

TEST(AgentConfig, ABadInteractiveLaneValueIsAClearError) {
  auto bad = AgentConfig::from_json(config(json{{"interactive_lane", "yes"}}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "bad_config");
  EXPECT_NE(bad.error().message.find("interactive_lane"), std::string::npos);
}
