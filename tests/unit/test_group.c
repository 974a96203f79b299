/*
 * test_group.c - error groups and wait groups (kanal/group.h).
 *
 * Tasks report failures through a counter (Criterion asserts only on the
 * test's thread). A task that must hold its slot (and its worker) waits
 * at the gate of pool_helpers.h.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "kanal/ctx.h"
#include "kanal/group.h"
#include "kanal/pool.h"
#include "platform.h"

#include "pool_helpers.h"

static int ok_task(kn_ctx *ctx, void *arg)
{
	(void)ctx;
	at_add_relaxed((_Atomic int *)arg, 1);
	return 0;
}

static int gated_task(kn_ctx *ctx, void *arg)
{
	(void)ctx;
	(void)arg;
	gate_wait();
	return 0;
}

/* ---- error group ------------------------------------------------------- */

Test(group, all_succeed)
{
	kn_pool *p = pool_of(2, 0);
	kn_group *g = kn_group_new(NULL, p);
	static _Atomic int ran;
	const char *msg;
	int i;

	cr_assert_not_null(g);
	for (i = 0; i < 100; i++)
		cr_assert_eq(kn_group_go(g, ok_task, (void *)&ran), 0);
	cr_assert_eq(kn_group_wait(g), 0);
	cr_assert_eq(at_load_relaxed(&ran), 100);
	cr_assert_eq(kn_group_skipped(g), 0);
	/* Like Go's Wait, wait cancels the group's context. */
	cr_assert_eq(kn_ctx_err(kn_group_ctx(g)), ECANCELED);
	cr_assert_eq(kn_ctx_cause(kn_group_ctx(g), &msg), ECANCELED);
	cr_assert_eq(kn_group_go(g, ok_task, (void *)&ran), ECANCELED);
	cr_assert_eq(kn_group_skipped(g), 1);
	kn_group_free(g);
	kn_pool_free(p);
}

static int fail_first(kn_ctx *ctx, void *arg)
{
	int i = (int)(intptr_t)arg;

	if (i == 0)
		return EIO;
	/* The others fail only once the first error cancelled them. */
	TASK_CHECK(kn_ctx_wait(ctx, KN_FOREVER) == 0);
	return EPIPE;
}

Test(group, the_first_error_wins_and_cancels_the_context)
{
	kn_pool *p = pool_of(2, 0);
	kn_group *g = kn_group_new(NULL, p);
	int i;

	/* Task 0 may fail before the loop ends: the later go calls are then
	 * refused (ECANCELED) and counted as skipped, as documented. */
	for (i = 0; i < 10; i++) {
		int r = kn_group_go(g, fail_first, (void *)(intptr_t)i);

		cr_assert(r == 0 || (i > 0 && r == ECANCELED), "go %d: %d", i, r);
	}
	cr_assert_eq(kn_group_wait(g), EIO);
	cr_assert_eq(kn_ctx_cause(kn_group_ctx(g), NULL), EIO);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_group_free(g);
	kn_pool_free(p);
}

static _Atomic int started_after_cancel;

static int must_not_run(kn_ctx *ctx, void *arg)
{
	(void)ctx;
	(void)arg;
	at_add_relaxed(&started_after_cancel, 1);
	return 0;
}

Test(group, go_after_cancellation_skips_the_task)
{
	kn_pool *p = pool_of(1, 0);
	kn_ctx *parent = kn_ctx_with_cancel(NULL);
	kn_group *g = kn_group_new(parent, p);

	cr_assert_eq(kn_ctx_cancel(parent, 0, "stop"), 0);
	cr_assert(kn_ctx_done(kn_group_ctx(g)));
	cr_assert_eq(kn_group_go(g, must_not_run, NULL), ECANCELED);
	cr_assert_eq(kn_group_try_go(g, must_not_run, NULL), ECANCELED);
	cr_assert_eq(kn_group_skipped(g), 2);
	/* A parent's cancellation is not an error of the group. */
	cr_assert_eq(kn_group_wait(g), 0);
	cr_assert_eq(at_load_relaxed(&started_after_cancel), 0);
	kn_group_free(g);
	kn_ctx_release(parent);
	kn_pool_free(p);
}

static _Atomic int running, most;

static int track_concurrency(kn_ctx *ctx, void *arg)
{
	int now = at_add_relaxed(&running, 1) + 1, m = at_load_relaxed(&most);

	(void)ctx;
	(void)arg;
	while (now > m && !atomic_compare_exchange_weak(&most, &m, now))
		;
	nap_ms(1);
	at_sub_relaxed(&running, 1);
	return 0;
}

