/*
 * kanal_pool.c - impl "kanal" of the pool and group workloads
 * (bench/WORKLOADS.md, issue 5).
 *
 * Each workload makes its own pool with the default options (one worker
 * per CPU) and wakes it with one task before the clock starts, as the TBB
 * and Go versions have their schedulers up before theirs. The checks use
 * the pool's own counter of tasks run, so the tasks stay empty.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>

#include <kanal/group.h>
#include <kanal/pool.h>
#include <kanal/time.h>

#include "bench.h"
#include "kanal_go.h"

static void nothing(void *arg)
{
	(void)arg;
}

/* The tasks of pool_spawn_wait and group_limit20 count themselves here. */
static _Atomic uint64_t tasks_ran;

static void count_one(void *arg)
{
	(void)arg;
	atomic_fetch_add_explicit(&tasks_ran, 1, memory_order_relaxed);
}

/* A default pool, up and idle; NULL (and r->check set) if it cannot be. */
static kn_pool *pool_up(struct bench_result *r)
{
	kn_pool *p = kn_pool_new(NULL);

	if (!p || kn_pool_spawn(p, nothing, NULL) != 0) {
		r->check = "cannot start the pool";
		kn_pool_free(p);
		return NULL;
	}
	kn_pool_wait_idle(p);
	return p;
}

static char message[128];

static const char *ran_verdict(uint64_t ran, uint64_t want)
{
	if (ran == want)
		return "ok";
	snprintf(message, sizeof(message), "%llu tasks ran, want %llu",
		 (unsigned long long)ran, (unsigned long long)want);
	return message;
}

/* ---- pool_spawn_wait ------------------------------------------------------ */

BENCH(pool_spawn_wait, kanal)
{
	kn_pool *p = pool_up(r);
	uint64_t i, t0;

	if (!p)
		return;
	atomic_store(&tasks_ran, 0); /* a sequence runs several */
	t0 = bench_now();
	for (i = 0; i < a->items; i++)
		if (kn_pool_spawn(p, count_one, NULL) != 0)
			break;
	kn_pool_wait_idle(p);
	r->ns = bench_now() - t0;
	r->check = ran_verdict(atomic_load(&tasks_ran), a->items);
	kn_pool_free(p);
}

/* kanal_go: Go's shape, kn_go tasks from the main task and a wait group. */
static kn_waitgroup spawned;

static void count_one_done(void *arg)
{
	count_one(arg);
	kn_waitgroup_done(&spawned);
}

BENCH_GO(pool_spawn_wait)
{
	uint64_t i, t0;

	kn_waitgroup_init(&spawned);
	atomic_store(&tasks_ran, 0); /* a sequence runs several */
	t0 = bench_now();
	kn_waitgroup_add(&spawned, (int64_t)a->items);
	for (i = 0; i < a->items; i++)
		if (kn_go(count_one_done, NULL) != 0)
			bench_die("cannot start a task");
	kn_waitgroup_wait(&spawned);
	r->ns = bench_now() - t0;
	r->check = ran_verdict(atomic_load(&tasks_ran), a->items);
}

/* ---- pool_fib30 -------------------------------------------------------------- */

struct fib {
	int n;
	long r;
};

static void fib_task(void *arg);

/* fib(n - 1) as a task, fib(n - 2) here, join. */
static long fib(int n)
{
	struct fib c = { n - 1, 0 };
	kn_task *t;
	long y;

	if (n < BENCH_FIB_SERIAL_BELOW)
		return bench_fib_serial(n);
	t = kn_pool_spawn_task(kn_pool_current(), fib_task, &c);
	y = fib(n - 2);
	if (t)
		kn_task_join(t);
	else
		fib_task(&c); /* no record: run it here */
	return c.r + y;
}

static void fib_task(void *arg)
{
	struct fib *f = arg;

	f->r = fib(f->n);
}

