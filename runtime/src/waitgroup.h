/*
 * waitgroup.h - the counter behind kn_waitgroup and kn_group (internal).
 *
 * See waitgroup.c for the protocol. The error group uses the counter as
 * its count of running tasks, so that its limit check, its wait and the
 * freeing of a finished group share one word.
 */
#ifndef KN_WAITGROUP_H
#define KN_WAITGROUP_H

#include "kanal/group.h"
#include "waiter.h"

struct wg {
	_Atomic uint64_t state; /* count (low 32 bits), busy adds (high 32) */
	struct waitq q;         /* waits for zero */
};

_Static_assert(sizeof(struct wg) <= sizeof(kn_waitgroup),
	       "kn_waitgroup too small");
_Static_assert(_Alignof(struct wg) <= _Alignof(kn_waitgroup),
	       "kn_waitgroup under-aligned");

static inline struct wg *wg_of(kn_waitgroup *p)
{
	return (struct wg *)(void *)p;
}

void wg_init(struct wg *wg);

/*
 * count += delta; EINVAL (and no change) if it would leave 0..INT32_MAX.
 * Reaching zero wakes every waiter. also (may be NULL): a queue of which
 * one waiter is woken by every decrease (the group's go calls waiting for
 * a slot); it must live as long as the wait group.
 */
int wg_add(struct wg *wg, int64_t delta, struct waitq *also);

/* count += 1 if count < limit. */
bool wg_inc_below(struct wg *wg, int64_t limit);

/* The count (seq_cst: a re-check of the no-lost-wake-up protocol). */
int64_t wg_count(struct wg *wg);

/* Until zero: 0, ETIMEDOUT, ECANCELED (ctx done: checked first). */
int wg_wait(struct wg *wg, uint64_t deadline, kn_ctx *ctx);

#endif
