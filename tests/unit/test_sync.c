/*
 * test_sync.c - the rules of kanal/sync.h: mutex, rwmutex, cond, once.
 *
 * A waiter is "blocked" once its node is on the object's wait queue
 * (sync_internal.h): kt_wait_n polls the queue's count. Threads that must
 * be asleep (not just queued) are observed through the waiter layer's
 * block hook, which runs just before the thread sleeps.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>

#include <kanal/chan.h>
#include <kanal/ctx.h>
#include <kanal/sync.h>

#include "pool_helpers.h"
#include "sync_internal.h"
#include "sleeps.h"

/* ---- helpers ------------------------------------------------------------- */

static void th_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	cr_assert_eq(pthread_create(t, NULL, fn, arg), 0);
}

static intptr_t th_join(pthread_t t)
{
	void *r;

	cr_assert_eq(pthread_join(t, &r), 0);
	return (intptr_t)r;
}

/* Wait until at least n nodes are on q. */
static void wait_queued(struct waitq *q, uint32_t n)
{
	while (at_load_seq_cst(&q->n) < n)
		nap_ms(1);
}

/* ---- mutex: basics and misuse -------------------------------------------- */

Test(mutex, static_init_try_and_misuse)
{
	kn_mutex m = KN_MUTEX_INIT;

	cr_assert_eq(kn_mutex_try_lock(&m), 0);
	cr_assert_eq(kn_mutex_try_lock(&m), EAGAIN);
	cr_assert_eq(kn_mutex_lock_until(&m, 0), ETIMEDOUT);
	cr_assert_eq(kn_mutex_destroy(&m), EBUSY);
	cr_assert_eq(kn_mutex_unlock(&m), 0);
	cr_assert_eq(kn_mutex_unlock(&m), EINVAL);
	cr_assert_eq(kn_mutex_lock(&m), 0);
	cr_assert_eq(kn_mutex_unlock(&m), 0);
	cr_assert_eq(kn_mutex_destroy(&m), 0);
	cr_assert_eq(kn_mutex_init(&m), 0);
	cr_assert_eq(kn_mutex_lock(NULL), EINVAL);
	cr_assert_eq(kn_mutex_unlock(NULL), EINVAL);
	cr_assert_eq(kn_mutex_init(NULL), EINVAL);
}

Test(mutex, uncontended_makes_no_call)
{
	kn_mutex m = KN_MUTEX_INIT;
	uint64_t sys = kn_stat_syscalls(), allocs = kn_stat_allocs();
	int i;

	for (i = 0; i < 1000; i++) {
		cr_assert_eq(kn_mutex_lock(&m), 0);
		cr_assert_eq(kn_mutex_unlock(&m), 0);
	}
	cr_assert_eq(kn_stat_syscalls(), sys);
	cr_assert_eq(kn_stat_allocs(), allocs);
}

/* ---- mutex: timeouts and cancellation ------------------------------------ */

struct locker_arg {
	kn_mutex *m;
	uint64_t deadline;
	kn_ctx *ctx;
	_Atomic int sleeps;
	_Atomic int got; /* lock returned 0 */
};

static void *lock_until_main(void *p)
{
	struct locker_arg *a = p;

	return (void *)(intptr_t)kn_mutex_lock_until(a->m, a->deadline);
}

static void *lock_ctx_main(void *p)
{
	struct locker_arg *a = p;

	return (void *)(intptr_t)kn_mutex_lock_ctx(a->m, a->ctx);
}

Test(mutex, deadline_expires_and_leaves_it_usable)
{
	kn_mutex m = KN_MUTEX_INIT;
	struct locker_arg a = { .m = &m, .deadline = kn_deadline_in(20000000) };
	pthread_t t;

	cr_assert_eq(kn_mutex_lock(&m), 0);
	th_start(&t, lock_until_main, &a);
	cr_assert_eq(th_join(t), ETIMEDOUT);
	cr_assert_eq(at_load_seq_cst(&mutex_of(&m)->q.n), 0);
	cr_assert_eq(kn_mutex_unlock(&m), 0);
	cr_assert_eq(kn_mutex_destroy(&m), 0, "the withdrawal left state behind");
}

