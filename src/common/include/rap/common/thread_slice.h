// A scheduling hint for latency-sensitive threads (fabric lanes, PROTOCOL.md §15).
//
// A node's interactive lane thread sleeps almost all the time and must run as soon as a packet
// wakes it, while the node's bulk threads keep every core busy. Linux's fair scheduler (EEVDF,
// kernel 6.12 and later) lets a thread ask for a shorter time slice: its virtual deadline comes
// sooner, so on wake-up it preempts a thread running a long slice instead of waiting for that
// slice to end. The thread keeps SCHED_OTHER and its nice value, so it gets no more CPU than
// before; it only gets it sooner. No privilege is needed.
//
// Older kernels accept the call but keep their own slice; request_thread_slice() reads the slice
// back and reports "slice_unsupported" then, and the caller carries on (the hint is never
// required for correctness).
#pragma once

#include <chrono>

#include "rap/common/result.h"

namespace rap {

// The smallest and largest slice the kernel accepts (it clamps to these).
inline constexpr std::chrono::microseconds kMinThreadSlice{100};
inline constexpr std::chrono::microseconds kMaxThreadSlice{100'000};
// What interactive threads (a node's interactive lane, `rapctl connect --class interactive`) ask
// for: their work per wake-up is one small record, far below any slice.
inline constexpr std::chrono::microseconds kInteractiveThreadSlice{100};

// Asks for a `slice` time slice for the calling thread and returns the slice it now has.
// Errors: "bad_slice" (outside [kMinThreadSlice, kMaxThreadSlice]), "slice_unsupported" (the
// kernel has no per-thread slices), "sched_error" (the system call failed; message has errno).
Result<std::chrono::microseconds> request_thread_slice(std::chrono::microseconds slice);

// The calling thread's current slice as the kernel reports it (0 when it reports none).
Result<std::chrono::microseconds> thread_slice();

}  // namespace rap
