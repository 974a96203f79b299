/*
 * stress_pool.c - the work-stealing pool, error groups and wait groups
 * under load.
 *
 * Configurations (each runs for S seconds, at least one round):
 *   fork-join   random trees of spawn_task/join whose sums are checked
 *               against a sequential walk of the same tree (2 and 4
 *               workers, and 1 worker without spares: helping only);
 *   spawn       1M x S empty tasks, half spawned from outside the pool,
 *               half from inside tasks; every one runs exactly once;
 *   shutdown    tasks spawning tasks while an outside thread spawns too,
 *               then a shutdown (draining or immediate) at a random moment:
 *               every accepted spawn ran or was dropped, never both;
 *   pipeline    4 stages (tasks blocking on unbuffered channels) on a
 *               2-worker pool; the sum that comes out is checked;
 *   errgroup    groups (random limit) where about half the tasks fail at
 *               once: exactly one error is reported, it is the context's
 *               cause, and every go is accounted for (ran or skipped).
 *
 * Usage: stress_pool [--seconds S]   (S per configuration, default 1)
 * Prints one line per configuration; exits non-zero on any violation.
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

#include <kanal/chan.h>
#include <kanal/ctx.h>
#include <kanal/group.h>
#include <kanal/pool.h>

#define STRESS_NAME "stress_pool"
#include "stress.h"

static kn_pool *pool_of(unsigned workers, int max_spare)
{
	struct kn_pool_opts o = { .workers = workers, .max_spare = max_spare };
	kn_pool *p = kn_pool_new(&o);

	if (!p) {
		fprintf(stderr, "stress_pool: kn_pool_new: %s\n", strerror(errno));
		exit(1);
	}
	return p;
}

/* ---- fork-join trees ---------------------------------------------------- */

#define TREE_DEPTH 9

/* A node's shape and value follow from its seed alone. */
static unsigned tree_children(uint64_t seed, int depth)
{
	return depth >= TREE_DEPTH ? 0 : (unsigned)(seed >> 7) % 4;
}

static uint64_t child_seed(uint64_t seed, unsigned i)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + i + 1;

	xorshift64(&s);
	return s;
}

static uint64_t tree_seq(uint64_t seed, int depth)
{
	uint64_t sum = seed & 0xffff;
	unsigned i, n = tree_children(seed, depth);

	for (i = 0; i < n; i++)
		sum += tree_seq(child_seed(seed, i), depth + 1);
	return sum;
}

struct node {
	uint64_t seed;
	int depth;
	uint64_t sum;
};

static void tree_task(void *arg)
{
	struct node *nd = arg, kids[4];
	kn_task *t[4];
	unsigned i, n = tree_children(nd->seed, nd->depth);

	nd->sum = nd->seed & 0xffff;
	for (i = 0; i < n; i++) {
		kids[i] = (struct node){ child_seed(nd->seed, i), nd->depth + 1, 0 };
		t[i] = kn_pool_spawn_task(kn_pool_current(), tree_task, &kids[i]);
		if (!t[i])
			tree_task(&kids[i]); /* ENOMEM: do it here */
	}
	/* Join in a shuffled order: not only the LIFO one. */
	for (i = 0; i < n; i++) {
		unsigned k = (i + (unsigned)nd->seed) % n;

		if (t[k])
			CHECK(kn_task_join(t[k]) == 0, "join failed");
	}
	for (i = 0; i < n; i++)
		nd->sum += kids[i].sum;
}

