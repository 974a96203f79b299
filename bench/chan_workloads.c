/*
 * chan_workloads.c - the channel and pattern workloads, built from three
 * kinds of actor that talk only through struct chan_ops:
 *
 *   producer  sends lo..hi-1 on out (stamping each value's generation time
 *             when the run measures latency), then closes out if asked;
 *   stage     receives on in until it is closed, sends map(v) on out, then
 *             closes out if asked (the last of a group sharing out does it);
 *   consumer  receives on in until it is closed and tallies what it got.
 *
 * Channels are created before the clock starts; the actors (threads, or
 * tasks when the ops say so) are started inside the timed region
 * (WORKLOADS.md), except the echo actor of the ping-pong, which is up before
 * the first round trip as in the Go version.
 * A failed send (the channel was closed under the actor: an implementation
 * bug) is counted and the actor goes on, so that a broken run reports
 * instead of hanging.
 */
#include "chan_workloads.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct actor {
	_Alignas(128) const struct chan_ops *ops; /* own lines: no false sharing */
	void *in, *out;
	uint64_t lo, hi;                /* producer: the values it sends */
	int64_t (*map)(int64_t);        /* stage: NULL forwards unchanged */
	bool close_out;                 /* close out when done */
	atomic_int *running;            /* stages sharing out: still running */
	uint64_t *stamps;               /* generation time, by generator index */
	uint64_t nstamps;
	uint64_t (*origin)(int64_t);    /* consumer: generator index of a value */
	struct bench_lat *lat;
	bool ordered;                   /* consumer: values must come 0, 1, ... */
	uint64_t count, sum, disorder;  /* consumer's tally */
	uint64_t failed;                /* sends that returned an error */
};

static void finish(struct actor *a)
{
	if (!a->close_out)
		return;
	if (a->running && atomic_fetch_sub_explicit(a->running, 1,
						    memory_order_acq_rel) != 1)
		return;
	a->ops->close(a->out);
}

static void *produce(void *arg)
{
	struct actor *a = arg;

	for (uint64_t v = a->lo; v < a->hi; v++) {
		if (a->stamps)
			a->stamps[v] = bench_now();
		if (a->ops->send(a->out, (int64_t)v))
			a->failed++;
	}
	finish(a);
	return NULL;
}

static void *stage(void *arg)
{
	struct actor *a = arg;
	int64_t v;

	while (!a->ops->recv(a->in, &v))
		if (a->ops->send(a->out, a->map ? a->map(v) : v))
			a->failed++;
	finish(a);
	return NULL;
}

static void record_latency(struct actor *a, int64_t v)
{
	uint64_t i = a->origin(v);

	if (i < a->nstamps)
		bench_lat_record(a->lat, bench_now() - a->stamps[i]);
}

static void *consume(void *arg)
{
	struct actor *a = arg;
	int64_t v;

	while (!a->ops->recv(a->in, &v)) {
		if (a->ordered && (uint64_t)v != a->count)
			a->disorder++;
		if (a->lat)
			record_latency(a, v);
		a->count++;
		a->sum += (uint64_t)v;
	}
	return NULL;
}

/* ---- checks --------------------------------------------------------------- */

static char message[160];

/* Sums wrap modulo 2^64 on both sides of the comparison. */
static const char *verdict(const struct actor *got, uint64_t want_count,
			   uint64_t want_sum, uint64_t failed)
{
	if (failed)
		snprintf(message, sizeof(message), "%llu sends failed",
			 (unsigned long long)failed);
	else if (got->disorder)
		snprintf(message, sizeof(message), "%llu values out of order",
			 (unsigned long long)got->disorder);
	else if (got->count != want_count)
		snprintf(message, sizeof(message), "count %llu, want %llu",
			 (unsigned long long)got->count,
			 (unsigned long long)want_count);
	else if (got->sum != want_sum)
		snprintf(message, sizeof(message), "sum %llu, want %llu",
			 (unsigned long long)got->sum,
			 (unsigned long long)want_sum);
	else
		return "ok";
	return message;
}

static uint64_t failures(const struct actor *actors, int n)
{
	uint64_t f = 0;

	for (int i = 0; i < n; i++)
		f += actors[i].failed;
	return f;
}

/* ---- channel sets --------------------------------------------------------- */

/* Creates n channels of capacity cap; false (and none left) on failure. */
static bool open_all(const struct chan_ops *ops, void **q, int n, size_t cap)
{
	for (int i = 0; i < n; i++) {
		q[i] = ops->new(cap);
		if (!q[i]) {
			while (i--)
				ops->free(q[i]);
			return false;
		}
	}
	return true;
}

static void free_all(const struct chan_ops *ops, void **q, int n)
{
	for (int i = 0; i < n; i++)
		ops->free(q[i]);
}

/* ---- workloads ------------------------------------------------------------ */

void cw_spsc(const struct chan_ops *ops, const struct bench_args *a,
	     struct bench_result *r)
{
	struct actor prod = { .ops = ops, .hi = a->items, .close_out = true };
	struct actor cons = { .ops = ops, .ordered = true };
	void *crew, *q;
	uint64_t t0;

