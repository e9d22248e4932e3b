// Two scheduling levels on one io_context thread, so that bulk work never delays interactive
// work queued behind it (PROTOCOL.md §7.3 does this for frames inside a fabric session; this does
// it for the event loop that runs the sessions, routes and pipes of a node).
//
// Asio runs ready handlers first in, first out. A node's thread pipes every connection, so an
// interactive request arriving behind the batches of a few bulk transfers waited for all of
// them: one batch (16-64 KiB of crypto and copies) per busy coroutine, at every hop of the round
// trip. With run_prioritised() driving the thread, a coroutine that calls yield(true) after each
// batch resumes only when no other handler is ready: interactive work waits for at most the one
// bulk batch that is running.
//
// Without run_prioritised() on the thread (a plain io_context::run()), yield(true) is a plain
// post: the same FIFO behaviour as before, never a hang.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>

#include "rap/common/clock.h"

namespace rap {

namespace asio = boost::asio;

// The per-io_context queue of low-priority continuations (an Asio service; internal to
// yield() and run_prioritised()).
class LowPriorityQueue final : public asio::execution_context::service {
 public:
  using Item = asio::any_completion_handler<void()>;
  static asio::execution_context::id id;  // NOLINT: Asio's service registry key

  explicit LowPriorityQueue(asio::execution_context& ctx) : service(ctx) {}
  bool driven() const;
  void set_driven(bool on);
  void push(Item item);
  std::optional<Item> pop();
  std::size_t size() const;
  // Observability: continuations deferred so far, and the deepest the queue has been.
  struct Stats {
    bool driven = false;
    std::uint64_t deferred = 0;
    std::size_t max_depth = 0;
    std::uint64_t cpu_yields = 0;  // times run_prioritised() gave up the CPU for other threads
  };
  Stats stats() const;
  void count_cpu_yield();

 private:
  void shutdown() override;
  mutable std::mutex mu_;
  std::deque<Item> items_;
  bool driven_ = false;
  std::uint64_t deferred_ = 0;
  std::size_t max_depth_ = 0;
  std::uint64_t cpu_yields_ = 0;
};

// The stats of the queue of `ex`'s execution context (zeros when nothing was ever deferred).
LowPriorityQueue::Stats low_priority_stats(const asio::any_io_executor& ex);

// Suspends the calling coroutine and resumes it later on its executor. `low`: only once its
// thread has no other ready handler (see above); otherwise at the back of the ready queue.
asio::awaitable<void> yield(bool low);

// Bulk work also gives way to other threads. The kernel ends a busy thread's time slice only at a
// scheduler tick (4 ms at HZ=250): an interactive thread that is runnable but not running (one
// that woke a peer and was preempted by it) waits for that tick, and a request sent to it meanwhile
// cannot wake it again. So when low-priority continuations have kept the thread busy for
// `cpu_yield_after` without it once waiting for an event, the loop yields the CPU (sched_yield)
// before running the next one: a runnable thread on this CPU runs now, and when there is none the
// call returns at once. Interactive-only threads never defer work, so they never yield.
struct PrioritisedLoopOptions {
  std::chrono::microseconds cpu_yield_after{500};  // 0: never yield the CPU
  const Clock* clock = nullptr;                    // nullptr: the steady clock
  std::function<void()> cpu_yield;                 // empty: ::sched_yield()
};

// What a loop did (for tests and status).
struct PrioritisedLoopStats {
  std::size_t handlers = 0;      // handlers run
  std::uint64_t cpu_yields = 0;  // times it gave up the CPU
};

// Runs `io` like io_context::run(), but every ready handler runs before the next low-priority
// continuation, one at a time. Returns the number of handlers run. Must be the only thread
// running `io`.
std::size_t run_prioritised(asio::io_context& io);
PrioritisedLoopStats run_prioritised(asio::io_context& io, const PrioritisedLoopOptions& options);

}  // namespace rap
