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

/* sem_blocking: take a token (counting a wait when it is not there at
 * once), hold it across a receive, give it back. */
static void *loop_holding(void *arg)
{
	struct looper *l = arg;
	int64_t v;

	for (; l->done < l->pairs; l->done++) {
		if (!l->ops->try_acquire(l->sem)) {
			l->waits++;
			if (l->ops->acquire(l->sem))
				break;
		}
		if (l->ops->feed->recv(l->feed, &v)) {
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
	void *ch;
	uint64_t n;
};

static void *feed(void *arg)
{
	struct feeder *f = arg;

	for (uint64_t v = 0; v < f->n; v++)
		if (f->ops->send(f->ch, (int64_t)v))
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
		void *(*fn)(void *), void *feed_ch, const struct bench_args *a,
		struct bench_result *r)
{
	struct looper l[THREADS];
	struct feeder fd = { ops->feed, feed_ch, a->items };
	uint64_t t0, done = 0, waits = 0, sum = 0;
	void *sem = ops->new(tokens), *feeder = NULL;

	if (!sem) {
		r->check = "cannot create the semaphore";
		return;
	}
	for (int k = 0; k < n; k++)
		l[k] = (struct looper){ .ops = ops, .sem = sem, .feed = feed_ch,
					.pairs = a->items * (k + 1) / n -
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
	}
	ops->free(sem);
}

void sw_uncontended(const struct sem_ops *ops, const struct bench_args *a,
		    struct bench_result *r)
{
	run(ops, 1, 1, loop, NULL, a, r);
}

void sw_contended(const struct sem_ops *ops, const struct bench_args *a,
		  struct bench_result *r)
{
	run(ops, 20, THREADS, loop, NULL, a, r);
}

void sw_blocking(const struct sem_ops *ops, const struct bench_args *a,
		 struct bench_result *r)
{
	void *ch = ops->feed->new(0);

	if (!ch) {
		r->check = "cannot create the feed channel";
		return;
	}
	run(ops, 4, THREADS, loop_holding, ch, a, r);
	ops->feed->free(ch);
}