Test(group, the_limit_bounds_concurrent_tasks)
{
	kn_pool *p = pool_of(4, 0);
	kn_group *g = kn_group_new(NULL, p);
	int i;

	cr_assert_eq(kn_group_set_limit(g, 2), 0);
	for (i = 0; i < 20; i++)
		cr_assert_eq(kn_group_go(g, track_concurrency, NULL), 0);
	cr_assert_eq(kn_group_wait(g), 0);
	cr_assert_leq(at_load_relaxed(&most), 2);
	cr_assert_geq(at_load_relaxed(&most), 1);
	kn_group_free(g);
	kn_pool_free(p);
}

Test(group, try_go_at_the_limit_is_eagain)
{
	kn_pool *p = pool_of(2, 0);
	kn_group *g = kn_group_new(NULL, p);
	static _Atomic int ran;

	gate_close();
	kn_group_set_limit(g, 1);
	cr_assert_eq(kn_group_go(g, gated_task, NULL), 0);
	cr_assert_eq(kn_group_try_go(g, ok_task, (void *)&ran), EAGAIN);
	cr_assert_eq(kn_group_skipped(g), 0);
	gate_open();
	cr_assert_eq(kn_group_wait(g), 0);
	cr_assert_eq(at_load_relaxed(&ran), 0);
	kn_group_free(g);
	kn_pool_free(p);
}

struct go_call {
	kn_group *g;
	int (*fn)(kn_ctx *, void *);
	void *arg;
	int ret;
	_Atomic bool done;
};

static void *go_thread(void *arg)
{
	struct go_call *c = arg;

	c->ret = kn_group_go(c->g, c->fn, c->arg);
	at_store_release(&c->done, true);
	return NULL;
}

Test(group, go_at_the_limit_blocks_until_a_slot_frees)
{
	kn_pool *p = pool_of(2, 0);
	kn_group *g = kn_group_new(NULL, p);
	static _Atomic int ran;
	struct go_call c = { g, ok_task, (void *)&ran, -1, false };
	pthread_t th;

	gate_close();
	kn_group_set_limit(g, 1);
	cr_assert_eq(kn_group_go(g, gated_task, NULL), 0);
	cr_assert_eq(pthread_create(&th, NULL, go_thread, &c), 0);
	nap_ms(50);
	cr_assert_not(at_load_acquire(&c.done), "go did not wait for a slot");
	gate_open();
	pthread_join(th, NULL);
	cr_assert_eq(c.ret, 0);
	cr_assert_eq(kn_group_wait(g), 0);
	cr_assert_eq(at_load_relaxed(&ran), 1);
	kn_group_free(g);
	kn_pool_free(p);
}

Test(group, cancellation_releases_a_go_blocked_at_the_limit)
{
	kn_pool *p = pool_of(2, 0);
	kn_ctx *parent = kn_ctx_with_cancel(NULL);
	kn_group *g = kn_group_new(parent, p);
	struct go_call c = { g, must_not_run, NULL, -1, false };
	pthread_t th;

	gate_close();
	kn_group_set_limit(g, 1);
	cr_assert_eq(kn_group_go(g, gated_task, NULL), 0);
	cr_assert_eq(pthread_create(&th, NULL, go_thread, &c), 0);
	nap_ms(20);
	kn_ctx_cancel(parent, 0, NULL);
	pthread_join(th, NULL);
	cr_assert_eq(c.ret, ECANCELED);
	cr_assert_eq(kn_group_skipped(g), 1);
	gate_open();
	cr_assert_eq(kn_group_wait(g), 0);
	cr_assert_eq(at_load_relaxed(&started_after_cancel), 0);
	kn_group_free(g);
	kn_ctx_release(parent);
	kn_pool_free(p);
}

static int signal_task(kn_ctx *ctx, void *arg)
{
	(void)ctx;
	kn_waitgroup_done(arg);
	return 0;
}

Test(group, raising_the_limit_lets_blocked_go_through)
{
	kn_pool *p = pool_of(2, 0);
	kn_group *g = kn_group_new(NULL, p);
	kn_waitgroup second = KN_WAITGROUP_INIT;
	struct go_call c = { g, signal_task, &second, -1, false };
	pthread_t th;

	gate_close();
	kn_waitgroup_add(&second, 1);
	kn_group_set_limit(g, 1);
	cr_assert_eq(kn_group_go(g, gated_task, NULL), 0);
	cr_assert_eq(pthread_create(&th, NULL, go_thread, &c), 0);
	nap_ms(20);
	cr_assert_eq(kn_group_set_limit(g, 2), 0);
	pthread_join(th, NULL);
	cr_assert_eq(c.ret, 0);
	/* The second task runs while the first still holds its slot. */
	cr_assert_eq(kn_waitgroup_wait(&second), 0);
	gate_open();
	cr_assert_eq(kn_group_wait(g), 0);
	kn_group_free(g);
	kn_pool_free(p);
}