Test(mutex, lock_ctx_cancellation)
{
	kn_mutex m = KN_MUTEX_INIT;
	kn_ctx *ctx = kn_ctx_with_cancel(NULL);
	struct locker_arg a = { .m = &m, .ctx = ctx };
	pthread_t t;

	cr_assert_not_null(ctx);
	cr_assert_eq(kn_mutex_lock(&m), 0);
	th_start(&t, lock_ctx_main, &a);
	wait_queued(&mutex_of(&m)->q, 1);
	kn_ctx_cancel(ctx, ECANCELED, NULL);
	cr_assert_eq(th_join(t), ECANCELED);
	cr_assert_eq(kn_mutex_unlock(&m), 0);
	/* A context already done fails first, even on a free mutex. */
	cr_assert_eq(kn_mutex_lock_ctx(&m, ctx), ECANCELED);
	cr_assert_eq(kn_mutex_destroy(&m), 0);
	kn_ctx_release(ctx);
}

/* ---- mutex: starvation mode hands the lock over -------------------------- */

static void *starved_main(void *p)
{
	struct locker_arg *a = p;
	struct block_hook h = kt_sleep_counter(&a->sleeps);
	int r;

	waiter_set_block_hook(&h);
	r = kn_mutex_lock(a->m);
	at_store_release(&a->got, 1);
	if (r == 0)
		r = kn_mutex_unlock(a->m);
	waiter_set_block_hook(NULL);
	return (void *)(intptr_t)r;
}

/*
 * W queues behind the main thread and sleeps for > 1 ms. The main thread
 * unlocks (W is woken to retry) and at once takes the lock again (barging,
 * as normal mode allows), so W queues again, now starving. The next unlock
 * must hand the lock to W: the main thread's try_lock right after it fails.
 * If W wins the first race instead (it rarely does: it has to wake up
 * first), the round is repeated.
 */
Test(mutex, starvation_hands_off)
{
	kn_mutex m = KN_MUTEX_INIT;
	int round;

	for (round = 0; round < 1000; round++) {
		struct locker_arg a = { .m = &m };
		pthread_t t;
		bool barged;

		cr_assert_eq(kn_mutex_lock(&m), 0);
		th_start(&t, starved_main, &a);
		while (at_load_relaxed(&a.sleeps) < 1)
			nap_ms(1);
		nap_ms(2);
		cr_assert_eq(kn_mutex_unlock(&m), 0);
		barged = kn_mutex_try_lock(&m) == 0;
		if (barged) {
			while (at_load_relaxed(&a.sleeps) < 2)
				nap_ms(1);
			cr_assert_eq(at_load_acquire(&a.got), 0);
			cr_assert_eq(kn_mutex_unlock(&m), 0);
			cr_assert_eq(kn_mutex_try_lock(&m), EAGAIN,
				     "the unlock did not hand the mutex over");
		}
		cr_assert_eq(th_join(t), 0);
		cr_assert_eq(at_load_acquire(&a.got), 1);
		cr_assert_eq(kn_mutex_destroy(&m), 0);
		if (barged)
			return;
	}
	cr_assert_fail("the starving waiter always won the race");
}

/* ---- mutex: mutual exclusion, tasks and threads -------------------------- */

#define EX_TASKS 64
#define EX_THREADS 8
#define EX_ITERS 2000

static kn_mutex ex_mutex = KN_MUTEX_INIT;
static long ex_counter;  /* only under ex_mutex */
static _Atomic int ex_inside;
static _Atomic int ex_violations;
static kn_chan *ex_tick; /* a task blocks in kanal with the mutex held */

