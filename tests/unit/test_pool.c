/*
 * test_pool.c - the work-stealing deque and the pool (kanal/pool.h).
 *
 * Behaviour only: which thread ran what, counts, return values, the
 * pool's own counters. Where a test needs a task to hold its worker, it
 * waits at a gate (gate_open releases it) by sleeping outside kanal: a
 * kanal wait would suspend the task and free its thread.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "deque.h"
#include "kanal/chan.h"
#include "kanal/group.h"
#include "kanal/pool.h"

#include "pool_helpers.h"

static void count_task(void *arg)
{
	at_add_relaxed((_Atomic uint64_t *)arg, 1);
}

static void gate_task(void *arg)
{
	(void)arg;
	gate_wait();
}

/* ---- the deque ---------------------------------------------------------- */

/* Items are even numbers: bit 0 (DEQUE_TAKE_ANYWAY) is the pool's tag. */
Test(deque, lifo_for_owner_fifo_for_thief_and_growth)
{
	struct deque d;
	uintptr_t i;
	void *x;

	cr_assert_eq(deque_init(&d, 2), 0);
	for (i = 1; i <= 1000; i++) /* grows 4 -> 1024 on the way */
		cr_assert_eq(deque_push(&d, (void *)(2 * i)), 0);
	cr_assert_eq(deque_steal(&d, &x, 8), STEAL_OK);
	cr_assert_eq((uintptr_t)x, 2);
	cr_assert_eq(deque_steal(&d, &x, 0), STEAL_OK);
	cr_assert_eq((uintptr_t)x, 4);
	for (i = 1000; i >= 5; i--)
		cr_assert_eq((uintptr_t)deque_pop(&d), 2 * i);
	/* Two left: a thief that leaves up to 2 (or more) to the owner. */
	cr_assert_eq(deque_steal(&d, &x, 2), STEAL_LEFT);
	cr_assert_eq(deque_steal(&d, &x, 1), STEAL_OK);
	cr_assert_eq((uintptr_t)x, 6);
	cr_assert_eq(deque_steal(&d, &x, 1), STEAL_LEFT);
	/* ... unless the item is tagged to be taken anyway. */
	cr_assert_eq(deque_push(&d, (void *)(10 | DEQUE_TAKE_ANYWAY)), 0);
	cr_assert_eq(deque_steal(&d, &x, 2), STEAL_LEFT); /* 8 is oldest */
	cr_assert_eq((uintptr_t)deque_pop(&d), 10 | DEQUE_TAKE_ANYWAY);
	cr_assert_eq(deque_push(&d, (void *)(12 | DEQUE_TAKE_ANYWAY)), 0);
	cr_assert_eq(deque_steal(&d, &x, 0), STEAL_OK);
	cr_assert_eq((uintptr_t)x, 8);
	cr_assert_eq(deque_steal(&d, &x, 8), STEAL_OK);
	cr_assert_eq((uintptr_t)x, 12 | DEQUE_TAKE_ANYWAY);
	cr_assert_null(deque_pop(&d));
	cr_assert_eq(deque_steal(&d, &x, 0), STEAL_EMPTY);
	cr_assert(deque_empty(&d));
	deque_destroy(&d);
}

#define DQ_ITEMS 200000
#define DQ_THIEVES 2

struct dq_run {
	struct deque d;
	_Atomic uint8_t seen[DQ_ITEMS + 1];
	_Atomic bool done;
	_Atomic uint64_t dup;
};

static void dq_take(struct dq_run *r, void *x)
{
	if (at_add_relaxed(&r->seen[(uintptr_t)x], 1) != 0)
		at_add_relaxed(&r->dup, 1);
}

static void *dq_thief(void *arg)
{
	struct dq_run *r = arg;
	void *x;

	for (;;) {
		bool done = at_load_acquire(&r->done);

		if (deque_steal(&r->d, &x, 0) == STEAL_OK)
			dq_take(r, x);
		else if (done && deque_empty(&r->d))
			break;
	}
	return NULL;
}

Test(deque, concurrent_owner_and_thieves_take_each_item_once)
{
	static struct dq_run r;
	pthread_t th[DQ_THIEVES];
	uintptr_t i;
	void *x;
	int k;

	cr_assert_eq(deque_init(&r.d, 2), 0); /* grows under the thieves */
	for (k = 0; k < DQ_THIEVES; k++)
		cr_assert_eq(pthread_create(&th[k], NULL, dq_thief, &r), 0);
	for (i = 1; i <= DQ_ITEMS; i++) {
		cr_assert_eq(deque_push(&r.d, (void *)i), 0);
		if (i % 3 == 0 && (x = deque_pop(&r.d)) != NULL)
			dq_take(&r, x);
	}
	while ((x = deque_pop(&r.d)) != NULL)
		dq_take(&r, x);
	at_store_release(&r.done, true);
	for (k = 0; k < DQ_THIEVES; k++)
		pthread_join(th[k], NULL);
	cr_assert_eq(at_load_relaxed(&r.dup), 0, "an item was taken twice");
	for (i = 1; i <= DQ_ITEMS; i++)
		cr_assert_eq(at_load_relaxed(&r.seen[i]), 1, "item %lu lost",
			     (unsigned long)i);
	deque_destroy(&r.d);
}