struct nested {
	kn_pool *pool;
	int ret;
	_Atomic int ran;
};

static void group_in_task(void *arg)
{
	struct nested *n = arg;
	kn_group *g = kn_group_new(NULL, n->pool);
	int i;

	TASK_CHECK(g != NULL);
	for (i = 0; i < 10; i++)
		TASK_CHECK(kn_group_go(g, ok_task, (void *)&n->ran) == 0);
	n->ret = kn_group_wait(g);
	kn_group_free(g);
}

Test(group, a_group_waited_for_inside_a_pool_task_does_not_deadlock)
{
	/* One worker: the wait blocks it, a spare runs the group's tasks. */
	kn_pool *p = pool_of(1, 1);
	struct nested n = { p, -1, 0 };
	kn_task *t = kn_pool_spawn_task(p, group_in_task, &n);

	cr_assert_eq(kn_task_join(t), 0);
	cr_assert_eq(n.ret, 0);
	cr_assert_eq(at_load_relaxed(&n.ran), 10);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_pool_free(p);
}

static _Atomic int failed_runs;

static int fail_with_index(kn_ctx *ctx, void *arg)
{
	(void)ctx;
	at_add_relaxed(&failed_runs, 1);
	return (int)(intptr_t)arg;
}

Test(group, many_failures_at_once_report_exactly_one)
{
	kn_pool *p = pool_of(4, 0);
	kn_group *g = kn_group_new(NULL, p);
	int i, err, cause, accepted = 0;

	for (i = 1; i <= 1000; i++) {
		err = kn_group_go(g, fail_with_index, (void *)(intptr_t)i);
		cr_assert(err == 0 || err == ECANCELED);
		accepted += err == 0;
	}
	err = kn_group_wait(g);
	cause = kn_ctx_cause(kn_group_ctx(g), NULL);
	cr_assert(err >= 1 && err <= 1000, "error %d", err);
	cr_assert_eq(cause, err);
	cr_assert_eq(at_load_relaxed(&failed_runs), accepted);
	cr_assert_eq(accepted + (int)kn_group_skipped(g), 1000);
	kn_group_free(g);
	kn_pool_free(p);
}

struct shut {
	kn_pool *pool;
	size_t dropped;
};

static void *shutdown_now(void *arg)
{
	struct shut *s = arg;

	kn_pool_shutdown(s->pool, false, &s->dropped);
	return NULL;
}

static void hold(void *arg)
{
	at_store_release((_Atomic int *)arg, 1);
	gate_wait();
}

Test(group, tasks_dropped_by_the_pool_count_as_skipped)
{
	kn_pool *p = pool_of(1, KN_POOL_NO_SPARE);
	kn_group *g = kn_group_new(NULL, p);
	static _Atomic int held, ran;
	struct shut s = { p, 0 };
	pthread_t th;
	int i;

	gate_close();
	cr_assert_eq(kn_pool_spawn(p, hold, (void *)&held), 0);
	while (!at_load_acquire(&held))
		nap_ms(1);
	for (i = 0; i < 5; i++)
		cr_assert_eq(kn_group_go(g, ok_task, (void *)&ran), 0);
	cr_assert_eq(pthread_create(&th, NULL, shutdown_now, &s), 0);
	cr_assert_eq(kn_group_wait(g), ECANCELED);
	cr_assert_eq(kn_group_skipped(g), 5);
	cr_assert_eq(at_load_relaxed(&ran), 0);
	gate_open();
	pthread_join(th, NULL);
	cr_assert_eq(s.dropped, 5);
	kn_group_free(g);
	kn_pool_free(p);
}

Test(group, bad_arguments)
{
	kn_group *g = kn_group_new(NULL, NULL); /* the default pool */

	cr_assert_not_null(g);
	cr_assert_eq(kn_group_go(NULL, ok_task, NULL), EINVAL);
	cr_assert_eq(kn_group_go(g, NULL, NULL), EINVAL);
	cr_assert_eq(kn_group_try_go(g, NULL, NULL), EINVAL);
	cr_assert_eq(kn_group_set_limit(NULL, 1), EINVAL);
	cr_assert_eq(kn_group_wait(NULL), EINVAL);
	cr_assert_null(kn_group_ctx(NULL));
	cr_assert_eq(kn_group_skipped(NULL), 0);
	kn_group_free(NULL);
	cr_assert_eq(kn_group_wait(g), 0);
	kn_group_free(g);
}

