// PostgresFixture: a throwaway PostgreSQL cluster for one test (or suite).
//
// initdb (-A trust -U postgres) into a TempDir owned by the `postgres` user (when running as
// root; otherwise as the current user), then runs the postmaster as a direct child process
// listening only on a unix socket in that directory (-k DIR -c listen_addresses='',
// fsync=off). Destruction: `pg_ctl stop -m immediate`, SIGKILL of the process group as a
// fallback, then the directory is removed. Because the postmaster is our child with
// PDEATHSIG, it also dies if the test process crashes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "rap/common/result.h"
#include "rap/testing/subprocess.h"
#include "rap/testing/temp_dir.h"

namespace rap::testing {

struct PostgresOptions {
  // Extra `-c name=value` server settings.
  std::vector<std::pair<std::string, std::string>> settings;
  std::chrono::milliseconds start_timeout{60000};
  // Overrides the detection of /usr/lib/postgresql/<highest>/bin (also env RAP_PG_BINDIR).
  std::filesystem::path bin_dir;
};

class PostgresFixture {
 public:
  static Result<std::unique_ptr<PostgresFixture>> start(const PostgresOptions& opts = {});
  ~PostgresFixture();
  PostgresFixture(const PostgresFixture&) = delete;
  PostgresFixture& operator=(const PostgresFixture&) = delete;

  // Directory holding the unix socket (.s.PGSQL.5432); also the fixture's root dir.
  const std::filesystem::path& socket_dir() const { return dir_.path(); }
  const std::filesystem::path& data_dir() const { return data_dir_; }
  std::filesystem::path log_file() const { return dir_.path() / "postgres.log"; }
  // "host=DIR port=5432 dbname=DB user=postgres"
  std::string conninfo(const std::string& dbname = "postgres") const;
  // Postmaster pid (a child of this process).
  pid_t postmaster_pid() const { return postmaster_ ? postmaster_->pid() : -1; }
  const std::filesystem::path& bin_dir() const { return bin_dir_; }

  // CREATE DATABASE <name>; returns conninfo(name).
  Result<std::string> create_database(const std::string& name);
  // Runs SQL (possibly several statements) on `dbname`; error carries the server message.
  Result<void> exec(const std::string& sql, const std::string& dbname = "postgres");

  // Immediate stop now (the destructor does this too); idempotent.
  void stop();

  // Highest /usr/lib/postgresql/<N>/bin containing initdb.
  static Result<std::filesystem::path> find_bin_dir();

 private:
  PostgresFixture(TempDir dir) : dir_(std::move(dir)) {}
  TempDir dir_;
  std::filesystem::path data_dir_;
  std::filesystem::path bin_dir_;
  std::string run_as_;  // "" = current user
  std::unique_ptr<Subprocess> postmaster_;
  int port_ = 5432;
};

}  // namespace rap::testing
