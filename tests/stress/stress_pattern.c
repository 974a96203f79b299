/*
 * stress_pattern.c - random pipelines built from the patterns, stopped at
 * random, with exact accounting of every item.
 *
 * Each round builds a flow on a shared 2-worker pool: an array generator
 * of n items, then a random chain of steps, each one of
 *   - a stage (1-4 workers, ordered or not, random capacity and batch)
 *     that adds ADD to every value, drops the filtered ones (KN_SKIP), or
 *     fails with EIO on one chosen item;
 *   - a fan-out (kn_distribute, round robin or any) into 2-3 channels,
 *     merged back at once (kn_merge);
 *   - a worker pool (kn_worker_pool into a channel of the test's).
 * The consumer receives everything. A value carries its item's index in
 * its low 32 bits and the number of adding stages it passed in the high
 * bits, so the consumer checks each one: a real item, not filtered, seen
 * once, having passed every adding stage; and, when every step keeps
 * order, in order. Some rounds stop early: the consumer cancels the flow
 * (or its parent, with a cause) after k items, or a stage fails on an
 * item. Then every value received must still be right, and the flow's
 * result must be the cause (or 0, if the flow had finished first).
 * Complete rounds must deliver exactly the items not filtered.
 *
 * After each round: kn_flow_wait has returned (every task ended), the
 * pool is idle, and the pool ran exactly the tasks the patterns started
 * (fewer only when a stop came during construction). A quarter of the
 * rounds also run a kn_foreach_bounded with a random bound and maybe an
 * error, checking that each index runs once (at most once when stopped).
 *
 * A watchdog aborts the program if no round finishes for 120 s: a hang
 * is a failure, reported instead of waiting for ctest's timeout.
 *
 * Usage: stress_pattern [--seconds S]   (default 1)
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <kanal/ctx.h>
#include <kanal/pattern.h>

#include "stress.h"

#define MAX_STEPS 4
#define MAX_ITEMS 4000
#define ADD ((int64_t)1 << 32)
#define IDX(v) ((uint64_t)(v) & 0xffffffffu)

enum step_kind { ADDER, FILTER, FAILER, FAN, WORKERS, KINDS };

struct step {
	enum step_kind kind;
	unsigned workers;
	unsigned batch;
	bool ordered;
	size_t cap;
	enum kn_dist_mode mode;
	unsigned fans;
};

struct round {
	uint64_t rng;
	size_t n;
	int64_t *items;
	int nsteps;
	struct step steps[MAX_STEPS];
	int adders;
	bool in_order;
	uint64_t fail_at;          /* FAILER's item, UINT64_MAX: none */
	enum { RUN, CANCEL_FLOW, CANCEL_PARENT } stop;
	size_t stop_after;
	int cause;
	uint64_t tasks;            /* started by the patterns */
	_Atomic uint8_t seen[MAX_ITEMS];
};

static _Atomic uint64_t progress;
static kn_pool *pool;

static uint64_t below(uint64_t *s, uint64_t n)
{
	return xorshift64(s) % n;
}

static bool filtered(uint64_t idx)
{
	return idx % 5 == 0;
}

static int fail(const char *what, uint64_t a, uint64_t b)
{
	fprintf(stderr, "stress_pattern: %s (%" PRIu64 ", %" PRIu64 ")\n", what,
		a, b);
	exit(1);
}

/* ---- stage functions ----------------------------------------------------- */

static int add(kn_ctx *ctx, const void *in, void *out, void *arg)
{
	(void)ctx;
	(void)arg;
	*(int64_t *)out = *(const int64_t *)in + ADD;
	return 0;
}

static int filter(kn_ctx *ctx, const void *in, void *out, void *arg)
{
	int64_t v = *(const int64_t *)in;

	(void)ctx;
	(void)arg;
	if (filtered(IDX(v)))
		return KN_SKIP;
	*(int64_t *)out = v;
	return 0;
}

static int failer(kn_ctx *ctx, const void *in, void *out, void *arg)
{
	const struct round *r = arg;
	int64_t v = *(const int64_t *)in;

	(void)ctx;
	*(int64_t *)out = v;
	return IDX(v) == r->fail_at ? EIO : 0;
}

/* ---- a round ------------------------------------------------------------- */

