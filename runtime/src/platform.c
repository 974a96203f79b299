/*
 * platform.c - time, CPU count, backoff, futex and allocation (internal).
 */
#include "platform.h"

#include <errno.h>
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

void backoff_spin(struct backoff *b)
{
	unsigned i, n = 1u << (b->step < BACKOFF_SPIN_LIMIT ? b->step : BACKOFF_SPIN_LIMIT);

	for (i = 0; i < n; i++)
		cpu_relax();
	if (b->step <= BACKOFF_SPIN_LIMIT)
		b->step++;
}

#define POLL_YIELDS 3
#define POLL_YIELD_NS 20000
#define POLL_CROWDED_NS 1500 /* an empty sched_yield takes ~0.2 us */

/* One spinner per CPU: a flag per CPU, each on its own line, so taking
 * one costs no cross-CPU traffic (a shared count cost two line transfers
 * per wait, a third of a ping-pong hand-off). Beyond SPIN_CPUS, CPUs share
 * flags: fewer spinners, never more. */
#define SPIN_CPUS 64
static struct {
	_Alignas(KN_CACHE_LINE) _Atomic uint32_t busy;
} spin_flag[SPIN_CPUS];
static _Thread_local unsigned spin_budget = BACKOFF_SPIN_LIMIT;

static _Atomic uint32_t *take_spin_flag(void)
{
	_Atomic uint32_t *f;
	uint32_t idle = 0;
	int cpu;

	if (kn_ncpu() < 2 || (cpu = sched_getcpu()) < 0)
		return NULL;
	f = &spin_flag[(unsigned)cpu % SPIN_CPUS].busy;
	if (at_load_relaxed(f) || !at_cas_acquire(f, &idle, 1))
		return NULL;
	return f;
}

void poll_begin(struct poll *p)
{
	p->spun = 0;
	p->yields = 0;
	p->crowded = false;
	p->flag = take_spin_flag();
	p->spin_max = p->flag ? (1u << spin_budget) - 1 : 0;
}

/* One pause between looks, not a growing number: the condition is a line
 * only its one writer changes (a waiter's word, a ring slot), so looking
 * costs no traffic until it changes, and a look every pause (36 ns on the
 * reference AMD EPYC) sees the change within one. Exponential steps made a
 * hand-off that arrives after 300 ns wait until 540 ns.
 * A yield that took longer than POLL_CROWDED_NS let another thread run on
 * this CPU: the partner may be one of them, and spinning would have held
 * it up (poll_end). */
bool poll_next(struct poll *p)
{
	uint64_t now;

	if (p->spun < p->spin_max) {
		cpu_relax();
		p->spun++;
		return true;
	}
	now = kn_now();
	if (p->yields == 0) {
		p->yield_until = now + POLL_YIELD_NS;
	} else {
		if (now - p->yielded > POLL_CROWDED_NS)
			p->crowded = true;
		if (p->yields >= POLL_YIELDS && now >= p->yield_until)
			return false;
	}
	sched_yield();
	p->yielded = now;
	p->yields++;
	return true;
}

void poll_end(struct poll *p, bool satisfied)
{
	if (!p->flag)
		return;
	at_store_release(p->flag, 0);
	/* Satisfied in the second half of the spin, or by yields that ran
	 * nobody else (the partner runs elsewhere, only slower than the
	 * spin): spin twice as long next time. Satisfied early: as long.
	 * Else (a crowded CPU, or no answer in time) halve it, keeping a
	 * little so that a change back to a good partner is noticed. */
	if (satisfied && !p->crowded) {
		if ((p->yields || p->spun > p->spin_max / 2) &&
		    spin_budget < BACKOFF_SPIN_LIMIT)
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
