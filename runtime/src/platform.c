/*
 * platform.c - time, CPU count, backoff, futex and allocation (internal).
 */
#include "platform.h"

#include <errno.h>
#include <stdio.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"

static _Atomic uint64_t stat_syscalls;
static _Atomic uint64_t stat_allocs;

uint64_t kn_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t kn_now_coarse(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t kn_deadline_in(uint64_t ns)
{
	uint64_t now = kn_now();

	return ns >= KN_FOREVER - now ? KN_FOREVER : now + ns;
}

uint64_t kn_stat_syscalls(void)
{
	return at_load_relaxed(&stat_syscalls);
}

uint64_t kn_stat_allocs(void)
{
	return at_load_relaxed(&stat_allocs);
}

void stat_count_syscall(void)
{
	at_add_relaxed(&stat_syscalls, 1);
}

void stat_count_alloc(void)
{
	at_add_relaxed(&stat_allocs, 1);
}

int kn_ncpu(void)
{
	static _Atomic int cached;
	int n = at_load_relaxed(&cached);
	cpu_set_t set;

	if (likely(n > 0))
		return n;
	n = 1;
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		n = CPU_COUNT(&set);
	at_store_relaxed(&cached, n);
	return n;
}

#define POLL_YIELDS 3
#define POLL_YIELD_NS 20000

/* Spin steps a poll takes before it joins the spinner count: 1 + 2 + ...
 * + 16 = 31 pauses, about a microsecond. Every waiter may afford that
 * much (less than a futex round trip), and a hand-off between two running
 * threads mostly fits in it: such a wait then writes no shared line, where
 * joining and leaving the count would move one between the CPUs twice. */
#define POLL_FREE_STEPS 5

static _Atomic int spinners;
static _Thread_local unsigned spin_budget = BACKOFF_SPIN_LIMIT;

void poll_begin(struct poll *p, unsigned first)
{
	p->yield_until = 0;
	p->counted = false;
	p->denied = false;
	p->spin_steps = kn_ncpu() > 1 ? spin_budget : 0;
	p->step = first < p->spin_steps ? first : p->spin_steps;
}

/* Spinning on past the free steps: only as one of at most one spinner per
 * CPU; else stop spinning here and go on to the yields. */
static void poll_join(struct poll *p)
{
	int n = at_load_relaxed(&spinners);

	while (n < kn_ncpu())
		if (at_cas_weak_acq_rel(&spinners, &n, n + 1)) {
			p->counted = true;
			return;
		}
	p->denied = true;
	p->spin_steps = p->step;
}

bool poll_next(struct poll *p)
{
	unsigned i;

	if (p->step >= POLL_FREE_STEPS && p->step < p->spin_steps && !p->counted)
		poll_join(p);
	if (p->step < p->spin_steps) {
		for (i = 0; i < 1u << p->step; i++)
			cpu_relax();
	} else {
		if (p->step == p->spin_steps)
			p->yield_until = kn_now() + POLL_YIELD_NS;
		else if (p->step >= p->spin_steps + POLL_YIELDS &&
			 kn_now() >= p->yield_until)
			return false;
		stat_count_syscall();
		sched_yield();
	}
	p->step++;
	return true;
}

void poll_end(struct poll *p, bool satisfied)
{
	if (p->counted)
		at_sub_relaxed(&spinners, 1);
	if (p->denied || kn_ncpu() == 1)
		return;
	/* Satisfied while still spinning: spin as long next time, a step
	 * longer if it took the whole budget. Else halve it, keeping one
	 * step so that a change back to a good partner is noticed. */
	if (satisfied && p->step <= p->spin_steps) {
		if (p->step == p->spin_steps && spin_budget < BACKOFF_SPIN_LIMIT)
			spin_budget++;
	} else {
		spin_budget = spin_budget > 2 ? spin_budget / 2 : 1;
	}
}

void backoff_snooze(struct backoff *b)
{
	/* Spinning is useless on one CPU: the thread we wait for is not
	 * running while we spin. */
	if (b->step <= BACKOFF_SPIN_LIMIT && kn_ncpu() > 1) {
		unsigned i, n = 1u << b->step;

		for (i = 0; i < n; i++)
			cpu_relax();
	} else {
		stat_count_syscall();
		sched_yield();
	}
	if (b->step <= BACKOFF_YIELD_LIMIT)
		b->step++;
}

int sys_futex_wait(_Atomic uint32_t *addr, uint32_t val, uint64_t deadline)
{
	struct timespec ts, *tsp = NULL;
	int saved_errno = errno;
	bool timed_out;

	if (deadline != KN_FOREVER) {
		ts.tv_sec = (time_t)(deadline / 1000000000u);
		ts.tv_nsec = (long)(deadline % 1000000000u);
		tsp = &ts;
	}
	at_add_relaxed(&stat_syscalls, 1);
	/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC timeout, so a
	 * retry after EINTR or a spurious wake-up never stretches the wait. */
	timed_out = syscall(SYS_futex, addr, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
			    val, tsp, NULL, FUTEX_BITSET_MATCH_ANY) == -1 &&
		    errno == ETIMEDOUT;
	/* EAGAIN and EINTR are normal here: a blocking kanal call leaves
	 * the caller's errno as it was. */
	errno = saved_errno;
	return timed_out ? ETIMEDOUT : 0;
}

void sys_futex_wake(_Atomic uint32_t *addr, int n)
{
	int saved_errno = errno;

	at_add_relaxed(&stat_syscalls, 1);
	syscall(SYS_futex, addr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n, NULL, NULL, 0);
	errno = saved_errno;
}

int thread_create(pthread_t *t, const pthread_attr_t *attr,
		  void *(*fn)(void *), void *arg)
{
	if (fault_thread_should_fail())
		return EAGAIN;
	return pthread_create(t, attr, fn, arg);
}

void *kn_alloc(size_t size)
{
	if (fault_alloc_should_fail())
		return NULL;
	at_add_relaxed(&stat_allocs, 1);
	return malloc(size);
}

void *kn_alloc_aligned(size_t align, size_t size)
{
	void *p;

	if (fault_alloc_should_fail() || size > SIZE_MAX - (align - 1))
		return NULL;
	at_add_relaxed(&stat_allocs, 1);
	size = (size + align - 1) & ~(align - 1);
	p = aligned_alloc(align, size);
	return p;
}

void *kn_calloc(size_t n, size_t size)
{
	if (fault_alloc_should_fail())
		return NULL;
	at_add_relaxed(&stat_allocs, 1);
	return calloc(n, size);
}

void kn_free(void *p)
{
	free(p);
}

#ifdef KANAL_ASSERTS
void kn_assert_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "kanal: %s:%d: invariant broken: %s\n", file, line, what);
	abort();
}
#endif
