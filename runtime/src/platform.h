/*
 * platform.h - the machine underneath kanal (internal).
 *
 * Atomics: every operation names its memory order in its own name
 * (at_load_acquire, at_cas_seq_cst, ...), so the order is visible at each
 * call site and greppable. They are thin macros over C11 <stdatomic.h>
 * *_explicit calls; no bare fences, because ThreadSanitizer does not model
 * them.
 *
 * Time: absolute CLOCK_MONOTONIC nanoseconds (kn_now()), the unit of every
 * deadline in kanal. kn_now_coarse() is the same clock at the kernel's
 * tick (a few ms; a read of the vDSO page, no counter): for "since when"
 * records on hot paths, never for deadlines.
 *
 * Futex: only the waiter layer (waiter.h/.c) may call sys_futex_wait/wake;
 * every other blocking call parks through the waiter.
 *
 * Memory: every allocation kanal makes goes through kn_alloc/kn_free, which
 * count allocations (for the benchmark's "allocations per operation") and
 * carry the fault-injection hook of the test build.
 */
#ifndef KN_PLATFORM_H
#define KN_PLATFORM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kanal/base.h"

#define KN_CACHE_LINE 64
/* Hot shared fields sit two lines apart: the adjacent-line prefetcher
 * pulls lines in pairs, so 64 bytes alone still false-share. */
#define KN_PAD 128
#define KN_ALIGNED __attribute__((aligned(KN_PAD)))

/* kanal's constructors run in this order, before any without a priority
 * (a program's own, which may already use kanal, or fork): KANAL_TRACE is
 * read (trace.c), then the timer's fork handlers are registered (timer.c),
 * then the pools' (pool.c, "fork": they must come after the timer's). */
#define KN_CTOR_TRACE 200
#define KN_CTOR_TIMER_FORK 201
#define KN_CTOR_POOL_FORK 202

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Sanitizer builds, as GCC (__SANITIZE_*__) and Clang (__has_feature) say:
 * KN_TSAN (ThreadSanitizer: tsan.h, fiber.c), KN_ASAN (AddressSanitizer:
 * fiber.c). */
#if defined(__SANITIZE_THREAD__)
#define KN_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KN_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define KN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KN_ASAN 1
#endif
#endif

/* Marsaglia's xorshift64: the next state (never 0 from a nonzero one),
 * for choices that need spreading, not quality (victims, select order). */
static inline uint64_t xorshift64(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *state = x;
}

/*
 * KN_ASSERT(cond, what): a numbered invariant, checked in Debug builds and
 * in builds configured with -DKANAL_ASSERTS=ON (tools/test's sanitizer and
 * fault stages), where a broken one aborts at its file and line ("kanal:
 * file:line: invariant broken: what") instead of hanging minutes later.
 * Elsewhere cond is not evaluated: it must have no side effect.
 */
#ifdef KANAL_ASSERTS
_Noreturn void kn_assert_fail(const char *file, int line, const char *what);
#define KN_ASSERT(cond, what)                                                  \
	(likely(cond) ? (void)0 : kn_assert_fail(__FILE__, __LINE__, (what)))
#else
#define KN_ASSERT(cond, what) ((void)0)
#endif

/* ---- atomics, the order in the name ---------------------------------- */

#define at_load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define at_load_acquire(p) atomic_load_explicit((p), memory_order_acquire)
#define at_load_seq_cst(p) atomic_load_explicit((p), memory_order_seq_cst)

#define at_store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define at_store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define at_store_seq_cst(p, v) atomic_store_explicit((p), (v), memory_order_seq_cst)

#define at_xchg_acquire(p, v) atomic_exchange_explicit((p), (v), memory_order_acquire)
#define at_xchg_release(p, v) atomic_exchange_explicit((p), (v), memory_order_release)
#define at_xchg_acq_rel(p, v) atomic_exchange_explicit((p), (v), memory_order_acq_rel)
#define at_xchg_seq_cst(p, v) atomic_exchange_explicit((p), (v), memory_order_seq_cst)

#define at_add_relaxed(p, v) atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define at_add_acquire(p, v) atomic_fetch_add_explicit((p), (v), memory_order_acquire)
#define at_add_acq_rel(p, v) atomic_fetch_add_explicit((p), (v), memory_order_acq_rel)
#define at_add_seq_cst(p, v) atomic_fetch_add_explicit((p), (v), memory_order_seq_cst)
#define at_sub_relaxed(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_relaxed)
#define at_sub_release(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_release)
#define at_sub_acq_rel(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_acq_rel)
#define at_sub_seq_cst(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_seq_cst)
#define at_or_seq_cst(p, v) atomic_fetch_or_explicit((p), (v), memory_order_seq_cst)

/* Strong CAS; *e is updated with the current value on failure. The failure
 * order is the strongest one allowed that makes sense for a retry loop. */
#define at_cas_relaxed(p, e, d)                                                \
	atomic_compare_exchange_strong_explicit((p), (e), (d),                 \
						memory_order_relaxed,          \
						memory_order_relaxed)
#define at_cas_acquire(p, e, d)                                                \
	atomic_compare_exchange_strong_explicit((p), (e), (d),                 \
						memory_order_acquire,          \
						memory_order_acquire)
#define at_cas_release(p, e, d)                                                \
	atomic_compare_exchange_strong_explicit((p), (e), (d),                 \
						memory_order_release,          \
						memory_order_relaxed)
#define at_cas_acq_rel(p, e, d)                                                \
	atomic_compare_exchange_strong_explicit((p), (e), (d),                 \
						memory_order_acq_rel,          \
						memory_order_acquire)
