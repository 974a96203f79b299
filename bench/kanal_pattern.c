/*
 * kanal_pattern.c - impl "kanal" of the pattern workloads (bench/WORKLOADS.md),
 * written with the pattern library (kanal/pattern.h), so that what is
 * measured is the library a user would call: its tasks on the default
 * pool, its stages, its merge. The pthread versions (chan_workloads.c) use
 * one thread per actor.
 *
 * The default pool is made before the clock starts (Go's runtime is up
 * before main); the flow's tasks are started inside the timed region, as
 * the goroutines and threads of the other versions are. The clock stops
 * when the consumer has seen the last value; waiting for the flow's tasks
 * to end comes after, as the other versions join their threads after.
 *
 * Each workload is one body: impl "kanal" runs it on the calling thread,
 * impl "kanal_go" as the "main goroutine", a kn_go task (kanal_go.h), so
 * that the consumer is a task too, as in the Go versions. Both move one
 * value per channel operation (batch 1), as the Go loops do; impls
 * "kanal_batched" and "kanal_go_batched" run the same bodies with the
 * library's default batch (0: automatic, up to 16 values per operation).
 *
 * The two for-each workloads: foreach_per_item starts one task per item
 * behind a semaphore of 20 tokens (Go: a goroutine per item behind a
 * semaphore.Weighted), foreach_runners is kn_foreach_bounded, 20 runner
 * tasks taking indices from a shared counter.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kanal/group.h>
#include <kanal/pattern.h>
#include <kanal/sem.h>

#include "bench.h"
#include "kanal_go.h"

/* ---- pieces -------------------------------------------------------------- */

/* What the consumer saw. */
struct tally {
	uint64_t count, sum;
	const uint64_t *stamps; /* latency: generation time by index */
	uint64_t (*origin)(int64_t);
	struct bench_lat *lat;
};

static void consume(kn_chan *ch, struct tally *t)
{
	int64_t v;

	while (kn_chan_recv(ch, &v) == 0) {
		if (t->lat)
			bench_lat_record(t->lat, bench_now() -
					 t->stamps[t->origin(v)]);
		t->count++;
		t->sum += (uint64_t)v;
	}
}

static char message[160];

/* Sums wrap modulo 2^64 on both sides. */
static const char *verdict(const struct tally *t, uint64_t want_count,
			   uint64_t want_sum, int flow_err)
{
	if (flow_err)
		snprintf(message, sizeof(message), "flow failed: %s",
			 strerror(flow_err));
	else if (t->count != want_count)
		snprintf(message, sizeof(message), "count %llu, want %llu",
			 (unsigned long long)t->count,
			 (unsigned long long)want_count);
	else if (t->sum != want_sum)
		snprintf(message, sizeof(message), "sum %llu, want %llu",
			 (unsigned long long)t->sum,
			 (unsigned long long)want_sum);
	else
		return "ok";
	return message;
}

/* A flow on the default pool, which this makes if it is not up yet, its
 * worker pools and merges moving batch values per operation at most. */
static kn_flow *flow_or_fail(unsigned batch, struct bench_result *r)
{
	kn_flow *f = kn_flow_new(NULL, NULL);

	if (!f)
		r->check = "cannot create the flow";
	else
		kn_flow_set_batch(f, batch);
	return f;
}

/* The flow's end: wait for its tasks, then free it (and its channels). */
static int flow_end(kn_flow *f)
{
	int err = kn_flow_wait(f);

	kn_flow_free(f);
	return err;
}

/* Generator body: 0..n-1, stamping each value's generation time if asked. */
struct range {
	uint64_t n;
	uint64_t *stamps;
};

static int send_range(kn_ctx *ctx, kn_chan *out, void *arg)
{
	const struct range *rg = arg;
	int64_t v;
	int err;

	for (v = 0; (uint64_t)v < rg->n; v++) {
		if (rg->stamps)
			rg->stamps[v] = bench_now();
		err = kn_chan_send_ctx(out, &v, ctx);
		if (err)
			return err;
	}
	return 0;
}

#define MAP(name, expr)                                                        \
	static int name(kn_ctx *ctx, const void *in, void *out, void *arg)    \
	{                                                                      \
		int64_t x = *(const int64_t *)in;                              \
		(void)ctx;                                                     \
		(void)arg;                                                     \
		*(int64_t *)out = (expr);                                      \
		return 0;                                                      \
	}
MAP(twice, x * 2)
MAP(plus_one, x + 1)
MAP(thrice, x * 3)
MAP(square, x * x)

static kn_chan *stage(kn_flow *f, kn_chan *in, kn_stage_fn fn, size_t cap,
		      unsigned batch)
{
	struct kn_stage_spec spec = { .fn = fn, .out_size = sizeof(int64_t),
				      .out_cap = cap, .workers = 1,
				      .batch = batch };

	return in ? kn_stage(f, in, &spec) : NULL;
}

