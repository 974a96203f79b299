/*
 * stress_sync.c - pool tasks and plain threads hammer one kn_mutex or one
 * kn_rwmutex with every kind of lock call: plain, try, with a deadline of
 * a few microseconds, with a context cancelled by another thread now and
 * then. Some tasks hold the lock across a kanal wait (they are suspended
 * with it held), so waiters of both kinds queue behind suspended holders,
 * and grants race timeouts and cancellations.
 *
 * A third kind of configuration runs a bounded queue under the mutex with
 * two kn_conds (not full, not empty): half the actors produce, half
 * consume, some waits carry a deadline of a few microseconds; producers
 * that finish broadcast so that consumers drain and leave.
 *
 * Exact accounting, per configuration:
 *   - mutex: a plain counter incremented only under the lock equals the
 *     sum of every actor's successful locks; no two actors are ever inside
 *     at once (an atomic occupancy count);
 *   - rwmutex: a writer bumps two plain words together and counts; readers
 *     see them equal and no writer inside while they are; the words end at
 *     the sum of the writers' counts;
 *   - cond: every value produced is consumed once (count and sum), and no
 *     producer finds the queue full nor consumer empty after its wait;
 *   - at the end the lock is free and unqueued (destroy returns 0).
 *
 * Usage: stress_sync [--seconds S]   (S per configuration, default 1)
 * Prints one line per configuration; exits non-zero on any violation.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kanal/chan.h>
#include <kanal/ctx.h>
#include <kanal/pool.h>
#include <kanal/sync.h>

#include "stress.h"

#define MAX_ACTORS 64

struct config {
	bool rw;     /* kn_rwmutex, else kn_mutex */
	int threads; /* plain threads */
	int tasks;   /* pool tasks (2 workers) */
	bool cond;   /* the bounded queue under kn_mutex and two kn_conds */
};

static const struct config configs[] = {
	{ false, 8, 0, false },
	{ false, 4, 32, false },
	{ true, 8, 0, false },
	{ true, 4, 32, false },
	{ false, 4, 16, true },
};

#define QCAP 8 /* the cond configuration's queue */

static struct shared {
	const struct config *cfg;
	uint64_t end;
	kn_mutex m;
	kn_rwmutex rw;
	kn_chan *never;    /* a channel nobody sends on: a task's kanal wait */
	_Atomic(kn_ctx *) ctx; /* the context some lock calls take */
	long counter;      /* under m */
	long wa, wb;       /* under rw's write side */
	kn_cond notfull, notempty;
	uint64_t q[QCAP];  /* under m: the queue, from qhead, qlen values */
	unsigned qhead, qlen;
	int producing;     /* under m: producers not finished */
	uint64_t qsum_in, qsum_out, qn_in, qn_out; /* under m */
	_Atomic int inside; /* mutex holders, or rw writers * 1000 + readers */
	_Atomic int violations;
	_Atomic int running;
} sh;

struct actor {
	int id;
	bool task;
	uint64_t rng;
	uint64_t locks, writes, reads, timeouts, cancels, busy;
};

static void violation(const char *what)
{
	fprintf(stderr, "stress_sync: %s\n", what);
	atomic_fetch_add(&sh.violations, 1);
}

/* One lock call of a random kind; 0 if it got the lock. */
static int lock_some_way(struct actor *a, bool writer)
{
	uint64_t r = xorshift64(&a->rng) % 8;
	kn_ctx *ctx;
	int err;

	if (r == 0) {
		err = sh.cfg->rw ? (writer ? kn_rwmutex_try_lock(&sh.rw) :
					     kn_rwmutex_try_rlock(&sh.rw)) :
				   kn_mutex_try_lock(&sh.m);
	} else if (r == 1) {
		uint64_t d = kn_deadline_in(xorshift64(&a->rng) % 20000);

		err = sh.cfg->rw ? (writer ? kn_rwmutex_lock_until(&sh.rw, d) :
					     kn_rwmutex_rlock_until(&sh.rw, d)) :
				   kn_mutex_lock_until(&sh.m, d);
	} else if (r == 2 && (ctx = kn_ctx_with_cancel(NULL)) != NULL) {
		/* One reference for this call, one published for the
		 * canceller (which may cancel and drop it at once). */
		kn_ctx *old;

		kn_ctx_retain(ctx);
		if ((old = atomic_exchange(&sh.ctx, ctx)) != NULL)
			kn_ctx_release(old);
		err = sh.cfg->rw ? (writer ? kn_rwmutex_lock_ctx(&sh.rw, ctx) :
					     kn_rwmutex_rlock_ctx(&sh.rw, ctx)) :
				   kn_mutex_lock_ctx(&sh.m, ctx);
		kn_ctx_release(ctx);
	} else {
		err = sh.cfg->rw ? (writer ? kn_rwmutex_lock(&sh.rw) :
					     kn_rwmutex_rlock(&sh.rw)) :
				   kn_mutex_lock(&sh.m);
	}
	if (err == ETIMEDOUT)
		a->timeouts++;
	else if (err == ECANCELED)
		a->cancels++;
	else if (err == EAGAIN)
		a->busy++;
	else if (err != 0)
		violation("a lock call failed with an unexpected error");
	return err;
}

