// The two-level event loop (rap/common/priority.h): low-priority continuations run only when
// nothing else is ready; without run_prioritised() they behave like a plain post.
#include "rap/common/priority.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace rap {
namespace {

using namespace std::chrono_literals;

// A "bulk" coroutine yields low after every step; an "interactive" one yields normally. Between
// two consecutive interactive steps the bulk one may advance at most once.
TEST(Priority, LowPriorityWorkWaitsForEveryReadyHandler) {
  asio::io_context io(1);
  int bulk_steps = 0;
  std::vector<int> seen;  // bulk_steps at each interactive step
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 1000; ++i) {
          ++bulk_steps;
          co_await yield(true);
        }
      },
      asio::detached);
  // Three interactive coroutines: with FIFO scheduling the bulk one would advance once per
  // round of all of them; here it only runs when all three are waiting.
  for (int k = 0; k < 3; ++k) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          for (int i = 0; i < 50; ++i) {
            seen.push_back(bulk_steps);
            co_await yield(false);
          }
        },
        asio::detached);
  }
  run_prioritised(io);
  EXPECT_EQ(bulk_steps, 1000);
  const auto stats = low_priority_stats(io.get_executor());
  EXPECT_EQ(stats.deferred, 1000u);
  EXPECT_EQ(stats.max_depth, 1u);
  EXPECT_FALSE(stats.driven);  // run_prioritised() has returned
  ASSERT_EQ(seen.size(), 150u);
  // Every interactive step ran before the bulk coroutine got past its first step.
  for (int s : seen) EXPECT_LE(s, 1);
}

// A timer's handler (an interactive wake-up) runs on time although a low-priority loop never
// stops yielding.
TEST(Priority, ReadyHandlersAreNotStarvedByABusyLowPriorityLoop) {
  asio::io_context io(1);
  bool stop = false;
  std::uint64_t spins = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        while (!stop) {
          ++spins;
          co_await yield(true);
        }
      },
      asio::detached);
  std::vector<std::chrono::microseconds> late;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer t(io);
        for (int i = 0; i < 20; ++i) {
          const auto due = std::chrono::steady_clock::now() + 2ms;
          t.expires_at(due);
          co_await t.async_wait(asio::use_awaitable);
          late.push_back(std::chrono::duration_cast<std::chrono::microseconds>(
              std::chrono::steady_clock::now() - due));
        }
        stop = true;
      },
      asio::detached);
  run_prioritised(io);
  ASSERT_EQ(late.size(), 20u);
  EXPECT_GT(spins, 100u);  // the low-priority loop did run meanwhile
  std::sort(late.begin(), late.end());
  EXPECT_LT(late[10], 20ms);  // median lateness: scheduling noise, never starvation
}

// Without run_prioritised() a low-priority yield is a plain post: no hang, FIFO interleaving.
TEST(Priority, PlainRunTreatsLowAsNormal) {
  asio::io_context io(1);
  std::vector<char> order;
  for (char c : {'b', 'i'}) {
    asio::co_spawn(
        io,
        [&, c]() -> asio::awaitable<void> {
          for (int i = 0; i < 3; ++i) {
            order.push_back(c);
            co_await yield(c == 'b');
          }
        },
        asio::detached);
  }
  io.run();
  EXPECT_EQ(std::string(order.begin(), order.end()), "bibibi");
  EXPECT_EQ(low_priority_stats(io.get_executor()).deferred, 0u);  // nothing was deferred
}

// Stopping the io_context ends run_prioritised() even with low-priority work queued.
TEST(Priority, StopEndsTheLoopWithWorkQueued) {
  asio::io_context io(1);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (;;) co_await yield(true);
      },
      asio::detached);
  asio::steady_timer t(io, 20ms);
  t.async_wait([&](const auto&) { io.stop(); });
  std::thread th([&] { run_prioritised(io); });
  th.join();  // returns: the test would hang otherwise
  SUCCEED();
}

// A bulk loop that never waits gives up the CPU once per `cpu_yield_after` of busy time.
TEST(Priority, BusyLowPriorityWorkYieldsTheCpuAtTheInterval) {
  asio::io_context io(1);
  ManualClock clock;
  int steps = 0;
  std::vector<int> yielded_at;  // the step count at each CPU yield
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (; steps < 50; ++steps) {
          clock.advance(100us);  // each bulk batch takes 100 us
          co_await yield(true);
        }
      },
      asio::detached);
  PrioritisedLoopOptions o;
  o.cpu_yield_after = 500us;
  o.clock = &clock;
  o.cpu_yield = [&] { yielded_at.push_back(steps); };
  const auto st = run_prioritised(io, o);
  EXPECT_EQ(st.cpu_yields, yielded_at.size());
  EXPECT_EQ(low_priority_stats(io.get_executor()).cpu_yields, yielded_at.size());
  ASSERT_EQ(yielded_at.size(), 10u);  // 50 batches of 100 us: one yield per 500 us
  for (std::size_t i = 1; i < yielded_at.size(); ++i)
    EXPECT_EQ(yielded_at[i] - yielded_at[i - 1], 5) << i;
  EXPECT_GT(st.handlers, 50u);
}

// A thread that waits for events between short bursts, and a loop with yields off, never yield.
TEST(Priority, ShortBurstsAndDisabledYieldsDoNotYieldTheCpu) {
  for (const auto after : {500us, 0us}) {
    asio::io_context io(1);
    ManualClock clock;
    std::uint64_t yields = 0;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          asio::steady_timer t(io);
          for (int burst = 0; burst < 3; ++burst) {
            for (int i = 0; i < 4; ++i) {  // 400 us of bulk work, then a wait for an event
              clock.advance(after.count() > 0 ? 100us : 1000us);
              co_await yield(true);
            }
            t.expires_after(50ms);  // long enough to be waited for, not found ready by poll()
            co_await t.async_wait(asio::use_awaitable);
          }
        },
        asio::detached);
    PrioritisedLoopOptions o;
    o.cpu_yield_after = after;
    o.clock = &clock;
    o.cpu_yield = [&] { ++yields; };
    const auto st = run_prioritised(io, o);
    EXPECT_EQ(yields, 0u) << after.count();
    EXPECT_EQ(st.cpu_yields, 0u);
  }
}

// With the real sched_yield the loop still runs everything to the end.
TEST(Priority, RealCpuYieldKeepsTheLoopGoing) {
  asio::io_context io(1);
  int steps = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        const auto until = std::chrono::steady_clock::now() + 20ms;
        while (std::chrono::steady_clock::now() < until) {
          ++steps;
          co_await yield(true);
        }
      },
      asio::detached);
  PrioritisedLoopOptions o;
  o.cpu_yield_after = 1ms;
  const auto st = run_prioritised(io, o);
  EXPECT_GT(steps, 100);
  // 20 ms of busy work, at most one yield per ms (fewer when a yield lets other threads run for
  // a while: the cadence itself is checked with a manual clock above).
  EXPECT_GE(st.cpu_yields, 1u);
  EXPECT_LE(st.cpu_yields, 21u);
}

}  // namespace
}  // namespace rap