	if (!open_all(ops, &q, 1, 1024)) {
		r->check = "cannot create the channel";
		return;
	}
	prod.out = cons.in = q;
	t0 = bench_now();
	crew = bench_run(&ops->run, 1, produce, &prod, sizeof(prod));
	consume(&cons);
	r->ns = bench_now() - t0;
	bench_wait(&ops->run, crew);
	r->check = verdict(&cons, a->items, bench_sum_upto(a->items), prod.failed);
	ops->free(q);
}

void cw_mpmc(const struct chan_ops *ops, int n, size_t cap,
	     const struct bench_args *a, struct bench_result *r)
{
	struct actor prod[CW_MAX_ACTORS], cons[CW_MAX_ACTORS], total = { 0 };
	void *consumers, *producers, *q;
	uint64_t t0;

	if (n < 1 || n > CW_MAX_ACTORS || !open_all(ops, &q, 1, cap)) {
		r->check = "cannot create the channel";
		return;
	}
	for (int k = 0; k < n; k++) {
		prod[k] = (struct actor){ .ops = ops, .out = q,
					  .lo = a->items * k / n,
					  .hi = a->items * (k + 1) / n };
		cons[k] = (struct actor){ .ops = ops, .in = q };
	}
	t0 = bench_now();
	consumers = bench_run(&ops->run, n, consume, cons, sizeof(cons[0]));
	producers = bench_run(&ops->run, n, produce, prod, sizeof(prod[0]));
	bench_wait(&ops->run, producers);
	ops->close(q);
	bench_wait(&ops->run, consumers);
	r->ns = bench_now() - t0;

	for (int k = 0; k < n; k++) {
		total.count += cons[k].count;
		total.sum += cons[k].sum;
	}
	r->check = verdict(&total, a->items, bench_sum_upto(a->items),
			   failures(prod, n));
	ops->free(q);
}

void cw_pingpong(const struct chan_ops *ops, const struct bench_args *a,
		 struct bench_result *r)
{
	struct actor echo = { .ops = ops }, got = { .ops = ops, .ordered = true };
	void *crew, *q[2];
	uint64_t t0;

	if (!open_all(ops, q, 2, 0)) {
		r->check = "cannot create the channels";
		return;
	}
	echo.in = q[0];
	echo.out = q[1];
	r->lat = bench_lat_new(a->items);
	crew = bench_run(&ops->run, 1, stage, &echo, sizeof(echo));

	t0 = bench_now();
	for (uint64_t i = 0; i < a->items; i++) {
		uint64_t t = bench_now();
		int64_t v;

		if (i == a->items / 2)
			bench_steady_begin(r, i); /* the first half warms up */
		if (ops->send(q[0], (int64_t)i) || ops->recv(q[1], &v))
			break;
		bench_lat_record(r->lat, bench_now() - t);
		got.disorder += (uint64_t)v != i;
		got.count++;
		got.sum += (uint64_t)v;
	}
	r->ns = bench_now() - t0;
	bench_steady_end(r, got.count);

	ops->close(q[0]);
	bench_wait(&ops->run, crew);
	r->check = verdict(&got, a->items, bench_sum_upto(a->items), echo.failed);
	free_all(ops, q, 2);
}

void cw_generator(const struct chan_ops *ops, const struct bench_args *a,
		  struct bench_result *r)
{
	struct actor gen = { .ops = ops, .hi = a->items, .close_out = true };
	struct actor cons = { .ops = ops };
	void *crew, *q;
	uint64_t t0;

	if (!open_all(ops, &q, 1, 0)) {
		r->check = "cannot create the channel";
		return;
	}
	gen.out = cons.in = q;
	t0 = bench_now();
	crew = bench_run(&ops->run, 1, produce, &gen, sizeof(gen));
	consume(&cons);
	r->ns = bench_now() - t0;
	bench_wait(&ops->run, crew);
	r->check = verdict(&cons, a->items, bench_sum_upto(a->items), gen.failed);
	ops->free(q);
}

static int64_t twice(int64_t x) { return x * 2; }
static int64_t plus_one(int64_t x) { return x + 1; }
static int64_t thrice(int64_t x) { return x * 3; }
static int64_t square(int64_t x) { return x * x; }

/* The inverse of the pipeline: y = (2i + 1) * 3. */
static uint64_t pipeline_origin(int64_t y)
{
	return ((uint64_t)y / 3 - 1) / 2;
}

static uint64_t *new_stamps(uint64_t n)
{
	uint64_t *s = malloc(n * sizeof(*s));

	/* Fault the pages in now, outside the timed region. */
	if (s)
		memset(s, 0, n * sizeof(*s));
	return s;
}