static int run_fork_join(unsigned workers, int max_spare, double seconds)
{
	kn_pool *p = pool_of(workers, max_spare);
	uint64_t end = stress_deadline(seconds), rng = 12345;
	uint64_t trees = 0, nodes = 0;
	struct kn_pool_stats st;

	do {
		struct node root = { xorshift64(&rng), 0, 0 };
		uint64_t want = tree_seq(root.seed, 0);
		kn_task *t = kn_pool_spawn_task(p, tree_task, &root);

		CHECK(t && kn_task_join(t) == 0, "root spawn/join failed");
		CHECK(root.sum == want, "tree %" PRIu64 ": sum %" PRIu64
		      " want %" PRIu64, root.seed, root.sum, want);
		trees++;
	} while (kn_now() < end);
	kn_pool_stats(p, &st);
	nodes = st.tasks_run;
	printf("stress_pool: fork-join, %u workers%s: %" PRIu64 " trees, %"
	       PRIu64 " tasks, %" PRIu64 " steals, %" PRIu64 " spares\n",
	       workers, max_spare < 0 ? " (no spares)" : "", trees, nodes,
	       st.steals, st.spares_started);
	kn_pool_free(p);
	return 0;
}

/* ---- a million tasks ----------------------------------------------------- */

struct fanout {
	kn_pool *pool;
	atomic_uint_fast64_t *ran;
	uint64_t n;
};

static void count_task(void *arg)
{
	atomic_fetch_add_explicit((atomic_uint_fast64_t *)arg, 1,
				  memory_order_relaxed);
}

static void spawn_inside(void *arg)
{
	struct fanout *f = arg;
	uint64_t i;

	for (i = 0; i < f->n; i++)
		CHECK(kn_pool_spawn(f->pool, count_task, f->ran) == 0,
		      "spawn inside failed");
}

static int run_spawn(double seconds)
{
	static atomic_uint_fast64_t ran;
	kn_pool *p = pool_of(0, 0);
	uint64_t total = (uint64_t)(1000000 * (seconds < 1 ? 1 : seconds));
	uint64_t outside = total / 2, spawners = 8, i, t0 = kn_now();
	struct fanout f = { p, &ran, (total - outside) / spawners };
	struct kn_pool_stats st;

	for (i = 0; i < spawners; i++)
		CHECK(kn_pool_spawn(p, spawn_inside, &f) == 0, "spawn failed");
	for (i = 0; i < outside; i++)
		CHECK(kn_pool_spawn(p, count_task, &ran) == 0, "spawn failed");
	kn_pool_wait_idle(p);
	total = outside + f.n * spawners;
	kn_pool_stats(p, &st);
	CHECK(atomic_load(&ran) == total, "%" PRIu64 " ran of %" PRIu64,
	      (uint64_t)atomic_load(&ran), total);
	CHECK(st.tasks_run == total + spawners, "stats: %" PRIu64 " run",
	      st.tasks_run);
	printf("stress_pool: spawn: %" PRIu64 " tasks (%" PRIu64 " outside) in %.0f ms, %"
	       PRIu64 " steals, %" PRIu64 " parks\n", total, outside,
	       (double)(kn_now() - t0) / 1e6, st.steals, st.parks);
	kn_pool_free(p);
	return 0;
}

/* ---- shutdown while busy ----------------------------------------------- */

struct busy {
	kn_pool *pool;
	atomic_uint_fast64_t accepted, ran;
	atomic_bool stop;
};

static void busy_task(void *arg);

/* Each busy task spawns up to two more (inside: always accepted, even
 * while an immediate shutdown drops them), a little work in between. */
static void busy_task(void *arg)
{
	struct busy *b = arg;
	uint64_t r = (uint64_t)(uintptr_t)&r ^ atomic_load(&b->accepted);
	unsigned i, n = (unsigned)(xorshift64(&r) % 3);
	volatile unsigned spin;

	atomic_fetch_add(&b->ran, 1);
	for (spin = 0; spin < 200; spin++)
		;
	for (i = 0; i < n && !atomic_load(&b->stop); i++)
		if (kn_pool_spawn(b->pool, busy_task, b) == 0)
			atomic_fetch_add(&b->accepted, 1);
}

static void *outside_spawner(void *arg)
{
	struct busy *b = arg;
	int r;

	for (;;) {
		r = kn_pool_spawn(b->pool, busy_task, b);
		if (r == EPIPE)
			break;
		CHECK(r == 0, "outside spawn: %s", strerror(r));
		atomic_fetch_add(&b->accepted, 1);
	}
	return NULL;
}

