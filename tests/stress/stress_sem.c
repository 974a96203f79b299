/*
 * stress_sem.c - threads acquire random weights from one semaphore, hold
 * them a moment, and release them; some acquires carry a short deadline or
 * a context with a short timeout, so grants race timeouts and cancellations.
 *
 * Checks, per configuration:
 *   - the tokens held (a counter the holders keep) never exceed the size;
 *   - FIFO: let A be a plain acquire that went to sleep queued (the waiter
 *     layer's block hook runs once its node is queued; it then stamps A's
 *     slot with a ticket from a global clock) and B an acquire that started
 *     later (B took its ticket after A's stamp). If the two weights exceed
 *     the size together, B cannot be served before A has released: so when
 *     B returns holding its tokens, A's slot (cleared just before A
 *     releases) must not still show that stamp;
 *   - at the end the semaphore has all its tokens and nothing is held.
 *
 * Usage: stress_sem [--seconds S]   (S per configuration, default 1)
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

#include <kanal/ctx.h>
#include <kanal/sem.h>

#include "stress.h"
#include "waiter.h"

#define MAX_THREADS 32
#define WEIGHT_BITS 16

struct config {
	int threads;
	uint64_t size;
	bool timed; /* mix in deadlines and contexts */
};

static const struct config configs[] = {
	{ 4, 8, false },
	{ 16, 20, false },
	{ 8, 1, false },
	{ 16, 20, true },
	{ 6, 5, true },
};

struct shared {
	kn_sem *s;
	const struct config *cfg;
	uint64_t end;
	atomic_uint_fast64_t clock;
	atomic_int_fast64_t held;
	atomic_int violations;
	/* Per thread: stamp << WEIGHT_BITS | weight while a queued plain
	 * acquire has not released, else 0. */
	atomic_uint_fast64_t slot[MAX_THREADS];
};

struct worker {
	struct shared *sh;
	int id;
	uint64_t rng;
	uint64_t weight;  /* of the acquire in progress */
	bool plain;       /* it is a plain (FIFO-checked) acquire */
	uint64_t acquired, timeouts, cancels, max_held;
};

static uint64_t tick(struct shared *sh)
{
	return atomic_fetch_add(&sh->clock, 1) + 1;
}

/* Block hook: our node is queued and we are going to sleep. */
static void on_block(void *arg, const struct waiter *wt)
{
	(void)wt;
	struct worker *w = arg;

	if (w->plain)
		atomic_store(&w->sh->slot[w->id],
			     tick(w->sh) << WEIGHT_BITS | w->weight);
}

static void on_wake(void *arg)
{
	(void)arg;
}

/* Mostly small requests, now and then one of most of the size. */
static uint64_t pick_weight(struct worker *w)
{
	uint64_t n = w->sh->cfg->size, small = n / 4 ? n / 4 : 1;

	if (xorshift64(&w->rng) % 8 == 0)
		return n - xorshift64(&w->rng) % (n - n * 3 / 4 + 1);
	return 1 + xorshift64(&w->rng) % small;
}

static void check_fifo(struct worker *b, uint64_t started)
{
	struct shared *sh = b->sh;

	for (int a = 0; a < sh->cfg->threads; a++) {
		uint64_t v = atomic_load(&sh->slot[a]);
		uint64_t stamp = v >> WEIGHT_BITS;
		uint64_t wa = v & ((1u << WEIGHT_BITS) - 1);

		if (a == b->id || !v || stamp >= started ||
		    wa + b->weight <= sh->cfg->size)
			continue;
		fprintf(stderr, "FIFO: thread %d (weight %" PRIu64 ", started "
			"at %" PRIu64 ") served before thread %d (weight %"
			PRIu64 ", queued at %" PRIu64 ") released\n",
			b->id, b->weight, started, a, wa, stamp);
		atomic_fetch_add(&sh->violations, 1);
	}
}

static int acquire_one(struct worker *w)
{
	struct shared *sh = w->sh;
	uint64_t r = sh->cfg->timed ? xorshift64(&w->rng) % 4 : 0;
	kn_ctx *ctx;
	int ret;

	w->plain = r < 2;
	switch (r) {
	case 2:
		return kn_sem_acquire_until(sh->s, w->weight,
					    kn_deadline_in(xorshift64(&w->rng) % 200000));
	case 3:
		ctx = kn_ctx_with_timeout(NULL, xorshift64(&w->rng) % 200000);
		if (!ctx)
			return ENOMEM;
		ret = kn_sem_acquire_ctx(sh->s, w->weight, ctx);
		kn_ctx_release(ctx);
		return ret;
	default:
		return r ? kn_sem_acquire_ctx(sh->s, w->weight, NULL)
			 : kn_sem_acquire(sh->s, w->weight);
	}
}

