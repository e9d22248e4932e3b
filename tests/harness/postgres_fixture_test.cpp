// PostgresFixture: a real cluster per test, used through libpq.
#include "rap/testing/postgres_fixture.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "rap/testing/gtest_support.h"
#include "rap/testing/subprocess.h"

namespace fs = std::filesystem;
using rap::testing::PostgresFixture;

namespace {

struct PgConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using Conn = std::unique_ptr<PGconn, PgConnCloser>;

struct PgResultCloser {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultCloser>;

// Runs `sql`, returns the status; the error message goes to *err.
ExecStatusType run(PGconn* c, const std::string& sql, std::string* err = nullptr) {
  PgResult r(PQexec(c, sql.c_str()));
  if (err) *err = PQresultErrorMessage(r.get());
  return PQresultStatus(r.get());
}

std::vector<std::pair<int, std::string>> rows(PGconn* c, const std::string& sql) {
  PgResult r(PQexec(c, sql.c_str()));
  std::vector<std::pair<int, std::string>> out;
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) return out;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    out.emplace_back(std::stoi(PQgetvalue(r.get(), i, 0)), PQgetvalue(r.get(), i, 1));
  }
  return out;
}

}  // namespace

TEST(PostgresFixtureTest, CommitRollbackAndCleanup) {
  fs::path dir;
  pid_t postmaster = -1;
  {
    RAP_ASSIGN_OR_FAIL(auto pg, PostgresFixture::start());
    dir = pg->socket_dir();
    postmaster = pg->postmaster_pid();
    ASSERT_GT(postmaster, 0);
    EXPECT_TRUE(rap::testing::process_alive(postmaster));
    EXPECT_TRUE(fs::exists(dir / ".s.PGSQL.5432"));
    EXPECT_NE(pg->conninfo().find("host=" + dir.string()), std::string::npos);

    Conn c(PQconnectdb(pg->conninfo().c_str()));
    ASSERT_EQ(PQstatus(c.get()), CONNECTION_OK) << PQerrorMessage(c.get());
    // Unix socket only: no TCP listener.
    EXPECT_EQ(std::string(PQhost(c.get())), dir.string());

    std::string err;
    ASSERT_EQ(run(c.get(), "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)", &err),
              PGRES_COMMAND_OK)
        << err;

    // Committed transaction.
    ASSERT_EQ(run(c.get(), "BEGIN"), PGRES_COMMAND_OK);
    ASSERT_EQ(run(c.get(), "INSERT INTO items VALUES (1, 'one'), (2, 'two')", &err),
              PGRES_COMMAND_OK)
        << err;
    ASSERT_EQ(run(c.get(), "COMMIT"), PGRES_COMMAND_OK);

    // Rolled back transaction.
    ASSERT_EQ(run(c.get(), "BEGIN"), PGRES_COMMAND_OK);
    ASSERT_EQ(run(c.get(), "INSERT INTO items VALUES (3, 'three')", &err), PGRES_COMMAND_OK) << err;
    ASSERT_EQ(run(c.get(), "ROLLBACK"), PGRES_COMMAND_OK);

    // A failing statement aborts its transaction: nothing of it survives.
    ASSERT_EQ(run(c.get(), "BEGIN"), PGRES_COMMAND_OK);
    ASSERT_EQ(run(c.get(), "INSERT INTO items VALUES (4, 'four')"), PGRES_COMMAND_OK);
    EXPECT_EQ(run(c.get(), "INSERT INTO items VALUES (1, 'dup')", &err), PGRES_FATAL_ERROR);
    EXPECT_NE(err.find("duplicate key"), std::string::npos) << err;
    ASSERT_EQ(run(c.get(), "COMMIT"), PGRES_COMMAND_OK);  // turns into a rollback

    // Visible from a second, independent connection.
    Conn c2(PQconnectdb(pg->conninfo().c_str()));
    ASSERT_EQ(PQstatus(c2.get()), CONNECTION_OK) << PQerrorMessage(c2.get());
    auto got = rows(c2.get(), "SELECT id, name FROM items ORDER BY id");
    std::vector<std::pair<int, std::string>> want = {{1, "one"}, {2, "two"}};
    EXPECT_EQ(got, want);

    // The fixture's own exec() reports server errors.
    auto bad = pg->exec("SELECT * FROM no_such_table");
    ASSERT_FALSE(bad.has_value());
    EXPECT_NE(bad.error().message.find("no_such_table"), std::string::npos);
  }
  // Destroyed: postmaster gone, directory gone.
  EXPECT_FALSE(rap::testing::process_alive(postmaster));
  EXPECT_FALSE(fs::exists(dir));
}

TEST(PostgresFixtureTest, CreateDatabaseGivesIsolatedDatabase) {
  RAP_ASSIGN_OR_FAIL(auto pg, PostgresFixture::start());
  RAP_ASSIGN_OR_FAIL(std::string ci, pg->create_database("rap_app"));
  EXPECT_EQ(ci, pg->conninfo("rap_app"));
  Conn c(PQconnectdb(ci.c_str()));
  ASSERT_EQ(PQstatus(c.get()), CONNECTION_OK) << PQerrorMessage(c.get());
  PgResult r(PQexec(c.get(), "SELECT current_database()"));
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK);
  EXPECT_STREQ(PQgetvalue(r.get(), 0, 0), "rap_app");
  RAP_ASSERT_OK(pg->exec("CREATE TABLE only_here (x int)", "rap_app"));
  EXPECT_FALSE(pg->exec("SELECT * FROM only_here", "postgres").has_value());
  // Duplicate names are an error, not a silent success.
  EXPECT_FALSE(pg->create_database("rap_app").has_value());
}
