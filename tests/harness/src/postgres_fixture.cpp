#include "rap/testing/postgres_fixture.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

namespace rap::testing {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::string tail(const std::string& s, size_t n = 3000) {
  return s.size() > n ? s.substr(s.size() - n) : s;
}

std::string quote_ident(const std::string& name) {
  std::string q = "\"";
  for (char c : name) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + "\"";
}

}  // namespace

Result<fs::path> PostgresFixture::find_bin_dir() {
  if (const char* env = std::getenv("RAP_PG_BINDIR"); env && *env) {
    fs::path p(env);
    if (fs::exists(p / "initdb")) return p;
    return fail("postgres_not_found", "RAP_PG_BINDIR=" + p.string() + " has no initdb");
  }
  const fs::path root = "/usr/lib/postgresql";
  std::error_code ec;
  long best = -1;
  fs::path best_dir;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() ||
        !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    const long v = std::strtol(name.c_str(), nullptr, 10);
    const fs::path bin = e.path() / "bin";
    if (v > best && fs::exists(bin / "initdb") && fs::exists(bin / "postgres")) {
      best = v;
      best_dir = bin;
    }
  }
  if (best < 0) {
    return fail("postgres_not_found",
                "no /usr/lib/postgresql/<version>/bin/initdb found (apt-get install postgresql)");
  }
  return best_dir;
}

Result<std::unique_ptr<PostgresFixture>> PostgresFixture::start(const PostgresOptions& opts) {
  fs::path bin = opts.bin_dir;
  if (bin.empty()) {
    auto b = find_bin_dir();
    if (!b) return tl::unexpected(b.error());
    bin = *b;
  }
  TempDir::remove_stale("rap-pg-");
  auto dir = TempDir::create_owned("rap-pg-");
  if (!dir) return tl::unexpected(dir.error());
  std::unique_ptr<PostgresFixture> pg(new PostgresFixture(std::move(*dir)));
  pg->bin_dir_ = bin;
  pg->data_dir_ = pg->dir_.path() / "data";
  if (::geteuid() == 0) {
    // initdb and postgres refuse to run as root.
    pg->run_as_ = "postgres";
    if (auto r = pg->dir_.chown_to("postgres"); !r) {
      return fail(r.error().code, r.error().message + " (is the postgresql package installed?)");
    }
  }
  std::optional<std::string> user;
  if (!pg->run_as_.empty()) user = pg->run_as_;

  RunOptions ro;
  ro.user = user;
  ro.cwd = pg->dir_.path();
  ro.timeout = std::chrono::seconds(120);
  ro.env = {{"LC_ALL", "C"}, {"LANG", "C"}};
  auto init = run_command({(bin / "initdb").string(), "-D", pg->data_dir_.string(), "-A", "trust",
                           "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"},
                          ro);
  if (!init.ok()) {
    return fail("initdb_failed",
                "initdb (exit " + std::to_string(init.exit_code) + "):\n" + tail(init.output));
  }

  std::vector<std::string> argv = {
      (bin / "postgres").string(), "-D", pg->data_dir_.string(),  "-k", pg->dir_.str(), "-p",
      std::to_string(pg->port_),   "-c", "listen_addresses=",     "-c", "fsync=off",    "-c",
      "full_page_writes=off",      "-c", "synchronous_commit=off"};
  for (const auto& [k, v] : opts.settings) {
    argv.push_back("-c");
    argv.push_back(k + "=" + v);
  }
  SubprocessOptions so;
  so.user = user;
  so.cwd = pg->dir_.path();
  so.output_file = pg->log_file();
  so.env = {{"LC_ALL", "C"}, {"LANG", "C"}};
  so.term_grace = std::chrono::milliseconds(5000);
  auto sp = Subprocess::spawn(argv, so);
  if (!sp) return tl::unexpected(sp.error());
  pg->postmaster_ = std::make_unique<Subprocess>(std::move(*sp));

  const std::string ci = pg->conninfo() + " connect_timeout=2";
  const auto deadline = Clock::now() + opts.start_timeout;
  for (;;) {
    if (PQping(ci.c_str()) == PQPING_OK) break;
    if (!pg->postmaster_->running()) {
      return fail("postgres_start_failed",
                  "postgres exited with status " +
                      std::to_string(pg->postmaster_->exit_status().value_or(-1)) + "; log:\n" +
                      tail(pg->postmaster_->output()));
    }
    if (Clock::now() >= deadline) {
      return fail("timeout", "postgres did not accept connections on " + pg->dir_.str() +
                                 " within " + std::to_string(opts.start_timeout.count()) +
                                 " ms; log:\n" + tail(pg->postmaster_->output()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pg;
}

PostgresFixture::~PostgresFixture() {
  stop();
}

void PostgresFixture::stop() {
  if (!postmaster_) return;
  if (postmaster_->running()) {
    RunOptions ro;
    if (!run_as_.empty()) ro.user = run_as_;
    ro.cwd = dir_.path();
    ro.timeout = std::chrono::seconds(20);
    auto r = run_command({(bin_dir_ / "pg_ctl").string(), "stop", "-D", data_dir_.string(), "-m",
                          "immediate", "-w", "-t", "15"},
                         ro);
    if (!r.ok()) {
      std::fprintf(stderr,
                   "rap::testing::PostgresFixture: pg_ctl stop failed (exit %d), killing: %s\n",
                   r.exit_code, tail(r.output, 500).c_str());
    }
    postmaster_->wait_exit(std::chrono::seconds(10));
  }
  postmaster_->terminate(std::chrono::milliseconds(500));  // SIGKILLs leftovers of the group
  postmaster_.reset();
}

std::string PostgresFixture::conninfo(const std::string& dbname) const {
  return "host=" + dir_.str() + " port=" + std::to_string(port_) + " dbname=" + dbname +
         " user=postgres";
}

Result<void> PostgresFixture::exec(const std::string& sql, const std::string& dbname) {
  PGconn* conn = PQconnectdb(conninfo(dbname).c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn);
    PQfinish(conn);
    return fail("connect_failed", "connect to " + dbname + ": " + msg);
  }
  PGresult* res = PQexec(conn, sql.c_str());
  const ExecStatusType st = PQresultStatus(res);
  Result<void> out;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    out = fail("sql_error", std::string(PQresultErrorMessage(res)) + " (sql: " + sql + ")");
  }
  PQclear(res);
  PQfinish(conn);
  return out;
}

Result<std::string> PostgresFixture::create_database(const std::string& name) {
  if (auto r = exec("CREATE DATABASE " + quote_ident(name)); !r) return tl::unexpected(r.error());
  return conninfo(name);
}

}  // namespace rap::testing
