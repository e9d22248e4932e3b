// EmbeddedServices: the private PostgreSQL and Redis that rap-control runs as child processes
// when it is started without --database-url (single-host installs, demos, evaluation).
//
// Layout under the data directory (printed at start):
//   <data>/postgres/         0700, owned by `postgres` when we run as root (initdb and postgres
//                            refuse to run as root); unix socket .s.PGSQL.5432, postgres.log
//   <data>/postgres/data/    PGDATA; initdb'ed once, reused on every later start
//   <data>/redis/            0700; redis.sock (no TCP listener), redis.log; no persistence:
//                            Redis holds live state only (see live_state.h)
// Neither server listens on TCP. PostgreSQL trusts local connections; only root/postgres can
// reach its socket directory. fsync stays on: this is the durable state of the control plane.
//
// Supervision: the children run in their own process groups (a terminal's Ctrl-C reaches only
// rap-control, which stops them in order) with a parent-death signal (they stop if rap-control
// is killed). check() reports a child that exited; the caller logs it and exits non-zero.
// stop() (also the destructor): Redis SIGTERM, PostgreSQL SIGINT (fast shutdown), each bounded,
// then SIGKILL of the process group.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <optional>
#include <string>

#include "rap/common/env.h"
#include "rap/common/result.h"

namespace rap::control {

struct EmbeddedOptions {
  std::string data_dir;      // root directory (created if missing); absolute or relative
  bool start_redis = true;   // false: an external Redis is used (--redis-url)
  std::string pg_bin_dir;    // "" = highest /usr/lib/postgresql/<N>/bin (or env RAP_PG_BINDIR)
  std::string redis_server;  // "" = redis-server from PATH (+ /usr/bin, /usr/sbin)
  std::string database = "rap";
  std::chrono::milliseconds start_timeout{120000};  // initdb + start, each
  std::chrono::milliseconds stop_timeout{30000};    // per child before SIGKILL
};

class EmbeddedServices {
 public:
  // `env` (filesystem) must outlive this object.
  EmbeddedServices(EmbeddedOptions opts, Env& env);
  ~EmbeddedServices();
  EmbeddedServices(const EmbeddedServices&) = delete;
  EmbeddedServices& operator=(const EmbeddedServices&) = delete;

  // Prepares the directories, runs initdb on first use, starts PostgreSQL (and Redis), waits
  // until they answer and creates the database if missing. On failure nothing is left running.
  // Call from the thread that lives as long as the children (the parent-death signal is tied to
  // the spawning thread): the main thread.
  Result<void> start();
  // Stops the children (idempotent).
  void stop();
  // Non-blocking: an error naming the child if one has exited since start().
  Result<void> check();
  // As root: makes the data directory searchable (0711) again for the postgres user, e.g. after
  // other start-up code created files in it with make_dirs(data_dir, 0700). No-op otherwise.
  void keep_reachable();

  // libpq conninfo of the embedded database ("host=<socket dir> port=5432 dbname=rap ...").
  std::string database_url() const;
  // unix://<data>/redis/redis.sock ("" when start_redis is false).
  std::string redis_url() const;
  std::string data_dir() const { return root_; }
  std::string postgres_data_dir() const { return root_ + "/postgres/data"; }
  pid_t postgres_pid() const { return pg_.pid; }
  pid_t redis_pid() const { return redis_.pid; }
  // True when start() ran initdb (first start), false when it reused an existing cluster.
  bool initialized_now() const { return initialized_now_; }

 private:
  struct Child {
    std::string name;
    pid_t pid = -1;
    int stop_signal = SIGTERM;
    std::optional<int> status;  // once reaped
  };
  Result<void> start_postgres();
  Result<void> start_redis();
  Result<void> create_database();
  void stop_child(Child& c);
  bool reap(Child& c, bool block);

  EmbeddedOptions opts_;
  Env& env_;
  std::string root_;  // absolute data dir
  std::string pg_dir_;
  std::string redis_dir_;
  std::string pg_bin_;
  std::string run_as_;  // "postgres" when root, else ""
  bool initialized_now_ = false;
  Child pg_{"postgres", -1, SIGINT, std::nullopt};
  Child redis_{"redis", -1, SIGTERM, std::nullopt};
};

}  // namespace rap::control
