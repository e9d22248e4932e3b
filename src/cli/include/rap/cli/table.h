// Human-readable output of rapctl: aligned tables for lists, aligned key/value blocks for single
// objects. `--json` bypasses all of this and prints the server's JSON unchanged.
//
//   SLUG   NAME       CREATED
//   acme   Acme Corp  2026-11-23T13:40:00Z
//
// Cell text comes from the server, so control characters (terminal escape sequences) are
// replaced by '?'. Widths count UTF-8 code points, not bytes.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace rap::cli {

using json = nlohmann::json;

struct Column {
  std::string header;  // printed as is (upper case by convention)
  std::string key;     // member of each row object; "a.b" reaches into nested objects
};

// One cell: strings as is, null/missing as "-", booleans "yes"/"no", arrays of scalars joined
// with ",", arrays of objects joined by their "email", "slug", "name", "role" or "id" member
// (the first one all elements have), other values as compact JSON.
std::string cell_text(const json& row, const std::string& key);

// A header line plus one line per row of `rows` (a JSON array of objects). Columns are separated
// by two spaces; the last column is not padded. Every line ends with '\n'.
std::string render_table(const std::vector<Column>& columns, const json& rows);

// "key:  value" lines for the members of `obj` (sorted by key), keys aligned. Nested objects are
// flattened as "parent.child".
std::string render_object(const json& obj);

}  // namespace rap::cli