static int run_shutdown(double seconds)
{
	uint64_t end = stress_deadline(seconds), rng = 99;
	uint64_t rounds = 0, dropped_total = 0, ran_total = 0;

	do {
		struct busy b = { pool_of(2 + (unsigned)(rounds % 3), 0) };
		bool drain = xorshift64(&rng) & 1;
		struct timespec ts = { 0, (long)(xorshift64(&rng) % 2000000) };
		size_t dropped = 0;
		pthread_t th;
		int r;

		/* The draining shutdown waits for the fork bomb to end: stop
		 * its growth once the shutdown starts. */
		atomic_init(&b.accepted, 0);
		atomic_init(&b.ran, 0);
		atomic_init(&b.stop, false);
		if (pthread_create(&th, NULL, outside_spawner, &b))
			exit(1);
		/* Busy first: the shutdown must meet running and queued work. */
		while (atomic_load(&b.accepted) < 100)
			sched_yield();
		nanosleep(&ts, NULL);
		if (drain)
			atomic_store(&b.stop, true);
		r = kn_pool_shutdown(b.pool, drain, &dropped);
		CHECK(r == 0, "shutdown: %s", strerror(r));
		pthread_join(th, NULL);
		CHECK(atomic_load(&b.ran) + dropped == atomic_load(&b.accepted),
		      "%s shutdown: %" PRIu64 " ran + %zu dropped != %" PRIu64
		      " accepted", drain ? "draining" : "immediate",
		      (uint64_t)atomic_load(&b.ran), dropped,
		      (uint64_t)atomic_load(&b.accepted));
		CHECK(!drain || dropped == 0, "a draining shutdown dropped %zu",
		      dropped);
		dropped_total += dropped;
		ran_total += atomic_load(&b.ran);
		kn_pool_free(b.pool);
		rounds++;
	} while (kn_now() < end);
	printf("stress_pool: shutdown while busy: %" PRIu64 " pools, %" PRIu64
	       " tasks ran, %" PRIu64 " dropped\n", rounds, ran_total, dropped_total);
	return 0;
}

/* ---- a 4-stage blocking pipeline on 2 workers ------------------------- */

struct stage {
	kn_chan *in, *out;
	int64_t mul, add, n; /* n: items to generate (the source stage) */
};

static void source(void *arg)
{
	struct stage *s = arg;
	int64_t i;

	for (i = 0; i < s->n; i++)
		CHECK(kn_chan_send(s->out, &i) == 0, "source send");
	kn_chan_close(s->out);
}

static void stage(void *arg)
{
	struct stage *s = arg;
	int64_t v;

	while (kn_chan_recv(s->in, &v) == 0) {
		v = v * s->mul + s->add;
		CHECK(kn_chan_send(s->out, &v) == 0, "stage send");
	}
	kn_chan_close(s->out);
}

static int run_pipeline(double seconds)
{
	uint64_t end = stress_deadline(seconds);
	uint64_t rounds = 0, items = 0;
	kn_pool *p = pool_of(2, 0);
	struct kn_pool_stats st;

	do {
		int64_t n = 500, v, sum = 0, want = 0, i;
		size_t cap = rounds % 2; /* rendezvous, or capacity 1 */
		kn_chan *ch[5];
		struct stage s[4];
		int k;

		for (k = 0; k < 5; k++)
			if (!(ch[k] = kn_chan_new(sizeof(int64_t), cap)))
				exit(1);
		s[0] = (struct stage){ NULL, ch[0], 0, 0, n };
		s[1] = (struct stage){ ch[0], ch[1], 2, 0, 0 };
		s[2] = (struct stage){ ch[1], ch[2], 1, 1, 0 };
		s[3] = (struct stage){ ch[2], ch[3], 3, 0, 0 };
		CHECK(kn_pool_spawn(p, source, &s[0]) == 0, "spawn");
		for (k = 1; k < 4; k++)
			CHECK(kn_pool_spawn(p, stage, &s[k]) == 0, "spawn");
		while (kn_chan_recv(ch[3], &v) == 0)
			sum += v;
		for (i = 0; i < n; i++)
			want += (2 * i + 1) * 3;
		CHECK(sum == want, "pipeline sum %" PRId64 " want %" PRId64, sum, want);
		kn_pool_wait_idle(p);
		for (k = 0; k < 5; k++)
			kn_chan_free(ch[k]);
		items += (uint64_t)n;
		rounds++;
	} while (kn_now() < end);
	kn_pool_stats(p, &st);
	printf("stress_pool: pipeline, 4 stages on 2 workers: %" PRIu64
	       " rounds, %" PRIu64 " items, %u threads\n", rounds, items, st.threads);
	kn_pool_free(p);
	return 0;
}

