/*
 * test_time.c - kanal/time.h: sleeping, yielding, timer channels.
 *
 * Timing never decides a verdict here: a sleep or a timer must not end
 * before its deadline (an ordering of two clock readings), and how late it
 * ends is not checked. Tick counts are checked only against what a backlog
 * would deliver (dozens), never against the period.
 */
#include <pthread.h>

#include <criterion/criterion.h>

#include "kanal/ctx.h"
#include "kanal/time.h"
#include "pool_helpers.h"

#define MS 1000000ull

Test(time, sleep_on_a_thread_ends_after_its_deadline)
{
	uint64_t d = kn_deadline_in(2 * MS);

	cr_assert_eq(kn_sleep_until(d), 0);
	cr_assert_geq(kn_now(), d);
	d = kn_now() + MS;
	cr_assert_eq(kn_sleep(MS), 0);
	cr_assert_geq(kn_now(), d);
	cr_assert_eq(kn_sleep(0), 0);
	cr_assert_eq(kn_sleep_until(0), 0);
}

struct sleeper {
	uint64_t ns;
	_Atomic int *left;
};

static void sleep_task(void *arg)
{
	struct sleeper *s = arg;
	uint64_t d = kn_now() + s->ns;

	kn_sleep(s->ns);
	TASK_CHECK(kn_now() >= d);
	at_sub_seq_cst(s->left, 1);
}

/* 2,000 sleeping tasks on two workers and no spare thread: a sleeping
 * task holds no thread, or the others could not even start. */
Test(time, sleeping_tasks_hold_no_thread)
{
	enum { N = 2000 };
	static struct sleeper s[N];
	_Atomic int left = N;
	kn_pool *p = pool_of(2, KN_POOL_NO_SPARE);
	struct kn_pool_stats st;
	int i;

	for (i = 0; i < N; i++) {
		s[i] = (struct sleeper){ (uint64_t)(1 + i % 10) * MS, &left };
		cr_assert_eq(kn_pool_spawn(p, sleep_task, &s[i]), 0);
	}
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(at_load_seq_cst(&left), 0);
	cr_assert_eq(kn_pool_stats(p, &st), 0);
	cr_assert_eq(st.threads, 2);
	kn_pool_free(p);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
}

/* On a pool without fibers a sleeping task blocks its thread, and a spare
 * takes its place. */
