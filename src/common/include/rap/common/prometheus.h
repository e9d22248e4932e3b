// Prometheus text exposition helpers.
#pragma once

#include <string>

namespace rap {

// `base` followed by `extra`'s samples with the label name="value" added to each, regrouped so
// that every metric family appears once, with one HELP and TYPE line, as the exposition format
// requires
// (two fabric cores of one node export the same families: docs/PROTOCOL.md §15). Samples keep
// their order within a family; families keep the order they first appear in. Comment lines
// other than HELP and TYPE are dropped. For counters and gauges (a sample's name is its family's).
std::string merge_prometheus(const std::string& base, const std::string& extra,
                             const std::string& name, const std::string& value);

}  // namespace rap
