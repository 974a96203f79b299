/*
 * waitgroup.c - wait groups (kanal/group.h).
 *
 * Algorithm
 *
 * One 64-bit word: the count in the low half, the number of "busy" adds in
 * the high half, plus a wait queue. add changes the count with one CAS.
 * A waiter that finds the count nonzero registers on the queue, re-checks
 * (seq_cst) and parks; the add that brings the count to zero wakes the
 * whole queue.
 *
 * The busy half exists for lifetime, not for counting. Go's WaitGroup may
 * be touched by Done after Wait has returned, because the garbage collector
 * keeps it alive; in C the waiter frees it. So an add that will touch the
 * wait group after its CAS (to wake waiters) announces itself in the same
 * CAS (busy + 1) and withdraws (busy - 1, release) when it is done with
 * the memory; a waiter returns only when it sees count == 0 and busy == 0
 * (acquire). If it sees the count at zero but an add still busy, it yields
 * until the add has finished waking (a few instructions, unless the adder
 * is preempted).
 *
 * Linearization points: add at its CAS; a wait that returns 0 at the load
 * that sees count == 0 and busy == 0; a blocked wait at the CAS that
 * reached zero (it then returns after the busy bit drains).
 *
 * Invariants
 *
 *  1. 0 <= count <= INT32_MAX; a CAS that would break this is not made.
 *  2. busy counts adds between their CAS and their release; only those
 *     touch the wait group after their CAS.
 *  3. Every add that brings the count to zero is busy, so a waiter cannot
 *     return (nor free the group) before that add has woken the queue.
 *  4. No lost wake-up: the waiter registers (seq_cst), then re-reads the
 *     count (seq_cst); the zeroing CAS (seq_cst) precedes the waking
 *     add's read of the queue count (seq_cst). See waiter.c.
 */
#include "waitgroup.h"

#include <string.h>


#define WG_COUNT_MASK 0xffffffffull
#define WG_BUSY_ONE ((uint64_t)1 << 32)

static inline int64_t wg_count_of(uint64_t s)
{
	return (int64_t)(s & WG_COUNT_MASK);
}

void wg_init(struct wg *wg)
{
	at_store_relaxed(&wg->state, 0);
	waitq_init(&wg->q);
}

int wg_add(struct wg *wg, int64_t delta, struct waitq *also)
{
	uint64_t s = at_load_relaxed(&wg->state), ns;
	int64_t nc;
	bool busy;

	do {
		/* Compared before adding: delta may be anything. */
		nc = wg_count_of(s);
		if (delta < -nc || delta > INT32_MAX - nc)
			return EINVAL;
		nc += delta;
		busy = delta < 0 && (nc == 0 || also);
		ns = (s & ~WG_COUNT_MASK) + (uint64_t)nc + (busy ? WG_BUSY_ONE : 0);
	} while (!at_cas_weak_seq_cst(&wg->state, &s, ns));
	if (!busy)
		return 0;
	if (also)
		waitq_notify_one(also);
	if (nc == 0)
		waitq_notify_all(&wg->q);
	at_sub_release(&wg->state, WG_BUSY_ONE);
	return 0;
}

bool wg_inc_below(struct wg *wg, int64_t limit)
{
	uint64_t s = at_load_relaxed(&wg->state);

	do {
		if (wg_count_of(s) >= limit)
			return false;
	} while (!at_cas_weak_seq_cst(&wg->state, &s, s + 1));
	return true;
}

int64_t wg_count(struct wg *wg)
{
	return wg_count_of(at_load_seq_cst(&wg->state));
}

static bool wg_zero(void *wg)
{
	return wg_count(wg) == 0;
}

int wg_wait(struct wg *wg, uint64_t deadline, kn_ctx *ctx)
{
	struct waitq *const q[] = { &wg->q };
	struct backoff b = { 0 };
	uint64_t s;
	uint32_t v;

	if (ctx && ctx_done(ctx))
		return ECANCELED;
	for (;;) {
		s = at_load_acquire(&wg->state);
		if (wg_count_of(s) == 0) {
			if (s == 0)
				return 0;
			backoff_snooze(&b); /* invariant 3: let it finish */
			continue;
		}
		v = waitq_wait(q, 1, wg_zero, wg, deadline, ctx,
			       WAIT_ON(WAIT_WAITGROUP, wg));
		if (v == SEL_TIMEOUT)
			return ETIMEDOUT;
		if (v == SEL_CANCEL)
			return ECANCELED;
	}
}

/* ---- public -------------------------------------------------------------- */

void kn_waitgroup_init(kn_waitgroup *wg)
{
	if (wg) {
		memset(wg, 0, sizeof(*wg));
		wg_init(wg_of(wg));
	}
}

int kn_waitgroup_add(kn_waitgroup *wg, int64_t delta)
{
	return wg ? wg_add(wg_of(wg), delta, NULL) : EINVAL;
}

int kn_waitgroup_done(kn_waitgroup *wg)
{
	return kn_waitgroup_add(wg, -1);
}

int kn_waitgroup_wait(kn_waitgroup *wg)
{
	return wg ? wg_wait(wg_of(wg), KN_FOREVER, NULL) : EINVAL;
}

int kn_waitgroup_wait_until(kn_waitgroup *wg, uint64_t deadline)
{
	return wg ? wg_wait(wg_of(wg), deadline, NULL) : EINVAL;
}

int kn_waitgroup_wait_ctx(kn_waitgroup *wg, kn_ctx *ctx)
{
	return wg ? wg_wait(wg_of(wg), KN_FOREVER, ctx) : EINVAL;
}
