#include "rap/common/thread_slice.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace rap {
namespace {

using std::chrono::microseconds;

TEST(ThreadSlice, RejectsSlicesTheKernelWouldClamp) {
  for (auto bad : {microseconds(0), microseconds(99), microseconds(100'001)}) {
    auto r = request_thread_slice(bad);
    ASSERT_FALSE(r) << bad.count();
    EXPECT_EQ(r.error().code, "bad_slice");
  }
}

// The slice is the calling thread's own: the thread that asked has it, the others keep theirs.
TEST(ThreadSlice, AppliesToTheCallingThreadOnly) {
  const auto before = thread_slice();
  ASSERT_TRUE(before) << before.error().message;
  Result<microseconds> granted = fail("unset", "");
  Result<microseconds> read_back = fail("unset", "");
  std::thread t([&] {
    granted = request_thread_slice(microseconds(250));
    read_back = thread_slice();
  });
  t.join();
  if (!granted) {
    // A kernel without per-thread slices (before 6.12) says so, and nothing changed.
    EXPECT_EQ(granted.error().code, "slice_unsupported") << granted.error().message;
    EXPECT_EQ(before->count(), 0);
    ASSERT_TRUE(read_back);
    EXPECT_EQ(read_back->count(), 0);
    return;
  }
  EXPECT_EQ(granted->count(), 250);
  ASSERT_TRUE(read_back);
  EXPECT_EQ(read_back->count(), 250);
  const auto after = thread_slice();
  ASSERT_TRUE(after);
  EXPECT_EQ(after->count(), before->count());  // this thread's slice did not change
}

TEST(ThreadSlice, ANewerRequestReplacesTheSlice) {
  std::thread t([] {
    auto a = request_thread_slice(kInteractiveThreadSlice);
    if (!a) return;  // unsupported: covered above
    EXPECT_EQ(*a, kInteractiveThreadSlice);
    auto b = request_thread_slice(microseconds(3000));
    ASSERT_TRUE(b);
    EXPECT_EQ(b->count(), 3000);
  });
  t.join();
}

}  // namespace
}  // namespace rap
