#include "rap/common/priority.h"

#include <sched.h>

#include <algorithm>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace rap {

asio::execution_context::id LowPriorityQueue::id;

bool LowPriorityQueue::driven() const {
  std::lock_guard g(mu_);
  return driven_;
}

void LowPriorityQueue::set_driven(bool on) {
  std::lock_guard g(mu_);
  driven_ = on;
}

void LowPriorityQueue::push(Item item) {
  std::lock_guard g(mu_);
  items_.push_back(std::move(item));
  deferred_++;
  max_depth_ = std::max(max_depth_, items_.size());
}

LowPriorityQueue::Stats LowPriorityQueue::stats() const {
  std::lock_guard g(mu_);
  return Stats{driven_, deferred_, max_depth_, cpu_yields_};
}

void LowPriorityQueue::count_cpu_yield() {
  std::lock_guard g(mu_);
  cpu_yields_++;
}

LowPriorityQueue::Stats low_priority_stats(const asio::any_io_executor& ex) {
  return asio::use_service<LowPriorityQueue>(asio::query(ex, asio::execution::context)).stats();
}

std::optional<LowPriorityQueue::Item> LowPriorityQueue::pop() {
  std::lock_guard g(mu_);
  if (items_.empty()) return std::nullopt;
  Item out = std::move(items_.front());
  items_.pop_front();
  return out;
}

std::size_t LowPriorityQueue::size() const {
  std::lock_guard g(mu_);
  return items_.size();
}

void LowPriorityQueue::shutdown() {
  std::deque<Item> drop;
  {
    std::lock_guard g(mu_);
    drop.swap(items_);
    driven_ = false;
  }
  // Destroying the handlers destroys their suspended coroutines, as Asio does with its own
  // queues at shutdown.
}

asio::awaitable<void> yield(bool low) {
  auto ex = co_await asio::this_coro::executor;
  if (low) {
    auto& q = asio::use_service<LowPriorityQueue>(asio::query(ex, asio::execution::context));
    if (q.driven()) {
      co_await asio::async_initiate<const asio::use_awaitable_t<>, void()>(
          [&q](auto handler) { q.push(LowPriorityQueue::Item(std::move(handler))); },
          asio::use_awaitable);
      co_return;
    }
  }
  co_await asio::post(ex, asio::use_awaitable);
}

std::size_t run_prioritised(asio::io_context& io) {
  return run_prioritised(io, PrioritisedLoopOptions{}).handlers;
}

PrioritisedLoopStats run_prioritised(asio::io_context& io, const PrioritisedLoopOptions& options) {
  auto& q = asio::use_service<LowPriorityQueue>(io);
  q.set_driven(true);
  const SystemClock system_clock;
  const Clock& clock = options.clock != nullptr ? *options.clock : system_clock;
  const bool yields = options.cpu_yield_after.count() > 0;
  PrioritisedLoopStats stats;
  TimePoint busy_since = clock.now();  // since the thread last waited for an event (or yielded)
  for (;;) {
    stats.handlers += io.poll();  // every handler ready now, and those they make ready
    if (auto item = q.pop()) {
      // Nothing else is ready: one low-priority continuation, run as a handler of `io`. After a
      // long busy stretch, first let any runnable thread on this CPU have it.
      if (yields) {
        const TimePoint now = clock.now();
        if (now - busy_since >= options.cpu_yield_after) {
          if (options.cpu_yield) {
            options.cpu_yield();
          } else {
            ::sched_yield();
          }
          stats.cpu_yields++;
          q.count_cpu_yield();
          busy_since = clock.now();
        }
      }
      asio::post(io, [h = std::move(*item)]() mutable { std::move(h)(); });
      continue;
    }
    if (io.stopped()) break;
    const std::size_t k = io.run_one();  // wait for the next event
    stats.handlers += k;
    if (yields) busy_since = clock.now();
    if (k == 0 && q.size() == 0) break;  // stopped, or out of work
  }
  q.set_driven(false);
  return stats;
}

}  // namespace rap
