/*
 * group.c - error groups (kanal/group.h).
 *
 * A group is a wait group counting its running tasks (waitgroup.c), a
 * first-error word, a context, and a queue of go calls waiting for a slot
 * under the limit. go takes a slot (the counter's CAS, bounded by the
 * limit), then submits a task whose record carries the call in its payload
 * (no allocation). The task's end releases the slot: the counter's
 * decrement wakes one slot waiter and, at zero, the waits.
 *
 * First error: a CAS from 0 on the error word; its winner alone cancels the
 * context. The error is stored before the task's decrement, so a wait that
 * sees the count at zero sees it (the decrement releases, the wait
 * acquires).
 *
 * Slots, no lost wake-up: a blocked go registers on slotq, re-reads the
 * limit and the count (seq_cst), then parks with the group's context (so a
 * cancellation ends the wait). Each decrement of the counter wakes one
 * waiter after its CAS; raising the limit stores it (seq_cst) and wakes
 * them all. A woken go that loses the slot to a newcomer parks again: the
 * newcomer's task will wake it.
 *
 * Cut short: a task that ends without an error while the context is
 * cancelled sets cut (before its decrement, like err), so group_cut tells
 * whether the context ended before the tasks did; a cancellation after the
 * last task's check came after they all finished. Flows report the cause
 * then (kn_flow_wait); kn_group_wait, like Go's, does not.
 *
 * Lifetime: a task touches the group last in its decrement, which is a
 * busy add (it has a slot queue to wake), so kn_group_wait returning means
 * every task is done with the group: it may be freed.
 *
 * Linearization points: go at the counter's CAS that takes the slot (a
 * skipped go at its load of the context); the first error at the CAS on
 * the error word; a task's end at its decrement.
 *
 * Invariants
 *
 *  1. count = slots taken and not released = tasks submitted and not
 *     finished or dropped (a go that fails after taking its slot releases
 *     it before returning).
 *  2. With a limit n >= 0, a slot is only taken by a CAS from count < n.
 *  3. err changes at most once, from 0, and before the decrement of the
 *     task that set it; the context is cancelled with that error by the
 *     same task, before that decrement too.
 *  4. Every go or try_go returns 0 exactly when its task was submitted,
 *     and that task then runs or is dropped (counted as skipped).
 */
#include <string.h>

#include "kanal/ctx.h"
#include "group_internal.h"
#include "pool_internal.h"
#include "waitgroup.h"

struct kn_group {
	struct wg wg KN_ALIGNED; /* running tasks; hot */
	struct waitq slotq;      /* go calls waiting under the limit */
	kn_ctx *ctx;
	kn_pool *pool;
	_Atomic int limit;       /* < 0: none */
	_Atomic int err;         /* the first error */
	_Atomic int cut;         /* a task ended cancelled, without error */
	_Atomic uint64_t skipped;
};

/* What a group task's record carries. */
struct group_call {
	kn_group *g;
	int (*fn)(kn_ctx *ctx, void *arg);
	void *arg;
};

_Static_assert(sizeof(struct group_call) <= TASK_PAYLOAD,
	       "the group call must fit in a task record");

static void group_fail(kn_group *g, int err)
{
	int none = 0;

	if (at_cas_acq_rel(&g->err, &none, err))
		kn_ctx_cancel(g->ctx, err > 0 ? err : ECANCELED, NULL);
}

static void release_slot(kn_group *g)
{
	wg_add(&g->wg, -1, &g->slotq);
}

static void group_run(void *arg)
{
	struct group_call *c = arg;
	kn_group *g = c->g;
	int err = c->fn(g->ctx, c->arg);

	if (err)
		group_fail(g, err);
	else if (kn_ctx_done(g->ctx))
		at_store_relaxed(&g->cut, 1); /* published by the decrement */
	release_slot(g);
}

static void group_drop(void *arg)
{
	struct group_call *c = arg;
	kn_group *g = c->g;

	at_add_relaxed(&g->skipped, 1);
	group_fail(g, ECANCELED);
	release_slot(g);
}