/* ---- wait group --------------------------------------------------------- */

static void *done_thread(void *arg)
{
	kn_waitgroup_done(arg);
	return NULL;
}

Test(waitgroup, wait_returns_once_every_done_is_in)
{
	kn_waitgroup wg = KN_WAITGROUP_INIT;
	pthread_t th[3];
	int i;

	cr_assert_eq(kn_waitgroup_wait(&wg), 0); /* zero: at once */
	cr_assert_eq(kn_waitgroup_add(&wg, 3), 0);
	for (i = 0; i < 3; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, done_thread, &wg), 0);
	cr_assert_eq(kn_waitgroup_wait(&wg), 0);
	for (i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
}

Test(waitgroup, the_counter_never_goes_negative)
{
	kn_waitgroup wg;

	kn_waitgroup_init(&wg);
	cr_assert_eq(kn_waitgroup_done(&wg), EINVAL);
	cr_assert_eq(kn_waitgroup_add(&wg, 2), 0);
	cr_assert_eq(kn_waitgroup_add(&wg, -3), EINVAL);
	cr_assert_eq(kn_waitgroup_add(&wg, INT32_MAX), EINVAL);
	cr_assert_eq(kn_waitgroup_wait_until(&wg, 0), ETIMEDOUT);
	cr_assert_eq(kn_waitgroup_add(&wg, -2), 0);
	cr_assert_eq(kn_waitgroup_wait(&wg), 0);
	cr_assert_eq(kn_waitgroup_add(NULL, 1), EINVAL);
	cr_assert_eq(kn_waitgroup_wait(NULL), EINVAL);
}

Test(waitgroup, deadlines)
{
	kn_waitgroup wg = KN_WAITGROUP_INIT;

	kn_waitgroup_add(&wg, 1);
	cr_assert_eq(kn_waitgroup_wait_until(&wg, 0), ETIMEDOUT);
	cr_assert_eq(kn_waitgroup_wait_until(&wg, kn_deadline_in(2000000)), ETIMEDOUT);
	kn_waitgroup_done(&wg);
	cr_assert_eq(kn_waitgroup_wait_until(&wg, 0), 0);
}

static void *cancel_later(void *arg)
{
	nap_ms(10);
	kn_ctx_cancel(arg, 0, NULL);
	return NULL;
}

Test(waitgroup, contexts)
{
	kn_waitgroup wg = KN_WAITGROUP_INIT;
	kn_ctx *done = kn_ctx_with_cancel(NULL), *live = kn_ctx_with_cancel(NULL);
	pthread_t th;

	kn_ctx_cancel(done, 0, NULL);
	/* A cancelled context fails first, even with nothing to wait for. */
	cr_assert_eq(kn_waitgroup_wait_ctx(&wg, done), ECANCELED);
	kn_waitgroup_add(&wg, 1);
	cr_assert_eq(pthread_create(&th, NULL, cancel_later, live), 0);
	cr_assert_eq(kn_waitgroup_wait_ctx(&wg, live), ECANCELED);
	pthread_join(th, NULL);
	kn_waitgroup_done(&wg);
	kn_ctx_release(done);
	kn_ctx_release(live);
}

static void done_task(void *arg)
{
	kn_waitgroup_done(arg);
}

Test(waitgroup, freed_as_soon_as_wait_returns)
{
	/* The last done may still be waking waiters when the count hits
	 * zero; the waiter frees at once (AddressSanitizer watches). */
	kn_pool *p = pool_of(2, 0);
	int round, i;

	for (round = 0; round < 2000; round++) {
		kn_waitgroup *wg = malloc(sizeof(*wg));

		cr_assert_not_null(wg);
		kn_waitgroup_init(wg);
		kn_waitgroup_add(wg, 4);
		for (i = 0; i < 4; i++)
			cr_assert_eq(kn_pool_spawn(p, done_task, wg), 0);
		cr_assert_eq(kn_waitgroup_wait(wg), 0);
		free(wg);
	}
	kn_pool_free(p);
}

/* A wait inside a pool task lets a spare run: test_pool.c
 * (a_blocked_task_lets_a_spare_run_the_rest). */
