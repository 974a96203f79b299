/*
 * kanal/group.h - error groups (Go's errgroup) and wait groups (Go's
 * sync.WaitGroup).
 *
 * Error group. kn_group_go runs fn(ctx, arg) as a task on the group's pool;
 * fn returns 0 or an error (a positive errno-style code). The first nonzero
 * error wins: the group keeps it and cancels the group's context with it as
 * the cause (kn_ctx_cause reports that code), so the other tasks can stop
 * early. kn_group_wait waits for every task started and returns the first
 * error, or 0; like Go's Wait, it then cancels the context (cause
 * ECANCELED unless an error got there first), so a group is used once.
 *
 * Unlike Go, go after the group's context is cancelled (an error, the
 * parent's cancellation, or wait) does not start the task: it returns
 * ECANCELED and the group counts it as skipped (kn_group_skipped). Tasks
 * started before the cancellation run; they see the context cancelled.
 *
 * With a limit of n (kn_group_set_limit), at most n tasks of the group run
 * or wait to run at once: go blocks (through the waiter layer, so inside a
 * pool task it suspends and its worker runs others) until one finishes, or until the
 * context is cancelled (then ECANCELED, skipped); try_go returns EAGAIN
 * instead of blocking. The limit may change at any time; raising it lets
 * blocked go calls through.
 *
 * A task dropped by an immediate shutdown of the pool counts as skipped and
 * as the error ECANCELED.
 *
 * Return values: 0, or EINVAL (NULL group or function), ECANCELED (skipped),
 * EAGAIN (try_go at the limit), EPIPE (the pool is shut down), ENOMEM.
 *
 * Wait group. A counter: add(delta) changes it (done is add(-1)), wait
 * blocks until it is zero. A kn_waitgroup is a plain struct that can be
 * embedded or put on the stack: initialize it with KN_WAITGROUP_INIT or
 * kn_waitgroup_init; it needs no destruction and allocates nothing. As in
 * Go, an add that starts a new round from zero must happen before the wait
 * that waits for it, and a wait group is reused only after every wait of
 * the previous round has returned. The counter never goes negative: an add
 * that would make it so, or push it above INT32_MAX, returns EINVAL and
 * changes nothing. A waiter may free the wait group (and the memory around
 * it) as soon as its wait returns 0: the add that reached zero is done with
 * it by then.
 *
 * Synchronization table
 *
 *   call                   may run concurrently with      blocks   cost
 *   kn_group_go/try_go     everything but free            limit    1 CAS + a pool spawn
 *                                                                  (no allocation)
 *   kn_group_wait          everything but free            yes      waiter layer
 *   kn_group_set_limit     everything but free            no       1 store (+ wakes)
 *   kn_group_ctx/skipped   everything but free            no       1 load
 *   kn_group_new/free      nothing on the same group      free     ctx + 1 allocation
 *   kn_waitgroup_add/done  everything                     no       1 CAS; at zero, + wakes
 *   kn_waitgroup_wait*     everything                     yes      1 load if zero
 *
 * Memory order: a task's end (and its done) happens-before the return of
 * the wait that sees the count reach zero; what happens before a go
 * happens-before the task's start.
 */
#ifndef KANAL_GROUP_H
#define KANAL_GROUP_H

#include "kanal/base.h"
#include "kanal/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_group kn_group;

/*
 * A group whose context is a child of parent (NULL: background), running
 * its tasks on pool (NULL: the default pool of kn_go). No limit. NULL with
 * errno ENOMEM (or what making the default pool failed with).
 */
KN_API kn_group *kn_group_new(kn_ctx *parent, kn_pool *pool);

/* The group's context (owned by the group; valid until kn_group_free). */
KN_API kn_ctx *kn_group_ctx(kn_group *g);

KN_API int kn_group_go(kn_group *g, int (*fn)(kn_ctx *ctx, void *arg), void *arg);
KN_API int kn_group_try_go(kn_group *g, int (*fn)(kn_ctx *ctx, void *arg), void *arg);

/* At most n tasks at once; n < 0: no limit. 0 or EINVAL. */
KN_API int kn_group_set_limit(kn_group *g, int n);

/* Wait for every started task; the first error or 0 (EINVAL for NULL). */
KN_API int kn_group_wait(kn_group *g);

/* go/try_go calls refused because the context was cancelled, plus tasks
 * dropped by the pool. */
KN_API size_t kn_group_skipped(kn_group *g);

/* Wait for the tasks still running, release the context, free. NULL is a
 * no-op. */
KN_API void kn_group_free(kn_group *g);

/* ---- wait group --------------------------------------------------------- */

typedef union kn_waitgroup {
	unsigned char kn_private_[64]; /* the counter and a wait queue */
	uint64_t kn_align_;
} kn_waitgroup;

#define KN_WAITGROUP_INIT { { 0 } }

KN_API void kn_waitgroup_init(kn_waitgroup *wg);
/* 0, or EINVAL (NULL; the counter would leave 0..INT32_MAX: any int64_t
 * delta is checked, without overflow, and then changes nothing). */
KN_API int kn_waitgroup_add(kn_waitgroup *wg, int64_t delta);
KN_API int kn_waitgroup_done(kn_waitgroup *wg);
/* Until the counter is zero: 0; ETIMEDOUT (deadline; one already passed
 * does not wait); ECANCELED (ctx done: checked first); EINVAL (NULL). */
KN_API int kn_waitgroup_wait(kn_waitgroup *wg);
KN_API int kn_waitgroup_wait_until(kn_waitgroup *wg, uint64_t deadline);
KN_API int kn_waitgroup_wait_ctx(kn_waitgroup *wg, kn_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