/* ---- error groups failing at once ---------------------------------------- */

struct failing {
	atomic_int ran;
	atomic_int errors[4097]; /* which codes were returned */
};

struct fail_arg {
	struct failing *f;
	int code; /* 0: succeed */
};

static int maybe_fail(kn_ctx *ctx, void *arg)
{
	struct fail_arg *a = arg;

	(void)ctx;
	atomic_fetch_add(&a->f->ran, 1);
	if (a->code)
		atomic_fetch_add(&a->f->errors[a->code], 1);
	return a->code;
}

static int run_errgroup(double seconds)
{
	uint64_t end = stress_deadline(seconds), rng = 7;
	uint64_t rounds = 0, tasks = 0, skipped = 0;
	static struct failing f;
	static struct fail_arg args[4096];
	kn_pool *p = pool_of(0, 0);

	do {
		kn_group *g = kn_group_new(NULL, p);
		int i, r, err, accepted = 0, limit = (int)(xorshift64(&rng) % 9) - 1;

		memset(&f, 0, sizeof(f));
		if (!g)
			exit(1);
		kn_group_set_limit(g, limit == 0 ? -1 : limit);
		for (i = 0; i < 4096; i++) {
			args[i] = (struct fail_arg){ &f, xorshift64(&rng) & 1 ? i + 1 : 0 };
			r = kn_group_go(g, maybe_fail, &args[i]);
			CHECK(r == 0 || r == ECANCELED, "go: %s", strerror(r));
			accepted += r == 0;
		}
		err = kn_group_wait(g);
		CHECK(err > 0 && err <= 4096 && atomic_load(&f.errors[err]) == 1,
		      "wait returned %d, not an error a task returned", err);
		CHECK(kn_ctx_cause(kn_group_ctx(g), NULL) == err,
		      "cause %d, error %d", kn_ctx_cause(kn_group_ctx(g), NULL), err);
		CHECK(atomic_load(&f.ran) == accepted, "%d ran of %d accepted",
		      atomic_load(&f.ran), accepted);
		CHECK(accepted + (int)kn_group_skipped(g) == 4096,
		      "%d accepted + %zu skipped != 4096", accepted,
		      kn_group_skipped(g));
		tasks += (uint64_t)accepted;
		skipped += kn_group_skipped(g);
		kn_group_free(g);
		rounds++;
	} while (kn_now() < end);
	printf("stress_pool: errgroup, half failing: %" PRIu64 " groups, %" PRIu64
	       " tasks ran, %" PRIu64 " skipped\n", rounds, tasks, skipped);
	kn_pool_free(p);
	return 0;
}

int main(int argc, char **argv)
{
	double seconds = stress_args(argc, argv, NULL, NULL);

	run_fork_join(2, 0, seconds);
	run_fork_join(4, 0, seconds);
	run_fork_join(1, KN_POOL_NO_SPARE, seconds);
	run_spawn(seconds);
	run_shutdown(seconds);
	run_pipeline(seconds);
	run_errgroup(seconds);
	return stress_exit();
}