Test(time, sleep_on_a_pool_without_fibers_blocks_the_thread)
{
	_Atomic int left = 1;
	struct sleeper s = { 2 * MS, &left };
	kn_pool *p = thread_pool_of(1, 4);

	cr_assert_eq(kn_pool_spawn(p, sleep_task, &s), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(at_load_seq_cst(&left), 0);
	kn_pool_free(p);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
}

static void *cancel_later(void *arg)
{
	nap_ms(5);
	kn_ctx_cancel(arg, ECANCELED, NULL);
	return NULL;
}

Test(time, sleep_ctx_returns_ecanceled)
{
	kn_ctx *c = kn_ctx_with_cancel(NULL);
	pthread_t t;

	cr_assert_not_null(c);
	cr_assert_eq(kn_sleep_ctx(MS, c), 0);
	cr_assert_eq(pthread_create(&t, NULL, cancel_later, c), 0);
	cr_assert_eq(kn_sleep_ctx(3600000 * MS, c), ECANCELED);
	pthread_join(t, NULL);
	/* Already cancelled: at once, even for a zero sleep. */
	cr_assert_eq(kn_sleep_ctx(0, c), ECANCELED);
	kn_ctx_release(c);
}

struct sleep_ctx_arg {
	kn_ctx *ctx;
	_Atomic int result;
};

static void sleep_ctx_task(void *arg)
{
	struct sleep_ctx_arg *a = arg;

	at_store_seq_cst(&a->result, kn_sleep_ctx(3600000 * MS, a->ctx));
}

Test(time, sleep_ctx_in_a_task_is_cancelled)
{
	struct sleep_ctx_arg a = { kn_ctx_with_cancel(NULL), -1 };
	kn_pool *p = pool_of(1, KN_POOL_NO_SPARE);

	cr_assert_eq(kn_pool_spawn(p, sleep_ctx_task, &a), 0);
	nap_ms(5);
	kn_ctx_cancel(a.ctx, ECANCELED, NULL);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(at_load_seq_cst(&a.result), ECANCELED);
	kn_pool_free(p);
	kn_ctx_release(a.ctx);
}

/* One worker: the yielding task lets the task it spawned run first. */
static _Atomic int order;

static void yield_child(void *arg)
{
	(void)arg;
	TASK_CHECK(at_xchg_seq_cst(&order, 2) == 1);
}

static void yield_parent(void *arg)
{
	kn_pool *p = arg;

	at_store_seq_cst(&order, 1);
	TASK_CHECK(kn_pool_spawn(p, yield_child, NULL) == 0);
	kn_yield();
	TASK_CHECK(at_load_seq_cst(&order) == 2);
	kn_yield(); /* nothing else to run: returns at once */
}

Test(time, yield_lets_the_other_tasks_of_the_worker_run)
{
	kn_pool *p = pool_of(1, KN_POOL_NO_SPARE);

	cr_assert_eq(kn_pool_spawn(p, yield_parent, p), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	kn_pool_free(p);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_yield(); /* a plain thread: sched_yield */
}

Test(time, one_shot_fires_once_after_its_delay)
{
	uint64_t t0 = kn_now(), v = 0;
	kn_timer *t = kn_timer_new(2 * MS, 0);

	cr_assert_not_null(t);
	cr_assert_eq(kn_chan_recv(kn_timer_chan(t), &v), 0);
	cr_assert_geq(v, t0 + 2 * MS);
	cr_assert_eq(kn_chan_recv_until(kn_timer_chan(t), &v, kn_deadline_in(10 * MS)),
		     ETIMEDOUT);
	/* Reset re-arms a fired one-shot. */
	t0 = kn_now();
	cr_assert_eq(kn_timer_reset(t, MS, 0), 0);
	cr_assert_eq(kn_chan_recv(kn_timer_chan(t), &v), 0);
	cr_assert_geq(v, t0 + MS);
	kn_timer_free(t);
}

Test(time, timer_in_select_beside_a_silent_channel)
{
	kn_chan *silent = kn_chan_new(sizeof(int), 0);
	kn_timer *t = kn_timer_new(MS, 0);
	uint64_t v;
	int x;
	struct kn_case cs[] = {
		{ silent, KN_RECV, &x },
		{ kn_timer_chan(t), KN_RECV, &v },
	};
	size_t fired = 9;

	cr_assert_eq(kn_select(cs, 2, 0, KN_FOREVER, NULL, &fired), 0);
	cr_assert_eq(fired, 1);
	kn_timer_free(t);
	kn_chan_free(silent);
}

Test(time, stop_and_reset_leave_no_stale_value)
{
	kn_timer *t = kn_timer_new(3600000 * MS, 0);
	uint64_t v;

	cr_assert_not_null(t);
	cr_assert_eq(kn_timer_stop(t), 0);
	cr_assert_eq(kn_timer_stop(t), 0);
	/* A fired, unreceived value is discarded by stop. */
	cr_assert_eq(kn_timer_reset(t, 0, 0), 0);
	while (kn_chan_len(kn_timer_chan(t)) == 0)
		nap_ms(1);
	cr_assert_eq(kn_timer_stop(t), 0);
	cr_assert_eq(kn_chan_try_recv(kn_timer_chan(t), &v), EAGAIN);
	/* And nothing comes later. */
	nap_ms(5);
	cr_assert_eq(kn_chan_try_recv(kn_timer_chan(t), &v), EAGAIN);
	kn_timer_free(t);
	cr_assert_eq(kn_timer_stop(NULL), EINVAL);
	cr_assert_eq(kn_timer_reset(NULL, 0, 0), EINVAL);
	cr_assert_null(kn_timer_chan(NULL));
	kn_timer_free(NULL);
}

/* A slow receiver gets one buffered tick, not a backlog: after 50 periods
 * unreceived, draining finds one value (two or three only if ticks fire
 * during the drain itself). Values strictly increase. */
Test(time, ticker_drops_ticks_for_a_slow_receiver)
{
	kn_timer *t = kn_timer_new(MS, MS);
	uint64_t v, last = 0;
	int n = 0, i;

	cr_assert_not_null(t);
	nap_ms(50);
	while (kn_chan_try_recv(kn_timer_chan(t), &v) == 0) {
		cr_assert_gt(v, last);
		last = v;
		n++;
	}
	cr_assert(n >= 1 && n <= 3, "drained %d ticks", n);
	for (i = 0; i < 5; i++) {
		cr_assert_eq(kn_chan_recv(kn_timer_chan(t), &v), 0);
		cr_assert_gt(v, last);
		last = v;
	}
	cr_assert_eq(kn_timer_stop(t), 0);
	nap_ms(5);
	cr_assert_eq(kn_chan_try_recv(kn_timer_chan(t), &v), EAGAIN);
	kn_timer_free(t);
}

/* Timers stopped and freed in every state while the timer thread fires
 * others: ASan's leak and use-after-free checks are the verdict. */
Test(time, timers_freed_in_any_state)
{
	enum { N = 500 };
	kn_timer *t[N];
	int i;

	for (i = 0; i < N; i++) {
		t[i] = kn_timer_new((uint64_t)(i % 7) * 100000, (i % 3) ? 100000 : 0);
		cr_assert_not_null(t[i]);
	}
	nap_ms(1);
	for (i = 0; i < N; i++) {
		if (i % 4 == 0)
			cr_assert_eq(kn_timer_reset(t[i], 50000, 0), 0);
		kn_timer_free(t[i]);
	}
}
