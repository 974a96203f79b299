/*
 * sem_workloads.c - acquire(1)+release(1) loops on one or eight threads.
 * The threads start inside the timed region, as the Go version's goroutines
 * do. The check: every pair completed and every token came back.
 */
#include "sem_workloads.h"

#include <stdint.h>
#include <stdio.h>

#define THREADS 8

struct looper {
	_Alignas(128) const struct sem_ops *ops; /* own lines: no false sharing */
	void *sem;
	uint64_t pairs;         /* to do */
	uint64_t done;          /* completed; short if an acquire failed */
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

/* Runs n loopers sharing a semaphore of `tokens` over a->items pairs. */
static void run(const struct sem_ops *ops, unsigned tokens, int n,
		const struct bench_args *a, struct bench_result *r)
{
	struct looper l[THREADS];
	uint64_t t0, done = 0;
	void *sem = ops->new(tokens);

	if (!sem) {
		r->check = "cannot create the semaphore";
		return;
	}
	for (int k = 0; k < n; k++)
		l[k] = (struct looper){ .ops = ops, .sem = sem,
					.pairs = a->items * (k + 1) / n -
						 a->items * k / n };
	t0 = bench_now();
	if (n == 1)
		loop(&l[0]);
	else
		bench_wait(&ops->run, bench_run(&ops->run, n, loop, l, sizeof(l[0])));
	r->ns = bench_now() - t0;

	for (int k = 0; k < n; k++)
		done += l[k].done;
	r->check = verdict(ops, sem, tokens, done, a->items);
	ops->free(sem);
}

void sw_uncontended(const struct sem_ops *ops, const struct bench_args *a,
		    struct bench_result *r)
{
	run(ops, 1, 1, a, r);
}

void sw_shared(const struct sem_ops *ops, unsigned tokens,
	       const struct bench_args *a, struct bench_result *r)
{
	run(ops, tokens, THREADS, a, r);
}
