// Schema migrations against a real PostgreSQL: fresh apply, idempotent re-run, and concurrent
// migrators on the same database applying every version exactly once.
#include "rap/control/migrations.h"

#include <gtest/gtest.h>

#include <pqxx/pqxx>
#include <thread>
#include <vector>

#include "rap/testing/gtest_support.h"
#include "rap/testing/postgres_fixture.h"

namespace rc = rap::control;

namespace {

long long count(const std::string& conninfo, const std::string& sql) {
  pqxx::connection c(conninfo);
  pqxx::nontransaction t(c);
  return t.exec(sql)[0][0].as<long long>();
}

}  // namespace

class ControlMigrationsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto pg = rap::testing::PostgresFixture::start();
    ASSERT_TRUE(pg.has_value()) << pg.error().message;
    pg_ = std::move(*pg);
  }
  static void TearDownTestSuite() { pg_.reset(); }
  static std::unique_ptr<rap::testing::PostgresFixture> pg_;
};
std::unique_ptr<rap::testing::PostgresFixture> ControlMigrationsTest::pg_;

TEST_F(ControlMigrationsTest, FreshDatabaseMigratesAndRerunIsNoop) {
  RAP_ASSIGN_OR_FAIL(std::string db, pg_->create_database("mig_fresh"));
  RAP_ASSIGN_OR_FAIL(auto first, rc::migrate(db));
  const int latest = rc::migrations().back().version;
  EXPECT_EQ(first.applied, static_cast<int>(rc::migrations().size()));
  EXPECT_EQ(first.current_version, latest);

  for (const char* table : {"organizations", "users", "memberships", "api_tokens", "audit_events",
                            "setup_state", "schema_migrations"}) {
    EXPECT_EQ(count(db, std::string("SELECT count(*) FROM information_schema.tables WHERE "
                                    "table_schema = 'public' AND table_name = '") +
                            table + "'"),
              1)
        << table;
  }
  EXPECT_EQ(count(db, "SELECT count(*) FROM setup_state"), 1);
  const auto applied_at_before =
      count(db, "SELECT extract(epoch FROM max(applied_at))::bigint FROM schema_migrations");

  RAP_ASSIGN_OR_FAIL(auto second, rc::migrate(db));
  EXPECT_EQ(second.applied, 0);
  EXPECT_EQ(second.current_version, latest);
  EXPECT_EQ(count(db, "SELECT count(*) FROM schema_migrations"),
            static_cast<long long>(rc::migrations().size()));
  EXPECT_EQ(count(db, "SELECT extract(epoch FROM max(applied_at))::bigint FROM schema_migrations"),
            applied_at_before);
  EXPECT_EQ(count(db, "SELECT count(*) FROM setup_state"), 1);
}

TEST_F(ControlMigrationsTest, SchemaConstraintsHold) {
  RAP_ASSIGN_OR_FAIL(std::string db, pg_->create_database("mig_constraints"));
  RAP_ASSERT_OK(rc::migrate(db));
  pqxx::connection c(db);
  {
    pqxx::work w(c);
    EXPECT_THROW(w.exec("INSERT INTO organizations (slug, name) VALUES ('Bad_Slug', 'x')"),
                 pqxx::check_violation);
  }
  {
    pqxx::work w(c);
    w.exec("INSERT INTO organizations (slug, name) VALUES ('acme', 'Acme')");
    EXPECT_THROW(w.exec("INSERT INTO organizations (slug, name) VALUES ('acme', 'Acme 2')"),
                 pqxx::unique_violation);
  }
  {
    pqxx::work w(c);
    w.exec("INSERT INTO users (email, password_hash) VALUES ('a@b.io', 'x')");
    w.exec("INSERT INTO organizations (slug, name) VALUES ('acme', 'Acme')");
    EXPECT_THROW(w.exec("INSERT INTO memberships (user_id, org_id, role) SELECT u.id, o.id, "
                        "'owner' FROM users u, organizations o"),
                 pqxx::check_violation);
  }
  {
    pqxx::work w(c);
    EXPECT_THROW(w.exec("INSERT INTO setup_state (id) VALUES (true)"), pqxx::unique_violation);
  }
}

TEST_F(ControlMigrationsTest, ConcurrentMigratorsApplyExactlyOnce) {
  RAP_ASSIGN_OR_FAIL(std::string db, pg_->create_database("mig_concurrent"));
  constexpr int kMigrators = 6;
  std::vector<rap::Result<rc::MigrationReport>> results(kMigrators,
                                                        rap::fail("not_run", "not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kMigrators; ++i) {
    threads.emplace_back([&, i] { results[i] = rc::migrate(db); });
  }
  for (auto& t : threads) t.join();
  int total_applied = 0;
  for (const auto& r : results) {
    ASSERT_TRUE(r.has_value()) << r.error().code << ": " << r.error().message;
    EXPECT_EQ(r->current_version, rc::migrations().back().version);
    total_applied += r->applied;
  }
  EXPECT_EQ(total_applied, static_cast<int>(rc::migrations().size()));
  EXPECT_EQ(count(db, "SELECT count(*) FROM schema_migrations"),
            static_cast<long long>(rc::migrations().size()));
  EXPECT_EQ(count(db, "SELECT count(*) FROM setup_state"), 1);
}

TEST_F(ControlMigrationsTest, UnreachableDatabaseIsAnError) {
  auto r =
      rc::migrate("host=/nonexistent-rap-dir port=5432 dbname=x user=postgres connect_timeout=2");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "db_unavailable");
}
