// Database layer: bounded pool with blocking acquire + timeout, Db::run off the I/O thread,
// exceptions converted to rap::Error at the boundary.
#include "rap/control/db.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <thread>

#include "rap/control/migrations.h"
#include "rap/testing/gtest_support.h"
#include "rap/testing/postgres_fixture.h"

namespace rc = rap::control;
namespace asio = boost::asio;

class ControlDbTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto pg = rap::testing::PostgresFixture::start();
    ASSERT_TRUE(pg.has_value()) << pg.error().message;
    pg_ = std::move(*pg);
    auto db = pg_->create_database("dbtest");
    ASSERT_TRUE(db.has_value());
    conninfo_ = *db;
  }
  static void TearDownTestSuite() { pg_.reset(); }
  static std::unique_ptr<rap::testing::PostgresFixture> pg_;
  static std::string conninfo_;
};
std::unique_ptr<rap::testing::PostgresFixture> ControlDbTest::pg_;
std::string ControlDbTest::conninfo_;

TEST_F(ControlDbTest, PoolIsBoundedAndAcquireTimesOut) {
  rc::ConnectionPool pool(conninfo_, rc::PoolOptions{2, std::chrono::milliseconds(200)});
  RAP_ASSIGN_OR_FAIL(auto a, pool.acquire());
  RAP_ASSIGN_OR_FAIL(auto b, pool.acquire());
  EXPECT_EQ(pool.in_use(), 2u);
  const auto t0 = std::chrono::steady_clock::now();
  auto c = pool.acquire();
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, "db_timeout");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(150));

  // A waiter is woken when a lease is returned; the connection is reused, not reopened.
  std::thread releaser([lease = std::move(a)]() mutable {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto gone = std::move(lease);
  });
  auto d = pool.acquire();
  releaser.join();
  ASSERT_TRUE(d.has_value()) << d.error().message;
  EXPECT_EQ(pool.open(), 2u);
}

TEST_F(ControlDbTest, ErrorsBecomeResultsAndFailedTransactionsRollBack) {
  rc::Db db(conninfo_, rc::PoolOptions{2, std::chrono::milliseconds(1000)});
  auto bad = db.with_connection<int>([](pqxx::connection& c) -> rap::Result<int> {
    pqxx::nontransaction t(c);
    t.exec("SELECT * FROM no_such_table");
    return 1;
  });
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, "db_error");
  EXPECT_NE(bad.error().message.find("42P01"), std::string::npos) << bad.error().message;

  // (Killing the backend with pg_terminate_backend is not exercised here: libpqxx 6.4 leaks a
  // PGresult on that path, which LeakSanitizer reports. The pool drops such connections.)
  auto ok = db.with_connection<int>([](pqxx::connection& c) -> rap::Result<int> {
    pqxx::nontransaction t(c);
    return t.exec("SELECT 41 + 1")[0][0].as<int>();
  });
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(*ok, 42);

  // A transaction whose body fails is rolled back.
  RAP_ASSERT_OK(db.with_transaction<void>([](pqxx::work& w) -> rap::Result<void> {
    w.exec("CREATE TABLE IF NOT EXISTS t (x int)");
    return {};
  }));
  auto rolled = db.with_transaction<void>([](pqxx::work& w) -> rap::Result<void> {
    w.exec("INSERT INTO t VALUES (1)");
    return rap::fail("nope", "abort");
  });
  ASSERT_FALSE(rolled.has_value());
  EXPECT_EQ(rolled.error().code, "nope");
  auto n = db.with_connection<long long>([](pqxx::connection& c) -> rap::Result<long long> {
    pqxx::nontransaction t(c);
    return t.exec("SELECT count(*) FROM t")[0][0].as<long long>();
  });
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 0);
}

TEST_F(ControlDbTest, RunExecutesOffTheIoThreadAndResumesOnIt) {
  rc::Db db(conninfo_, rc::PoolOptions{2, std::chrono::milliseconds(1000)});
  asio::io_context io;
  const auto io_thread = std::this_thread::get_id();
  std::thread::id worker_thread;
  std::thread::id resumed_thread;
  int value = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        value = co_await db.run([&]() {
          worker_thread = std::this_thread::get_id();
          auto r = db.with_connection<int>([](pqxx::connection& c) -> rap::Result<int> {
            pqxx::nontransaction t(c);
            return t.exec("SELECT 7")[0][0].as<int>();
          });
          return r ? *r : -1;
        });
        resumed_thread = std::this_thread::get_id();
      },
      asio::detached);
  io.run();
  EXPECT_EQ(value, 7);
  EXPECT_NE(worker_thread, io_thread);
  EXPECT_EQ(resumed_thread, io_thread);
}