static void plan(struct round *r)
{
	int i;

	r->n = below(&r->rng, MAX_ITEMS + 1);
	r->nsteps = (int)below(&r->rng, MAX_STEPS + 1);
	r->adders = 0;
	r->in_order = true;
	r->fail_at = UINT64_MAX;
	for (i = 0; i < r->nsteps; i++) {
		struct step *s = &r->steps[i];

		s->kind = (enum step_kind)below(&r->rng, KINDS);
		s->workers = 1 + (unsigned)below(&r->rng, 4);
		s->batch = below(&r->rng, 2) ? 1 : 1 + (unsigned)below(&r->rng, 8);
		s->ordered = below(&r->rng, 2);
		s->cap = below(&r->rng, 3) ? below(&r->rng, 9) : 0;
		s->mode = below(&r->rng, 2) ? KN_DIST_ANY : KN_DIST_ROUND_ROBIN;
		s->fans = 2 + (unsigned)below(&r->rng, 2);
		if (s->kind == FAILER) {
			if (r->fail_at != UINT64_MAX || r->n == 0) {
				s->kind = ADDER;
			} else {
				/* An item no filter drops. */
				r->fail_at = below(&r->rng, r->n) | 1;
				if (r->fail_at >= r->n || filtered(r->fail_at))
					s->kind = ADDER, r->fail_at = UINT64_MAX;
			}
		}
		if (s->kind == ADDER)
			r->adders++;
		if (s->kind == FAN || s->kind == WORKERS ||
		    (s->workers > 1 && !s->ordered))
			r->in_order = false;
	}
	r->stop = RUN;
	if (below(&r->rng, 3) == 0) {
		r->stop = below(&r->rng, 2) ? CANCEL_FLOW : CANCEL_PARENT;
		r->stop_after = below(&r->rng, r->n + 1);
		r->cause = r->stop == CANCEL_FLOW ? ECANCELED : ENETDOWN;
	}
	memset((void *)r->seen, 0, sizeof(r->seen));
}

/* One step after ch; *extra gets a channel of the test's to free later. */
static kn_chan *build_step(kn_flow *f, struct round *r, const struct step *s,
			   kn_chan *ch, kn_chan **extra)
{
	static const kn_stage_fn fns[] = { [ADDER] = add, [FILTER] = filter,
					   [FAILER] = failer };
	struct kn_stage_spec spec = { .arg = r, .out_size = 8, .out_cap = s->cap,
				      .workers = s->workers, .batch = s->batch,
				      .flags = s->ordered ? KN_STAGE_ORDERED : 0 };
	kn_chan *outs[3];

	switch (s->kind) {
	case FAN:
		if (kn_distribute(f, ch, s->fans, s->cap, s->mode, outs))
			return NULL;
		r->tasks += 1 + s->fans;
		return kn_merge(f, outs, s->fans, s->cap);
	case WORKERS:
		*extra = kn_chan_new(8, s->cap);
		if (!*extra || kn_worker_pool(f, ch, *extra, s->workers, add, r))
			return NULL;
		r->adders++;
		r->tasks += s->workers;
		return *extra;
	default:
		spec.fn = fns[s->kind];
		r->tasks += s->workers;
		return kn_stage(f, ch, &spec);
	}
}

static bool filters(const struct round *r)
{
	int i;

	for (i = 0; i < r->nsteps; i++)
		if (r->steps[i].kind == FILTER)
			return true;
	return false;
}

static void check_value(struct round *r, int64_t v, uint64_t *last)
{
	uint64_t idx = IDX(v);

	if (idx >= r->n)
		fail("value out of range", idx, r->n);
	if (filtered(idx) && filters(r))
		fail("a filtered value got through", idx, 0);
	if ((uint64_t)(v >> 32) != (uint64_t)r->adders)
		fail("value missed a stage", idx, (uint64_t)(v >> 32));
	if (atomic_fetch_add(&r->seen[idx], 1))
		fail("value received twice", idx, 0);
	if (r->in_order && *last != UINT64_MAX && idx <= *last)
		fail("value out of order", idx, *last);
	*last = idx;
}

static void run_round(struct round *r)
{
	struct kn_pool_stats before, after;
	kn_ctx *parent = kn_ctx_with_cancel(NULL);
	kn_flow *f = parent ? kn_flow_new(parent, pool) : NULL;
	kn_chan *ch, *extra[MAX_STEPS] = { NULL };
	uint64_t last = UINT64_MAX, got = 0, want = 0, i;
	bool stopped = false;
	int err, s;
	int64_t v;

	if (!f)
		fail("cannot make a flow", (uint64_t)errno, 0);
	kn_pool_stats(pool, &before);
	r->tasks = 1;
	ch = kn_generate_array(f, r->items, 8, r->n, below(&r->rng, 5));
	for (s = 0; s < r->nsteps && ch; s++)
		ch = build_step(f, r, &r->steps[s], ch, &extra[s]);
	if (!ch)
		fail("cannot build the pipeline", (uint64_t)errno, (uint64_t)s);

	while (kn_chan_recv(ch, &v) == 0) {
		check_value(r, v, &last);
		got++;
		if (r->stop != RUN && !stopped && got >= r->stop_after) {
			stopped = true;
			kn_ctx_cancel(r->stop == CANCEL_FLOW ? kn_flow_ctx(f) : parent,
				      r->cause == ECANCELED ? 0 : r->cause, NULL);
		}
	}
	err = kn_flow_wait(f);

	for (i = 0; i < r->n; i++)
		if (!filters(r) || !filtered(i))
			want++;
	if (r->fail_at != UINT64_MAX) {
		if (err != EIO && !(stopped && err == r->cause))
			fail("a stage error was not reported", (uint64_t)err, EIO);
	} else if (stopped) {
		if (err != 0 && err != r->cause)
			fail("wrong cause after a cancel", (uint64_t)err,
			     (uint64_t)r->cause);
	} else if (err) {
		fail("a complete flow failed", (uint64_t)err, 0);
	}
	if (!stopped && r->fail_at == UINT64_MAX) {
		if (got != want)
			fail("items lost", got, want);
		for (i = 0; i < r->n; i++)
			if ((filters(r) && filtered(i)) != !atomic_load(&r->seen[i]))
				fail("item accounting", i, atomic_load(&r->seen[i]));
	}

	/* Every task the patterns started has ended. */
	kn_pool_wait_idle(pool);
	kn_pool_stats(pool, &after);
	if (after.tasks_run - before.tasks_run > r->tasks ||
	    (!stopped && r->fail_at == UINT64_MAX &&
	     after.tasks_run - before.tasks_run != r->tasks))
		fail("task count", after.tasks_run - before.tasks_run, r->tasks);
	kn_flow_free(f);
	for (s = 0; s < MAX_STEPS; s++)
		kn_chan_free(extra[s]);
	kn_ctx_release(parent);
}