static void hold(struct worker *w)
{
	struct shared *sh = w->sh;
	int64_t now = atomic_fetch_add(&sh->held, w->weight) + w->weight;

	if ((uint64_t)now > sh->cfg->size) {
		fprintf(stderr, "held %" PRId64 " > size %" PRIu64 "\n", now,
			sh->cfg->size);
		atomic_fetch_add(&sh->violations, 1);
	}
	if ((uint64_t)now > w->max_held)
		w->max_held = now;
	if (xorshift64(&w->rng) % 16 == 0)
		sched_yield();
	atomic_fetch_sub(&sh->held, w->weight);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	struct block_hook h = { .enter = on_block, .leave = on_wake, .arg = w };
	unsigned n = 0;

	waiter_set_block_hook(&h);
	while (n++ % 64 || kn_now() < sh->end) {
		uint64_t started;
		int r;

		w->weight = pick_weight(w);
		started = tick(sh);
		r = acquire_one(w);
		if (r == 0) {
			w->acquired++;
			check_fifo(w, started);
			hold(w);
			atomic_store(&sh->slot[w->id], 0);
			if (kn_sem_release(sh->s, w->weight)) {
				fprintf(stderr, "release failed\n");
				atomic_fetch_add(&sh->violations, 1);
			}
		} else if (r == ETIMEDOUT) {
			w->timeouts++;
		} else if (r == ECANCELED) {
			w->cancels++;
		} else {
			fprintf(stderr, "acquire: %s\n", strerror(r));
			atomic_fetch_add(&sh->violations, 1);
		}
		if (w->plain && atomic_load(&sh->slot[w->id])) {
			fprintf(stderr, "a failed plain acquire was queued\n");
			atomic_fetch_add(&sh->violations, 1);
		}
	}
	waiter_set_block_hook(NULL);
	return NULL;
}

static int run(const struct config *cfg, double seconds)
{
	static struct shared sh;
	struct worker w[MAX_THREADS];
	pthread_t t[MAX_THREADS];
	uint64_t acquired = 0, timeouts = 0, cancels = 0, max_held = 0;
	int bad;

	memset(&sh, 0, sizeof(sh));
	sh.cfg = cfg;
	sh.s = kn_sem_new(cfg->size);
	if (!sh.s) {
		perror("kn_sem_new");
		return 1;
	}
	sh.end = stress_deadline(seconds);
	for (int i = 0; i < cfg->threads; i++) {
		w[i] = (struct worker){ .sh = &sh, .id = i,
					.rng = 0x9e3779b97f4a7c15ull * (i + 1) };
		if (pthread_create(&t[i], NULL, work, &w[i])) {
			perror("pthread_create");
			exit(1);
		}
	}
	for (int i = 0; i < cfg->threads; i++) {
		pthread_join(t[i], NULL);
		acquired += w[i].acquired;
		timeouts += w[i].timeouts;
		cancels += w[i].cancels;
		if (w[i].max_held > max_held)
			max_held = w[i].max_held;
	}
	bad = atomic_load(&sh.violations);
	if (kn_sem_available(sh.s) != cfg->size || atomic_load(&sh.held)) {
		fprintf(stderr, "end: %" PRIu64 " tokens free of %" PRIu64
			", %" PRId64 " held\n", kn_sem_available(sh.s),
			cfg->size, (int64_t)atomic_load(&sh.held));
		bad++;
	}
	printf("stress_sem: %2d threads, size %2" PRIu64 "%s: %9" PRIu64
	       " acquires, %7" PRIu64 " timeouts, %7" PRIu64
	       " cancels, max held %2" PRIu64 ": %s\n",
	       cfg->threads, cfg->size, cfg->timed ? ", timed" : "       ",
	       acquired, timeouts, cancels, max_held, bad ? "FAILED" : "ok");
	kn_sem_free(sh.s);
	return bad != 0;
}

STRESS_MAIN(configs, run)
