#include "rap/control/db.h"

#include <pqxx/pqxx>

namespace rap::control {

ConnectionPool::ConnectionPool(std::string conninfo, PoolOptions opts)
    : conninfo_(std::move(conninfo)), opts_(opts) {
  RAP_ASSERT(opts_.max_size > 0);
}

ConnectionPool::~ConnectionPool() = default;

ConnectionPool::Lease::Lease(ConnectionPool* pool, std::unique_ptr<pqxx::connection> c)
    : pool_(pool), conn_(std::move(c)) {}

ConnectionPool::Lease::Lease(Lease&& o) noexcept
    : pool_(o.pool_), conn_(std::move(o.conn_)), broken_(o.broken_) {
  o.pool_ = nullptr;
}

ConnectionPool::Lease::~Lease() {
  if (pool_ != nullptr && conn_) pool_->release(std::move(conn_), broken_);
}

Result<ConnectionPool::Lease> ConnectionPool::acquire() {
  std::unique_lock lk(mu_);
  const bool got = cv_.wait_for(lk, opts_.acquire_timeout, [&] {
    return !idle_.empty() || in_use_ + idle_.size() < opts_.max_size;
  });
  if (!got) return fail("db_timeout", "database connection pool exhausted");
  if (!idle_.empty()) {
    auto c = std::move(idle_.back());
    idle_.pop_back();
    ++in_use_;
    return Lease(this, std::move(c));
  }
  ++in_use_;  // reserve the slot while connecting without the lock
  lk.unlock();
  try {
    auto c = std::make_unique<pqxx::connection>(conninfo_);
    return Lease(this, std::move(c));
  } catch (const std::exception& e) {
    {
      std::lock_guard g(mu_);
      --in_use_;
    }
    cv_.notify_one();
    // libpq messages may echo the conninfo host/db but never a password we would add.
    return fail("db_unavailable", std::string("cannot connect to database: ") + e.what());
  }
}

void ConnectionPool::release(std::unique_ptr<pqxx::connection> c, bool broken) {
  bool usable = !broken;
  try {
    usable = usable && c->is_open();
  } catch (...) {
    usable = false;
  }
  {
    std::lock_guard g(mu_);
    --in_use_;
    if (usable) idle_.push_back(std::move(c));
  }
  cv_.notify_one();
  // A broken connection is destroyed here, outside the lock.
}

std::size_t ConnectionPool::in_use() const {
  std::lock_guard g(mu_);
  return in_use_;
}

std::size_t ConnectionPool::open() const {
  std::lock_guard g(mu_);
  return in_use_ + idle_.size();
}

Error error_from_current_exception() {
  try {
    throw;
  } catch (const pqxx::unique_violation& e) {
    return Error{"conflict", std::string("unique violation: ") + e.what()};
  } catch (const pqxx::broken_connection& e) {
    return Error{"db_unavailable", std::string("database connection lost: ") + e.what()};
  } catch (const pqxx::sql_error& e) {
    return Error{"db_error", std::string("sql error ") + e.sqlstate() + ": " + e.what()};
  } catch (const std::exception& e) {
    return Error{"db_error", e.what()};
  } catch (...) {
    return Error{"db_error", "unknown database error"};
  }
}

Db::Db(std::string conninfo, PoolOptions opts)
    : pool_(std::move(conninfo), opts), workers_(opts.max_size) {}

Db::~Db() {
  workers_.join();
}

Result<void> Db::with_connection_void(const std::function<Result<void>(pqxx::connection&)>& fn) {
  auto lease = pool_.acquire();
  if (!lease) return tl::unexpected(lease.error());
  try {
    return fn(**lease);
  } catch (...) {
    Error err = error_from_current_exception();
    if (err.code == "db_unavailable") lease->mark_broken();
    return tl::unexpected(std::move(err));
  }
}

Result<void> Db::with_transaction_void(const std::function<Result<void>(pqxx::work&)>& fn) {
  return with_connection_void([&](pqxx::connection& c) -> Result<void> {
    pqxx::work w(c);
    auto r = fn(w);
    if (!r) {
      w.abort();
      return r;
    }
    w.commit();
    return {};
  });
}

}  // namespace rap::control
