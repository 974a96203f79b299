/*
 * kanal/base.h - what every kanal header shares: deadlines, the context
 * type, and the runtime's counters.
 *
 * Deadlines are absolute CLOCK_MONOTONIC nanoseconds: kn_now() plus a
 * duration. KN_FOREVER waits without limit; 0 (or any time already passed)
 * does not wait: the call fails with ETIMEDOUT if it would have to block.
 *
 * Errors are returned as errno values; errno itself is set only by the
 * calls that return NULL and say so. A blocking call leaves errno as it
 * was (in a pool task, too: each task keeps its own errno across a
 * suspension).
 */
#ifndef KANAL_BASE_H
#define KANAL_BASE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KN_API __attribute__((visibility("default")))
#else
#define KN_API
#endif

#define KN_FOREVER UINT64_MAX

/* A cancellation context (kanal/ctx.h). Every blocking call takes one;
 * NULL means "never cancelled". */
typedef struct kn_ctx kn_ctx;

/* CLOCK_MONOTONIC now, in nanoseconds. Wait-free, no system call (vDSO). */
KN_API uint64_t kn_now(void);

/* kn_now() + ns, saturating at KN_FOREVER. */
KN_API uint64_t kn_deadline_in(uint64_t ns);

/*
 * Runtime counters, process-wide and monotonic: system calls kanal's
 * scheduling made (futex waits and wakes; sched_yield; epoll_wait and the
 * poller's eventfd wakes; mmap, mprotect, madvise and munmap of task
 * stacks; not the I/O a task asks for, such as kn_read's read) and
 * allocations it made (an arena of task stacks, one mapping of
 * up to 64 stacks, counts as one). The benchmark divides their
 * growth by the operations it ran; tests use them to check that a fast path
 * allocates and sleeps nothing. Relaxed reads; the counters are bumped only
 * on slow paths (an allocation or a system call already costs far more).
 */
KN_API uint64_t kn_stat_syscalls(void);
KN_API uint64_t kn_stat_allocs(void);

#ifdef __cplusplus
}
#endif
#endif