static void ex_body(long n, bool task)
{
	long i;
	int64_t v;

	for (i = 0; i < n; i++) {
		kn_mutex_lock(&ex_mutex);
		if (at_add_relaxed(&ex_inside, 1) != 0)
			at_add_relaxed(&ex_violations, 1);
		ex_counter++;
		/* Now and then, hold the mutex across a kanal wait: the task
		 * is suspended, others of its worker queue for the mutex. */
		if (task && i % 97 == 0)
			kn_chan_recv_until(ex_tick, &v, kn_deadline_in(20000));
		at_sub_relaxed(&ex_inside, 1);
		kn_mutex_unlock(&ex_mutex);
	}
}

static void ex_task(void *arg)
{
	(void)arg;
	ex_body(EX_ITERS, true);
}

static void *ex_thread(void *arg)
{
	(void)arg;
	ex_body(EX_ITERS, false);
	return NULL;
}

Test(mutex, exclusion_tasks_and_threads, .timeout = 120)
{
	kn_pool *p = pool_of(2, 0);
	pthread_t t[EX_THREADS];
	int i;

	ex_tick = kn_chan_new(sizeof(int64_t), 0);
	cr_assert_not_null(ex_tick);
	for (i = 0; i < EX_TASKS; i++)
		cr_assert_eq(kn_pool_spawn(p, ex_task, NULL), 0);
	for (i = 0; i < EX_THREADS; i++)
		th_start(&t[i], ex_thread, NULL);
	for (i = 0; i < EX_THREADS; i++)
		th_join(t[i]);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	kn_pool_free(p);
	kn_chan_free(ex_tick);
	cr_assert_eq(at_load_relaxed(&ex_violations), 0);
	cr_assert_eq(ex_counter, (long)(EX_TASKS + EX_THREADS) * EX_ITERS);
	cr_assert_eq(kn_mutex_destroy(&ex_mutex), 0);
}

/* The deadlock: with one worker, a task holds the lock across a
 * channel receive while another task of that worker waits for the lock.
 * A pthread mutex blocks the worker; kn_mutex suspends the waiter. */
static kn_mutex one_m = KN_MUTEX_INIT;
static kn_chan *one_ch;
static _Atomic int one_got;

static void one_waiter(void *arg)
{
	(void)arg;
	TASK_CHECK(kn_mutex_lock(&one_m) == 0);
	at_store_release(&one_got, 1);
	kn_mutex_unlock(&one_m);
}

/* The waiter is spawned onto this worker's own queue, and runs once the
 * holder suspends in the receive. */
static void one_holder(void *arg)
{
	int64_t v;

	kn_mutex_lock(&one_m);
	TASK_CHECK(kn_pool_spawn(arg, one_waiter, NULL) == 0);
	TASK_CHECK(kn_chan_recv(one_ch, &v) == 0);
	TASK_CHECK(at_load_acquire(&one_got) == 0);
	kn_mutex_unlock(&one_m);
}