BENCH(pool_fib30, kanal)
{
	kn_pool *p = pool_up(r);
	uint64_t i, wrong = 0, t0;

	if (!p)
		return;
	t0 = bench_now();
	for (i = 0; i < a->items; i++) {
		struct fib root = { 30, 0 };
		kn_task *t = kn_pool_spawn_task(p, fib_task, &root);

		wrong += !t || kn_task_join(t) != 0 || root.r != 832040;
	}
	r->ns = bench_now() - t0;
	r->check = wrong ? "fib(30) != 832040" : "ok";
	kn_pool_free(p);
}

/* kanal_go: fib(30) in the main task, on the default pool, as Go's main
 * goroutine computes it. */
BENCH_GO(pool_fib30)
{
	bench_fib30(fib, a, r);
}

/* ---- group_limit20 ------------------------------------------------------------ */

static int counted(kn_ctx *ctx, void *arg)
{
	(void)ctx;
	count_one(arg);
	return 0;
}

/* N counting tasks through a group limited to 20, on p, from this thread. */
static void group_limit20_on(kn_pool *p, const struct bench_args *a,
			     struct bench_result *r)
{
	kn_group *g = kn_group_new(NULL, p);
	uint64_t i, t0;
	int err;

	if (!g) {
		r->check = "cannot make the group";
		return;
	}
	kn_group_set_limit(g, 20);
	atomic_store(&tasks_ran, 0); /* a sequence runs several */
	t0 = bench_now();
	for (i = 0; i < a->items; i++)
		if (kn_group_go(g, counted, NULL) != 0)
			break;
	err = kn_group_wait(g);
	r->ns = bench_now() - t0;
	r->check = err ? "wait returned an error" :
			 ran_verdict(atomic_load(&tasks_ran), a->items);
	kn_group_free(g);
}

BENCH(group_limit20, kanal)
{
	kn_pool *p = pool_up(r);

	if (p)
		group_limit20_on(p, a, r);
	kn_pool_free(p);
}

/* kanal_go: the loop is the main task on the default pool, as Go's is the
 * main goroutine: a full group suspends it and its thread runs the tasks. */
BENCH_GO(group_limit20)
{
	group_limit20_on(kn_pool_current(), a, r);
}

/* ---- pool_idle_cpu ---------------------------------------------------------------- */

static kn_waitgroup busy_done;

static void busy(void *arg)
{
	*(volatile long *)arg = bench_fib_serial(20);
	kn_waitgroup_done(&busy_done);
}

static uint64_t cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
		       1000000000u +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

static void nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0)
		;
}

/* Wake every worker of p once, let the pool settle 100 ms, then measure
 * the CPU time the idle process burns in one second; sleep_ms is how this
 * body sleeps. */
static void idle_second(kn_pool *p, void (*sleep_ms)(long),
			struct bench_result *r)
{
	struct kn_pool_stats st;
	volatile long sink[64];
	unsigned i, n;
	uint64_t c0;

	kn_pool_stats(p, &st);
	n = st.workers < 64 ? st.workers : 64;
	kn_waitgroup_init(&busy_done);
	kn_waitgroup_add(&busy_done, n);
	for (i = 0; i < n; i++)
		if (kn_pool_spawn(p, busy, (void *)&sink[i]))
			kn_waitgroup_done(&busy_done);
	kn_waitgroup_wait(&busy_done);
	sleep_ms(100);
	c0 = cpu_ns();
	sleep_ms(1000);
	r->ns = cpu_ns() - c0;
	r->items = 1;
	r->check = "ok";
}

BENCH(pool_idle_cpu, kanal)
{
	kn_pool *p = pool_up(r);

	(void)a; /* one idle second, whatever the items */
	if (p)
		idle_second(p, nap, r);
	kn_pool_free(p);
}

/* kanal_go: the default pool, the main task parked in kn_sleep as Go's
 * main goroutine is in time.Sleep. */
static void task_nap(long ms)
{
	kn_sleep((uint64_t)ms * 1000000u);
}

BENCH_GO(pool_idle_cpu)
{
	(void)a;
	idle_second(kn_pool_current(), task_nap, r);
}