/* ---- workloads ----------------------------------------------------------- */

static void generator(const struct bench_args *a, struct bench_result *r)
{
	struct range rg = { a->items, NULL };
	struct tally t = { 0 };
	kn_flow *f = flow_or_fail(1, r);
	kn_chan *out;
	uint64_t t0;

	if (!f)
		return;
	t0 = bench_now();
	out = kn_generate(f, sizeof(int64_t), 0, send_range, &rg);
	if (out)
		consume(out, &t);
	r->ns = bench_now() - t0;
	r->check = verdict(&t, a->items, bench_sum_upto(a->items), flow_end(f));
}

/* The inverse of the pipeline: y = (2i + 1) * 3. */
static uint64_t pipeline_origin(int64_t y)
{
	return ((uint64_t)y / 3 - 1) / 2;
}

static void pipeline3(size_t cap, unsigned batch, const struct bench_args *a,
		      struct bench_result *r)
{
	uint64_t n = a->items, t0;
	struct range rg = { n, calloc(n ? n : 1, sizeof(uint64_t)) };
	struct tally t = { .stamps = rg.stamps, .origin = pipeline_origin };
	kn_flow *f = rg.stamps ? flow_or_fail(batch, r) : NULL;
	kn_chan *out;

	if (!f) {
		free(rg.stamps);
		return;
	}
	r->lat = t.lat = bench_lat_new(n);
	t0 = bench_now();
	out = kn_generate(f, sizeof(int64_t), cap, send_range, &rg);
	out = stage(f, stage(f, stage(f, out, twice, cap, batch), plus_one,
			     cap, batch), thrice, cap, batch);
	if (out)
		consume(out, &t);
	r->ns = bench_now() - t0;
	r->check = verdict(&t, n, 6 * bench_sum_upto(n) + 3 * n, flow_end(f));
	free(rg.stamps);
}

static void fanout4_fanin(unsigned batch, const struct bench_args *a,
			  struct bench_result *r)
{
	enum { WORKERS = 4, CAP = 64 };
	struct range rg = { a->items, NULL };
	kn_chan *in, *outs[WORKERS], *merged = NULL;
	struct tally t = { 0 };
	kn_flow *f = flow_or_fail(batch, r);
	uint64_t t0;
	int k;

	if (!f)
		return;
	t0 = bench_now();
	in = kn_generate(f, sizeof(int64_t), CAP, send_range, &rg);
	for (k = 0; k < WORKERS; k++)
		outs[k] = stage(f, in, twice, CAP, batch);
	if (outs[0] && outs[1] && outs[2] && outs[3])
		merged = kn_merge(f, outs, WORKERS, CAP);
	if (merged)
		consume(merged, &t);
	r->ns = bench_now() - t0;
	r->check = verdict(&t, a->items, 2 * bench_sum_upto(a->items),
			   flow_end(f));
}

/* 0^2 + ... + (n-1)^2 modulo 2^64. */
static uint64_t sum_squares_upto(uint64_t n)
{
	unsigned __int128 m = n;

	return n ? (uint64_t)((m - 1) * m * (2 * m - 1) / 6) : 0;
}

static void worker_pool(unsigned batch, const struct bench_args *a,
			struct bench_result *r)
{
	enum { WORKERS = 4, CAP = 100 };
	struct range rg = { a->items, NULL };
	kn_chan *results = kn_chan_new(sizeof(int64_t), CAP), *jobs;
	struct tally t = { 0 };
	kn_flow *f = results ? flow_or_fail(batch, r) : NULL;
	uint64_t t0;

	if (!f) {
		kn_chan_free(results);
		return;
	}
	t0 = bench_now();
	/* The sender is a generator feeding the jobs channel. */
	jobs = kn_generate(f, sizeof(int64_t), CAP, send_range, &rg);
	if (jobs && !kn_worker_pool(f, jobs, results, WORKERS, square, NULL))
		consume(results, &t);
	r->ns = bench_now() - t0;
	r->check = verdict(&t, a->items, sum_squares_upto(a->items),
			   flow_end(f));
	kn_chan_free(results);
}

/* ---- for-each --------------------------------------------------------------- */

#define FOREACH_LIMIT 20

static const char *foreach_verdict(uint64_t ran, uint64_t sum, uint64_t n,
				   int err)
{
	struct tally t = { .count = ran, .sum = sum };

	return verdict(&t, n, bench_sum_upto(n), err);
}

/* One run of foreach_per_item: its tasks' shared state (a process runs
 * one workload once). */
static struct {
	kn_sem *tokens;
	kn_waitgroup done;
	_Atomic uint64_t ran, sum;
} per_item;

