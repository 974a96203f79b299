/*
 * kanal_sem.c - impl "kanal" of the semaphore and context workloads.
 *
 * The semaphore workloads are the shared bodies of sem_workloads.c over
 * kn_sem; ctx_cancel_fanout is written here: N children of one cancellable
 * parent, each with an after_func that counts down, timed from the cancel
 * of the parent until the count is zero (WORKLOADS.md).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <kanal/ctx.h>
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

static const struct sem_ops ks_ops = {
	.new = ks_new, .acquire = ks_acquire, .release = ks_release,
	.available = ks_available, .free = ks_free,
};

/* kanal_go: the 8 loopers are kn_go tasks, as Go's are goroutines. */
static const struct sem_ops ks_go_ops = {
	.new = ks_new, .acquire = ks_acquire, .release = ks_release,
	.available = ks_available, .free = ks_free,
	.run = { bench_go_start, bench_go_join },
};

BENCH(sem_uncontended, kanal) { sw_uncontended(&ks_ops, a, r); }
BENCH(sem_contended, kanal) { sw_shared(&ks_ops, 20, a, r); }
BENCH(sem_blocking, kanal) { sw_shared(&ks_ops, 4, a, r); }
BENCH_GO(sem_contended) { sw_shared(&ks_go_ops, 20, a, r); }
BENCH_GO(sem_blocking) { sw_shared(&ks_go_ops, 4, a, r); }

/* ---- ctx_cancel_fanout ------------------------------------------------------ */

static atomic_uint_fast64_t not_observed;

static void observe(void *arg)
{
	(void)arg;
	atomic_fetch_sub_explicit(&not_observed, 1, memory_order_release);
}

static char message[128];

/* After the cancel: every child cancelled, every callback run once. */
static const char *fanout_verdict(kn_ctx **child, kn_ctx_stop *stop,
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

BENCH(ctx_cancel_fanout, kanal)
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
	r->check = fanout_verdict(child, stop, n);
out:
	for (uint64_t i = 0; i < made; i++)
		kn_ctx_release(child[i]);
	kn_ctx_release(parent);
	free(stop);
	free(child);
}