#define at_cas_seq_cst(p, e, d)                                                \
	atomic_compare_exchange_strong_explicit((p), (e), (d),                 \
						memory_order_seq_cst,          \
						memory_order_seq_cst)
#define at_cas_weak_seq_cst(p, e, d)                                           \
	atomic_compare_exchange_weak_explicit((p), (e), (d),                   \
					      memory_order_seq_cst,            \
					      memory_order_relaxed)
#define at_cas_weak_acq_rel(p, e, d)                                           \
	atomic_compare_exchange_weak_explicit((p), (e), (d),                   \
					      memory_order_acq_rel,            \
					      memory_order_relaxed)

/* ---- CPU --------------------------------------------------------------- */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* Fetch p's line for writing, without waiting: a line this thread reads
 * and then writes is otherwise fetched twice from the CPU that had it
 * (once shared, once to own it). A hint; x86's PREFETCHW is a no-op on
 * CPUs without it. */
static inline void prefetch_write(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ __volatile__("prefetchw %0" : : "m"(*(const char *)p));
#else
	__builtin_prefetch(p, 1, 3);
#endif
}

/* CPUs this process may run on (affinity mask), cached after first call. */
int kn_ncpu(void);
uint64_t kn_now_coarse(void);

/* ---- backoff ------------------------------------------------------------ *
 * Bounded exponential spinning, then yielding the CPU: a thread that waits
 * for another one to finish a short step (a slot being written) must let it
 * run on an oversubscribed machine. backoff_spin only spins (contention on
 * a CAS: the other thread is running); backoff_snooze yields once spinning
 * is exhausted (waiting for a thread that may be preempted). */
struct backoff {
	unsigned step;
};
#define BACKOFF_SPIN_LIMIT 6
#define BACKOFF_YIELD_LIMIT 10

/* Inline: a lock-free fast path that retries with it (sem.c) then needs
 * no call, so no frame, on the path that does not retry. */
static inline void backoff_spin(struct backoff *b)
{
	unsigned i, n = 1u << (b->step < BACKOFF_SPIN_LIMIT ? b->step : BACKOFF_SPIN_LIMIT);

	for (i = 0; i < n; i++)
		cpu_relax();
	if (b->step <= BACKOFF_SPIN_LIMIT)
		b->step++;
}

/*
 * Polling before sleeping (the waiter, a ring operation about to wait).
 * Spinning only pays when the thread we wait for runs on another CPU; with
 * more threads than CPUs (the normal case here) a spinner steals the CPU
 * its partner needs. So:
 *   - the first POLL_FREE_STEPS steps (about a microsecond: most hand-offs
 *     between two running threads) spin without writing any shared line;
 *     beyond them, at most one waiting thread per CPU spins at a time (a
 *     shared count), and none spins at all on one CPU;
 *   - each thread adapts its spin length: a wait that spinning satisfied
 *     lengthens the next spin, one that needed a yield or a sleep shortens
 *     it (thread-local: no shared write);
 *   - after spinning, sched_yield() for up to POLL_YIELD_NS (at least a
 *     few times): it hands the CPU to a partner waiting for it and keeps
 *     this CPU from going idle, since waking a thread whose (virtual) CPU
 *     went idle costs tens of microseconds here; then the caller parks.
 *
 *   struct poll p;  poll_begin(&p, 0);
 *   while (!(ok = condition()) && poll_next(&p)) ;
 *   poll_end(&p, ok);
 */
struct poll {
	unsigned step;
	unsigned spin_steps;
	bool counted; /* holds a place in the spinner count */
	bool denied;  /* the count was full: no adapting the budget */
	uint64_t yield_until; /* 0 until the yield phase starts */
};
/* first: the first check comes after 2^first pauses rather than one
 * (spin steps skipped, within the spin budget), for waits that gain from
 * letting the partner get ahead (chan.c). */
void poll_begin(struct poll *p, unsigned first);
bool poll_next(struct poll *p);
void poll_end(struct poll *p, bool satisfied);

void backoff_snooze(struct backoff *b);

/* ---- time --------------------------------------------------------------- */

/* Nanoseconds left until deadline, 0 if it has passed. */
static inline uint64_t deadline_left(uint64_t deadline)
{
	uint64_t now;

	if (deadline == KN_FOREVER)
		return KN_FOREVER;
	now = kn_now();
	return deadline > now ? deadline - now : 0;
}

/* ---- futex (the waiter layer only) ---------------------------------------- */

/* Sleep while *addr == val, until woken or the absolute CLOCK_MONOTONIC
 * deadline. Returns 0 (woken, value changed, or spurious: re-check),
 * ETIMEDOUT. EINTR is reported as 0: the caller re-checks anyway. */
int sys_futex_wait(_Atomic uint32_t *addr, uint32_t val, uint64_t deadline);
void sys_futex_wake(_Atomic uint32_t *addr, int n);

/* ---- threads -------------------------------------------------------------- */

/* pthread_create for kanal's own threads (pool workers, the timer thread):
 * 0 or its error (EAGAIN at a thread limit), which the fault build can
 * inject (fault.h). */
int thread_create(pthread_t *t, const pthread_attr_t *attr,
		  void *(*fn)(void *), void *arg);

/* ---- memory --------------------------------------------------------------- */

void *kn_alloc(size_t size);
void *kn_alloc_aligned(size_t align, size_t size);
void *kn_calloc(size_t n, size_t size);
void kn_free(void *p);
/* Count a system call or an allocation made without the calls above (fiber
 * stacks' mappings: stack.c). */
void stat_count_syscall(void);
void stat_count_alloc(void);

/* Overflow-checked a * b. */
static inline bool mul_overflows(size_t a, size_t b, size_t *out)
{
	return __builtin_mul_overflow(a, b, out);
}

#endif
