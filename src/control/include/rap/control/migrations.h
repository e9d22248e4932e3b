// Versioned, forward-only schema migrations embedded in the binary.
//
// Each migration runs in its own transaction that first takes
// pg_advisory_xact_lock(kMigrationLockKey), then (re)checks schema_migrations, applies the SQL and
// records (version, name, applied_at). Several instances starting at once therefore serialize on
// the lock and every version is applied exactly once. A database that is ahead of this binary
// (unknown higher versions recorded) is left alone: migrations never go backwards.
#pragma once

#include <cstdint>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "rap/common/result.h"

namespace rap::control {

inline constexpr std::int64_t kMigrationLockKey = 0x7261705f6d696721;  // "rap_mig!"

struct Migration {
  int version;
  const char* name;
  const char* sql;
};

// The embedded migrations, ascending by version.
const std::vector<Migration>& migrations();

struct MigrationReport {
  int applied = 0;          // migrations applied by this call
  int current_version = 0;  // highest version recorded after this call
};

// Applies every pending migration. Never throws.
Result<MigrationReport> migrate(pqxx::connection& conn);
Result<MigrationReport> migrate(const std::string& conninfo);

}  // namespace rap::control
