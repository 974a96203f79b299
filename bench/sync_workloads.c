/*
 * sync_workloads.c - the lock loops. Actors start inside the timed region,
 * as the Go version's goroutines do. The checks: a counter kept only under
 * the lock equals the sections run, readers never see half a write, the
 * turns of the ping-pong add up.
 */
#include "sync_workloads.h"

#include <stdbool.h>
#include <stdio.h>

#define ACTORS 8
/* Steps of the contended section's work: a dependent 64-bit multiply-add
 * chain on the shared word, about 50 ns at 3 GHz (bench/go/sync.go runs
 * the same). */
#define SECTION_STEPS 32
/* rwmutex_read_mostly: one write in every WRITE_EVERY sections. */
#define WRITE_EVERY 101

/* What the lock guards, on its own lines. */
struct guarded {
	_Alignas(128) uint64_t count;
	uint64_t acc;          /* the section's work */
	uint64_t a, b;         /* rwmutex: written together */
	int turn;              /* cond_pingpong: whose turn */
};

struct actor {
	_Alignas(128) const struct sync_ops *ops; /* own lines */
	void *o;
	struct guarded *g;
	int id;
	uint64_t n;            /* sections (turns) to do */
	uint64_t torn;         /* reads that saw a != b */
};

static char message[128];

static void section_work(struct guarded *g)
{
	uint64_t x = g->acc;

	for (int k = 0; k < SECTION_STEPS; k++)
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	g->acc = x;
}

static void *bare_loop(void *arg)
{
	struct actor *t = arg;

	for (uint64_t i = 0; i < t->n; i++) {
		t->ops->lock(t->o);
		t->g->count++;
		t->ops->unlock(t->o);
	}
	return NULL;
}

static void *mutex_loop(void *arg)
{
	struct actor *t = arg;

	for (uint64_t i = 0; i < t->n; i++) {
		t->ops->lock(t->o);
		section_work(t->g);
		t->g->count++;
		t->ops->unlock(t->o);
	}
	return NULL;
}

static void *rw_loop(void *arg)
{
	struct actor *t = arg;

	for (uint64_t i = 0; i < t->n; i++) {
		if ((i + (uint64_t)t->id) % WRITE_EVERY == 0) {
			t->ops->wlock(t->o);
			t->g->a++;
			t->g->b++;
			t->ops->wunlock(t->o);
		} else {
			t->ops->rlock(t->o);
			t->torn += t->g->a != t->g->b;
			t->ops->runlock(t->o);
		}
	}
	return NULL;
}

static void *pingpong_loop(void *arg)
{
	struct actor *t = arg;

	t->ops->lock(t->o);
	for (uint64_t i = 0; i < t->n; i++) {
		while (t->g->turn != t->id)
			t->ops->wait(t->o);
		t->g->turn = !t->id;
		t->g->count++;
		t->ops->signal(t->o);
	}
	t->ops->unlock(t->o);
	return NULL;
}

/* Runs n actors of fn over `sections` in all (each actor's share, or each
 * actor `sections` with every_one); returns the guarded state's verdict
 * inputs through g and the actors. */
static void run(const struct sync_ops *ops, int n, void *(*fn)(void *),
		uint64_t sections, bool every_one, struct guarded *g,
		uint64_t *torn, struct bench_result *r)
{
	struct actor t[ACTORS];
	uint64_t t0;
	void *o = ops->new();

	if (!o)
		bench_die("cannot create the lock");
	for (int k = 0; k < n; k++)
		t[k] = (struct actor){ .ops = ops, .o = o, .g = g, .id = k,
				       .n = every_one ? sections :
					    sections * (k + 1) / n - sections * k / n };
	t0 = bench_now();
	if (n == 1)
		fn(&t[0]);
	else
		bench_wait(&ops->run, bench_run(&ops->run, n, fn, t, sizeof(t[0])));
	r->ns = bench_now() - t0;
	*torn = 0;
	for (int k = 0; k < n; k++)
		*torn += t[k].torn;
	ops->free(o);
}

static const char *counted(uint64_t got, uint64_t want, const char *what)
{
	if (got == want)
		return "ok";
	snprintf(message, sizeof(message), "%llu %s, want %llu",
		 (unsigned long long)got, what, (unsigned long long)want);
	return message;
}

void lw_mutex_uncontended(const struct sync_ops *ops, const struct bench_args *a,
			  struct bench_result *r)
{
	static struct guarded g;
	uint64_t torn;

	g = (struct guarded){ 0 };
	run(ops, 1, bare_loop, a->items, false, &g, &torn, r);
	r->check = counted(g.count, a->items, "sections");
}

void lw_mutex_contended(const struct sync_ops *ops, const struct bench_args *a,
			struct bench_result *r)
{
	static struct guarded g;
	uint64_t torn;

	g = (struct guarded){ 0 };
	run(ops, ACTORS, mutex_loop, a->items, false, &g, &torn, r);
	r->check = counted(g.count, a->items, "sections");
}

void lw_rwmutex_read_mostly(const struct sync_ops *ops, const struct bench_args *a,
			    struct bench_result *r)
{
	static struct guarded g;
	uint64_t torn, writes = 0;

	g = (struct guarded){ 0 };
	run(ops, ACTORS, rw_loop, a->items, false, &g, &torn, r);
	for (int k = 0; k < ACTORS; k++) {
		uint64_t n = a->items * (k + 1) / ACTORS - a->items * k / ACTORS;

		for (uint64_t i = 0; i < n; i++)
			writes += (i + (uint64_t)k) % WRITE_EVERY == 0;
	}
	r->check = torn ? "a reader saw half a write" :
		   g.a != g.b ? "the written pair differs" :
		   counted(g.a, writes, "writes");
}

void lw_cond_pingpong(const struct sync_ops *ops, const struct bench_args *a,
		      struct bench_result *r)
{
	static struct guarded g;
	uint64_t torn;

	g = (struct guarded){ 0 };
	run(ops, 2, pingpong_loop, a->items, true, &g, &torn, r);
	r->check = counted(g.count, 2 * a->items, "turns");
}
