/*
 * kanal_sem.c - impls "kanal" and "kanal_go" of the semaphore and context
 * workloads.
 *
 * The semaphore workloads are the shared bodies of sem_workloads.c over
 * kn_sem (sem_blocking's holders receive from a kn_chan). The context
 * workloads are written here: ctx_cancel_fanout in Go's shape (a waiter
 * blocked in kn_ctx_wait on each child of one parent, a wait group,
 * cancel, wait) and ctx_cancel_callbacks (an after_func per child that
 * counts down; kn_ctx_cancel runs them inline, waking nobody).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <kanal/ctx.h>
#include <kanal/group.h>
#include <kanal/sem.h>

#include "bench.h"
#include "kanal_go.h"
#include "sem_workloads.h"

static void *ks_new(unsigned tokens)
{
	return kn_sem_new(tokens);
}

static int ks_acquire(void *s)
{
	return kn_sem_acquire(s, 1);
}

static bool ks_try_acquire(void *s)
{
	return kn_sem_try_acquire(s, 1) == 0;
}

static void ks_release(void *s)
{
	kn_sem_release(s, 1);
}

static unsigned ks_available(void *s)
{
	return (unsigned)kn_sem_available(s);
}

static void ks_free(void *s)
{
	kn_sem_free(s);
}

#define KS_OPS                                                                 \
	.new = ks_new, .acquire = ks_acquire, .try_acquire = ks_try_acquire,   \
	.release = ks_release, .available = ks_available, .free = ks_free,     \
	.feed = &kq_ops

static const struct sem_ops ks_ops = { KS_OPS };

/* kanal_go: the loopers are kn_go tasks, as Go's are goroutines. */
static const struct sem_ops ks_go_ops = {
	KS_OPS, .run = { bench_go_start, bench_go_join },
};

BENCH(sem_uncontended, kanal) { sw_uncontended(&ks_ops, a, r); }
BENCH(sem_contended, kanal) { sw_contended(&ks_ops, a, r); }
BENCH(sem_blocking, kanal) { sw_blocking(&ks_ops, a, r); }
BENCH_GO(sem_uncontended) { sw_uncontended(&ks_go_ops, a, r); }
BENCH_GO(sem_contended) { sw_contended(&ks_go_ops, a, r); }
BENCH_GO(sem_blocking) { sw_blocking(&ks_go_ops, a, r); }

/* ---- ctx_cancel_fanout ------------------------------------------------------ */

/* kanal on OS threads: 10,000 threads is no program anyone writes (nor
 * one a shared machine's thread limit always allows); it runs this many
 * waiters and reports per waiter (WORKLOADS.md). */
#define FANOUT_THREADS 1000

static char message[128];

struct waiter {
	kn_ctx *child;
	kn_waitgroup *ready, *observed;
	int err;
};

/* Go's goroutine: ready.Done(); <-child.Done(); observed.Done(). */
static void *await_cancel(void *arg)
{
	struct waiter *w = arg;

	kn_waitgroup_done(w->ready);
	w->err = kn_ctx_wait(w->child, KN_FOREVER);
	kn_waitgroup_done(w->observed);
	return NULL;
}

/* After the wait: every child cancelled, every waiter woken by it. */
static const char *waiters_verdict(const struct waiter *w, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		if (w[i].err || kn_ctx_err(w[i].child) != ECANCELED) {
			snprintf(message, sizeof(message),
				 "child %llu: wait %d, err %d after cancel",
				 (unsigned long long)i, w[i].err,
				 kn_ctx_err(w[i].child));
			return message;
		}
	}
	return "ok";
}

/* n waiters, each in kn_ctx_wait on its own child of one parent; timed
 * from the cancel of the parent until the wait group says every waiter
 * has observed it. Creation and start are outside the timed region. */
static void cancel_fanout(const struct bench_runner *how, uint64_t n,
			  struct bench_result *r)
{
	kn_ctx *parent = kn_ctx_with_cancel(NULL);
	struct waiter *w = calloc(n, sizeof(*w));
	kn_waitgroup ready, observed;
	uint64_t made = 0, t0;
	void *crew;

	r->check = "cannot create the contexts";
	if (!parent || !w)
		goto out;
	kn_waitgroup_init(&ready);
	kn_waitgroup_init(&observed);
	kn_waitgroup_add(&ready, (int64_t)n);
	kn_waitgroup_add(&observed, (int64_t)n);
	for (; made < n; made++) {
		w[made] = (struct waiter){ kn_ctx_with_cancel(parent), &ready,
					   &observed, 0 };
		if (!w[made].child)
			bench_die("cannot create a context");
	}
	crew = bench_run(how, (int)n, await_cancel, w, sizeof(*w));
	kn_waitgroup_wait(&ready);

	t0 = bench_now();
	kn_ctx_cancel(parent, ECANCELED, NULL);
	kn_waitgroup_wait(&observed);
	r->ns = bench_now() - t0;
	bench_wait(how, crew);
	r->items = n;
	r->check = waiters_verdict(w, n);
out:
	for (uint64_t i = 0; i < made; i++)
		kn_ctx_release(w[i].child);
	kn_ctx_release(parent);
	free(w);
}

static const struct bench_runner on_threads = { 0 };
static const struct bench_runner as_tasks = { bench_go_start, bench_go_join };

BENCH(ctx_cancel_fanout, kanal)
{
	cancel_fanout(&on_threads, a->items < FANOUT_THREADS ? a->items :
				   FANOUT_THREADS, r);
}

BENCH_GO(ctx_cancel_fanout) { cancel_fanout(&as_tasks, a->items, r); }

/* ---- ctx_cancel_callbacks --------------------------------------------------- */

static atomic_uint_fast64_t not_observed;

static void observe(void *arg)
{
	(void)arg;
	atomic_fetch_sub_explicit(&not_observed, 1, memory_order_release);
}

/* After the cancel: every child cancelled, every callback run once. */
static const char *callbacks_verdict(kn_ctx **child, kn_ctx_stop *stop,
				     uint64_t n)
{
	if (atomic_load(&not_observed) != 0) {
		snprintf(message, sizeof(message), "%llu children not observed",
			 (unsigned long long)atomic_load(&not_observed));
		return message;
	}
	for (uint64_t i = 0; i < n; i++) {
		if (kn_ctx_err(child[i]) != ECANCELED ||
		    kn_ctx_stop_after_func(&stop[i])) {
			snprintf(message, sizeof(message),
				 "child %llu not cancelled", (unsigned long long)i);
			return message;
		}
	}
	return "ok";
}

BENCH(ctx_cancel_callbacks, kanal)
{
	uint64_t n = a->items, made = 0, t0;
	kn_ctx *parent = kn_ctx_with_cancel(NULL);
	kn_ctx **child = calloc(n, sizeof(*child));
	kn_ctx_stop *stop = calloc(n, sizeof(*stop));

	r->check = "cannot create the contexts";
	if (!parent || !child || !stop)
		goto out;
	atomic_store(&not_observed, n);
	for (; made < n; made++) {
		child[made] = kn_ctx_with_cancel(parent);
		if (!child[made])
			goto out;
		kn_ctx_after_func(child[made], observe, NULL, &stop[made]);
	}

	t0 = bench_now();
	kn_ctx_cancel(parent, ECANCELED, NULL);
	while (atomic_load_explicit(&not_observed, memory_order_acquire))
		;
	r->ns = bench_now() - t0;
	r->check = callbacks_verdict(child, stop, n);
out:
	for (uint64_t i = 0; i < made; i++)
		kn_ctx_release(child[i]);
	kn_ctx_release(parent);
	free(stop);
	free(child);
}