static int skip(kn_group *g)
{
	at_add_relaxed(&g->skipped, 1);
	return ECANCELED;
}

/* The re-check of a go waiting for a slot (seq_cst loads). */
static bool slot_free(void *arg)
{
	kn_group *g = arg;
	int lim = at_load_seq_cst(&g->limit);

	return lim < 0 || wg_count(&g->wg) < lim;
}

static int take_slot(kn_group *g, bool wait)
{
	struct waitq *const q[] = { &g->slotq };
	int lim;

	for (;;) {
		lim = at_load_acquire(&g->limit);
		if (lim < 0)
			return wg_add(&g->wg, 1, NULL);
		if (wg_inc_below(&g->wg, lim))
			return 0;
		if (!wait)
			return EAGAIN;
		if (waitq_wait(q, 1, slot_free, g, KN_FOREVER, g->ctx,
			       WAIT_ON(WAIT_GROUP, g)) == SEL_CANCEL)
			return ECANCELED;
	}
}

static int group_go(kn_group *g, int (*fn)(kn_ctx *, void *), void *arg,
		    bool wait, const void *site)
{
	struct group_call *c;
	struct kn_task *t;
	int err;

	if (!g || !fn)
		return EINVAL;
	if (kn_ctx_done(g->ctx))
		return skip(g);
	err = take_slot(g, wait);
	if (err)
		return err == ECANCELED ? skip(g) : err;
	t = task_alloc();
	if (!t) {
		release_slot(g);
		return ENOMEM;
	}
	c = (struct group_call *)(void *)t->payload;
	*c = (struct group_call){ g, fn, arg };
	err = pool_submit(g->pool, t, group_run, c, group_drop, site);
	if (err)
		release_slot(g);
	return err;
}

int kn_group_go(kn_group *g, int (*fn)(kn_ctx *, void *), void *arg)
{
	return group_go(g, fn, arg, true, SPAWN_SITE());
}

int kn_group_try_go(kn_group *g, int (*fn)(kn_ctx *, void *), void *arg)
{
	return group_go(g, fn, arg, false, SPAWN_SITE());
}

int kn_group_set_limit(kn_group *g, int n)
{
	if (!g)
		return EINVAL;
	at_store_seq_cst(&g->limit, n < 0 ? -1 : n);
	waitq_notify_all(&g->slotq);
	return 0;
}

int kn_group_wait(kn_group *g)
{
	if (!g)
		return EINVAL;
	wg_wait(&g->wg, KN_FOREVER, NULL);
	kn_ctx_cancel(g->ctx, ECANCELED, NULL); /* EALREADY after an error */
	return at_load_acquire(&g->err);
}

bool group_cut(kn_group *g)
{
	return at_load_acquire(&g->cut);
}

kn_ctx *kn_group_ctx(kn_group *g)
{
	return g ? g->ctx : NULL;
}

size_t kn_group_skipped(kn_group *g)
{
	return g ? (size_t)at_load_relaxed(&g->skipped) : 0;
}

kn_group *kn_group_new(kn_ctx *parent, kn_pool *pool)
{
	kn_pool *p = pool ? pool : pool_default();
	kn_group *g;

	if (!p)
		return NULL;
	g = kn_alloc_aligned(KN_PAD, sizeof(*g));
	if (!g) {
		errno = ENOMEM;
		return NULL;
	}
	memset(g, 0, sizeof(*g));
	g->ctx = kn_ctx_with_cancel(parent);
	if (!g->ctx) {
		kn_free(g);
		return NULL;
	}
	wg_init(&g->wg);
	waitq_init(&g->slotq);
	g->pool = p;
	at_store_relaxed(&g->limit, -1);
	return g;
}

void kn_group_free(kn_group *g)
{
	if (!g)
		return;
	wg_wait(&g->wg, KN_FOREVER, NULL);
	kn_ctx_release(g->ctx);
	kn_free(g);
}