/* ---- bounded for-each ---------------------------------------------------- */

struct fe {
	_Atomic uint8_t ran[MAX_ITEMS];
	_Atomic int inside, most;
	size_t fail_at;
	unsigned k;
};

static int fe_op(kn_ctx *ctx, size_t i, void *arg)
{
	struct fe *e = arg;
	int now = atomic_fetch_add(&e->inside, 1) + 1, most = atomic_load(&e->most);

	(void)ctx;
	while (now > most && !atomic_compare_exchange_weak(&e->most, &most, now))
		;
	if (atomic_fetch_add(&e->ran[i], 1))
		fail("foreach ran an index twice", i, 0);
	if (i % 97 == 0)
		sched_yield();
	atomic_fetch_sub(&e->inside, 1);
	return i == e->fail_at ? EIO : 0;
}

static void run_foreach(uint64_t *rng)
{
	static struct fe e;
	size_t n = below(rng, MAX_ITEMS + 1), i;
	int err;

	memset((void *)&e, 0, sizeof(e));
	e.k = 1 + (unsigned)below(rng, 32);
	e.fail_at = below(rng, 3) == 0 && n ? below(rng, n) : SIZE_MAX;
	err = kn_foreach_bounded(NULL, n, e.k, fe_op, &e);
	if (atomic_load(&e.most) > (int)e.k)
		fail("foreach exceeded its bound", (uint64_t)atomic_load(&e.most),
		     e.k);
	if (e.fail_at != SIZE_MAX) {
		if (err != EIO || !atomic_load(&e.ran[e.fail_at]))
			fail("foreach error", (uint64_t)err, e.fail_at);
		return;
	}
	if (err)
		fail("foreach failed", (uint64_t)err, 0);
	for (i = 0; i < n; i++)
		if (atomic_load(&e.ran[i]) != 1)
			fail("foreach missed an index", i, n);
}

/* ---- main ---------------------------------------------------------------- */

static void *watchdog(void *arg)
{
	uint64_t seen = UINT64_MAX, now;
	int still = 0;

	(void)arg;
	for (;;) {
		sleep(1);
		now = atomic_load(&progress);
		still = now == seen ? still + 1 : 0;
		seen = now;
		if (still >= 120) {
			fprintf(stderr, "stress_pattern: no round finished for "
				"120 s after round %" PRIu64 ": hung\n", now);
			abort();
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static struct round r;
	struct kn_pool_opts o = { .workers = 2 };
	double seconds = stress_args(argc, argv, NULL, NULL);
	uint64_t end, rounds = 0, stops = 0, items = 0;
	pthread_t dog;
	size_t i;

	pool = kn_pool_new(&o);
	r.items = malloc(MAX_ITEMS * sizeof(int64_t));
	if (!pool || !r.items || pthread_create(&dog, NULL, watchdog, NULL))
		fail("setup", (uint64_t)errno, 0);
	pthread_detach(dog);
	for (i = 0; i < MAX_ITEMS; i++)
		r.items[i] = (int64_t)i;
	r.rng = (uint64_t)time(NULL) * 2654435761u | 1;
	printf("stress_pattern: seed %" PRIu64 "\n", r.rng);

	end = stress_deadline(seconds);
	while (kn_now() < end) {
		plan(&r);
		run_round(&r);
		if (below(&r.rng, 4) == 0)
			run_foreach(&r.rng);
		rounds++;
		items += r.n;
		stops += r.stop != RUN || r.fail_at != UINT64_MAX;
		atomic_store(&progress, rounds);
	}
	kn_pool_free(pool);
	free(r.items);
	printf("stress_pattern: %" PRIu64 " rounds, %" PRIu64 " items, %" PRIu64
	       " stopped early: ok\n", rounds, items, stops);
	return 0;
}