static void per_item_op(void *arg)
{
	atomic_fetch_add_explicit(&per_item.sum, (uint64_t)(uintptr_t)arg,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&per_item.ran, 1, memory_order_relaxed);
	kn_sem_release(per_item.tokens, 1);
	kn_waitgroup_done(&per_item.done);
}

/* Go's shape: take a token, start a task for item i, which gives the
 * token back when it ends; wait for all. 0 or the first error. */
static int per_item_loop(uint64_t n)
{
	uint64_t i;
	int err = 0;

	for (i = 0; i < n && !err; i++) {
		err = kn_sem_acquire(per_item.tokens, 1);
		if (err)
			break;
		kn_waitgroup_add(&per_item.done, 1);
		err = kn_go(per_item_op, (void *)(uintptr_t)i);
		if (err) {
			kn_waitgroup_done(&per_item.done);
			kn_sem_release(per_item.tokens, 1);
		}
	}
	kn_waitgroup_wait(&per_item.done);
	return err;
}

static void foreach_per_item(const struct bench_args *a,
			     struct bench_result *r)
{
	uint64_t t0;
	int err;

	per_item.tokens = kn_sem_new(FOREACH_LIMIT);
	if (!per_item.tokens) {
		r->check = "cannot create the semaphore";
		return;
	}
	kn_waitgroup_init(&per_item.done);
	per_item_loop(1); /* before the clock: makes the default pool */
	atomic_store(&per_item.ran, 0);
	atomic_store(&per_item.sum, 0);
	t0 = bench_now();
	err = per_item_loop(a->items);
	r->ns = bench_now() - t0;
	r->check = foreach_verdict(atomic_load(&per_item.ran),
				   atomic_load(&per_item.sum), a->items, err);
	if (!err && kn_sem_available(per_item.tokens) != FOREACH_LIMIT)
		r->check = "semaphore tokens lost";
	kn_sem_free(per_item.tokens);
}

static int count_index(kn_ctx *ctx, size_t i, void *arg)
{
	_Atomic uint64_t *ran_sum = arg;

	(void)ctx;
	atomic_fetch_add_explicit(&ran_sum[0], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&ran_sum[1], i, memory_order_relaxed);
	return 0;
}

/* kn_foreach_bounded: min(n, 20) runners over a shared index. */
static void foreach_runners(const struct bench_args *a,
			    struct bench_result *r)
{
	_Atomic uint64_t ran_sum[2] = { 0, 0 }, warm[2] = { 0, 0 };
	uint64_t t0;
	int err;

	/* One call before the clock makes the default pool. */
	kn_foreach_bounded(NULL, 1, 1, count_index, warm);
	t0 = bench_now();
	err = kn_foreach_bounded(NULL, a->items, FOREACH_LIMIT, count_index,
				 ran_sum);
	r->ns = bench_now() - t0;
	r->check = foreach_verdict(atomic_load(&ran_sum[0]),
				   atomic_load(&ran_sum[1]), a->items, err);
}

/* ---- registration -------------------------------------------------------- */

/* Batch 1: one value per channel operation, as the Go loops move them. */
BENCH(generator, kanal) { generator(a, r); }
BENCH(pipeline_3stage, kanal) { pipeline3(0, 1, a, r); }
BENCH(pipeline_3stage_buf, kanal) { pipeline3(64, 1, a, r); }
BENCH(fanout4_fanin, kanal) { fanout4_fanin(1, a, r); }
BENCH(worker_pool, kanal) { worker_pool(1, a, r); }
BENCH(foreach_per_item, kanal) { foreach_per_item(a, r); }
BENCH(foreach_runners, kanal) { foreach_runners(a, r); }

BENCH_GO(generator) { generator(a, r); }
BENCH_GO(pipeline_3stage) { pipeline3(0, 1, a, r); }
BENCH_GO(pipeline_3stage_buf) { pipeline3(64, 1, a, r); }
BENCH_GO(fanout4_fanin) { fanout4_fanin(1, a, r); }
BENCH_GO(worker_pool) { worker_pool(1, a, r); }
BENCH_GO(foreach_per_item) { foreach_per_item(a, r); }
BENCH_GO(foreach_runners) { foreach_runners(a, r); }

/* The library's default batch (0: automatic): a library feature, with no
 * Go counterpart. */
BENCH(pipeline_3stage_buf, kanal_batched) { pipeline3(64, 0, a, r); }
BENCH(fanout4_fanin, kanal_batched) { fanout4_fanin(0, a, r); }
BENCH(worker_pool, kanal_batched) { worker_pool(0, a, r); }
BENCH_GO_AS(pipeline_3stage_buf, kanal_go_batched) { pipeline3(64, 0, a, r); }
BENCH_GO_AS(fanout4_fanin, kanal_go_batched) { fanout4_fanin(0, a, r); }
BENCH_GO_AS(worker_pool, kanal_go_batched) { worker_pool(0, a, r); }
