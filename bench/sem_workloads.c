/*
 * sem_workloads.c - acquire(1)+release(1) loops on one or eight threads.
 * The threads start inside the timed region, as the Go version's goroutines
 * do. The check: every pair completed and every token came back; in
 * sem_blocking also every fed value received once and some acquire waited.
 */
#include "sem_workloads.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define THREADS 8

struct looper {
	_Alignas(128) const struct sem_ops *ops; /* own lines: no false sharing */
	void *sem;
	void *feed;             /* sem_blocking: receive one value per pair */
	void *ready;            /* sem_blocking: the start gate (see below) */
	uint64_t pairs;         /* to do */
	uint64_t done;          /* completed; short if an acquire failed */
	uint64_t waits, sum;    /* sem_blocking: acquires that waited, values */
};

static void *loop(void *arg)
{
	struct looper *l = arg;

	for (; l->done < l->pairs; l->done++) {
		if (l->ops->acquire(l->sem))
			break;
		l->ops->release(l->sem);
	}
	return NULL;
}

/*
 * sem_blocking: take a token (counting a wait when it is not there at
 * once), hold it across a receive, give it back. The start gate: each
 * looper reports on `ready` once its first try has succeeded or failed,
 * and the feeder sends nothing before all have. So the first four hold
 * their tokens in the receive until the other four have found none: at
 * least four waits in every impl, whatever the scheduler does later.
 */
static void *loop_holding(void *arg)
{
	struct looper *l = arg;
	const struct chan_ops *ch = l->ops->feed;
	bool gate = true;
	int64_t v;

	if (!l->pairs)
		ch->send(l->ready, 0);
	for (; l->done < l->pairs; l->done++) {
		bool took = l->ops->try_acquire(l->sem);

		if (gate)
			ch->send(l->ready, 0);
		gate = false;
		if (!took) {
			l->waits++;
			if (l->ops->acquire(l->sem))
				break;
		}
		if (ch->recv(l->feed, &v)) {
			l->ops->release(l->sem);
			break;
		}
		l->sum += (uint64_t)v;
		l->ops->release(l->sem);
	}
	return NULL;
}

struct feeder {
	const struct chan_ops *ops;
	void *ch, *ready;
	uint64_t n;
};

/* Waits for every looper's first try, then sends 0..n-1. */
static void *feed(void *arg)
{
	struct feeder *f = arg;
	int64_t v;

	for (int k = 0; k < THREADS; k++)
		f->ops->recv(f->ready, &v);
	for (v = 0; (uint64_t)v < f->n; v++)
		if (f->ops->send(f->ch, v))
			break;
	return NULL;
}

static char message[128];

static const char *verdict(const struct sem_ops *ops, void *sem,
			   unsigned tokens, uint64_t done, uint64_t want)
{
	unsigned left = ops->available(sem);

	if (done != want)
		snprintf(message, sizeof(message), "%llu pairs, want %llu",
			 (unsigned long long)done, (unsigned long long)want);
	else if (left != tokens)
		snprintf(message, sizeof(message), "%u tokens back, want %u",
			 left, tokens);
	else
		return "ok";
	return message;
}

/* Runs n loopers (body fn) sharing a semaphore of `tokens` over a->items
 * pairs; sem_blocking's feeder runs beside them when feed is set. */
static void run(const struct sem_ops *ops, unsigned tokens, int n,
		void *(*fn)(void *), void *feed_ch, void *ready,
		const struct bench_args *a, struct bench_result *r)
{
	struct looper l[THREADS];
	struct feeder fd = { ops->feed, feed_ch, ready, a->items };
	uint64_t t0, done = 0, waits = 0, sum = 0;
	void *sem = ops->new(tokens), *feeder = NULL;

	if (!sem) {
		r->check = "cannot create the semaphore";
		return;
	}
	for (int k = 0; k < n; k++)
		l[k] = (struct looper){ .ops = ops, .sem = sem, .feed = feed_ch,
					.ready = ready, .pairs = a->items * (k + 1) / n -
						 a->items * k / n };
	t0 = bench_now();
	if (feed_ch)
		feeder = bench_run(&ops->run, 1, feed, &fd, 0);
	if (n == 1)
		fn(&l[0]);
	else
		bench_wait(&ops->run, bench_run(&ops->run, n, fn, l, sizeof(l[0])));
	if (feeder)
		bench_wait(&ops->run, feeder);
	r->ns = bench_now() - t0;

	for (int k = 0; k < n; k++) {
		done += l[k].done;
		waits += l[k].waits;
		sum += l[k].sum;
	}
	r->check = verdict(ops, sem, tokens, done, a->items);
	if (feed_ch && !strcmp(r->check, "ok")) {
		if (sum != bench_sum_upto(a->items))
			r->check = "the holders did not receive every value once";
		else if (!waits)
			r->check = "no acquire waited";
		r->waits = waits;
	}
	ops->free(sem);
}

void sw_uncontended(const struct sem_ops *ops, const struct bench_args *a,
		    struct bench_result *r)
{
	run(ops, 1, 1, loop, NULL, NULL, a, r);
}

void sw_contended(const struct sem_ops *ops, const struct bench_args *a,
		  struct bench_result *r)
{
	run(ops, 20, THREADS, loop, NULL, NULL, a, r);
}

void sw_blocking(const struct sem_ops *ops, const struct bench_args *a,
		 struct bench_result *r)
{
	void *ch = ops->feed->new(0), *ready = ops->feed->new(THREADS);

	if (ch && ready)
		run(ops, 4, THREADS, loop_holding, ch, ready, a, r);
	else
		r->check = "cannot create the channels";
	if (ch)
		ops->feed->free(ch);
	if (ready)
		ops->feed->free(ready);
}