Test(mutex, held_across_kanal_wait_on_one_worker)
{
	kn_pool *p = pool_of(1, 0);
	int64_t v = 1;

	one_ch = kn_chan_new(sizeof(int64_t), 0);
	at_store_relaxed(&task_failures, 0);
	cr_assert_eq(kn_pool_spawn(p, one_holder, p), 0);
	wait_queued(&mutex_of(&one_m)->q, 1);
	cr_assert_eq(kn_chan_send(one_ch, &v), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(at_load_acquire(&one_got), 1);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_pool_free(p);
	kn_chan_free(one_ch);
}

/* ---- rwmutex ---------------------------------------------------------------- */

Test(rwmutex, readers_share_writers_exclude)
{
	kn_rwmutex rw = KN_RWMUTEX_INIT;

	cr_assert_eq(kn_rwmutex_rlock(&rw), 0);
	cr_assert_eq(kn_rwmutex_try_rlock(&rw), 0);
	cr_assert_eq(kn_rwmutex_try_lock(&rw), EAGAIN);
	cr_assert_eq(kn_rwmutex_lock_until(&rw, 0), ETIMEDOUT);
	cr_assert_eq(kn_rwmutex_destroy(&rw), EBUSY);
	cr_assert_eq(kn_rwmutex_runlock(&rw), 0);
	cr_assert_eq(kn_rwmutex_runlock(&rw), 0);
	cr_assert_eq(kn_rwmutex_runlock(&rw), EINVAL);
	cr_assert_eq(kn_rwmutex_unlock(&rw), EINVAL);
	cr_assert_eq(kn_rwmutex_lock(&rw), 0);
	cr_assert_eq(kn_rwmutex_try_rlock(&rw), EAGAIN);
	cr_assert_eq(kn_rwmutex_rlock_until(&rw, 0), ETIMEDOUT);
	cr_assert_eq(kn_rwmutex_try_lock(&rw), EAGAIN);
	cr_assert_eq(kn_rwmutex_unlock(&rw), 0);
	cr_assert_eq(kn_rwmutex_destroy(&rw), 0);
}

struct rw_arg {
	kn_rwmutex *rw;
	bool writer;
	uint64_t deadline;
	kn_ctx *ctx;
};

static void *rw_main(void *p)
{
	struct rw_arg *a = p;
	int r;

	if (a->writer)
		r = a->ctx ? kn_rwmutex_lock_ctx(a->rw, a->ctx) :
			     kn_rwmutex_lock_until(a->rw, a->deadline);
	else
		r = a->ctx ? kn_rwmutex_rlock_ctx(a->rw, a->ctx) :
			     kn_rwmutex_rlock_until(a->rw, a->deadline);
	if (r == 0)
		r = a->writer ? kn_rwmutex_unlock(a->rw) : kn_rwmutex_runlock(a->rw);
	return (void *)(intptr_t)r;
}

/* A waiting writer holds up new readers; when the readers leave it gets
 * the lock, and when it unlocks, the readers queued behind it all do. */
Test(rwmutex, waiting_writer_blocks_new_readers)
{
	kn_rwmutex rw = KN_RWMUTEX_INIT;
	struct rw_arg w = { &rw, true, KN_FOREVER, NULL };
	struct rw_arg r = { &rw, false, KN_FOREVER, NULL };
	pthread_t tw, tr[2];

	cr_assert_eq(kn_rwmutex_rlock(&rw), 0);
	th_start(&tw, rw_main, &w);
	wait_queued(&rwmutex_of(&rw)->writer, 1);
	cr_assert_eq(kn_rwmutex_try_rlock(&rw), EAGAIN);
	th_start(&tr[0], rw_main, &r);
	th_start(&tr[1], rw_main, &r);
	wait_queued(&rwmutex_of(&rw)->readers, 2);
	cr_assert_eq(kn_rwmutex_runlock(&rw), 0);
	cr_assert_eq(th_join(tw), 0);
	cr_assert_eq(th_join(tr[0]), 0);
	cr_assert_eq(th_join(tr[1]), 0);
	cr_assert_eq(kn_rwmutex_destroy(&rw), 0);
}

/* A writer that gives up lets the readers held up behind it in, and the
 * next writer take its turn (here to wait for the first reader, which
 * stays, until its own deadline). */
Test(rwmutex, writer_timeout_and_cancel_serve_next)
{
	kn_rwmutex rw = KN_RWMUTEX_INIT;
	kn_ctx *ctx = kn_ctx_with_cancel(NULL);
	struct rw_arg wc = { &rw, true, KN_FOREVER, ctx };
	struct rw_arg wt = { &rw, true, 0, NULL };
	struct rw_arg r = { &rw, false, KN_FOREVER, NULL };
	pthread_t t1, t2, t3;

	cr_assert_not_null(ctx);
	wt.deadline = kn_deadline_in(300000000);
	cr_assert_eq(kn_rwmutex_rlock(&rw), 0);
	th_start(&t1, rw_main, &wc);
	wait_queued(&rwmutex_of(&rw)->writer, 1);
	th_start(&t2, rw_main, &wt);
	wait_queued(&mutex_of(&rwmutex_of(&rw)->w)->q, 1);
	th_start(&t3, rw_main, &r);
	wait_queued(&rwmutex_of(&rw)->readers, 1);
	kn_ctx_cancel(ctx, ECANCELED, NULL);
	cr_assert_eq(th_join(t1), ECANCELED);
	cr_assert_eq(th_join(t2), ETIMEDOUT);
	cr_assert_eq(th_join(t3), 0, "the reader behind the writers was not served");
	cr_assert_eq(kn_rwmutex_runlock(&rw), 0);
	cr_assert_eq(kn_rwmutex_destroy(&rw), 0);
	kn_ctx_release(ctx);
}

/* Readers check that a writer's two words are always seen together. */
static kn_rwmutex rx = KN_RWMUTEX_INIT;
static long rx_a, rx_b; /* equal outside the write lock */
static _Atomic int rx_bad;

static void rx_body(int id)
{
	int i;

	for (i = 0; i < 3000; i++) {
		if ((i + id) % 10 == 0) {
			kn_rwmutex_lock(&rx);
			rx_a++;
			rx_b++;
			kn_rwmutex_unlock(&rx);
		} else {
			kn_rwmutex_rlock(&rx);
			if (rx_a != rx_b)
				at_add_relaxed(&rx_bad, 1);
			kn_rwmutex_runlock(&rx);
		}
	}
}

static void rx_task(void *arg)
{
	rx_body((int)(intptr_t)arg);
}

static void *rx_thread(void *arg)
{
	rx_body((int)(intptr_t)arg);
	return NULL;
}

Test(rwmutex, exclusion_tasks_and_threads, .timeout = 120)
{
	kn_pool *p = pool_of(2, 0);
	pthread_t t[4];
	int i;

	for (i = 0; i < 16; i++)
		cr_assert_eq(kn_pool_spawn(p, rx_task, (void *)(intptr_t)i), 0);
	for (i = 0; i < 4; i++)
		th_start(&t[i], rx_thread, (void *)(intptr_t)i);
	for (i = 0; i < 4; i++)
		th_join(t[i]);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	kn_pool_free(p);
	cr_assert_eq(at_load_relaxed(&rx_bad), 0);
	cr_assert_eq(rx_a, 20 * 300);
	cr_assert_eq(kn_rwmutex_destroy(&rx), 0);
}

/* ---- cond ---------------------------------------------------------------------- */

static kn_mutex cm = KN_MUTEX_INIT;
static kn_cond cv = KN_COND_INIT;
static int c_flag;      /* under cm */
static _Atomic int c_woken;

static void *cond_waiter(void *arg)
{
	int r;

	(void)arg;
	kn_mutex_lock(&cm);
	r = kn_cond_wait(&cv, &cm);
	at_add_relaxed(&c_woken, 1);
	if (kn_mutex_unlock(&cm) != 0)
		r = -1; /* the wait did not lock it again */
	return (void *)(intptr_t)r;
}

Test(cond, signal_wakes_one_broadcast_all)
{
	pthread_t t[3];
	int i;

	for (i = 0; i < 3; i++)
		th_start(&t[i], cond_waiter, NULL);
	wait_queued(&cond_of(&cv)->q, 3);
	cr_assert_eq(kn_cond_signal(&cv), 0);
	/* The signal took exactly one waiter off the queue. */
	cr_assert_eq(at_load_seq_cst(&cond_of(&cv)->q.n), 2);
	while (at_load_relaxed(&c_woken) < 1)
		nap_ms(1);
	cr_assert_eq(kn_cond_broadcast(&cv), 0);
	cr_assert_eq(at_load_seq_cst(&cond_of(&cv)->q.n), 0);
	for (i = 0; i < 3; i++)
		cr_assert_eq(th_join(t[i]), 0);
	cr_assert_eq(at_load_relaxed(&c_woken), 3);
	cr_assert_eq(kn_cond_signal(&cv), 0, "a signal with nobody waiting");
	cr_assert_eq(kn_cond_destroy(&cv), 0);
}

Test(cond, wait_until_past_deadline_keeps_the_mutex)
{
	kn_mutex m = KN_MUTEX_INIT;
	kn_cond c = KN_COND_INIT;

	cr_assert_eq(kn_cond_wait(&c, &m), EINVAL, "waited without the mutex");
	cr_assert_eq(kn_mutex_lock(&m), 0);
	cr_assert_eq(kn_cond_wait_until(&c, &m, 0), ETIMEDOUT);
	cr_assert_eq(kn_mutex_try_lock(&m), EAGAIN);
	cr_assert_eq(kn_cond_wait_until(&c, &m, kn_deadline_in(10000000)), ETIMEDOUT);
	cr_assert_eq(kn_mutex_try_lock(&m), EAGAIN, "the timed-out wait did not relock");
	cr_assert_eq(at_load_seq_cst(&cond_of(&c)->q.n), 0);
	cr_assert_eq(kn_mutex_unlock(&m), 0);
}

static void *far_waiter(void *arg)
{
	int r, flag;

	(void)arg;
	kn_mutex_lock(&cm);
	r = kn_cond_wait_until(&cv, &cm, kn_deadline_in(60ull * 1000000000ull));
	flag = c_flag;
	kn_mutex_unlock(&cm);
	return (void *)(intptr_t)(r == 0 && flag ? 0 : r == 0 ? -1 : r);
}

/* A wait with a far deadline returns only once signalled: never early. */
Test(cond, wait_until_far_has_no_spurious_wake)
{
	pthread_t t;

	c_flag = 0;
	th_start(&t, far_waiter, NULL);
	wait_queued(&cond_of(&cv)->q, 1);
	nap_ms(50);
	kn_mutex_lock(&cm);
	c_flag = 1;
	kn_mutex_unlock(&cm);
	kn_cond_signal(&cv);
	cr_assert_eq(th_join(t), 0);
}

static void *ctx_waiter(void *arg)
{
	int r;

	kn_mutex_lock(&cm);
	r = kn_cond_wait_ctx(&cv, &cm, arg);
	if (kn_mutex_unlock(&cm) != 0)
		r = -1;
	return (void *)(intptr_t)r;
}

Test(cond, wait_ctx_cancellation)
{
	kn_ctx *ctx = kn_ctx_with_cancel(NULL);
	pthread_t t;

	cr_assert_not_null(ctx);
	th_start(&t, ctx_waiter, ctx);
	wait_queued(&cond_of(&cv)->q, 1);
	kn_ctx_cancel(ctx, ECANCELED, NULL);
	cr_assert_eq(th_join(t), ECANCELED);
	cr_assert_eq(at_load_seq_cst(&cond_of(&cv)->q.n), 0);
	kn_ctx_release(ctx);
}

/* ---- once --------------------------------------------------------------------- */

static kn_once once = KN_ONCE_INIT;
static _Atomic int once_runs, once_finished, once_early;

static void once_fn(void *arg)
{
	(void)arg;
	at_add_relaxed(&once_runs, 1);
	nap_ms(20); /* the others arrive meanwhile and wait */
	at_store_release(&once_finished, 1);
}

static void once_call(void)
{
	if (kn_once_do(&once, once_fn, NULL) != 0 || !at_load_acquire(&once_finished))
		at_add_relaxed(&once_early, 1);
}

static void once_task(void *arg)
{
	(void)arg;
	once_call();
}

static void *once_thread(void *arg)
{
	(void)arg;
	once_call();
	return NULL;
}

Test(once, runs_exactly_once_under_a_race)
{
	kn_pool *p = pool_of(2, 0);
	pthread_t t[8];
	int i;

	for (i = 0; i < 8; i++)
		th_start(&t[i], once_thread, NULL);
	for (i = 0; i < 32; i++)
		cr_assert_eq(kn_pool_spawn(p, once_task, NULL), 0);
	for (i = 0; i < 8; i++)
		th_join(t[i]);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	kn_pool_free(p);
	cr_assert_eq(at_load_relaxed(&once_runs), 1);
	cr_assert_eq(at_load_relaxed(&once_early), 0, "a caller returned before fn did");
	cr_assert_eq(kn_once_do(&once, once_fn, NULL), 0);
	cr_assert_eq(at_load_relaxed(&once_runs), 1);
	cr_assert_eq(kn_once_do(NULL, once_fn, NULL), EINVAL);
}