/* ---- spawning and running ------------------------------------------------ */

Test(pool, spawn_from_outside_runs_every_task)
{
	kn_pool *p = pool_of(2, 0);
	static _Atomic uint64_t n;
	struct kn_pool_stats st;
	int i;

	for (i = 0; i < 10000; i++)
		cr_assert_eq(kn_pool_spawn(p, count_task, &n), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(at_load_relaxed(&n), 10000);
	cr_assert_eq(kn_pool_stats(p, &st), 0);
	cr_assert_eq(st.tasks_run, 10000);
	cr_assert_eq(st.workers, 2);
	kn_pool_free(p);
}

Test(pool, bad_arguments)
{
	struct kn_pool_opts o = { .workers = 5000 };
	struct kn_pool_stats st;
	kn_pool *p;

	errno = 0;
	cr_assert_null(kn_pool_new(&o));
	cr_assert_eq(errno, EINVAL);
	p = pool_of(1, 0);
	cr_assert_eq(kn_pool_spawn(NULL, count_task, NULL), EINVAL);
	cr_assert_eq(kn_pool_spawn(p, NULL, NULL), EINVAL);
	errno = 0;
	cr_assert_null(kn_pool_spawn_task(p, NULL, NULL));
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(kn_task_join(NULL), EINVAL);
	cr_assert_eq(kn_pool_wait_idle(NULL), EINVAL);
	cr_assert_eq(kn_pool_shutdown(NULL, true, NULL), EINVAL);
	cr_assert_eq(kn_pool_stats(NULL, &st), EINVAL);
	cr_assert_eq(kn_go(NULL, NULL), EINVAL);
	kn_pool_free(NULL);
	kn_pool_free(p);
}

struct fib {
	int n;
	long r;
};

static long fib_serial(int n)
{
	return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

static void fib_task(void *arg);

/* fork-join: fib(n-1) as a task, fib(n-2) here, join. */
static long fib(int n, int cutoff)
{
	struct fib c = { n - 1, 0 };
	kn_task *t;
	long y;

	if (n < cutoff)
		return fib_serial(n);
	t = kn_pool_spawn_task(kn_pool_current(), fib_task, &c);
	TASK_CHECK(t != NULL);
	y = fib(n - 2, cutoff);
	TASK_CHECK(kn_task_join(t) == 0);
	return c.r + y;
}

static void fib_task(void *arg)
{
	struct fib *f = arg;

	f->r = fib(f->n, 8);
}

Test(pool, nested_fork_join_on_one_worker_without_spares)
{
	/* The only worker runs the root, whose joins can only finish by
	 * running the subtasks themselves: a spawn inside a task goes to
	 * the local deque and join helps. */
	kn_pool *p = pool_of(1, KN_POOL_NO_SPARE);
	struct fib root = { 20, 0 };
	struct kn_pool_stats st;
	kn_task *t = kn_pool_spawn_task(p, fib_task, &root);

	cr_assert_not_null(t);
	cr_assert_eq(kn_task_join(t), 0);
	cr_assert_eq(root.r, 6765);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_pool_stats(p, &st);
	cr_assert_eq(st.spares_started, 0);
	cr_assert_eq(st.steals, 0);
	cr_assert_eq(st.threads, 1);
	kn_pool_free(p);
}

Test(pool, nested_fork_join_on_many_workers)
{
	kn_pool *p = pool_of(4, 0);
	struct fib root = { 25, 0 };
	kn_task *t = kn_pool_spawn_task(p, fib_task, &root);

	cr_assert_not_null(t);
	cr_assert_eq(kn_task_join(t), 0);
	cr_assert_eq(root.r, 75025);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_pool_free(p);
}

struct spawner {
	kn_pool *pool;
	_Atomic uint64_t *count;
	int children;
};

static void spawn_children(void *arg)
{
	struct spawner *s = arg;
	int i;

	for (i = 0; i < s->children; i++)
		TASK_CHECK(kn_pool_spawn(s->pool, count_task, s->count) == 0);
	/* Hold the worker until the children ran: the other worker can only
	 * get them by stealing from this one's deque. */
	while (at_load_relaxed(s->count) < (uint64_t)s->children)
		nap_ms(1);
}

/* 200 children, and 3: a shallow deque is left to its owner only while
 * the owner makes progress, and this one is stuck in its task. */
Test(pool, spawn_inside_a_task_goes_to_the_local_deque)
{
	static const unsigned sizes[] = { 200, 3 };
	static _Atomic uint64_t n;
	struct kn_pool_stats st;

	for (unsigned k = 0; k < 2; k++) {
		kn_pool *p = pool_of(2, KN_POOL_NO_SPARE);
		struct spawner s = { p, &n, sizes[k] };

		at_store_relaxed(&n, 0);
		gate_close();
		cr_assert_eq(kn_pool_spawn(p, spawn_children, &s), 0);
		cr_assert_eq(kn_pool_wait_idle(p), 0);
		gate_open();
		kn_pool_stats(p, &st);
		cr_assert_eq(at_load_relaxed(&n), sizes[k]);
		cr_assert_eq(st.steals, sizes[k], "steals %llu", (unsigned long long)st.steals);
		cr_assert_eq(st.tasks_run, sizes[k] + 1);
		cr_assert_eq(at_load_relaxed(&task_failures), 0);
		kn_pool_free(p);
	}
}

static void set_flag(void *arg)
{
	at_store_release((_Atomic int *)arg, 1);
}

Test(pool, join_from_outside_waits_for_the_task)
{
	kn_pool *p = pool_of(2, 0);
	static _Atomic int flag;
	kn_task *t;

	gate_close();
	cr_assert_eq(kn_pool_spawn(p, gate_task, NULL), 0);
	t = kn_pool_spawn_task(p, set_flag, &flag);
	cr_assert_not_null(t);
	gate_open();
	cr_assert_eq(kn_task_join(t), 0);
	cr_assert_eq(at_load_acquire(&flag), 1);
	kn_pool_free(p);
}

struct tree {
	kn_pool *pool;
	_Atomic uint64_t *count;
	struct tree *child; /* the argument of both children */
};

static void tree_task(void *arg)
{
	struct tree *t = arg;

	at_add_relaxed(t->count, 1);
	if (!t->child)
		return;
	TASK_CHECK(kn_pool_spawn(t->pool, tree_task, t->child) == 0);
	TASK_CHECK(kn_pool_spawn(t->pool, tree_task, t->child) == 0);
}

Test(pool, wait_idle_waits_for_subtasks_too)
{
	kn_pool *p = pool_of(2, 0);
	static _Atomic uint64_t n;
	struct tree level[13];
	int i;

	/* A binary tree 13 levels deep: level i's node spawns two of i+1. */
	for (i = 0; i < 13; i++)
		level[i] = (struct tree){ p, &n, i < 12 ? &level[i + 1] : NULL };
	cr_assert_eq(kn_pool_spawn(p, tree_task, &level[0]), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(at_load_relaxed(&n), (1u << 13) - 1);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_pool_free(p);
}

static void wait_idle_inside(void *arg)
{
	at_store_release((_Atomic int *)arg, kn_pool_wait_idle(kn_pool_current()));
}

Test(pool, wait_idle_or_shutdown_from_own_task_is_einval)
{
	kn_pool *p = pool_of(1, 0);
	static _Atomic int r = -1;
	kn_task *t = kn_pool_spawn_task(p, wait_idle_inside, (void *)&r);

	cr_assert_eq(kn_task_join(t), 0);
	cr_assert_eq(at_load_acquire(&r), EINVAL);
	kn_pool_free(p);
}

/* ---- shutdown ------------------------------------------------------------- */

struct shut {
	kn_pool *pool;
	bool drain;
	size_t dropped;
	int ret;
};

static void *shutdown_thread(void *arg)
{
	struct shut *s = arg;

	s->ret = kn_pool_shutdown(s->pool, s->drain, &s->dropped);
	return NULL;
}

/* Until a shutdown on another thread has closed the pool. */
static void wait_closed(kn_pool *p)
{
	static _Atomic uint64_t probes;

	while (kn_pool_spawn(p, count_task, &probes) != EPIPE)
		nap_ms(1);
}

static void gate_task_started(void *arg)
{
	at_store_release((_Atomic int *)arg, 1);
	gate_wait();
}

Test(pool, drain_shutdown_runs_every_queued_task)
{
	kn_pool *p = pool_of(1, KN_POOL_NO_SPARE);
	static _Atomic uint64_t n;
	struct shut s = { p, true, 99, -1 };
	pthread_t th;
	int i;

	gate_close();
	cr_assert_eq(kn_pool_spawn(p, gate_task, NULL), 0);
	for (i = 0; i < 100; i++)
		cr_assert_eq(kn_pool_spawn(p, count_task, &n), 0);
	cr_assert_eq(pthread_create(&th, NULL, shutdown_thread, &s), 0);
	wait_closed(p);
	gate_open();
	pthread_join(th, NULL);
	cr_assert_eq(s.ret, 0);
	cr_assert_eq(s.dropped, 0);
	cr_assert_eq(at_load_relaxed(&n), 100);
	cr_assert_eq(kn_pool_shutdown(p, true, NULL), EPIPE);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	kn_pool_free(p);
}

Test(pool, immediate_shutdown_drops_unstarted_tasks)
{
	kn_pool *p = pool_of(1, KN_POOL_NO_SPARE);
	static _Atomic uint64_t n;
	static _Atomic int started;
	struct shut s = { p, false, 0, -1 };
	pthread_t th;
	kn_task *t;
	int i;

	gate_close();
	cr_assert_eq(kn_pool_spawn(p, gate_task_started, (void *)&started), 0);
	/* The gate holds the only worker before the rest is queued, so the
	 * rest stays in the injector (no batch of it on the worker's deque). */
	while (!at_load_acquire(&started))
		nap_ms(1);
	for (i = 0; i < 50; i++)
		cr_assert_eq(kn_pool_spawn(p, count_task, &n), 0);
	t = kn_pool_spawn_task(p, count_task, &n);
	cr_assert_not_null(t);
	cr_assert_eq(pthread_create(&th, NULL, shutdown_thread, &s), 0);
	/* The handle was queued last: once its join reports the drop, the
	 * whole queue is gone, while the gate still holds the worker. */
	cr_assert_eq(kn_task_join(t), ECANCELED);
	gate_open();
	pthread_join(th, NULL);
	cr_assert_eq(s.ret, 0);
	cr_assert_eq(s.dropped, 51);
	cr_assert_eq(at_load_relaxed(&n), 0);
	errno = 0;
	cr_assert_null(kn_pool_spawn_task(p, count_task, &n));
	cr_assert_eq(errno, EPIPE);
	kn_pool_free(p);
}

/* Immediate shutdown while a worker holds a suspended task that is (or
 * becomes) runnable and queued tasks on its deque (issue 18, item 1): the
 * queued tasks are dropped (their joins return ECANCELED), the suspended
 * task resumes and finishes, and the shutdown returns. A: the task that
 * suspends (in a channel receive); B: the task that wakes it once the
 * shutdown is under way; the victims: joinable tasks queued behind them.
 * Queued on the worker's deque by B (local spawns), taken there with A
 * and B in one injector batch, or spawned by A itself after it resumed
 * during the shutdown. Whether a victim started before the stop is a race
 * of the scenario, so the test checks the accounting: each victim ran or
 * was dropped, and the shutdown counted exactly the drops. */
enum stop_mode { STOP_LOCAL, STOP_BATCH, STOP_RESPAWN };

static struct {
	enum stop_mode mode;
	kn_pool *pool;
	kn_chan *wake_a;                   /* capacity 1: sends never block */
	kn_task *victims[3];
	_Atomic uint64_t victims_ran;
	_Atomic int a_suspending, b_started, victims_queued, closed, a_done;
} stop;

static void spawn_victims(void)
{
	int i;

	for (i = 0; i < 3; i++) {
		stop.victims[i] = kn_pool_spawn_task(stop.pool, count_task,
						     (void *)&stop.victims_ran);
		TASK_CHECK(stop.victims[i] != NULL);
	}
	at_store_release(&stop.victims_queued, 1);
}

static void stop_task_a(void *arg)
{
	int64_t v;

	(void)arg;
	at_store_release(&stop.a_suspending, 1);
	TASK_CHECK(kn_chan_recv(stop.wake_a, &v) == 0);
	if (stop.mode == STOP_RESPAWN) {
		/* Resumed during the shutdown: queue more, suspend again. */
		spawn_victims();
		TASK_CHECK(kn_chan_recv(stop.wake_a, &v) == 0);
	}
	at_store_release(&stop.a_done, 1);
}

static void stop_task_b(void *arg)
{
	int64_t v = 1;

	(void)arg;
	if (stop.mode == STOP_LOCAL)
		spawn_victims();
	at_store_release(&stop.b_started, 1);
	while (!at_load_acquire(&stop.closed))
		nap_ms(1);
	nap_ms(20); /* the shutdown sets stopping right after closing */
	TASK_CHECK(kn_chan_send(stop.wake_a, &v) == 0);
}

static void immediate_shutdown_with_suspended_task(enum stop_mode mode)
{
	static _Atomic uint64_t probes_ran;
	static _Atomic int gate_started;
	struct shut s = { NULL, false, 0, -1 };
	uint64_t probes = 0, cancelled = 0;
	int64_t v = 2;
	pthread_t th;
	int i, r;

	memset(&stop, 0, sizeof(stop));
	stop.mode = mode;
	stop.pool = s.pool = pool_of(1, KN_POOL_NO_SPARE);
	stop.wake_a = kn_chan_new(sizeof(int64_t), 1);
	cr_assert_not_null(stop.wake_a);
	if (mode == STOP_BATCH) {
		/* Held by the gate, the worker later takes A, the victims
		 * and B from the injector in one batch. */
		gate_close();
		cr_assert_eq(kn_pool_spawn(s.pool, gate_task_started, (void *)&gate_started), 0);
		while (!at_load_acquire(&gate_started))
			nap_ms(1);
	}
	cr_assert_eq(kn_pool_spawn(s.pool, stop_task_a, NULL), 0);
	if (mode == STOP_BATCH) {
		spawn_victims();
	} else {
		while (!at_load_acquire(&stop.a_suspending))
			nap_ms(1);
	}
	cr_assert_eq(kn_pool_spawn(s.pool, stop_task_b, NULL), 0);
	if (mode == STOP_BATCH)
		gate_open();
	/* B must run before the stop: dropped, it would never wake A. */
	while (!at_load_acquire(&stop.b_started))
		nap_ms(1);
	cr_assert_eq(pthread_create(&th, NULL, shutdown_thread, &s), 0);
	/* Probes until the pool refuses: those accepted run or are dropped. */
	while ((r = kn_pool_spawn(s.pool, count_task, &probes_ran)) == 0)
		probes++;
	cr_assert_eq(r, EPIPE);
	at_store_release(&stop.closed, 1);
	if (mode == STOP_RESPAWN) {
		while (!at_load_acquire(&stop.victims_queued))
			nap_ms(1);
		cr_assert_eq(kn_chan_send(stop.wake_a, &v), 0);
	}
	pthread_join(th, NULL);
	cr_assert_eq(s.ret, 0);
	cr_assert_eq(at_load_acquire(&stop.a_done), 1, "the suspended task finished");
	for (i = 0; i < 3; i++) {
		r = kn_task_join(stop.victims[i]);
		cr_assert(r == 0 || r == ECANCELED, "join: %d", r);
		cancelled += r == ECANCELED;
	}
	cr_assert_eq(cancelled + at_load_relaxed(&stop.victims_ran), 3);
	cr_assert_eq(s.dropped, cancelled + probes - at_load_relaxed(&probes_ran));
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_pool_free(s.pool);
	kn_chan_free(stop.wake_a);
}

Test(pool, immediate_shutdown_resumes_a_suspended_task_beside_local_tasks, .timeout = 20)
{
	immediate_shutdown_with_suspended_task(STOP_LOCAL);
}

Test(pool, immediate_shutdown_resumes_a_suspended_task_beside_a_batch, .timeout = 20)
{
	immediate_shutdown_with_suspended_task(STOP_BATCH);
}

Test(pool, immediate_shutdown_drops_what_a_resumed_task_spawns, .timeout = 20)
{
	immediate_shutdown_with_suspended_task(STOP_RESPAWN);
}

/* Freeing one pool never waits for another pool's task (issue 18, item
 * 3): a task of pool A holds its worker outside kanal while pool B, whose
 * deque grew (a ring was replaced), is freed. */
static void spawn_many(void *arg)
{
	int i;

	for (i = 0; i < 1000; i++) /* beyond the first ring: it grows */
		TASK_CHECK(kn_pool_spawn(kn_pool_current(), count_task, arg) == 0);
}

Test(pool, free_does_not_wait_for_another_pools_task, .timeout = 20)
{
	kn_pool *a = pool_of(1, KN_POOL_NO_SPARE), *b = pool_of(1, KN_POOL_NO_SPARE);
	static _Atomic int started;
	static _Atomic uint64_t n;

	gate_close();
	cr_assert_eq(kn_pool_spawn(a, gate_task_started, (void *)&started), 0);
	while (!at_load_acquire(&started))
		nap_ms(1);
	cr_assert_eq(kn_pool_spawn(b, spawn_many, (void *)&n), 0);
	kn_pool_free(b); /* drains B, then frees it while A's task runs */
	cr_assert_eq(at_load_relaxed(&n), 1000);
	gate_open();
	kn_pool_free(a);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
}

/* ---- blocking tasks and spare threads ------------------------------------ */

static void wg_done_task(void *arg)
{
	kn_waitgroup_done(arg);
}

static void wg_wait_task(void *arg)
{
	kn_waitgroup_wait(arg);
}

/* n tasks that wait for a last one to release them; the pool's counters
 * once all have run. */
static struct kn_pool_stats release_waiters(kn_pool *p, int n)
{
	kn_waitgroup wg = KN_WAITGROUP_INIT;
	struct kn_pool_stats st;
	int i;

	kn_waitgroup_add(&wg, 1);
	for (i = 0; i < n; i++)
		cr_assert_eq(kn_pool_spawn(p, wg_wait_task, &wg), 0);
	cr_assert_eq(kn_pool_spawn(p, wg_done_task, &wg), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	kn_pool_stats(p, &st);
	cr_assert_eq(st.tasks_run, (uint64_t)n + 1);
	return st;
}

Test(pool, a_blocked_task_lets_a_spare_run_the_rest)
{
	kn_pool *p = thread_pool_of(1, 1);
	struct kn_pool_stats st = release_waiters(p, 1);

	cr_assert_leq(st.spares_started, 1);
	cr_assert_leq(st.threads, 2);
	kn_pool_free(p);
}

Test(pool, blocked_tasks_start_spares_up_to_the_cap)
{
	kn_pool *p = thread_pool_of(1, 3);
	kn_waitgroup wg = KN_WAITGROUP_INIT;
	struct kn_pool_stats st;
	int i;

	kn_waitgroup_add(&wg, 1);
	for (i = 0; i < 6; i++)
		cr_assert_eq(kn_pool_spawn(p, wg_wait_task, &wg), 0);
	/* 1 worker + 3 spares, all blocked: 2 tasks must still be queued. */
	do {
		nap_ms(1);
		kn_pool_stats(p, &st);
	} while (st.threads < 4);
	nap_ms(20);
	kn_pool_stats(p, &st);
	cr_assert_eq(st.threads, 4);
	cr_assert_eq(st.spares_started, 3);
	kn_waitgroup_done(&wg);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	kn_pool_stats(p, &st);
	cr_assert_eq(st.tasks_run, 6);
	cr_assert_eq(st.threads, 4);
	kn_pool_free(p);
}

struct stage {
	kn_chan *in, *out;
	int64_t mul, add;
};

static void stage_task(void *arg)
{
	struct stage *s = arg;
	int64_t v;

	while (kn_chan_recv(s->in, &v) == 0)
		TASK_CHECK(kn_chan_send(s->out, &(int64_t){ v * s->mul + s->add }) == 0);
	kn_chan_close(s->out);
}

struct source {
	kn_chan *out;
	int64_t n;
};

static void source_task(void *arg)
{
	struct source *s = arg;
	int64_t i;

	for (i = 0; i < s->n; i++)
		TASK_CHECK(kn_chan_send(s->out, &i) == 0);
	kn_chan_close(s->out);
}

/* source -> 3 stages -> this thread, over rendezvous channels, on p. */
static void four_stage_pipeline(kn_pool *p, int64_t n)
{
	kn_chan *ch[4];
	struct source src;
	struct stage st[3];
	int64_t v, sum = 0, i, want = 0;
	int k;

	for (k = 0; k < 4; k++)
		cr_assert_not_null(ch[k] = kn_chan_new(sizeof(int64_t), 0));
	src = (struct source){ ch[0], n };
	st[0] = (struct stage){ ch[0], ch[1], 2, 0 };
	st[1] = (struct stage){ ch[1], ch[2], 1, 1 };
	st[2] = (struct stage){ ch[2], ch[3], 3, 0 };
	cr_assert_eq(kn_pool_spawn(p, source_task, &src), 0);
	for (k = 0; k < 3; k++)
		cr_assert_eq(kn_pool_spawn(p, stage_task, &st[k]), 0);
	while (kn_chan_recv(ch[3], &v) == 0)
		sum += v;
	for (i = 0; i < n; i++)
		want += (i * 2 + 1) * 3;
	cr_assert_eq(sum, want);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_pool_free(p);
	for (k = 0; k < 4; k++)
		kn_chan_free(ch[k]);
}

Test(pool, four_stage_blocking_pipeline_on_two_workers)
{
	four_stage_pipeline(pool_of(2, 0), 2000);
}

/* The same with blocked threads and spares instead of fibers. */
Test(pool, four_stage_blocking_pipeline_on_threads)
{
	four_stage_pipeline(thread_pool_of(2, 0), 500);
}

/* ---- fibers: blocked tasks suspend, the thread runs on ------------------ */

/* The last task releases the 300 before it: each had to suspend for the
 * only thread to reach it. */
Test(pool, blocked_tasks_suspend_on_one_thread_without_spares)
{
	kn_pool *p = pool_of(1, KN_POOL_NO_SPARE);
	struct kn_pool_stats st = release_waiters(p, 300);

	cr_assert_eq(st.threads, 1);
	cr_assert_geq(st.switches, 300);
	kn_pool_free(p);
}

struct ping {
	kn_chan *ping, *pong;
	int64_t n;
};

static void ping_task(void *arg)
{
	struct ping *g = arg;
	int64_t i, v;

	for (i = 0; i < g->n; i++) {
		TASK_CHECK(kn_chan_send(g->ping, &i) == 0);
		TASK_CHECK(kn_chan_recv(g->pong, &v) == 0 && v == i + 1);
	}
	kn_chan_close(g->ping);
}

static void pong_task(void *arg)
{
	struct ping *g = arg;
	int64_t v;

	while (kn_chan_recv(g->ping, &v) == 0)
		TASK_CHECK(kn_chan_send(g->pong, &(int64_t){ v + 1 }) == 0);
}

/* Both ends on one thread with no spare: only fiber switches can make the
 * hand-offs. */
Test(pool, rendezvous_ping_pong_between_tasks_of_one_thread)
{
	kn_pool *p = pool_of(1, KN_POOL_NO_SPARE);
	struct ping g = { kn_chan_new(sizeof(int64_t), 0),
			  kn_chan_new(sizeof(int64_t), 0), 20000 };
	struct kn_pool_stats st;

	cr_assert_eq(kn_pool_spawn(p, pong_task, &g), 0);
	cr_assert_eq(kn_pool_spawn(p, ping_task, &g), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_pool_stats(p, &st);
	cr_assert_eq(st.threads, 1);
	cr_assert_geq(st.switches, (uint64_t)(2 * g.n));
	kn_pool_free(p);
	kn_chan_free(g.ping);
	kn_chan_free(g.pong);
}

static _Thread_local int thread_mark;

struct resume {
	kn_chan *ch;
	_Atomic int moved;
};

static void resume_task(void *arg)
{
	struct resume *r = arg;
	pthread_t me = pthread_self();
	int64_t v;
	int mark = (int)(uintptr_t)&v; /* differs per task */
	int *mark_at = &thread_mark;

	thread_mark = mark;
	errno = mark;
	TASK_CHECK(kn_chan_recv(r->ch, &v) == 0);
	if (!pthread_equal(me, pthread_self()) || errno != mark ||
	    thread_mark == 0 || &thread_mark != mark_at)
		at_add_relaxed(&r->moved, 1);
}

/* A suspended task resumes on its own thread with its own errno, though
 * other tasks ran on the thread meanwhile; thread-locals are the thread's. */
Test(pool, a_suspended_task_resumes_on_its_own_thread)
{
	kn_pool *p = pool_of(2, KN_POOL_NO_SPARE);
	struct resume r = { kn_chan_new(sizeof(int64_t), 0), 0 };
	int64_t i;

	for (i = 0; i < 64; i++)
		cr_assert_eq(kn_pool_spawn(p, resume_task, &r), 0);
	for (i = 0; i < 64; i++)
		cr_assert_eq(kn_chan_send(r.ch, &i), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(at_load_relaxed(&r.moved), 0);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_pool_free(p);
	kn_chan_free(r.ch);
}

struct timed {
	kn_chan *ch;
	int got, timed_out;
};

static void timed_recv_task(void *arg)
{
	struct timed *t = arg;
	int64_t v;

	/* Long enough to be answered; the sender can only run on this
	 * same thread while this task waits. */
	t->got = kn_chan_recv_until(t->ch, &v, kn_deadline_in(60000000000ull));
	t->timed_out = kn_chan_recv_until(t->ch, &v, kn_deadline_in(20000000));
}

static void timed_send_task(void *arg)
{
	struct timed *t = arg;

	TASK_CHECK(kn_chan_send(t->ch, &(int64_t){ 7 }) == 0);
}

Test(pool, a_wait_with_a_deadline_suspends_too)
{
	kn_pool *p = pool_of(1, KN_POOL_NO_SPARE);
	struct timed t = { kn_chan_new(sizeof(int64_t), 0), -1, -1 };

	cr_assert_eq(kn_pool_spawn(p, timed_recv_task, &t), 0);
	cr_assert_eq(kn_pool_spawn(p, timed_send_task, &t), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(t.got, 0);
	cr_assert_eq(t.timed_out, ETIMEDOUT);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_pool_free(p);
	kn_chan_free(t.ch);
}

struct idle_probe {
	kn_pool *p;
	_Atomic int returned;
};

static void *wait_idle_main(void *arg)
{
	struct idle_probe *ip = arg;

	kn_pool_wait_idle(ip->p);
	at_store_release(&ip->returned, 1);
	return NULL;
}

static void recv_task(void *arg)
{
	int64_t v;

	kn_chan_recv(arg, &v);
}

/* A suspended task keeps the pool busy: wait_idle and shutdown wait for
 * it even though every worker thread sleeps. */
Test(pool, a_suspended_task_keeps_the_pool_busy)
{
	struct idle_probe ip = { pool_of(2, KN_POOL_NO_SPARE), 0 };
	kn_chan *ch = kn_chan_new(sizeof(int64_t), 0);
	pthread_t th;

	cr_assert_eq(kn_pool_spawn(ip.p, recv_task, ch), 0);
	cr_assert_eq(pthread_create(&th, NULL, wait_idle_main, &ip), 0);
	nap_ms(30);
	cr_assert_eq(at_load_acquire(&ip.returned), 0);
	kn_chan_close(ch);
	pthread_join(th, NULL);
	cr_assert_eq(at_load_acquire(&ip.returned), 1);
	cr_assert_eq(kn_pool_spawn(ip.p, recv_task, ch), 0);
	kn_pool_free(ip.p); /* the task returns at once: ch is closed */
	kn_chan_free(ch);
}

/* ---- identity: names, hooks, current pool, default pool ----------------- */

static char names[4][16];
static _Atomic int starts[4], stops[4];
static kn_pool *hook_pool[4];

static void on_start(kn_pool *p, unsigned i, void *arg)
{
	TASK_CHECK(arg == (void *)names);
	pthread_getname_np(pthread_self(), names[i], sizeof(names[i]));
	hook_pool[i] = kn_pool_current();
	at_add_relaxed(&starts[i], 1);
	(void)p;
}

static void on_stop(kn_pool *p, unsigned i, void *arg)
{
	(void)p;
	(void)arg;
	at_add_relaxed(&stops[i], 1);
}

Test(pool, thread_names_and_start_stop_hooks)
{
	struct kn_pool_opts o = { .workers = 3, .name = "tpool",
				  .on_start = on_start, .on_stop = on_stop,
				  .hook_arg = names };
	kn_pool *p = kn_pool_new(&o);
	int i;

	cr_assert_not_null(p);
	kn_pool_shutdown(p, true, NULL);
	for (i = 0; i < 3; i++) {
		char want[16];

		snprintf(want, sizeof(want), "tpool-%d", i);
		cr_assert_str_eq(names[i], want);
		cr_assert_eq(hook_pool[i], p);
		cr_assert_eq(at_load_relaxed(&starts[i]), 1);
		cr_assert_eq(at_load_relaxed(&stops[i]), 1);
	}
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_pool_free(p);
}

Test(pool, long_name_prefixes_are_cut_to_keep_the_number)
{
	struct kn_pool_opts o = { .workers = 1, .name = "averyveryverylongprefix",
				  .on_start = on_start, .hook_arg = names };
	kn_pool *p = kn_pool_new(&o);

	cr_assert_not_null(p);
	kn_pool_wait_idle(p);
	cr_assert_str_eq(names[0], "averyveryvery-0");
	kn_pool_free(p);
}

static void record_current(void *arg)
{
	*(kn_pool **)arg = kn_pool_current();
}

Test(pool, current_is_the_pool_of_the_calling_worker)
{
	kn_pool *p = pool_of(1, 0), *seen = NULL;
	kn_task *t = kn_pool_spawn_task(p, record_current, &seen);

	cr_assert_null(kn_pool_current());
	cr_assert_eq(kn_task_join(t), 0);
	cr_assert_eq(seen, p);
	kn_pool_free(p);
}

static kn_waitgroup go_wg = KN_WAITGROUP_INIT;
static _Atomic int go_ran;

static void go_leaf(void *arg)
{
	(void)arg;
	at_add_relaxed(&go_ran, 1);
	kn_waitgroup_done(&go_wg);
}

static void go_parent(void *arg)
{
	(void)arg;
	TASK_CHECK(kn_pool_current() != NULL);
	TASK_CHECK(kn_go(go_leaf, NULL) == 0);
	go_leaf(NULL);
}

Test(pool, go_uses_a_default_pool)
{
	kn_waitgroup_add(&go_wg, 2);
	cr_assert_eq(kn_go(go_parent, NULL), 0);
	cr_assert_eq(kn_waitgroup_wait(&go_wg), 0);
	cr_assert_eq(at_load_relaxed(&go_ran), 2);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
}

/* ---- steady state: no allocation, no wake-up when idle ------------------ */

Test(pool, spawning_allocates_nothing_in_steady_state)
{
	kn_pool *p = pool_of(2, KN_POOL_NO_SPARE);
	static _Atomic uint64_t n;
	static _Atomic int started[2];
	uint64_t before;
	int round, i;

	/* Warm-up: 1000 records in flight at once (both workers held by the
	 * gate), more than the workers' private caches (256 each) can hoard
	 * plus a round, so that the spawner always finds some afterwards. */
	gate_close();
	for (i = 0; i < 2; i++) {
		cr_assert_eq(kn_pool_spawn(p, gate_task_started, (void *)&started[i]), 0);
		while (!at_load_acquire(&started[i]))
			nap_ms(1);
	}
	for (i = 0; i < 1000; i++)
		cr_assert_eq(kn_pool_spawn(p, count_task, &n), 0);
	gate_open();
	kn_pool_wait_idle(p);
	before = kn_stat_allocs();
	for (round = 0; round < 50; round++) {
		for (i = 0; i < 100; i++)
			cr_assert_eq(kn_pool_spawn(p, count_task, &n), 0);
		kn_pool_wait_idle(p);
	}
	cr_assert_eq(kn_stat_allocs() - before, 0, "%llu allocations",
		     (unsigned long long)(kn_stat_allocs() - before));
	cr_assert_eq(at_load_relaxed(&n), 1000 + 5000);
	kn_pool_free(p);
}

Test(pool, an_idle_pool_makes_no_system_call)
{
	kn_pool *p = pool_of(2, 0);
	static _Atomic uint64_t n;
	struct kn_pool_stats st;
	uint64_t before;
	int i;

	for (i = 0; i < 1000; i++)
		kn_pool_spawn(p, count_task, &n);
	kn_pool_wait_idle(p);
	nap_ms(50); /* any spinning has long ended */
	before = kn_stat_syscalls();
	nap_ms(300);
	cr_assert_eq(kn_stat_syscalls(), before, "an idle pool woke up");
	kn_pool_stats(p, &st);
	cr_assert_geq(st.parks, 2);
	kn_pool_free(p);
}