/* Now and then a task stays suspended in kanal with the lock held. */
static void maybe_hold(struct actor *a)
{
	int64_t v;

	if (a->task && xorshift64(&a->rng) % 64 == 0)
		kn_chan_recv_until(sh.never, &v, kn_deadline_in(5000));
}

static void mutex_round(struct actor *a)
{
	if (lock_some_way(a, true) != 0)
		return;
	if (atomic_fetch_add(&sh.inside, 1) != 0)
		violation("two mutex holders at once");
	sh.counter++;
	a->locks++;
	maybe_hold(a);
	atomic_fetch_sub(&sh.inside, 1);
	if (kn_mutex_unlock(&sh.m) != 0)
		violation("unlock of a held mutex failed");
}

static void rw_round(struct actor *a)
{
	bool writer = xorshift64(&a->rng) % 10 == 0;
	int in;

	if (lock_some_way(a, writer) != 0)
		return;
	if (writer) {
		if ((in = atomic_fetch_add(&sh.inside, 1000)) != 0)
			violation("a writer with others inside");
		sh.wa++;
		maybe_hold(a);
		sh.wb++;
		a->writes++;
		atomic_fetch_sub(&sh.inside, 1000);
		if (kn_rwmutex_unlock(&sh.rw) != 0)
			violation("unlock of a held rwmutex failed");
	} else {
		if ((in = atomic_fetch_add(&sh.inside, 1)) >= 1000)
			violation("a reader with a writer inside");
		if (sh.wa != sh.wb)
			violation("a reader saw half a write");
		a->reads++;
		maybe_hold(a);
		atomic_fetch_sub(&sh.inside, 1);
		if (kn_rwmutex_runlock(&sh.rw) != 0)
			violation("runlock of a held rwmutex failed");
	}
}

/* A cond wait, now and then with a deadline a few microseconds away. */
static void cond_wait_some_way(struct actor *a, kn_cond *c)
{
	int err = xorshift64(&a->rng) % 4 == 0 ?
		  kn_cond_wait_until(c, &sh.m, kn_deadline_in(xorshift64(&a->rng) % 20000)) :
		  kn_cond_wait(c, &sh.m);

	if (err == ETIMEDOUT)
		a->timeouts++;
	else if (err != 0)
		violation("a cond wait failed with an unexpected error");
}

static void produce(struct actor *a)
{
	uint64_t v = ((uint64_t)a->id << 32) + 1;

	while (kn_now() < sh.end) {
		kn_mutex_lock(&sh.m);
		while (sh.qlen == QCAP)
			cond_wait_some_way(a, &sh.notfull);
		sh.q[(sh.qhead + sh.qlen++) % QCAP] = v;
		sh.qsum_in += v++;
		sh.qn_in++;
		a->locks++;
		kn_cond_signal(&sh.notempty);
		maybe_hold(a);
		kn_mutex_unlock(&sh.m);
	}
	kn_mutex_lock(&sh.m);
	if (--sh.producing == 0)
		kn_cond_broadcast(&sh.notempty);
	kn_mutex_unlock(&sh.m);
}

static void consume(struct actor *a)
{
	kn_mutex_lock(&sh.m);
	for (;;) {
		while (sh.qlen == 0 && sh.producing > 0)
			cond_wait_some_way(a, &sh.notempty);
		if (sh.qlen == 0)
			break;
		sh.qsum_out += sh.q[sh.qhead];
		sh.qhead = (sh.qhead + 1) % QCAP;
		sh.qlen--;
		sh.qn_out++;
		a->locks++;
		kn_cond_signal(&sh.notfull);
		maybe_hold(a);
	}
	kn_mutex_unlock(&sh.m);
}