void cw_pipeline3(const struct chan_ops *ops, size_t cap,
		  const struct bench_args *a, struct bench_result *r)
{
	int64_t (*const map[3])(int64_t) = { twice, plus_one, thrice };
	uint64_t n = a->items, *stamps = new_stamps(n);
	struct actor gen, stages[3], cons;
	void *gc, *sc, *q[4];
	uint64_t t0;

	if (!stamps || !open_all(ops, q, 4, cap)) {
		free(stamps);
		r->check = "cannot create the channels";
		return;
	}
	gen = (struct actor){ .ops = ops, .out = q[0], .hi = n,
			      .close_out = true, .stamps = stamps };
	for (int k = 0; k < 3; k++)
		stages[k] = (struct actor){ .ops = ops, .in = q[k],
					    .out = q[k + 1], .map = map[k],
					    .close_out = true };
	r->lat = bench_lat_new(n);
	cons = (struct actor){ .ops = ops, .in = q[3], .stamps = stamps,
			       .nstamps = n, .origin = pipeline_origin,
			       .lat = r->lat };

	t0 = bench_now();
	gc = bench_run(&ops->run, 1, produce, &gen, sizeof(gen));
	sc = bench_run(&ops->run, 3, stage, stages, sizeof(stages[0]));
	consume(&cons);
	r->ns = bench_now() - t0;
	bench_wait(&ops->run, gc);
	bench_wait(&ops->run, sc);

	r->check = verdict(&cons, n, 6 * bench_sum_upto(n) + 3 * n,
			   gen.failed + failures(stages, 3));
	free_all(ops, q, 4);
	free(stamps);
}

void cw_fanout4_fanin(const struct chan_ops *ops, const struct bench_args *a,
		      struct bench_result *r)
{
	enum { WORKERS = 4, IN = 0, MERGED = WORKERS + 1, CHANNELS };
	struct actor gen, stages[2 * WORKERS], cons;
	atomic_int running = WORKERS;
	void *gc, *sc, *q[CHANNELS];
	uint64_t t0;

	if (!open_all(ops, q, CHANNELS, 64)) {
		r->check = "cannot create the channels";
		return;
	}
	gen = (struct actor){ .ops = ops, .out = q[IN], .hi = a->items,
			      .close_out = true };
	for (int k = 0; k < WORKERS; k++) {
		/* Worker k doubles into its own channel q[1 + k]... */
		stages[k] = (struct actor){ .ops = ops, .in = q[IN],
					    .out = q[1 + k], .map = twice,
					    .close_out = true };
		/* ...and the merge forwards it; the last one out closes. */
		stages[WORKERS + k] = (struct actor){ .ops = ops,
						      .in = q[1 + k],
						      .out = q[MERGED],
						      .close_out = true,
						      .running = &running };
	}
	cons = (struct actor){ .ops = ops, .in = q[MERGED] };

	t0 = bench_now();
	gc = bench_run(&ops->run, 1, produce, &gen, sizeof(gen));
	sc = bench_run(&ops->run, 2 * WORKERS, stage, stages, sizeof(stages[0]));
	consume(&cons);
	r->ns = bench_now() - t0;
	bench_wait(&ops->run, gc);
	bench_wait(&ops->run, sc);

	r->check = verdict(&cons, a->items, 2 * bench_sum_upto(a->items),
			   gen.failed + failures(stages, 2 * WORKERS));
	free_all(ops, q, CHANNELS);
}

/* 0^2 + ... + (n-1)^2 modulo 2^64, as the consumer's wrapping sum. */
static uint64_t sum_squares_upto(uint64_t n)
{
	unsigned __int128 m = n;

	return n ? (uint64_t)((m - 1) * m * (2 * m - 1) / 6) : 0;
}

void cw_worker_pool(const struct chan_ops *ops, const struct bench_args *a,
		    struct bench_result *r)
{
	enum { WORKERS = 4, JOBS = 0, RESULTS = 1 };
	struct actor sender, workers[WORKERS], cons;
	atomic_int running = WORKERS;
	void *sc, *wc, *q[2];
	uint64_t t0;

	if (!open_all(ops, q, 2, 100)) {
		r->check = "cannot create the channels";
		return;
	}
	sender = (struct actor){ .ops = ops, .out = q[JOBS], .hi = a->items,
				 .close_out = true };
	for (int k = 0; k < WORKERS; k++)
		workers[k] = (struct actor){ .ops = ops, .in = q[JOBS],
					     .out = q[RESULTS], .map = square,
					     .close_out = true,
					     .running = &running };
	cons = (struct actor){ .ops = ops, .in = q[RESULTS] };

	t0 = bench_now();
	sc = bench_run(&ops->run, 1, produce, &sender, sizeof(sender));
	wc = bench_run(&ops->run, WORKERS, stage, workers, sizeof(workers[0]));
	consume(&cons);
	r->ns = bench_now() - t0;
	bench_wait(&ops->run, sc);
	bench_wait(&ops->run, wc);

	r->check = verdict(&cons, a->items, sum_squares_upto(a->items),
			   sender.failed + failures(workers, WORKERS));
	free_all(ops, q, 2);
}
