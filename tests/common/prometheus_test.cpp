#include "rap/common/prometheus.h"

#include <gtest/gtest.h>

TEST(MergePrometheus, OneGroupPerFamilyAndTheExtraSamplesLabelled) {
  const std::string main_text =
      "# HELP a_total first\n# TYPE a_total counter\na_total{node=\"n\"} 1\n"
      "# TYPE b gauge\nb 2\n";
  const std::string lane_text =
      "# TYPE a_total counter\na_total{node=\"n\"} 5\n# TYPE b gauge\nb 7\n"
      "# TYPE c gauge\nc{} 3\n";
  EXPECT_EQ(rap::merge_prometheus(main_text, lane_text, "lane", "interactive"),
            "# HELP a_total first\n"
            "# TYPE a_total counter\n"
            "a_total{node=\"n\"} 1\n"
            "a_total{lane=\"interactive\",node=\"n\"} 5\n"
            "# TYPE b gauge\n"
            "b 2\n"
            "b{lane=\"interactive\"} 7\n"
            "# TYPE c gauge\n"
            "c{lane=\"interactive\"} 3\n");
}

TEST(MergePrometheus, NothingExtraLeavesTheSamplesAlone) {
  EXPECT_EQ(rap::merge_prometheus("# TYPE x gauge\nx 1\n", "", "lane", "l"),
            "# TYPE x gauge\nx 1\n");
  // Garbage lines are dropped, not passed on as broken samples.
  EXPECT_EQ(rap::merge_prometheus("{oops} 1\nnovalue\n", "", "lane", "l"), "");
}