static void actor_loop(struct actor *a)
{
	if (sh.cfg->cond) {
		if (a->id % 2 == 0)
			produce(a);
		else
			consume(a);
	}
	while (!sh.cfg->cond && kn_now() < sh.end) {
		if (sh.cfg->rw)
			rw_round(a);
		else
			mutex_round(a);
	}
	atomic_fetch_sub(&sh.running, 1);
}

static void task_main(void *arg)
{
	actor_loop(arg);
}

static void *thread_main(void *arg)
{
	actor_loop(arg);
	return NULL;
}

/* Cancels the published context every so often. */
static void *canceller(void *arg)
{
	struct timespec ts = { 0, 50000 };

	(void)arg;
	while (atomic_load(&sh.running) > 0) {
		kn_ctx *ctx = atomic_exchange(&sh.ctx, NULL);

		if (ctx) {
			kn_ctx_cancel(ctx, ECANCELED, NULL);
			kn_ctx_release(ctx);
		}
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static int run(const struct config *cfg, double seconds)
{
	static struct actor actors[MAX_ACTORS];
	pthread_t t[MAX_ACTORS], tc;
	int n = cfg->threads + cfg->tasks, bad;
	uint64_t locks = 0, writes = 0, reads = 0, timeouts = 0, cancels = 0, busy = 0;
	kn_pool *pool = NULL;
	kn_ctx *left;

	memset(&sh, 0, sizeof(sh));
	sh.cfg = cfg;
	sh.never = kn_chan_new(sizeof(int64_t), 0);
	if (!sh.never || (cfg->tasks && !(pool = kn_pool_new(&(struct kn_pool_opts){
							.workers = 2 })))) {
		perror("stress_sync: setup");
		exit(1);
	}
	atomic_store(&sh.running, n);
	sh.producing = (n + 1) / 2; /* the even-numbered actors */
	sh.end = stress_deadline(seconds);
	for (int i = 0; i < n; i++) {
		actors[i] = (struct actor){ .id = i, .task = i >= cfg->threads,
					    .rng = 0x9e3779b97f4a7c15ull * (i + 1) };
		if (actors[i].task ? kn_pool_spawn(pool, task_main, &actors[i]) != 0 :
				     pthread_create(&t[i], NULL, thread_main, &actors[i]) != 0) {
			perror("stress_sync: start");
			exit(1);
		}
	}
	pthread_create(&tc, NULL, canceller, NULL);
	for (int i = 0; i < cfg->threads; i++)
		pthread_join(t[i], NULL);
	if (pool) {
		kn_pool_wait_idle(pool);
		kn_pool_free(pool);
	}
	pthread_join(tc, NULL);
	if ((left = atomic_exchange(&sh.ctx, NULL)) != NULL)
		kn_ctx_release(left);
	for (int i = 0; i < n; i++) {
		locks += actors[i].locks;
		writes += actors[i].writes;
		reads += actors[i].reads;
		timeouts += actors[i].timeouts;
		cancels += actors[i].cancels;
		busy += actors[i].busy;
	}
	if (cfg->cond && (sh.qn_in != sh.qn_out || sh.qsum_in != sh.qsum_out ||
			  sh.qn_in + sh.qn_out != locks || sh.qlen))
		violation("the queue lost or invented values");
	if (cfg->cond && (kn_cond_destroy(&sh.notfull) || kn_cond_destroy(&sh.notempty)))
		violation("a cond is still waited on at the end");
	if (!cfg->rw && !cfg->cond && (uint64_t)sh.counter != locks)
		violation("the counter does not match the locks taken");
	if (cfg->rw && ((uint64_t)sh.wa != writes || sh.wb != sh.wa))
		violation("the written words do not match the writes");
	if (cfg->rw ? kn_rwmutex_destroy(&sh.rw) != 0 : kn_mutex_destroy(&sh.m) != 0)
		violation("the lock is not free at the end");
	bad = atomic_load(&sh.violations);
	printf("stress_sync: %s, %2d threads, %2d tasks: %9" PRIu64 " locks (%" PRIu64
	       " writes), %7" PRIu64 " timeouts, %6" PRIu64 " cancels, %7" PRIu64
	       " busy: %s\n", cfg->rw ? "rwmutex" : cfg->cond ? "cond   " : "mutex  ",
	       cfg->threads, cfg->tasks,
	       cfg->rw ? writes + reads : locks, writes, timeouts, cancels, busy,
	       bad ? "FAILED" : "ok");
	kn_chan_free(sh.never);
	return bad != 0;
}

STRESS_MAIN(configs, run)
