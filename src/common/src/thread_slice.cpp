#include "rap/common/thread_slice.h"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace rap {
namespace {

// struct sched_attr (include/uapi/linux/sched/types.h); glibc 2.36 has no wrapper for it.
struct SchedAttr {
  std::uint32_t size;
  std::uint32_t sched_policy;
  std::uint64_t sched_flags;
  std::int32_t sched_nice;
  std::uint32_t sched_priority;
  std::uint64_t sched_runtime;  // for SCHED_OTHER: the requested slice, in ns (6.12+)
  std::uint64_t sched_deadline;
  std::uint64_t sched_period;
  std::uint32_t sched_util_min;
  std::uint32_t sched_util_max;
};

Result<SchedAttr> get_attr() {
  SchedAttr attr{};
  if (::syscall(SYS_sched_getattr, 0, &attr, sizeof attr, 0) != 0)
    return fail("sched_error", std::string("sched_getattr: ") + std::strerror(errno));
  return attr;
}

}  // namespace

Result<std::chrono::microseconds> thread_slice() {
  auto attr = get_attr();
  if (!attr) return tl::unexpected(attr.error());
  return std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::nanoseconds(attr->sched_runtime));
}

Result<std::chrono::microseconds> request_thread_slice(std::chrono::microseconds slice) {
  if (slice < kMinThreadSlice || slice > kMaxThreadSlice)
    return fail("bad_slice", "a thread slice must be between 100 us and 100 ms");
  auto cur = get_attr();
  if (!cur) return tl::unexpected(cur.error());
  if (cur->sched_policy != SCHED_OTHER)
    return fail("sched_error", "the thread is not under the fair scheduler (SCHED_OTHER)");
  SchedAttr attr{};
  attr.size = sizeof attr;
  attr.sched_policy = SCHED_OTHER;
  attr.sched_nice = cur->sched_nice;  // keep the thread's nice value
  attr.sched_runtime = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(slice).count());
  if (::syscall(SYS_sched_setattr, 0, &attr, 0) != 0)
    return fail("sched_error", std::string("sched_setattr: ") + std::strerror(errno));
  auto got = thread_slice();
  if (!got) return got;
  if (got->count() == 0)
    return fail("slice_unsupported", "this kernel keeps its own time slice (needs Linux 6.12+)");
  return got;
}

}  // namespace rap
