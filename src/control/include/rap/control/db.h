// Database layer of the control plane: a bounded libpqxx connection pool and a dedicated thread
// pool on which every blocking database call runs.
//
// Threading model (the rule this header enforces):
//  * The HTTP server runs its coroutines on one Asio I/O thread. That thread never touches a
//    database connection.
//  * A request handler that needs PostgreSQL does `co_await db.run(fn)`: `fn` is co_spawn'ed on
//    the Db's own asio::thread_pool (size = pool size), where it may block (acquire a pooled
//    connection, run SQL, hash a password). Its return value is delivered back to the awaiting
//    coroutine on the coroutine's own executor (the I/O thread).
//  * ConnectionPool::acquire blocks (bounded by a timeout) until a connection is free; the pool
//    never holds more than `max_size` connections. Broken connections are discarded, not reused.
//  * libpqxx throws; nothing here lets an exception escape: Db::with_connection and
//    with_transaction catch every exception at this boundary and convert it to rap::Error
//    (codes "db_unavailable", "db_timeout", "db_error", "conflict" for unique violations).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <type_traits>
#include <vector>

#include "rap/common/result.h"

namespace rap::control {

struct PoolOptions {
  std::size_t max_size = 4;
  std::chrono::milliseconds acquire_timeout{5000};
};

class ConnectionPool {
 public:
  ConnectionPool(std::string conninfo, PoolOptions opts);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // A leased connection; returns itself to the pool on destruction (or is dropped if broken).
  class Lease {
   public:
    Lease(ConnectionPool* pool, std::unique_ptr<pqxx::connection> c);
    Lease(Lease&& o) noexcept;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    pqxx::connection& operator*() const { return *conn_; }
    pqxx::connection* operator->() const { return conn_.get(); }
    void mark_broken() { broken_ = true; }

   private:
    ConnectionPool* pool_;
    std::unique_ptr<pqxx::connection> conn_;
    bool broken_ = false;
  };

  // Blocks up to acquire_timeout for a free slot; opens a new connection lazily.
  // Errors: "db_timeout" (pool exhausted), "db_unavailable" (cannot connect).
  Result<Lease> acquire();

  std::size_t in_use() const;
  std::size_t open() const;  // idle + in use
  std::size_t max_size() const { return opts_.max_size; }
  const std::string& conninfo() const { return conninfo_; }

 private:
  void release(std::unique_ptr<pqxx::connection> c, bool broken);

  const std::string conninfo_;
  const PoolOptions opts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;
  std::size_t in_use_ = 0;
};

// Converts the exception in flight (call only inside a catch block) to a rap::Error.
Error error_from_current_exception();

class Db {
 public:
  Db(std::string conninfo, PoolOptions opts);
  ~Db();  // joins the worker threads
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  ConnectionPool& pool() { return pool_; }
  // Waits for queued and running DB tasks, then stops the workers (idempotent). Call it before
  // destroying objects those tasks use.
  void join() { workers_.join(); }

  // Runs fn(pqxx::connection&) -> Result<T> with a pooled connection; exceptions become errors.
  template <class T>
  Result<T> with_connection(const std::function<Result<T>(pqxx::connection&)>& fn);

  // Runs fn(pqxx::work&) -> Result<T> in one transaction: committed iff fn returns a value.
  template <class T>
  Result<T> with_transaction(const std::function<Result<T>(pqxx::work&)>& fn);

  // Runs the blocking callable fn() on the DB thread pool and resumes the caller on its own
  // executor with the result. R must be default-constructible and nothrow-movable; fn must not
  // throw (use with_connection / with_transaction inside).
  // (Deliberately not a coroutine itself: it returns co_spawn's awaitable directly, which keeps
  // the callable alive in the spawned frame; g++ 12 mishandles non-trivial temporaries captured
  // in nested coroutine wrappers.)
  template <class F>
  boost::asio::awaitable<std::invoke_result_t<F&>> run(F fn) {
    using R = std::invoke_result_t<F&>;
    auto shared = std::make_shared<F>(std::move(fn));
    return boost::asio::co_spawn(
        workers_.get_executor(), [shared]() -> boost::asio::awaitable<R> { co_return (*shared)(); },
        boost::asio::use_awaitable);
  }

 private:
  Result<void> with_connection_void(const std::function<Result<void>(pqxx::connection&)>& fn);
  Result<void> with_transaction_void(const std::function<Result<void>(pqxx::work&)>& fn);

  ConnectionPool pool_;
  boost::asio::thread_pool workers_;
};

template <class T>
Result<T> Db::with_connection(const std::function<Result<T>(pqxx::connection&)>& fn) {
  Result<T> out = fail("db_error", "not run");
  auto r = with_connection_void([&](pqxx::connection& c) -> Result<void> {
    out = fn(c);
    if (!out) return tl::unexpected(out.error());
    return {};
  });
  if (!r) return tl::unexpected(r.error());
  return out;
}

template <class T>
Result<T> Db::with_transaction(const std::function<Result<T>(pqxx::work&)>& fn) {
  Result<T> out = fail("db_error", "not run");
  auto r = with_transaction_void([&](pqxx::work& w) -> Result<void> {
    out = fn(w);
    if (!out) return tl::unexpected(out.error());
    return {};
  });
  if (!r) return tl::unexpected(r.error());
  return out;
}

}  // namespace rap::control
